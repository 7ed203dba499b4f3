-- cpf.result — the small table a query returns: rows in the array part (so #res works on
-- every Lua, LuaJIT included), column names in order, and helpers to read and reshape it.
local errors = require "cpf.errors"

local Result = {}
Result.__index = Result

local COLUMNS = setmetatable({}, { __mode = "k" }) -- result -> column names, kept out of the rows
local KEYS = setmetatable({}, { __mode = "k" })    -- result -> names of its key columns
-- result -> { [key column] = { [value] = rank } } for keys with an order of their own (families,
-- buckets), as the query sorted them; other keys sort by value
local KEY_ORDER = setmetatable({}, { __mode = "k" })
-- result -> { [column] = "count" | "money" | "rate" | "number" | "key" }: what each column holds,
-- set by the query's measures and aggregates, for the display formats; none for a result made
-- from Lua tables (cpf.result), whose formats go by the values
local KINDS = setmetatable({}, { __mode = "k" })
-- result -> the column specs it was last sorted by ("-montant"...), for the charts' default y
local ORDER = setmetatable({}, { __mode = "k" })
-- result -> { [column] = { fr = ..., en = ... } }: titles of the columns a result derived
-- (res:change, res:rank...), which the schema's labels do not know
local LABELS = setmetatable({}, { __mode = "k" })
-- result -> { [column] = "additive" } for the columns a query computed as sums or counts: what
-- adds up across rows and periods (windows, totals); a ratio, a mean or a median does not
local ADDITIVE = setmetatable({}, { __mode = "k" })
-- result -> { periods = { [column] = "year" | "semester" | "quarter" | "month" }, extraction =
-- "YYYY-MM-DD" }: the period keys of a query's result and the date of the extraction it was
-- computed from (the latest value of the schema's date column), which make some periods partial (res:partial)
local PERIODS = setmetatable({}, { __mode = "k" })
-- result -> the query it came from (a window over a measure with components runs it again)
local QUERY = setmetatable({}, { __mode = "k" })
-- result -> { [row] = "total" | "subtotal" | "others" }: the rows that stand for several groups
-- (cpf.query.rollup), which the formats show as such
local ROW_KINDS = setmetatable({}, { __mode = "k" })
local FRENCH = setmetatable({}, { __mode = "k" }) -- result -> true: sorted with collation "fr"

local result = {}

--- A result from column names and row tables (name -> value). `keys` names the columns that
--- identify a row (a query's grouping keys): labels, not quantities, which formats print as
--- they are (no thousands separator in a year). `key_order` (optional) gives the rank of each
--- value for keys with an order of their own: { famille = { validated = 1, ... } }.
function result.new(columns, rows, keys, key_order, kinds)
  local self = setmetatable(rows or {}, Result)
  COLUMNS[self] = columns
  KEYS[self] = keys or {}
  KEY_ORDER[self] = key_order or {}
  KINDS[self] = kinds or {}
  return self
end

-- result -> its result store (lua_result.c) when the rows live in C: a query's result
local STORE = setmetatable({}, { __mode = "k" })

-- Lua 5.2+ honours __len and __index on tables (and ipairs follows __index from 5.3): a query's
-- result builds each row table the first time it is read. Lua 5.1 and LuaJIT ignore __len on
-- tables, so there the store fills every row at once (in C).
local LAZY = _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2"

local BLOCK = 512 -- rows built by one read of a row not built yet: ipairs then reads them raw
local Lazy = {
  __index = function(self, k)
    if type(k) ~= "number" then return Result[k] end
    local store = STORE[self]
    local n = store:count()
    if k < 1 or k > n or k % 1 ~= 0 then return nil end
    store:fill(self, k, math.min(n, k + BLOCK - 1))
    return rawget(self, k)
  end,
  __len = function(self) return STORE[self]:count() end,
  __pairs = function(self)
    return function(_, i)
      i = i + 1
      local row = self[i]
      if row ~= nil then return i, row end
    end, self, 0
  end,
}

--- A result over a result store (core.query): rows built from C when read. `order` is the
--- column specs the store is sorted by, for res:order().
function result.from_store(columns, store, keys, key_order, kinds, order)
  local self
  if LAZY then
    self = setmetatable({}, Lazy)
  else
    self = setmetatable(store:fill({}), Result)
  end
  STORE[self] = store
  COLUMNS[self] = columns
  KEYS[self] = keys or {}
  KEY_ORDER[self] = key_order or {}
  KINDS[self] = kinds or {}
  ORDER[self] = order
  return self
end

--- The result store (lua_result.c) a query's result reads its rows from, or nil (a result
--- made from Lua tables): cpf.transform works on it without building rows.
function result.store_of(res) return STORE[res] end

--- A result over a view of `res`'s store (store:view, store:select, store:extend), with res's
--- keys and key order; `columns`, `kinds`, `labels` and `order` default to res's (a view that
--- adds columns gives its own).
function result.from_view(res, view, columns, kinds, labels, order)
  local out = result.from_store(columns or COLUMNS[res], view, KEYS[res], KEY_ORDER[res], kinds or KINDS[res],
                                order or ORDER[res])
  LABELS[out] = labels or LABELS[res]
  ADDITIVE[out] = ADDITIVE[res]
  PERIODS[out] = PERIODS[res]
  QUERY[out] = QUERY[res]
  return out
end

-- A result sharing another's columns and kinds over a view of its store (sorted or cut in C).
local function from_view(self, store, order) return result.from_view(self, store, nil, nil, nil, order) end

--- The column specs the result was sorted by (res:sorted, q:order_by), as given ("-montant"), or {}.
function Result:order()
  local t = {}
  for i, c in ipairs(ORDER[self] or {}) do t[i] = c end
  return t
end

--- What each column holds: { column = "count" | "money" | "rate" | "number" | "key" } (a copy),
--- for the columns whose kind is known.
function Result:kinds()
  local t = {}
  for k, v in pairs(KINDS[self]) do t[k] = v end
  return t
end

--- The key_order a result was built with (for results derived from it).
function result.key_order(res) return KEY_ORDER[res] or {} end

--- Titles of columns, by locale: { column = { fr = "...", en = "..." } } (a copy), for the
--- columns a result derived; the display formats use them before the schema's.
function Result:labels()
  local t = {}
  for k, v in pairs(LABELS[self] or {}) do t[k] = v end
  return t
end

--- The columns of a result known to add up across rows ({column = true}: sums and counts of a
--- query; nil for a result made in Lua, which says nothing of it), and setting them (a query's
--- run, results derived from others).
function result.additive(res)
  if not ADDITIVE[res] then return nil end
  local t = {}
  for k, v in pairs(ADDITIVE[res]) do t[k] = v end
  return t
end
function result.set_additive(res, t) ADDITIVE[res] = t end

--- Sets the period keys of a result and the date of its extraction (a query's run), and
--- reads them (results derived from others keep them).
function result.set_periods(res, info) PERIODS[res] = info end

--- The query a result came from (its keys and measures), nil for a result made in Lua; and
--- setting it (a query's run; derived results keep it).
function result.query_of(res) return QUERY[res] end
function result.set_query(res, q) QUERY[res] = q end
function result.periods(res) return PERIODS[res] end

-- The period of `kind` that holds a date "YYYY-MM-DD", as a period key writes it, and whether
-- the date is the period's last day (then the extraction covers it whole).
local LAST_MONTH = { year = 12, semester = 6, quarter = 3, month = 1 }
local function period_of(kind, date)
  local y, m, d = date:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local len = LAST_MONTH[kind]
  local last_month = math.floor((m - 1) / len) * len + len
  local days = ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[last_month]
  if last_month == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then days = 29 end
  local whole = m == last_month and d == days
  if kind == "year" then return y, whole end
  if kind == "month" then return ("%04d-%02d"):format(y, m), whole end
  local n = math.floor((m - 1) / len) + 1
  return ("%04d-%s%d"):format(y, kind == "quarter" and "T" or "S", n), whole
end

--- The periods of the result that its extraction does not cover whole: {{column =, value =},
--- ...} — the year, semester, quarter and month holding the extraction date (the latest
--- the schema's date column), when the result has those keys and a row of that period; {} otherwise.
--- Their values (and the changes and windows over them) count part of the period only.
function Result:partial()
  local info = PERIODS[self]
  local out = {}
  if not info or not info.extraction then return out end
  local names = {}
  for name in pairs(info.periods) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local value, whole = period_of(info.periods[name], info.extraction)
    if value ~= nil and not whole then
      for _, row in ipairs(self) do
        if row[name] == value then out[#out + 1] = { column = name, value = value } break end
      end
    end
  end
  return out
end

--- The date of the extraction a query's result was computed from ("YYYY-MM-DD", the latest
--- the schema's date column), or nil.
function Result:extraction()
  local info = PERIODS[self]
  return info and info.extraction
end

--- What row i stands for: nil for a group, "total", "subtotal" or "others" (q:totals(),
--- q:limit(n, {others = true})).
function Result:row_kind(i) return ROW_KINDS[self] and ROW_KINDS[self][i] or nil end
--- Marks rows ({[i] = "total" | "subtotal" | "others"}), for cpf.query.rollup.
function result.set_row_kinds(res, kinds) ROW_KINDS[res] = kinds end
--- The marked rows of a result ({[i] = kind}; {} when none): what the writers label.
function result.row_kinds(res) return ROW_KINDS[res] or {} end

--- Sets a result's column titles ({column = {fr =, en =}}) and the order it is sorted by
--- (for results derived from others, cpf.transform).
function result.set_labels(res, labels) LABELS[res] = labels end
function result.set_order(res, order) ORDER[res] = order end
--- The specs the result's rows are in the order of, as held: {} for a query's keys, nil when
--- the order is not known (rows made in Lua).
function result.order_of(res) return ORDER[res] end

--- Names of the key columns (a copy).
function Result:keys()
  local t = {}
  for i, c in ipairs(KEYS[self]) do t[i] = c end
  return t
end

--- Column names, in order (a copy).
function Result:columns()
  local t = {}
  for i, c in ipairs(COLUMNS[self]) do t[i] = c end
  return t
end

local function has_column(self, name)
  for _, c in ipairs(COLUMNS[self]) do if c == name then return true end end
  return false
end

--- Value of column `name` in row i (1-based); nil when missing. Errors name what is wrong.
function Result:get(i, name)
  if type(i) ~= "number" or i ~= math.floor(i) or i - i ~= 0 then
    error(("bad argument #1 to 'get' (row number expected, got %s)"):format(type(i) == "number" and tostring(i)
      or type(i)), 2)
  end
  if i < 1 or i > #self then
    error(("row %s is out of range (the result has %d rows)"):format(("%.0f"):format(i), #self), 2)
  end
  if not has_column(self, name) then error(("unknown column '%s'"):format(tostring(name)), 2) end
  return self[i][name]
end

--- for i, row in res:rows() do ... end
function Result:rows()
  return ipairs(self)
end

local function compare_values(a, b)
  if a == nil then return false end -- nil last
  if b == nil then return true end
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end -- boolean < number < string
  if ta == "boolean" then return not a and b end -- false before true
  return a < b
end
result.compare_values = compare_values

--- Sorted copy: each spec is a column name, "-name" for descending; nil values last.
--- The column specs of a sort ("montant", "-montant") checked against column names, as
--- { {name =, desc =, column = index}, ... } (what a result store's view sorts by too); a bad
--- one raises at `level` (0: without a position).
function result.sort_keys(columns, specs, level, fname)
  fname = fname or "order_by"
  local keys = {}
  local function fail(msg) error(msg, level == 0 and 0 or level + 1) end
  for i, s in ipairs(specs) do
    if type(s) ~= "string" then fail(("bad argument #%d to '%s' (column name expected)"):format(i, fname)) end
    local desc = s:sub(1, 1) == "-"
    local name = desc and s:sub(2) or s
    local index
    for c, n in ipairs(columns) do if n == name then index = c end end
    if not index then fail(("%s: unknown column '%s'"):format(fname, name)) end
    keys[i] = { name = name, desc = desc, column = index }
  end
  return keys
end

-- French collation, first level: letters without their accents and case (Île-de-France sorts
-- with the I, À distance with the A, œ as oe); the text's bytes break the ties.
local BASE_LETTERS = {}
for letters, base in pairs { ["àâäáãå"] = "a", ["ÀÂÄÁÃÅ"] = "a", ["çÇ"] = "c", ["éèêëÉÈÊË"] = "e",
                             ["îïíìÎÏÍÌ"] = "i", ["ñÑ"] = "n", ["ôöóòõÔÖÓÒÕ"] = "o", ["ùûüúÙÛÜÚ"] = "u",
                             ["ÿýŸÝ"] = "y", ["œŒ"] = "oe", ["æÆ"] = "ae" } do
  for ch in letters:gmatch("[\192-\255][\128-\191]*") do BASE_LETTERS[ch] = base end
end

local french_keys = setmetatable({}, { __mode = "k" }) -- text -> its first-level key (a cache)
local function french_key(s)
  local k = french_keys[s]
  if not k then
    k = s:gsub("[\192-\255][\128-\191]*", BASE_LETTERS):lower()
    french_keys[s] = k
  end
  return k
end

--- Whether text a sorts before text b in French: letters first, without accents and case
--- (Hauts-de-France < Île-de-France < Normandie), then the bytes.
function result.french_less(a, b)
  local x, y = french_key(a), french_key(b)
  if x ~= y then return x < y end
  return a < b
end

-- The order of a column's values as the query sorts its keys: the key's own ranks (families,
-- buckets) first, then by value (text in French order with collation "fr"); the missing value
-- last.
local function key_less(self, name, collation)
  local rank = KEY_ORDER[self][name]
  local french = collation == "fr"
  return function(a, b)
    if a == nil then return false end
    if b == nil then return true end
    if rank then
      local x, y = rank[a] or math.huge, rank[b] or math.huge
      if x ~= y then return x < y end
    end
    if french and type(a) == "string" and type(b) == "string" then return result.french_less(a, b) end
    return compare_values(a, b)
  end
end

--- The comparator of a column's values in the order the query sorts its keys: families and
--- buckets in their own order, other values ascending, the missing value last (every path that
--- orders rows or periods uses it: sorted in Lua, change, cumsum).
function result.value_less(res, name) return key_less(res, name) end

--- res:sorted(spec, ... [, {collation = "fr"}]): a sorted copy (specs: column names, "-name" for
--- descending; families and buckets in their own order; nil last in both directions). With
--- collation "fr", text in French order (accents and case set aside first), as the display
--- formats under locale fr show it.
function Result:sorted(...)
  local specs = { ... }
  local collation
  if type(specs[#specs]) == "table" then
    local opts = table.remove(specs)
    collation = opts.collation
    if collation ~= nil and collation ~= "fr" and collation ~= "C" then
      error("bad argument to 'sorted' (collation must be \"fr\" or \"C\")", 2)
    end
    if collation == "C" then collation = nil end
  end
  local keys = result.sort_keys(COLUMNS[self], specs, 3, "sorted")
  if STORE[self] and not collation then -- the rows live in C: sorted there (stable, nil last, as below)
    local view = STORE[self]:view(keys)
    if view then return from_view(self, view, specs) end
  end
  local rows, less = {}, {}
  for i, r in ipairs(self) do rows[i] = { r, i } end
  for i, k in ipairs(keys) do less[i] = key_less(self, k.name, collation) end -- families, buckets: their order
  table.sort(rows, function(x, y)
    for i, k in ipairs(keys) do
      local a, b = x[1][k.name], y[1][k.name]
      if a ~= b then
        if a == nil then return false end
        if b == nil then return true end
        if k.desc then return less[i](b, a) end
        return less[i](a, b)
      end
    end
    return x[2] < y[2] -- stable
  end)
  local out = {}
  for i, pair in ipairs(rows) do out[i] = pair[1] end
  local res = result.new(self:columns(), out, self:keys(), KEY_ORDER[self], KINDS[self])
  ORDER[res] = specs
  FRENCH[res] = collation == "fr" or nil
  LABELS[res] = LABELS[self]
  ADDITIVE[res] = ADDITIVE[self]
  PERIODS[res] = PERIODS[self]
  QUERY[res] = QUERY[self]
  return res
end

--- The result as the display formats show it under locale fr: in its own order, text in French
--- order (res:sorted's collation "fr", stable), when that order is known — a query's (its keys,
--- or its order_by), or one res:sorted made; a result of rows made in Lua, one with total or
--- Autres rows (whose places no order says), or one sorted by a column it no longer has: as it is.
function result.french_order(res)
  local order = ORDER[res]
  if order == nil or ROW_KINDS[res] or FRENCH[res] then return res end -- FRENCH: ordered so already
  local specs, has = {}, {}
  for _, c in ipairs(COLUMNS[res]) do has[c] = true end
  for i, s in ipairs(#order > 0 and order or KEYS[res]) do
    if type(s) ~= "string" or not has[(s:gsub("^[-+]", ""))] then return res end
    specs[i] = s
  end
  if #specs == 0 then return res end
  specs[#specs + 1] = { collation = "fr" }
  return res:sorted((table.unpack or unpack)(specs))
end

--- The first n rows; with {per = column or {columns}}, the first n of each group of rows that
--- share those columns' values.
function Result:head(n, opts)
  if type(n) ~= "number" or n < 0 or n ~= math.floor(n) or n - n ~= 0 then
    error("bad argument #1 to 'head' (whole number expected)", 2)
  end
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #2 to 'head' ({per = column} expected)", 2) end
    if opts.per ~= nil then
      -- cpf.transform's, loaded on first use (see derive below)
      local ok, res = pcall(require("cpf.transform").head_per, self, n, opts.per)
      if ok then return res end
      if errors.is(res) then error(res.msg, 2) end
      error(res, 0)
    end
  end
  if STORE[self] then -- n beyond the rows is all of them (2^63 has no integer to pass on)
    return from_view(self, STORE[self]:view(nil, math.max(0, math.floor(math.min(n, #self)))), ORDER[self])
  end
  local out = {}
  for i = 1, math.min(n, #self) do out[i] = self[i] end
  local res = result.new(self:columns(), out, self:keys(), KEY_ORDER[self], KINDS[self])
  ORDER[res] = ORDER[self]
  FRENCH[res] = FRENCH[self]
  LABELS[res] = LABELS[self]
  ADDITIVE[res] = ADDITIVE[self]
  PERIODS[res] = PERIODS[self]
  QUERY[res] = QUERY[self]
  return res
end

-- The methods that derive a result (res:where, res:with, res:join, res:change, res:cumsum,
-- res:rank and res:head(n, {per})) are cpf.transform's, installed here with the others. It
-- loads on first use: a report that only queries never compiles it. An error value it raises
-- is re-raised at the line that called the method, any other as it is.
local function derive(name)
  return function(...)
    local ok, res = pcall(require("cpf.transform")[name], ...) -- loaded on first use
    if ok then return res end
    if errors.is(res) then error(res.msg, 2) end
    error(res, 0)
  end
end
--- res:where{column = condition}, res:with{...}, res:join(other, on [, opts]),
--- res:change(column, {over =, by =}), res:cumsum(column, {over =, by =}),
--- res:rolling(column, n, {over =, by =, fn =}), res:share(column [, {within =}]),
--- res:rank(column [, {by =, desc =}]): see lua/cpf/transform.lua.
for _, name in ipairs { "where", "with", "join", "change", "cumsum", "rolling", "share", "rank" } do
  Result[name] = derive(name)
end


--- Crosstab: one row per value of row_key, one column per value of column_key, cells = measure.
--- Missing cells are nil. Rows and columns come in the query's key order (families and buckets
--- in their own, other values ascending); column names are tostring(value), and a missing
--- column_key value is the column "(missing)", last. Two values with one name are an error.
function Result:pivot(row_key, column_key, measure)
  for i = 1, 3 do -- not ipairs: a nil argument would end the walk before it is checked
    local name = select(i, row_key, column_key, measure)
    if not has_column(self, name) then error(("pivot: unknown column '%s'"):format(tostring(name)), 2) end
  end
  local MISSING = {} -- stands for the missing value where a table index cannot be nil
  local col_values, has_missing_column = {}, false
  local value_named = {}            -- column name -> the column_key value it holds
  local by_row, row_order, filled = {}, {}, {}
  for _, r in ipairs(self) do
    local cv, rv = r[column_key], r[row_key]
    local name, cid = "(missing)", MISSING
    if cv ~= nil then name, cid = tostring(cv), cv end
    if value_named[name] == nil then
      if name == row_key then
        error(("pivot: the %s value %s would be named as the row key column; pivot on another column")
          :format(column_key, name), 2)
      end
      value_named[name] = cid
      if cv == nil then has_missing_column = true else col_values[#col_values + 1] = cv end
    elseif value_named[name] ~= cid then
      error(("pivot: two %s values would both be the column '%s'; pivot on another column")
        :format(column_key, name), 2)
    end
    local rid = rv == nil and MISSING or rv
    local row = by_row[rid]
    if not row then
      row = { [row_key] = rv }
      by_row[rid], filled[row] = row, {}
      row_order[#row_order + 1] = row
    end
    if filled[row][name] then
      error(("pivot: several rows for %s = %s and %s = %s; group by these two keys only")
        :format(row_key, tostring(rv), column_key, name), 2)
    end
    filled[row][name] = true
    row[name] = r[measure]
  end
  table.sort(col_values, key_less(self, column_key))
  local columns = { row_key }
  for i, cv in ipairs(col_values) do columns[i + 1] = tostring(cv) end
  if has_missing_column then columns[#columns + 1] = "(missing)" end
  local row_less = key_less(self, row_key)
  table.sort(row_order, function(a, b) return row_less(a[row_key], b[row_key]) end)
  local kinds = { [row_key] = "key" }
  for i = 2, #columns do kinds[columns[i]] = KINDS[self][measure] end
  return result.new(columns, row_order, { row_key }, { [row_key] = KEY_ORDER[self][row_key] }, kinds)
end

-- The formats load on first use: a script that only queries never compiles them.
local function formats() return require "cpf.format" end

--- res:write(target, format [, opts]): the result in a format (see cpf.format) to a path,
--- written to a temporary file renamed over it, or to a file handle. true, or nil and
--- "path: message" on an I/O failure; a bad target, format name or option raises.
function Result:write(target, format_name, opts)
  local ok, err, kind = formats().write(self, target, format_name, opts, 3)
  return ok, err, kind
end

--- res:format(format [, opts]): the result in a format, as a string.
function Result:format(format_name, opts)
  local text = formats().to_string(self, format_name, opts, 3)
  return text
end

--- tostring(res), print(res): the "table" format (aligned text, numbers right-aligned).
function Result:__tostring()
  return (formats().to_string(self, "table", nil, 3):gsub("\n$", ""))
end

-- a lazy result answers the metamethods (tostring...) as any other
for k, v in pairs(Result) do
  if k:sub(1, 2) == "__" and k ~= "__index" then Lazy[k] = v end
end

return result
