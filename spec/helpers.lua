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

-- The functions and variables a shared object exports (nm -D), sorted.
function helpers.exported_symbols(path)
  local out, err, code = helpers.run("nm -D --defined-only " .. helpers.shell_quote(path))
  assert(code == 0, "nm -D " .. path .. ": " .. err)
  local exported = {}
  for kind, name in out:gmatch("%x+ (%u) ([%w_]+)") do
    if kind == "T" or kind == "D" or kind == "B" or kind == "R" then exported[#exported + 1] = name end
  end
  table.sort(exported)
  return exported
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

-- ---- an independent, strict JSON reader (RFC 8259): values, with nil for null ----

helpers.JSON_NULL = setmetatable({}, { __tostring = function() return "null" end })

function helpers.json_decode(text)
  local pos = 1
  local function fail(what) error(("JSON: %s at byte %d"):format(what, pos), 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function string_value()
    local parts = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c:byte() < 32 then fail("raw control character") end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if simple[e] then
          parts[#parts + 1] = simple[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = text:match("^%x%x%x%x", pos + 2) or fail("bad \\u escape")
          local cp = tonumber(hex, 16)
          if cp >= 0xD800 and cp <= 0xDBFF then -- a surrogate pair: one code point above U+FFFF
            local low = tonumber(text:match("^\\u(%x%x%x%x)", pos + 6) or fail("lone surrogate"), 16)
            if low < 0xDC00 or low > 0xDFFF then fail("bad surrogate pair") end
            cp = 0x10000 + (cp - 0xD800) * 1024 + (low - 0xDC00)
            pos = pos + 6
          elseif cp >= 0xDC00 and cp <= 0xDFFF then
            fail("lone surrogate")
          end
          if cp >= 0x10000 then
            parts[#parts + 1] = string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                                            0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
          elseif cp < 0x80 then parts[#parts + 1] = string.char(cp)
          elseif cp < 0x800 then parts[#parts + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
          else
            parts[#parts + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
                                            0x80 + cp % 64)
          end
          pos = pos + 6
        else
          fail("bad escape")
        end
      else
        parts[#parts + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(parts)
  end
  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj, keys = {}, {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return { object = obj, keys = keys } end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail("key expected") end
        local k = string_value()
        skip()
        if text:sub(pos, pos) ~= ":" then fail("':' expected") end
        pos = pos + 1
        local v = value()
        keys[#keys + 1] = k
        obj[k] = v
        skip()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return { object = obj, keys = keys } end
        if d ~= "," then fail("',' or '}' expected") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return arr end
      while true do
        arr[#arr + 1] = value()
        skip()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then fail("',' or ']' expected") end
      end
    elseif c == '"' then
      return string_value()
    elseif text:find("^null", pos) then
      pos = pos + 4
      return helpers.JSON_NULL
    elseif text:find("^true", pos) then
      pos = pos + 4
      return true
    elseif text:find("^false", pos) then
      pos = pos + 5
      return false
    else
      local num = text:match("^%-?%d+%.?%d*[eE]?[%+%-]?%d*", pos)
      if not num or not num:find("^%-?0[%.eE]") and not num:find("^%-?0$") and num:find("^%-?0") then
        fail("value expected")
      end
      pos = pos + #num
      return tonumber(num) or fail("bad number")
    end
  end
  local v = value()
  skip()
  if pos <= #text then fail("trailing text") end
  return v
end

-- Strict UTF-8 (no overlongs, surrogates or values above U+10FFFF).
function helpers.is_utf8(s)
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 0 or (c >= 0xC2 and c <= 0xDF) and 1 or (c >= 0xE0 and c <= 0xEF) and 2
      or (c >= 0xF0 and c <= 0xF4) and 3 or nil
    if not n then return false end
    for k = 1, n do
      local b = s:byte(i + k)
      if not b or b < 0x80 or b > 0xBF then return false end
    end
    local b1 = s:byte(i + 1)
    if (c == 0xE0 and b1 < 0xA0) or (c == 0xED and b1 > 0x9F) or (c == 0xF0 and b1 < 0x90)
       or (c == 0xF4 and b1 > 0x8F) then
      return false
    end
    i = i + n + 1
  end
  return true
end

-- Well-formed markup: every element closed in order, attributes quoted, no stray '<' or '&'.
function helpers.check_markup(text)
  local stack, pos = {}, 1
  local void = { meta = true, br = true, ["!DOCTYPE"] = true }
  while true do
    local s, e, tag = text:find("<([^>]*)>", pos)
    local between = text:sub(pos, (s or #text + 1) - 1)
    assert(not between:find("<"), "stray '<'")
    for amp in between:gmatch("&[^;]*;?") do
      assert(amp:find("^&[#%w]+;$"), "stray '&': " .. amp)
    end
    if not s then break end
    local close, name = tag:match("^(/?)([%w!]+)")
    assert(name, "bad tag <" .. tag .. ">")
    local attrs = tag:sub(#close + #name + 1):gsub("/$", "")
    assert(attrs:gsub('%s+[%w:%-]+="[^"<]*"', "") :find("^%s*$") or name == "!DOCTYPE",
           "bad attributes in <" .. tag .. ">")
    if close == "/" then
      assert(table.remove(stack) == name, "</" .. name .. "> closes another element")
    elseif not tag:find("/$") and not void[name] then
      stack[#stack + 1] = name
    end
    pos = e + 1
  end
  assert(#stack == 0, "unclosed <" .. tostring(stack[#stack]) .. ">")
end

-- The element and attribute names of a page, sorted and each once: what the markup is made of.
function helpers.markup_names(text)
  local set = {}
  for tag in text:gmatch("<([^>]*)>") do
    local name = tag:match("^/?([%w!]+)")
    if name then set["<" .. name] = true end
    for attr in tag:gmatch('%s([%w:%-]+)="') do set["@" .. attr] = true end
  end
  local names = {}
  for k in pairs(set) do names[#names + 1] = k end
  table.sort(names)
  return names
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

-- The stand-in for the portal (spec/portal/portal.py) serving `dir` on 127.0.0.1, outside the
-- sanitizers' runtime the tests may preload: its base address and its pid (kill it).
function helpers.start_portal(dir)
  local pid = helpers.run(("env -u LD_PRELOAD python3 spec/portal/portal.py %s > %s 2>&1 & echo $!")
    :format(helpers.shell_quote(dir), helpers.shell_quote(dir .. "/port"))):match("%d+")
  for _ = 1, 100 do
    local f = io.open(dir .. "/port")
    local port = f and f:read("*a"):match("^(%d+)\n")
    if f then f:close() end
    if port then return "http://127.0.0.1:" .. port, pid end
    os.execute("sleep 0.05")
  end
  error("the stand-in portal did not start: " .. (helpers.read_file(dir .. "/port") or ""))
end

-- Two row tables with the same keys and equal values (NaN equal to NaN).
function helpers.same_row(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v and not (v ~= v and b[k] ~= b[k]) then return false end
  end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- A dataset's snapshot bytes: equal for datasets of equal columns, types, dictionaries (in code
-- order), values, missing values and rejects.
local function snapshot_bytes(ds)
  local path = helpers.tmpname(".cpfsnap")
  assert(ds:save(path))
  local bytes = helpers.read_file(path)
  os.remove(path)
  return bytes
end

-- Asserts that two datasets hold the same columns, dictionaries (in code order) and rows. Equal
-- snapshot bytes settle it at once (the thread specs compare big datasets, under sanitizers
-- too); otherwise the rows are compared one by one, for a message that says where.
function helpers.same_dataset(a, b, what)
  local assert = require "luassert" -- busted's assert lives in the specs' environment, not here
  what = what or "datasets"
  assert.are.same(a:columns(), b:columns(), what)
  assert.are.equal(#a, #b, what)
  if snapshot_bytes(a) == snapshot_bytes(b) then return end
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
      field = sub(text, pos, stop - 1) -- a '"' further in is a character
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
