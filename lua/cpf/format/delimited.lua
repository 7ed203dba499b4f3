-- cpf.format.delimited — csv (RFC 4180, quoted only when needed; formula-like text guarded for
-- spreadsheets on demand, csv-fr's default) and tsv (never quoted: tab, CR, LF and backslash in
-- values are written \t, \r, \n and \\, as PostgreSQL, ClickHouse and Miller read them); numbers
-- exact (rounded by kind on demand, csv-fr's default), optional BOM and decimal comma.
-- The cells are written by the C writers (core.row_writer, csrc/writer.c): this module turns the
-- options into what they need.
local common = require "cpf.format.common"
local result = require "cpf.result"
local schema = require "cpf.schema"
local option = common.option

local delimited = {}

-- The decimals a rounded csv keeps of a computed number, by the column's kind: money to the
-- cent, anything else (rates, means, ratios) to 6 decimals; keys and whole numbers as they are.
local ROUNDED_DECIMALS = { money = 2, rate = 6, number = 6, count = 6 }

local function check_sep(v)
  if type(v) ~= "string" or #v ~= 1 or v == '"' or v == "\r" or v == "\n" then
    return "must be one character other than '\"', CR and LF"
  end
end

local function check_row_labels(v)
  if v ~= false and v ~= "fr" and v ~= "en" then return 'must be false, "fr" or "en"' end
end

-- The words of the rows that stand for several groups, by row and column: {[i] = {[j] =
-- "Total" | "Autres" | ...}} in the first missing key of each total, subtotal or Autres row.
local function rollup_cells(res, columns, locale)
  local label = common.rollup_label(res, locale)
  local cells = {}
  for i in pairs(result.row_kinds(res)) do
    local row = res[i]
    for j, name in ipairs(columns) do
      local word = row and label(i, row, name)
      if word then
        cells[i] = cells[i] or {}
        cells[i][j] = word
      end
    end
  end
  return cells
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
    local columns = res:columns()
    local spec = { format = "csv", columns = columns, sep = opts.sep or ",", eol = opts.eol, bom = opts.bom,
                   decimal_comma = opts.decimal == ",", formula_guard = opts.formula_guard }
    -- rounded (csv-fr's default): computed decimals rounded by the column's kind, for people
    if opts.rounded then
      local kinds = res:kinds()
      spec.decimals = {}
      for j, name in ipairs(columns) do spec.decimals[j] = ROUNDED_DECIMALS[kinds[name] or "number"] end
    end
    -- labels (--opt labels=true): column titles and the values of the keys that have them
    -- (status families, funders) in the language of row_labels (csv-fr: French), for people
    local language = opts.labels and (opts.row_labels or "en")
    if language then
      local value_labels = schema.value_labels[language] or {}
      spec.titles, spec.value_labels = {}, {}
      for j, name in ipairs(columns) do
        spec.titles[j] = common.column_title(res, name, language)
        spec.value_labels[j] = value_labels[name] or false
      end
    end
    -- a total or Autres row says so in its first missing key (csv-fr's default, in French)
    if opts.row_labels then spec.overrides = rollup_cells(res, columns, opts.row_labels) end
    out:rows(res, spec)
  end,
}

delimited.tsv = {
  options = { bom = option.boolean, decimal = option.decimal, eol = option.eol, row_kind = option.boolean },
  write = function(res, out, opts)
    if opts.row_kind then res = common.with_row_kind(res) end
    out:rows(res, { format = "tsv", columns = res:columns(), bom = opts.bom, eol = opts.eol,
                    decimal_comma = opts.decimal == "," })
  end,
}

return delimited
