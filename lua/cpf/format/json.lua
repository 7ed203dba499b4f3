-- cpf.format.json — json (an array of objects, one per line) and jsonl (one object per line):
-- keys in column order, exact integers, shortest round-trip floats, always valid UTF-8; and a
-- reader of JSON text (json.decode).
local common = require "cpf.format.common"

local json = {}

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_char(c)
  return ESCAPES[c] or ("\\u%04x"):format(c:byte())
end

-- RFC 8259 string: quote, backslash and control characters escaped; U+2028 and U+2029 too, so
-- the output can be pasted into JavaScript; bytes that are not UTF-8 become U+FFFD.
local function string_text(s)
  s = common.valid_utf8(s):gsub('[%z\1-\31"\\]', escape_char)
  s = s:gsub("\226\128\168", "\\u2028"):gsub("\226\128\169", "\\u2029")
  return '"' .. s .. '"'
end
json.string_text = string_text

-- The rows are written by the C writers (core.row_writer, csrc/writer.c), with the same rules.
json.json = {
  options = { row_kind = common.option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    out:rows(res, { format = "json", columns = res:columns() })
  end,
}

json.jsonl = {
  options = { row_kind = common.option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    out:rows(res, { format = "jsonl", columns = res:columns() })
  end,
}

--- A strict reader of one JSON text (cpf fetch reads the portal's catalog entry with it): the
--- value (objects and arrays as tables, null as nil), or nil, message.
function json.decode(s)
  local pos = 1
  local function fail(what) error(("%s at byte %d"):format(what, pos), 0) end
  local function space() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function utf8_char(c)
    if c < 0x80 then return string.char(c) end
    if c < 0x800 then return string.char(0xC0 + math.floor(c / 64), 0x80 + c % 64) end
    return string.char(0xE0 + math.floor(c / 4096), 0x80 + math.floor(c / 64) % 64, 0x80 + c % 64)
  end
  local function text()
    local out = {}
    pos = pos + 1
    while true do
      local stop = s:find('["\\]', pos)
      if not stop then fail("an unfinished string") end
      out[#out + 1] = s:sub(pos, stop - 1)
      pos = stop + 1
      if s:sub(stop, stop) == '"' then return table.concat(out) end
      local e = s:sub(pos, pos)
      if e == "u" then
        local hex = s:sub(pos + 1, pos + 4)
        if not hex:match("^%x%x%x%x$") then fail("a bad \\u escape") end
        out[#out + 1] = utf8_char(tonumber(hex, 16))
        pos = pos + 5
      elseif escapes[e] then
        out[#out + 1] = escapes[e]
        pos = pos + 1
      else
        fail("a bad escape")
      end
    end
  end
  function value()
    space()
    local c = s:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      space()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        space()
        if s:sub(pos, pos) ~= '"' then fail("a key expected") end
        local k = text()
        space()
        if s:sub(pos, pos) ~= ":" then fail("':' expected") end
        pos = pos + 1
        t[k] = value()
        space()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("',' or '}' expected") end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      space()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value()
        space()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("',' or ']' expected") end
      end
    elseif c == '"' then
      return text()
    end
    local word = s:match("^[%w%.%+%-]+", pos)
    if not word then fail("a value expected") end
    pos = pos + #word
    if word == "true" then return true end
    if word == "false" then return false end
    if word == "null" then return nil end
    local n = tonumber(word)
    if not n or not word:match("^%-?%d") then fail("a bad value '" .. word:sub(1, 20) .. "'") end
    return n
  end
  local ok, v = pcall(function()
    local v = value()
    space()
    if pos <= #s then fail("text after the value") end
    return v
  end)
  if not ok then return nil, v end
  return v
end

return json
