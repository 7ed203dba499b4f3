-- cpf.transform — results made from results: rows kept by conditions on their values
-- (res:where, q:having), derived columns (res:with), reference tables joined (res:join), the
-- first rows of each group (res:head(n, {per = ...})), and values over time (res:change,
-- res:cumsum, res:rank). Every operation returns a new result and leaves its input unchanged;
-- each new column gets a kind and a French and English label for the display formats.
local result = require "cpf.result"
local errors = require "cpf.errors"
local schema = require "cpf.schema"
local build = require "cpf.query.build"
local compile = require "cpf.query.compile"

local transform = {}

local VALUE_KINDS = { count = true, money = true, rate = true, number = true }
-- The names of the schema's period keys (annee, mois...): a column res:with makes under one of
-- them holds labels (kind "key": a year prints 2020, never 2 020).
local PERIOD_NAMES = {}
for name in pairs(schema.virtual_keys) do PERIOD_NAMES[name] = true end

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
  result.set_order(out, res:order())
  result.set_additive(out, result.additive(res))
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

-- ---------------------------------------------------------------- conditions on values

--- res:where{column = condition, ...}: the rows whose values pass every condition (the
--- condition constructors of a query's where: a value, a list, cpf.ge(100), cpf.not_(...), a
--- function of the value...). A missing value passes no condition but cpf.is_null, as in SQL.
function transform.where(res, conds, what)
  what = what or "where"
  if type(conds) ~= "table" then fail(what, ("{column = condition} expected, got %s"):format(type(conds))) end
  local list = {}
  for name, c in pairs(conds) do
    need_column(res, name, what)
    list[#list + 1] = { name = name, cond = build.as_cond(c), what = ("%s %s"):format(what, name) }
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  -- each condition tests its column's values (a query's result builds no row table)
  local names = {}
  for i, c in ipairs(list) do names[i] = c.name end
  local cols, n = read_columns(res, names)
  local keep = {}
  for i = 1, n do keep[i] = true end
  for _, c in ipairs(list) do
    local values, pass = cols[c.name], compile.tester(c.cond, c.what)
    for i = 1, n do
      if keep[i] and not pass(values[i]) then keep[i] = false end
    end
  end
  return kept_rows(res, keep)
end

-- ---------------------------------------------------------------- derived columns

-- The {name, fn, kind} entries of res:with: a list in order, or {name = fn} ordered by name.
local function with_entries(spec)
  if type(spec) ~= "table" then fail("with", ("table of columns expected, got %s"):format(type(spec))) end
  local list, named = {}, {}
  for _, e in ipairs(spec) do
    if type(e) ~= "table" or type(e[1]) ~= "string" or type(e[2]) ~= "function" then
      fail("with", "list entries must be {\"name\", function(row) ... end [, kind [, {fr =, en =}]]}")
    end
    if e[4] ~= nil and (type(e[4]) ~= "table" or type(e[4].fr) ~= "string" or type(e[4].en) ~= "string") then
      fail("with", ("the titles of '%s' must be {fr = \"...\", en = \"...\"}"):format(e[1]))
    end
    list[#list + 1] = { name = e[1], fn = e[2], kind = e[3], labels = e[4] }
  end
  for k, v in pairs(spec) do
    if type(k) == "string" then
      if type(v) ~= "function" then fail("with", ("'%s' must be a function(row)"):format(k)) end
      named[#named + 1] = k
    end
  end
  table.sort(named)
  for _, k in ipairs(named) do list[#list + 1] = { name = k, fn = spec[k] } end
  return list
end

--- res:with{{"name", function(row) ... end [, kind [, {fr =, en =}]]}, ...} (or {name = fn}):
--- columns computed once per row; each function sees the row's values (those of the columns
--- before it included) and returns a number, a string or nil; the titles, when given, are what
--- the display formats print for the column in each locale. kind: count, money, rate, number
--- (the default) or key (a label, printed as it is: a year); a column named as a period key of
--- the schema (annee, mois...) is a key unless a kind is given.
function transform.with(res, spec)
  local entries = with_entries(spec)
  local columns, seen = res:columns(), {}
  for _, c in ipairs(columns) do seen[c] = true end
  local extra = {}
  for _, e in ipairs(entries) do
    if seen[e.name] then fail("with", ("the result already has a column '%s'"):format(e.name)) end
    if e.kind ~= nil and not VALUE_KINDS[e.kind] and e.kind ~= "key" then
      fail("with", ("kind of '%s' must be count, money, rate, number or key"):format(e.name))
    end
    seen[e.name] = true
    columns[#columns + 1] = e.name
    -- a period named as the schema names its keys (annee, mois...) is a label: never 2 020
    local kind = e.kind or (PERIOD_NAMES[e.name] and "key") or "number"
    extra[#extra + 1] = { name = e.name, kind = kind, labels = e.labels }
  end
  local rows = {}
  for i, row in ipairs(res) do
    local new = copy_row(row)
    for _, e in ipairs(entries) do
      local v = e.fn(copy_row(new))
      local t = type(v)
      if v ~= nil and t ~= "number" and t ~= "string" then
        fail("with", ("'%s' returned a %s for row %d (a number, a string or nil expected)"):format(e.name, t, i))
      end
      if v ~= v then v = nil end -- NaN: no value
      new[e.name] = v
    end
    rows[i] = new
  end
  return derived(res, columns, rows, extra)
end

-- ---------------------------------------------------------------- joins

-- The reference side of a join as { columns = {...}, rows = {...}, kinds =, labels = }.
local function reference_of(other, right_key, opts)
  if type(other) == "userdata" and other.columns and other.row then -- a dataset
    local names = {}
    for i, c in ipairs(other:columns()) do names[i] = c.name end
    local column = other:column(right_key)
    if column then right_key = column.name end
    local rows = {}
    for i = 1, #other do rows[i] = other:row(i) end
    return { columns = names, rows = rows, kinds = {}, labels = {}, key = right_key }
  end
  if type(other) == "table" and getmetatable(other) and other.columns and other.kinds then -- a result
    local rows = {}
    for i, r in ipairs(other) do rows[i] = r end
    return { columns = other:columns(), rows = rows, kinds = other:kinds(), labels = other:labels(),
             key = right_key }
  end
  if type(other) ~= "table" then
    fail("join", ("a result, a dataset or a table {[key] = value or row} expected, got %s"):format(type(other)))
  end
  -- a Lua table: keys in a stable order (numbers, then strings), values as rows
  local keys = {}
  for k in pairs(other) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return a < b
  end)
  local rows, columns, seen, plain = {}, { right_key }, { [right_key] = true }, false
  for _, k in ipairs(keys) do
    local v = other[k]
    local row
    if type(v) == "table" then
      row = copy_row(v)
      local names = {}
      for name in pairs(v) do if not seen[name] then names[#names + 1] = name end end
      table.sort(names)
      for _, name in ipairs(names) do seen[name] = true columns[#columns + 1] = name end
    else
      plain = true
      local name = opts.columns and opts.columns[1]
      if type(name) ~= "string" then
        fail("join", "a table of plain values needs the name of their column: opts.columns = {\"name\"}")
      end
      if not seen[name] then seen[name] = true columns[#columns + 1] = name end
      row = { [name] = v }
    end
    row[right_key] = k
    rows[#rows + 1] = row
  end
  -- plain: opts.columns named the values' column, it chose none among the rows' columns
  return { columns = columns, rows = rows, kinds = {}, labels = {}, key = right_key, plain = plain }
end

local function value_text(v) return type(v) == "string" and ("'%s'"):format(v) or tostring(v) end

-- {"number", "string"}: the types of a side's key values, from the set of them.
local function key_types(types)
  local list = {}
  for t in pairs(types) do list[#list + 1] = t end
  table.sort(list)
  return list
end

--- res:join(other, on [, opts]): the result's rows with the columns of the matching row of
--- `other` (a result, a dataset or a table {[key] = value or row}). on: a column of both sides,
--- or {left = "right"}. opts.how = "left" (every row kept) or "inner"; opts.columns: which of
--- other's columns (default all but its key); opts.many: a key may match several rows;
--- opts.suffix: added to the name of other's columns the result has already.
function transform.join(res, other, on, opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("join", ("options table expected, got %s"):format(type(opts))) end
  local left_key, right_key
  if type(on) == "string" then
    left_key, right_key = on, on
  elseif type(on) == "table" then
    left_key, right_key = next(on)
    if type(left_key) ~= "string" or type(right_key) ~= "string" or next(on, left_key) ~= nil then
      fail("join", "on must be a column name or {left_column = \"right_column\"}")
    end
  else
    fail("join", ("on must be a column name or {left_column = \"right_column\"}, got %s"):format(type(on)))
  end
  local how = opts.how or "left"
  if how ~= "left" and how ~= "inner" then fail("join", "opts.how must be \"left\" or \"inner\"") end
  need_column(res, left_key, "join")
  local ref = reference_of(other, right_key, opts)
  right_key = ref.key
  local in_ref = {}
  for _, c in ipairs(ref.columns) do in_ref[c] = true end
  if not in_ref[right_key] then
    fail("join", ("'%s' is not a column of the reference (its columns: %s)")
      :format(right_key, table.concat(ref.columns, ", ")))
  end
  -- the columns brought, and their names in the joined result
  local brought = {}
  if opts.columns and not ref.plain then
    if type(opts.columns) ~= "table" then fail("join", "opts.columns must be a list of column names") end
    for _, c in ipairs(opts.columns) do
      if not in_ref[c] then
        fail("join", ("'%s' is not a column of the reference (its columns: %s)")
          :format(tostring(c), table.concat(ref.columns, ", ")))
      end
      brought[#brought + 1] = c
    end
  else
    for _, c in ipairs(ref.columns) do if c ~= right_key then brought[#brought + 1] = c end end
  end
  local columns, names = res:columns(), {}
  for _, c in ipairs(brought) do
    local name = c
    if has(res, c) then
      if type(opts.suffix) ~= "string" then
        fail("join", ("both sides have a column '%s' (give opts.suffix to rename the reference's)"):format(c))
      end
      name = c .. opts.suffix
      if has(res, name) then fail("join", ("both sides have a column '%s'"):format(name)) end
    end
    names[c] = name
    columns[#columns + 1] = name
  end
  -- the reference's first row of each key, and the others of a key given twice
  local first, first_at, more, twice, right_types = {}, {}, {}, nil, {}
  for at, r in ipairs(ref.rows) do
    local k = r[right_key]
    if k ~= nil then
      right_types[type(k)] = true
      if first[k] == nil then
        first[k], first_at[k] = r, at
      else
        more[k] = more[k] or {}
        table.insert(more[k], r)
        if twice == nil then twice = k end
      end
    end
  end
  -- keys compare as stored: a string key never matches a number, and saying so beats no match
  local function check_keys(left_types)
    local lt, rt = key_types(left_types), key_types(right_types)
    if #lt > 0 and #rt > 0 and table.concat(lt, " and ") ~= table.concat(rt, " and ") then
      fail("join", ("%s holds %s values, the reference's %s holds %s values: keys compare as stored ('01' is not 1)")
        :format(left_key, table.concat(lt, " and "), right_key, table.concat(rt, " and ")))
    end
    if twice ~= nil and not opts.many then -- opts.many = true joins each of them
      fail("join", ("the reference has %d rows for %s %s"):format(#more[twice] + 1, right_key, value_text(twice)))
    end
  end
  local added = {} -- the brought columns as with_columns adds them
  for j, c in ipairs(brought) do
    added[j] = { name = names[c], kind = ref.kinds[c], labels = ref.labels[c] }
  end
  local store = result.store_of(res)
  if store and twice == nil then
    -- a key column of a query's result: each distinct key value looked up once, the brought
    -- values set by group in C (nil for another column: read row by row below)
    local refcols = {}
    for j, c in ipairs(brought) do
      local values = {}
      for at, r in ipairs(ref.rows) do values[at] = r[c] end
      refcols[j] = values
    end
    local by_group, mask, left_types = store:join_key(column_index(res, left_key), first_at, refcols)
    if by_group then
      check_keys(left_types)
      for j in ipairs(brought) do added[j].groups = by_group[j] end
      local out = with_columns(res, added)
      return how == "inner" and kept_rows(out, mask) or out
    end
  end
  -- one pass over the result's keys: their types, and the matching row's values brought
  local cols, n = read_columns(res, { left_key })
  local left_values, left_types, keep = cols[left_key], {}, {}
  for j in ipairs(brought) do added[j].values = {} end
  for i = 1, n do
    local k = left_values[i]
    local r = false
    if k ~= nil then
      left_types[type(k)] = true
      r = first[k] or false
    end
    keep[i] = r and true or false
    if r then
      for j, c in ipairs(brought) do added[j].values[i] = r[c] end
    end
  end
  check_keys(left_types)
  if twice == nil then -- one match at most: the result with the columns added
    local out = with_columns(res, added)
    return how == "inner" and kept_rows(out, keep) or out
  end
  -- opts.many and a key given twice: a row per match, in the reference's order
  local rows = {}
  local function add(row, match)
    local new = copy_row(row)
    for _, c in ipairs(brought) do new[names[c]] = match[c] end
    rows[#rows + 1] = new
  end
  for i, row in ipairs(res) do
    local k = left_values[i]
    local r = k ~= nil and first[k]
    if r then
      add(row, r)
      for _, x in ipairs(more[k] or {}) do add(row, x) end
    elseif how == "left" then
      rows[#rows + 1] = row
    end
  end
  return derived(res, columns, rows, added)
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

--- res:head(n, {per = column or {columns}}): the first n rows of each group of rows sharing
--- those columns' values, in the result's order.
function transform.head_per(res, n, per)
  local names = column_names(res, per, "head", "per")
  if #names == 0 then fail("head", "per must name at least one column") end
  local cols, count = read_columns(res, names)
  local keep = {}
  for i = 1, count do keep[i] = false end
  for _, g in ipairs(groups_of(cols, count, names)) do
    for k = 1, math.min(n, #g) do keep[g[k]] = true end
  end
  return kept_rows(res, keep)
end

-- ---------------------------------------------------------------- over time

-- The rows of each `by` group in `over` order (the query's order of that key: families and
-- buckets in their own, other values ascending, nil last), as lists of row indices; two rows
-- of one group with the same `over` value are an error (which one is before?).
local function ordered_groups(res, cols, n, over, by, what)
  local order = groups_of(cols, n, by)
  local less, at = result.value_less(res, over), cols[over]
  for _, g in ipairs(order) do
    table.sort(g, function(a, b)
      local x, y = at[a], at[b]
      if x == y then return a < b end
      return less(x, y)
    end)
    for k = 2, #g do
      local v = at[g[k]]
      if v ~= nil and v == at[g[k - 1]] then
        local within = {}
        for _, name in ipairs(by) do
          within[#within + 1] = ("%s = %s"):format(name, value_text(cols[name][g[k]]))
        end
        fail(what, ("2 rows have %s = %s%s: add the keys that tell them apart to by")
          :format(over, value_text(v), #within > 0 and " within " .. table.concat(within, ", ") or ""))
      end
    end
  end
  return order
end

-- by: the option's columns, else the result's keys other than `over` and `column`.
local function by_columns(res, opts, over, column, what)
  if opts.by ~= nil then return column_names(res, opts.by, what, "by") end
  local by = {}
  for _, k in ipairs(res:keys()) do if k ~= over and k ~= column then by[#by + 1] = k end end
  return by
end

local function need_new(res, names, what)
  for _, name in ipairs(names) do
    if has(res, name) then fail(what, ("the result already has a column '%s'"):format(name)) end
  end
end

local function over_options(res, column, opts, what)
  need_column(res, column, what)
  if type(opts) ~= "table" or opts.over == nil then fail(what, "opts.over names the column of the periods") end
  need_column(res, opts.over, what)
  return opts.over, by_columns(res, opts, opts.over, column, what)
end

local function numeric(v, column, what)
  if v ~= nil and type(v) ~= "number" then
    fail(what, ("'%s' holds %s values, numbers expected"):format(column, type(v)))
  end
  return v
end

-- Labels of a column derived from `column`: fr and en, from its label in each locale.
local function labels_from(res, column, fr, en)
  return { fr = fr:format(label_of(res, column, "fr")), en = en:format(label_of(res, column, "en")) }
end

-- The calendar number of a period: a year (2024), a semester "2024-S2" (year * 2 + 1), a
-- quarter "2024-T1" (year * 4), a month "2024-05" (year * 12 + 4) or a day "2024-05-03" (days),
-- with its unit; nil for a value that is no calendar period (a family, a bucket, a text).
local function period_number(v)
  if type(v) == "number" then
    if v == math.floor(v) then return v, "year" end
    return nil
  end
  if type(v) ~= "string" then return nil end
  local y, kind, k = v:match("^(%d%d%d%d)%-([ST])(%d)$")
  if y then return tonumber(y) * (kind == "S" and 2 or 4) + tonumber(k) - 1, kind end
  local m
  y, m = v:match("^(%d%d%d%d)%-(%d%d)$")
  if y then return tonumber(y) * 12 + tonumber(m) - 1, "month" end
  local d
  y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y then return compile.days_from_civil(tonumber(y), tonumber(m), tonumber(d)), "day" end
  return nil
end

-- The position of each row of a group on the calendar of its periods (`over` values): their
-- calendar numbers when every period is one (years, semesters, quarters, months, days), so
-- that an absent period counts; else their rank in the group's order (families, buckets,
-- texts). Returns position by row index, and row index by position.
local function positions(g, at)
  local pos, unit = {}, nil
  for _, i in ipairs(g) do
    if at[i] ~= nil then
      local num, u = period_number(at[i])
      if num == nil or (unit and u ~= unit) then pos = nil break end
      unit, pos[i] = u, num
    end
  end
  if not pos then -- no calendar: the order of the group
    pos = {}
    for k, i in ipairs(g) do if at[i] ~= nil then pos[i] = k end end
  end
  local row_at = {}
  for i, p in pairs(pos) do row_at[p] = i end
  return pos, row_at
end

local function whole_option(v, name, what, default)
  if v == nil then return default end
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then
    fail(what, ("opts.%s must be a whole number from 1, got %s"):format(name, tostring(v)))
  end
  return v
end

--- res:change(column, {over =, by =, lag = 1}): column_prec (the value `lag` periods before,
--- counted on the calendar: the previous year of 2022 is 2021 even when 2021 has no row, and
--- its value is then missing; lag = 12 over months is the same month a year before),
--- column_evol (the difference) and column_evol_pct (the relative change, a rate; nil when the
--- previous value is missing or 0). Periods that are no calendar (families, buckets) count by
--- their order.
function transform.change(res, column, opts)
  local what = "change"
  local over, by = over_options(res, column, opts, what)
  local lag = whole_option(opts.lag, "lag", what, 1)
  local prec, evol, pct = column .. "_prec", column .. "_evol", column .. "_evol_pct"
  need_new(res, { prec, evol, pct }, what)
  local cols, n = read_columns(res, { column, over, (table.unpack or unpack)(by) })
  local prec_v, evol_v, pct_v = {}, {}, {}
  local values = cols[column]
  for _, g in ipairs(ordered_groups(res, cols, n, over, by, what)) do
    local pos, row_at = positions(g, cols[over])
    for _, i in ipairs(g) do
      local v = numeric(values[i], column, what)
      if pos[i] then
        local j = row_at[pos[i] - lag]
        local previous = j and numeric(values[j], column, what)
        prec_v[i] = previous
        if v ~= nil and previous ~= nil then
          evol_v[i] = v - previous
          if previous ~= 0 then pct_v[i] = (v - previous) / previous end
        end
      end
    end
  end
  local kind = res:kinds()[column] or "number"
  return with_columns(res, {
    { name = prec, values = prec_v, kind = kind,
      labels = labels_from(res, column, "%s, période précédente", "%s, previous period") },
    { name = evol, values = evol_v, kind = kind, labels = labels_from(res, column, "Évolution (%s)", "Change (%s)") },
    { name = pct, values = pct_v, kind = "rate",
      labels = labels_from(res, column, "Évolution en %% (%s)", "Change in %% (%s)") },
  })
end

--- res:cumsum(column, {over =, by =}): column_cumul, the running total within the group in
--- period order (a missing value adds nothing; nil until the first value).
function transform.cumsum(res, column, opts)
  local what = "cumsum"
  local over, by = over_options(res, column, opts, what)
  local cumul = column .. "_cumul"
  need_new(res, { cumul }, what)
  local cols, n = read_columns(res, { column, over, (table.unpack or unpack)(by) })
  local values = {}
  for _, g in ipairs(ordered_groups(res, cols, n, over, by, what)) do
    local total
    for _, i in ipairs(g) do
      local v = numeric(cols[column][i], column, what)
      if v ~= nil then total = (total or 0) + v end
      if cols[over][i] ~= nil then values[i] = total end
    end
  end
  return with_columns(res, {
    { name = cumul, values = values, kind = res:kinds()[column] or "number",
      labels = labels_from(res, column, "%s, cumul", "%s, running total") },
  })
end

--- res:rolling(column, n, {over =, by =, fn = "sum" | "mean"}): column_glissant_N, the sum (or
--- the sum / n) of the n periods ending at the row's, counted on the calendar as change does
--- (an absent period adds nothing), within the group; no value before a full window (its first
--- period before the group's first). The column must add up: a query's sum or count, or in a
--- result made in Lua a count or an amount; a ratio, a mean or a median is refused.
function transform.rolling(res, column, n, opts)
  local what = "rolling"
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    fail(what, ("the window must be a whole number of periods from 1, got %s"):format(tostring(n)))
  end
  opts = opts or {}
  local over, by = over_options(res, column, opts, what)
  local fn = opts.fn or "sum"
  if fn ~= "sum" and fn ~= "mean" then
    fail(what, ("opts.fn must be \"sum\" or \"mean\", got %s"):format(tostring(fn)))
  end
  local known = result.additive(res) -- a query's; nil for a result made in Lua
  local kind = res:kinds()[column]
  local adds_up
  if known then adds_up = known[column] else adds_up = kind == "count" or kind == "money" end
  if not adds_up then
    fail(what, ("'%s' does not add up across periods (a ratio, a mean, a median...): roll the sums it is "
      .. "made of (montant and dossiers for prix_moyen) and divide"):format(column))
  end
  local name = ("%s_glissant_%d"):format(column, n)
  need_new(res, { name }, what)
  local cols, count = read_columns(res, { column, over, (table.unpack or unpack)(by) })
  local values, out = cols[column], {}
  for _, g in ipairs(ordered_groups(res, cols, count, over, by, what)) do
    local pos, row_at = positions(g, cols[over])
    local first
    for _, p in pairs(pos) do if not first or p < first then first = p end end
    for _, i in ipairs(g) do
      local p = pos[i]
      if p and p - n + 1 >= first then
        local total
        for q = p - n + 1, p do
          local j = row_at[q]
          local v = j and numeric(values[j], column, what)
          if v ~= nil then total = (total or 0) + v end
        end
        if total ~= nil and fn == "mean" then total = total / n end
        out[i] = total
      end
    end
  end
  return with_columns(res, {
    { name = name, values = out, kind = (fn == "mean" and kind == "count") and "number" or kind or "number",
      labels = labels_from(res, column, "%s, " .. n .. " périodes glissantes", "%s, rolling " .. n .. " periods") },
  })
end

--- res:rank(column, {by =, desc = true}): column_rang, 1 for the largest value (desc = false:
--- the smallest) over the whole result or within each by group; ties share a rank, as SQL's
--- RANK(); a missing value has no rank.
function transform.rank(res, column, opts)
  local what = "rank"
  opts = opts or {}
  if type(opts) ~= "table" then fail(what, ("options table expected, got %s"):format(type(opts))) end
  need_column(res, column, what)
  local by = column_names(res, opts.by, what, "by")
  local desc = opts.desc ~= false
  local name = column .. "_rang"
  need_new(res, { name }, what)
  local cols, n = read_columns(res, { column, (table.unpack or unpack)(by) })
  local at, ranks = cols[column], {}
  for i = 1, n do
    local v = at[i]
    if v ~= nil and type(v) ~= "number" and type(v) ~= "string" then
      fail(what, ("'%s' holds %s values"):format(column, type(v)))
    end
  end
  for _, g in ipairs(groups_of(cols, n, by, function(i) return at[i] ~= nil end)) do
    local ok, err = pcall(table.sort, g, function(a, b)
      local x, y = at[a], at[b]
      if x == y then return a < b end
      if desc then return x > y end
      return x < y
    end)
    if not ok then fail(what, ("'%s' mixes numbers and strings (%s)"):format(column, tostring(err))) end
    for k, i in ipairs(g) do
      local previous = g[k - 1]
      ranks[i] = previous and at[previous] == at[i] and ranks[previous] or k
    end
  end
  return with_columns(res, {
    { name = name, values = ranks, kind = "count", labels = labels_from(res, column, "Rang (%s)", "Rank (%s)") },
  })
end

return transform
