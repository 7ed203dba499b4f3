-- cpf.transform.base — what the operations on results share (cpf.transform, its joins): their
-- error values, reading a result's columns (from its store or its rows), new results with
-- columns added or rows kept, and groups of rows by the values of some columns.
local result = require "cpf.result"
local errors = require "cpf.errors"
local schema = require "cpf.schema"

local base = {}

-- A bad argument: raised as an error value (cpf.errors, kind "data"), which the result's
-- methods re-raise as a message at the caller's line (an error of the user's own functions
-- passes through as it is).
local function fail(what, msg) errors.raise("data", what .. ": " .. msg) end

local function column_list(res) return table.concat(res:columns(), ", ") end

local function has(res, name)
  for _, c in ipairs(res:columns()) do if c == name then return true end end
  return false
end

-- A column the operation reads: an error naming the result's columns when it has none of that name.
local function need_column(res, name, what)
  if type(name) ~= "string" then fail(what, ("column name expected, got %s"):format(type(name))) end
  if not has(res, name) then
    fail(what, ("'%s' is not a column of the result (its columns: %s)"):format(name, column_list(res)))
  end
end

-- A new result over rows, with the input's keys, key order, kinds, labels and order plus
-- `extra` ({name =, kind =, labels = {fr =, en =}} per new column, in order).
local function derived(res, columns, rows, extra)
  local kinds = res:kinds()
  local labels = res:labels()
  for _, x in ipairs(extra or {}) do
    kinds[x.name] = x.kind
    labels[x.name] = x.labels
  end
  local out = result.new(columns, rows, res:keys(), result.key_order(res), kinds)
  result.set_labels(out, labels)
  result.set_order(out, result.order_of(res))
  result.set_additive(out, result.additive(res))
  result.set_periods(out, result.periods(res))
  result.set_query(out, result.query_of(res))
  return out
end

local function column_index(res, name)
  for i, c in ipairs(res:columns()) do if c == name then return i end end
end

-- {true, false, ...} -> "\1\0...", a row mask for store:select.
local function mask_of(keep)
  local bytes, chunk = {}, {}
  for i = 1, #keep do
    chunk[#chunk + 1] = keep[i] and 1 or 0
    if #chunk == 4096 or i == #keep then
      bytes[#bytes + 1] = string.char((table.unpack or unpack)(chunk))
      chunk = {}
    end
  end
  return table.concat(bytes)
end

local function copy_row(row)
  local t = {}
  for k, v in pairs(row) do t[k] = v end
  return t
end

-- The label of column `name` in `locale`: the result's own, else the schema's, else the name.
local function label_of(res, name, locale)
  local own = res:labels()[name]
  if own and own[locale] then return own[locale] end
  return schema.labels[locale][name] or name
end

-- The values of `names` row by row ({[name] = {v1, v2, ...}}) and the row count: read from a
-- query's result store (no row table built), else from the rows.
local function read_columns(res, names)
  local store, cols = result.store_of(res), {}
  for _, name in ipairs(names) do
    if not cols[name] then
      if store then
        cols[name] = store:values(column_index(res, name))
      else
        local t = {}
        for i, row in ipairs(res) do t[i] = row[name] end
        cols[name] = t
      end
    end
  end
  return cols, #res
end

-- The result with new columns after its own ({name =, kind =, labels =} and values = {by row},
-- or for a query's result groups = {by group}, each): a view of the store with these columns
-- for a query's result, else new rows.
local function with_columns(res, new)
  local columns, kinds, labels = res:columns(), res:kinds(), res:labels()
  for _, c in ipairs(new) do
    columns[#columns + 1] = c.name
    kinds[c.name], labels[c.name] = c.kind, c.labels
  end
  local store = result.store_of(res)
  if store then
    local sources = {}
    for j, c in ipairs(new) do sources[j] = { c.name, rows = c.values, values = c.groups } end
    return result.from_view(res, store:extend(sources), columns, kinds, labels)
  end
  local rows = {}
  for i, row in ipairs(res) do
    local r = copy_row(row)
    for _, c in ipairs(new) do r[c.name] = c.values[i] end
    rows[i] = r
  end
  return derived(res, columns, rows, new)
end

-- The rows `keep` keeps ({true, false, ...} row by row, or for a query's result a mask string
-- of store:select), in order: a view of a query's result store, else the kept row tables.
local function kept_rows(res, keep)
  local store = result.store_of(res)
  if store then
    local mask = type(keep) == "string" and keep or mask_of(keep)
    return result.from_view(res, store:select(mask), res:columns(), res:kinds(), res:labels())
  end
  local rows = {}
  for i, row in ipairs(res) do if keep[i] then rows[#rows + 1] = row end end
  return derived(res, res:columns(), rows)
end

local function value_text(v) return type(v) == "string" and ("'%s'"):format(v) or tostring(v) end

-- {"number", "string"}: the types of a side's key values, from the set of them.
local function key_types(types)
  local list = {}
  for t in pairs(types) do list[#list + 1] = t end
  table.sort(list)
  return list
end

-- ---------------------------------------------------------------- groups of rows

-- The per / by columns of an operation: a name or a list of names, each a column.
local function column_names(res, v, what, option)
  if v == nil then return {} end
  local list = type(v) == "table" and v or { v }
  for _, name in ipairs(list) do
    if type(name) ~= "string" then fail(what, ("%s must be a column name or a list of them"):format(option)) end
    need_column(res, name, what)
  end
  return list
end

-- The identity of a row's values in `names` as one table key (nil and the types told apart).
local function group_id(row, names)
  if #names == 1 then
    local v = row[names[1]]
    if v == nil then return "\0nil" end
    return type(v) == "string" and "s" .. v or v
  end
  local parts = {}
  for i, name in ipairs(names) do
    local v = row[name]
    if v == nil then parts[i] = "n"
    elseif type(v) == "number" then parts[i] = ("d%.17g"):format(v)
    else parts[i] = "s" .. #tostring(v) .. ":" .. tostring(v) end
  end
  return table.concat(parts, "\0")
end

-- The rows (indices) of each `by` group, in first-seen order; `keep(i)` says which rows count.
local function groups_of(cols, n, by, keep)
  local groups, order, view = {}, {}, {}
  for i = 1, n do
    if not keep or keep(i) then
      for _, name in ipairs(by) do view[name] = cols[name][i] end
      local id = group_id(view, by)
      local g = groups[id]
      if not g then g = {} groups[id] = g order[#order + 1] = g end
      g[#g + 1] = i
    end
  end
  return order
end

local function need_new(res, names, what)
  for _, name in ipairs(names) do
    if has(res, name) then fail(what, ("the result already has a column '%s'"):format(name)) end
  end
end

local function numeric(v, column, what)
  if v ~= nil and type(v) ~= "number" then
    fail(what, ("'%s' holds %s values, numbers expected"):format(column, type(v)))
  end
  return v
end

-- Money adds and subtracts in whole cents, as the query sums it: a window or a difference of
-- amounts is exact to the cent (5677231.39, never 5677231.390000001).
local function in_cents(v) return math.floor(v * 100 + 0.5) end
local function adder(kind)
  if kind ~= "money" then return function(a, b) return a + b end, function(a, b) return a - b end end
  return function(a, b) return (in_cents(a) + in_cents(b)) / 100 end,
         function(a, b) return (in_cents(a) - in_cents(b)) / 100 end
end

-- Labels of a column derived from `column`: fr and en, from its label in each locale.
local function labels_from(res, column, fr, en)
  return { fr = fr:format(label_of(res, column, "fr")), en = en:format(label_of(res, column, "en")) }
end


base.fail = fail
base.column_list = column_list
base.has = has
base.need_column = need_column
base.derived = derived
base.column_index = column_index
base.mask_of = mask_of
base.copy_row = copy_row
base.label_of = label_of
base.read_columns = read_columns
base.with_columns = with_columns
base.kept_rows = kept_rows
base.value_text = value_text
base.key_types = key_types
base.column_names = column_names
base.group_id = group_id
base.groups_of = groups_of
base.need_new = need_new
base.numeric = numeric
base.labels_from = labels_from
base.adder = adder

return base
