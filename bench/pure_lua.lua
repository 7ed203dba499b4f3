-- pure_lua.lua: the "analyst writes it by hand" peer for the cpf benchmarks --
-- plain Lua 5.4, no C module: files and amount by region and year.
--
-- Usage: lua5.4 bench/pure_lua.lua FILE
-- Prints one JSON line:
--   {"tool":"pure_lua","seconds":S,"rows":R,"groups":G,"sum_dossiers":D,
--    "sum_montant":A,"maxrss_kb":K}
-- Also runs under LuaJIT / Lua 5.1 (integer sums are then doubles).

local path = arg[1]
if not path then
  io.stderr:write("usage: lua5.4 bench/pure_lua.lua FILE\n")
  os.exit(2)
end

-- Wall clock: os.clock is CPU time and os.time has 1 s resolution.
local function wall()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

local find, sub, gsub = string.find, string.sub, string.gsub

-- Split one logical record into fields. Returns the field list and whether a
-- quoted field is still open at the end of the line (the record continues on
-- the next physical line). `fields` and `n`, when given, resume that record.
local function split(line, fields, n, open)
  fields = fields or {}
  n = n or 0
  local pos, len = 1, #line
  if open then
    -- Continue the quoted field that the previous line left open.
    local buf = fields[n] .. "\n"
    while true do
      local q = find(line, '"', pos, true)
      if not q then                             -- still open
        fields[n] = buf .. gsub(line, '""', '"')
        return fields, n, true
      end
      if sub(line, q + 1, q + 1) == '"' then
        q = q + 1                               -- "" inside quotes
      else
        fields[n] = buf .. gsub(sub(line, 1, q - 1), '""', '"')
        pos = q + 1
        if pos > len then return fields, n, false end
        pos = pos + 1                           -- skip the ';'
        break
      end
      pos = q + 1
    end
  end
  while pos <= len + 1 do
    if sub(line, pos, pos) == '"' then
      local start, p = pos + 1, pos + 1
      while true do
        local q = find(line, '"', p, true)
        if not q then
          n = n + 1
          fields[n] = gsub(sub(line, start), '""', '"')
          return fields, n, true
        end
        if sub(line, q + 1, q + 1) == '"' then
          p = q + 2
        else
          n = n + 1
          fields[n] = gsub(sub(line, start, q - 1), '""', '"')
          pos = q + 2                           -- past the quote and ';'
          break
        end
      end
    else
      local s = find(line, ";", pos, true)
      n = n + 1
      if s then
        fields[n] = sub(line, pos, s - 1)
        pos = s + 1
      else
        fields[n] = sub(line, pos)
        break
      end
    end
  end
  return fields, n, false
end

local t0 = wall()
local f = assert(io.open(path, "rb"))

local header = f:read("*l")
header = gsub(header, "^\239\187\191", "")
header = gsub(header, "\r$", "")
local names = split(header)
local col = {}
for i, name in ipairs(names) do col[name] = i end
local i_region = assert(col["region_lieu_formation"], "no region_lieu_formation column")
local i_date = assert(col["date validation"] or col["date_validation"], "no date validation column")
local i_dossiers = assert(col["nb_dossiers"], "no nb_dossiers column")
local i_montant = assert(col["montant_engage"], "no montant_engage column")

local groups, ngroups = {}, 0
local rows = 0
local fields, n, open = nil, 0, false

for line in f:lines() do
  if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
  if open then
    fields, n, open = split(line, fields, n, true)
  elseif line ~= "" then
    fields, n, open = split(line)
  end
  if not open and fields then
    rows = rows + 1
    local key = fields[i_region] .. "\0" .. sub(fields[i_date], 1, 4)
    local g = groups[key]
    if not g then
      g = { dossiers = 0, montant = 0.0 }
      groups[key] = g
      ngroups = ngroups + 1
    end
    g.dossiers = g.dossiers + (tonumber(fields[i_dossiers]) or 0)
    g.montant = g.montant + (tonumber(fields[i_montant]) or 0)
    fields = nil
  end
end
f:close()

local sum_dossiers, sum_montant = 0, 0.0
for _, g in pairs(groups) do
  sum_dossiers = sum_dossiers + g.dossiers
  sum_montant = sum_montant + g.montant
end
local seconds = wall() - t0

-- Peak resident set, from Linux's /proc (absent elsewhere: reported as null).
local maxrss = "null"
local status = io.open("/proc/self/status", "r")
if status then
  maxrss = status:read("*a"):match("VmHWM:%s*(%d+)") or "null"
  status:close()
end

io.write(string.format(
  '{"tool":"pure_lua","seconds":%.6f,"rows":%d,"groups":%d,"sum_dossiers":%.0f,"sum_montant":%.2f,"maxrss_kb":%s}\n',
  seconds, rows, ngroups, sum_dossiers, sum_montant, maxrss))
