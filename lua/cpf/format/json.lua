-- cpf.format.json — json (an array of objects, one per line) and jsonl (one object per line):
-- keys in column order, exact integers, shortest round-trip floats, always valid UTF-8.
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

local function value_text(v)
  if v == nil then return "null" end
  local t = type(v)
  if t == "number" then return common.number_text(v) or "null" end -- NaN, ±inf: null
  if t == "boolean" then return tostring(v) end
  return string_text(tostring(v))
end

-- One object per row; the keys are written once, escaped.
local function object_writer(res)
  local columns = res:columns()
  local keys = {}
  for j, name in ipairs(columns) do keys[j] = string_text(name) .. ":" end
  local parts = {}
  return function(row)
    for j, name in ipairs(columns) do parts[j] = keys[j] .. value_text(row[name]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
end

json.json = {
  options = { row_kind = common.option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    if #res == 0 then out:write("[]\n") return end
    local object = object_writer(res)
    out:write("[\n")
    for i, row in ipairs(res) do
      out:write(object(row), i < #res and ",\n" or "\n")
    end
    out:write("]\n")
  end,
}

json.jsonl = {
  options = { row_kind = common.option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    local object = object_writer(res)
    for _, row in ipairs(res) do out:write(object(row), "\n") end
  end,
}

return json
