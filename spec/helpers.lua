-- spec/helpers.lua — run by busted before the specs (see .busted) and required by them:
-- points package.path/cpath at this checkout's lua/ and the build for the running Lua.
local helpers = {}

helpers.lua_name = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
helpers.interpreter = jit and "luajit" or helpers.lua_name
helpers.root = os.getenv("PWD") or "."

if not package.path:find("lua/?/init.lua", 1, true) then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  -- CPF_BUILD_DIR: another build of the module (make check-asan runs the specs on one)
  package.cpath = (os.getenv("CPF_BUILD_DIR") or ("build/" .. helpers.lua_name)) .. "/?.so;" .. package.cpath
end

function helpers.fixture(name)
  return "spec/fixtures/" .. name
end

local tmp_files = {}

function helpers.tmpname(suffix)
  local name = os.tmpname()
  os.remove(name)
  name = name .. (suffix or "")
  tmp_files[#tmp_files + 1] = name
  return name
end

function helpers.write_file(content, suffix)
  local name = helpers.tmpname(suffix or ".csv")
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

-- The message of the error f raises, without the position of the spec line that made the call;
-- a position inside cpf (lua/cpf/...) is kept, so that a message naming a library line fails.
function helpers.error_of(f)
  local ok, err = pcall(f)
  assert(not ok, "no error raised")
  return (tostring(err):gsub("^spec/[^:\n]*:%d+: ", "", 1))
end

function helpers.write_bytes(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

function helpers.read_file(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function helpers.cleanup()
  for _, name in ipairs(tmp_files) do os.remove(name) end
  tmp_files = {}
end

-- Runs a shell command; returns stdout, stderr and the exit code.
function helpers.run(command)
  local err_file = helpers.tmpname(".err")
  local code_file = helpers.tmpname(".code")
  local p = io.popen("(" .. command .. ") 2>" .. err_file .. "; echo $? >" .. code_file)
  local out = p:read("*a")
  p:close()
  return out, helpers.read_file(err_file), tonumber(helpers.read_file(code_file))
end

-- Two row tables with the same keys and equal values (NaN equal to NaN).
function helpers.same_row(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v and not (v ~= v and b[k] ~= b[k]) then return false end
  end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Asserts that two datasets hold the same columns, dictionaries (in code order) and rows.
function helpers.same_dataset(a, b, what)
  local assert = require "luassert" -- busted's assert lives in the specs' environment, not here
  what = what or "datasets"
  assert.are.same(a:columns(), b:columns(), what)
  assert.are.equal(#a, #b, what)
  for _, c in ipairs(a:columns()) do
    if c.type == "string" then assert.are.same(a:dictionary(c.name), b:dictionary(c.name), what .. " " .. c.name) end
  end
  for i = 1, #a do
    local ra, rb = a:row(i), b:row(i)
    if not helpers.same_row(ra, rb) then assert.are.same(ra, rb, ("%s, row %d"):format(what, i)) end
  end
end

-- Quotes a string for the shell.
function helpers.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The cpf command under the Lua running the specs.
function helpers.cpf_command(args)
  return helpers.interpreter .. " bin/cpf " .. args
end

-- ---- an independent CSV reader for the specs that check cpf against the file's text:
-- BOM, ';', quotes with "" and line breaks, LF or CRLF ----

-- Calls on_record(fields, number) for every record, the header being record 1; blank lines (a
-- record of one empty field) are skipped. Fails loudly on anything it does not expect.
function helpers.read_csv(text, on_record)
  local find, sub, byte = string.find, string.sub, string.byte
  local pos, n = 1, #text
  if sub(text, 1, 3) == "\239\187\191" then pos = 4 end
  local record, nfields, count = {}, 0, 0
  while pos <= n do
    local field
    if byte(text, pos) == 34 then -- '"': a quoted field, where "" stands for one quote
      local parts, i = {}, pos + 1
      while true do
        local q = find(text, '"', i, true)
        if not q then error("unterminated quoted field at byte " .. pos) end
        parts[#parts + 1] = sub(text, i, q - 1)
        if byte(text, q + 1) == 34 then
          parts[#parts + 1] = '"'
          i = q + 2
        else
          pos = q + 1
          break
        end
      end
      field = table.concat(parts)
    else
      local stop = find(text, "[;\r\n]", pos) or n + 1
      field = sub(text, pos, stop - 1)
      if find(field, '"', 1, true) then error("stray quote at byte " .. pos) end
      pos = stop
    end
    nfields = nfields + 1
    record[nfields] = field
    local c = byte(text, pos)
    local ended = false
    if c == 59 then -- ';'
      pos = pos + 1
    elseif c == 13 then -- CR only as part of CRLF
      if byte(text, pos + 1) ~= 10 then error("lone CR at byte " .. pos) end
      pos, ended = pos + 2, true
    elseif c == 10 then
      pos, ended = pos + 1, true
    elseif c == nil then
      ended = true
    else
      error("text after a closing quote at byte " .. pos)
    end
    if ended then
      if not (nfields == 1 and record[1] == "") then
        count = count + 1
        on_record(record, count)
      end
      record, nfields = {}, 0
    end
  end
  return count
end

-- "1234.50" → 123450, "0" → 0, "12.5" → 1250: integer cents from the text, no float involved.
function helpers.cents_of_text(s)
  local units, frac = s:match("^(%d+)%.(%d%d?)$")
  if not units then units, frac = s:match("^(%d+)$"), "" end
  assert(units, "not an amount: " .. s)
  return tonumber(units) * 100 + tonumber((frac .. "00"):sub(1, 2))
end

return helpers
