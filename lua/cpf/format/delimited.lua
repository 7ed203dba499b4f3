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
