-- spec/support/lua_writers.lua — the reference the C writers of csv, csv-fr, tsv, json and jsonl are
-- compared with (spec/53): the Lua writers as they stood at bfaeba7, kept verbatim, and to_string.
--
-- The two blocks below are lua/cpf/format/delimited.lua and the writer part of
-- lua/cpf/format/json.lua at commit bfaeba7, byte for byte (json.decode left out); do not edit
-- them: the bytes they write are what the C writers must write. M.to_string does what
-- format.to_string (lua/cpf/format.lua at bfaeba7) does for these five built-in formats.
local M = {}

-- ---- lua/cpf/format/delimited.lua at bfaeba7 ----

local delimited = (function()
-- cpf.format.delimited — csv (RFC 4180, quoted only when needed; formula-like text guarded for
-- spreadsheets on demand, csv-fr's default) and tsv (never quoted: tab, CR, LF and backslash in
-- values are written \t, \r, \n and \\, as PostgreSQL, ClickHouse and Miller read them); numbers
-- exact (rounded by kind on demand, csv-fr's default), optional BOM and decimal comma.
local byte = string.byte
-- the bytes %s matches: space, \t, \n, \v, \f, \r
local is_space = { [32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true }
local common = require "cpf.format.common"
local schema = require "cpf.schema"
local option = common.option

local delimited = {}

local BOM = "\239\187\191"

-- The decimals a rounded csv keeps of a computed number, by the column's kind: money to the
-- cent, anything else (rates, means, ratios) to 6 decimals; keys and whole numbers as they are.
local ROUNDED_DECIMALS = { money = 2, rate = 6, number = 6, count = 6 }

-- v with at most `decimals` decimals, trailing zeros dropped: 3908.2289928057553 -> 3908.23;
-- the exact text when it is no longer (123456789012.34 stays, never 123456789012.339996).
local function rounded_text(v, decimals)
  local s = common.fixed_text(v, decimals)
  if s:find(".", 1, true) then s = s:gsub("0+$", ""):gsub("%.$", "") end
  if s == "-0" then s = "0" end
  local exact = common.number_text(v)
  if #exact <= #s then return exact end
  return s
end

local function field_text(v, decimal, decimals)
  if v == nil then return "" end
  if type(v) == "number" then
    local s
    if decimals and v == v and v ~= math.floor(v) and v - v == 0 then s = rounded_text(v, decimals)
    else s = common.number_text(v) end
    if not s then return "" end -- NaN, ±inf: written as missing
    if decimal == "," then s = s:gsub("%.", ",") end
    return s
  end
  return tostring(v)
end

-- A text a spreadsheet would run as a formula: it starts with = + - @, a tab or a CR and is no
-- number (-1, -12,5 and +3 stay as they are).
local function formula_like(s)
  if not s:find("^[=+%-@\t\r]") then return false end
  return tonumber(s) == nil and tonumber((s:gsub(",", "."))) == nil
end

local function write_records(res, out, opts, field)
  local columns = res:columns()
  local eol = opts.eol or "\n"
  if opts.bom then out:write(BOM) end
  local cells = {}
  for j, name in ipairs(columns) do cells[j] = field(name) end
  out:write(table.concat(cells, opts.sep), eol)
  for i, row in ipairs(res) do
    for j, name in ipairs(columns) do cells[j] = field(row[name], j, i, row, name) end
    out:write(table.concat(cells, opts.sep), eol)
  end
end

local function check_sep(v)
  if type(v) ~= "string" or #v ~= 1 or v == '"' or v == "\r" or v == "\n" then
    return "must be one character other than '\"', CR and LF"
  end
end

local function check_row_labels(v)
  if v ~= false and v ~= "fr" and v ~= "en" then return 'must be false, "fr" or "en"' end
end

delimited.csv = {
  options = { sep = check_sep, bom = option.boolean, decimal = option.decimal, eol = option.eol,
              formula_guard = option.boolean, rounded = option.boolean, row_kind = option.boolean,
              row_labels = check_row_labels, labels = option.boolean },
  check = function(opts)
    if opts.decimal == "," and (opts.sep or ",") == "," then
      return "decimal ',' needs another separator than ',' (sep = ';')"
    end
  end,
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    local sep, decimal, guard = opts.sep or ",", opts.decimal, opts.formula_guard
    -- a total or Autres row says so in its first missing key (csv-fr's default, in French)
    local label = opts.row_labels and common.rollup_label(res, opts.row_labels) or function() return nil end
    local special = "[%" .. sep .. '"\r\n]'
    if sep:find("%w") then special = "[" .. sep .. '"\r\n]' end
    local one_column = #res:columns() == 1
    -- rounded (csv-fr's default): computed decimals rounded by the column's kind, for people
    local decimals_of = {}
    if opts.rounded then
      local kinds = res:kinds()
      for j, name in ipairs(res:columns()) do decimals_of[j] = ROUNDED_DECIMALS[kinds[name] or "number"] end
    end
    -- labels (--opt labels=true): column titles and the values of the keys that have them
    -- (status families, funders) in the language of row_labels (csv-fr: French), for people
    local language = opts.labels and (opts.row_labels or "en")
    local value_labels = language and schema.value_labels[language] or {}
    local function field(v, j, i, row, name)
      if language and not i then v = common.column_title(res, v, language) end
      if language and i and value_labels[name] and value_labels[name][v] then v = value_labels[name][v] end
      local s = i and label(i, row, name) or field_text(v, decimal, j and decimals_of[j])
      -- a spreadsheet shows '=1+2 as the text =1+2 instead of running it (formula_guard)
      if guard and type(v) == "string" and formula_like(s) then s = "'" .. s end
      -- an empty line is no record to a reader: a lone missing value is written ""
      if one_column and s == "" then return '""' end
      -- quoted when it holds the separator, a quote or a line break, or would lose a space
      -- (the last byte is looked at directly: find("%s$") would try every position of the text)
      if s:find(special) or s:find("^%s") or is_space[byte(s, -1)] then
        s = '"' .. s:gsub('"', '""') .. '"'
      end
      return s
    end
    write_records(res, out, { sep = sep, bom = opts.bom, eol = opts.eol }, field)
  end,
}

local TSV_ESCAPES = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\r"] = "\\r", ["\n"] = "\\n" }

delimited.tsv = {
  options = { bom = option.boolean, decimal = option.decimal, eol = option.eol, row_kind = option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    local decimal = opts.decimal
    local function field(v)
      return (field_text(v, decimal):gsub("[\\\t\r\n]", TSV_ESCAPES))
    end
    write_records(res, out, { sep = "\t", bom = opts.bom, eol = opts.eol }, field)
  end,
}

return delimited
end)()

-- ---- lua/cpf/format/json.lua at bfaeba7 (the writers; json.decode left out) ----

local json = (function()
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
end)()

-- ---- format.to_string (lua/cpf/format.lua at bfaeba7) for the five formats ----

local common = require "cpf.format.common"
local result = require "cpf.result"

-- csv-fr: csv with other defaults, its text in French order (format.lua's BUILTIN)
local BUILTIN = {
  csv = { spec = delimited.csv },
  ["csv-fr"] = { spec = delimited.csv, defaults = { sep = ";", bom = true, decimal = ",", formula_guard = true,
                                                      rounded = true, row_labels = "fr" }, french = true },
  tsv = { spec = delimited.tsv },
  json = { spec = json.json },
  jsonl = { spec = json.jsonl },
}

M.names = { "csv", "csv-fr", "tsv", "json", "jsonl" }

-- format.lua's Out, without a target: the pieces a format writes, kept in order.
local Out = {}
Out.__index = Out

function Out:write(...)
  local parts, n = self.parts, self.n
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "number" then
      v = common.number_text(v) or tostring(v)
    elseif type(v) ~= "string" then
      error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
    end
    n = n + 1
    parts[n] = v
  end
  self.n = n
  return self
end

--- The result in one of the five formats, as format.to_string wrote it at bfaeba7: the preset's
--- defaults under the caller's options (checked as format.lua checks them), csv-fr's French order.
function M.to_string(res, name, opts)
  local builtin = assert(BUILTIN[name], "lua_writers: no reference writer for format " .. tostring(name))
  local spec = builtin.spec
  local merged = {}
  for k, v in pairs(builtin.defaults or {}) do merged[k] = v end
  for k, v in pairs(opts or {}) do
    local check = spec.options[k]
    if not check then error(("%s: unknown option '%s'"):format(name, tostring(k)), 2) end
    local err = check(v, res)
    if err then error(("%s: option '%s' %s"):format(name, k, err), 2) end
    merged[k] = v
  end
  local err = spec.check and spec.check(merged, res)
  if err then error(name .. ": " .. err, 2) end
  if builtin.french then res = result.french_order(res) end
  local out = setmetatable({ parts = {}, n = 0 }, Out)
  spec.write(res, out, merged)
  return table.concat(out.parts, "", 1, out.n)
end

return M
