-- fuzz/result_store.lua — run by fuzz/result_store.c: returns a function of the fuzzer's bytes
-- that reads them as a grouped query over a small dataset with awkward values (missing keys and
-- numbers, negatives, large integers, accents, '|', long text), then as a sequence of result
-- operations. An operation may be refused (an error raised at the call, from this file's
-- position); a finding is an error raised from inside cpf's files, or a broken invariant: this
-- function raises then, and the harness aborts.
local cpf = require "cpf"

local csv = { "region_lieu_formation;date_validation;nb_dossiers;montant_engage;code_rncp;statut_dossier" }
local REGIONS = { "Bretagne", "Île-de-France", "", "a|b", "Corse", ("long"):rep(30), "Éure" }
local STATUS = { "Validé", "Annulé par le titulaire", "", "Sortie de formation", "Clos" }
for i = 1, 240 do
  local month = i % 11 == 0 and "" or ("%d-%02d"):format(2019 + i % 6, i % 12 + 1)
  local dossiers = i % 13 == 0 and "" or tostring((i * 7919) % 23 - (i % 17 == 0 and 5 or 0))
  local montant = i % 19 == 0 and "" or ("%d,%02d"):format((i * 104729) % 900000 - (i % 29 == 0 and 5000 or 0), i % 100)
  if i % 37 == 0 then montant = "9007199254740" end
  csv[#csv + 1] = table.concat({ REGIONS[i % #REGIONS + 1], month, dossiers, montant,
    i % 7 == 0 and "" or ("RNCP%d"):format(30000 + i % 9), STATUS[i % #STATUS + 1] }, ";")
end
local path = os.tmpname()
local f = assert(io.open(path, "wb"))
f:write(table.concat(csv, "\n"), "\n")
f:close()
local ds = assert(cpf.load(path))
os.remove(path)

local KEYS = { "region_lieu_formation", "annee", "mois", "trimestre", "code_rncp", "statut_dossier", "famille",
               "semestre", "mois_de_l_annee" }
local MEASURES = { "dossiers", "montant", "prix_moyen", "lignes", "taux_annulation",
                   { "n", cpf.count() }, { "med", cpf.median "montant_engage" }, { "rncp", cpf.distinct "code_rncp" },
                   { "top", cpf.max "nb_dossiers" }, { "low", cpf.min "montant_engage" } }
local FORMATS = { "csv", "json", "markdown", "table", "tsv", "jsonl", "csv-fr", "html", "svg" }

-- A finding: raised from inside cpf, not at the call (error positions name the caller's line).
local function internal(err)
  local text = tostring(err)
  return text:find("lua/cpf/", 1, true) ~= nil or text:find("attempt to", 1, true) ~= nil
    or text:find("table index is", 1, true) ~= nil
end

return function(bytes)
  local pos = 0
  local function byte()
    pos = pos + 1
    return bytes:byte(pos) or 0
  end
  local function pick(t)
    if #t == 0 then return nil end
    return t[byte() % #t + 1]
  end

  local keys = {}
  for _ = 1, byte() % 4 do keys[#keys + 1] = pick(KEYS) end
  local measures = {}
  for _ = 1, byte() % 4 + 1 do measures[#measures + 1] = pick(MEASURES) end
  local q = ds:group_by((table.unpack or unpack)(keys)):agg(measures)
  local shape = byte()
  if shape % 5 == 1 and #keys > 0 then q = q:limit(byte() % 5 + 1, { others = true }) end
  if shape % 7 == 2 and #keys > 1 then q = q:totals() end
  local ok, res = pcall(q.run, q)
  if not ok then
    if internal(res) then error("query: " .. tostring(res)) end
    return
  end

  local function column() return pick(res:columns()) end
  -- a period key of the query when it has one, and the other keys
  local function period()
    local periods = {}
    for _, k in ipairs(keys) do
      if k == "annee" or k == "mois" or k == "trimestre" or k == "semestre" then periods[#periods + 1] = k end
    end
    return pick(periods) or pick { "annee", "mois" }
  end
  local function others()
    if byte() % 2 == 0 then return nil end
    local by = {}
    for _, k in ipairs(keys) do
      if k ~= "annee" and k ~= "mois" and k ~= "trimestre" and k ~= "semestre" then by[#by + 1] = k end
    end
    return #by > 0 and by or nil
  end
  local ops = {
    function() return res:sorted((byte() % 2 == 0 and "-" or "") .. column()) end,
    function()
      local n, per = byte() % 6, #keys > 0 and byte() % 2 == 0 and pick(keys) or nil
      local out = res:head(n, per and { per = per } or nil)
      if not per and #out > n then error("head: " .. #out .. " rows for " .. n) end
      return out
    end,
    function() return res:where { [column()] = cpf.gt(byte() - 100) } end,
    function()
      local c = column()
      return res:with { { "x" .. byte(), function(row) return type(row[c]) == "number" and row[c] * 2 or nil end } }
    end,
    function() return res:join(res, pick(keys) or column(), { suffix = "_" .. byte() }) end,
    function() return res:change(column(), { over = period(), by = others(), lag = byte() % 3 + 1 }) end,
    function() return res:cumsum(column(), { over = period(), by = others() }) end,
    function() return res:rank(column(), { desc = byte() % 2 == 0 }) end,
    function() return res:share(column()) end,
    function() return res:rolling(column(), byte() % 14, { over = period(), by = others() }) end,
    function()
      res:pivot(pick(keys) or column(), pick(keys) or column(), column())
      return res
    end,
    function()
      res:get(byte() % (#res + 2), column())
      for _ in res:rows() do end
      return res
    end,
    function()
      local text = res:format(pick(FORMATS))
      if type(text) ~= "string" then error("format gave " .. type(text)) end
      return res
    end,
  }
  while pos < #bytes do
    local op = ops[byte() % #ops + 1]
    local done, out = pcall(op)
    if done then
      if type(out) ~= "table" or #out < 0 then error("an operation gave " .. tostring(out)) end
      res = out
    elseif internal(out) then
      error(tostring(out))
    end
  end
end
