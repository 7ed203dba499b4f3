-- cpf.query.build — the first stage of a query: conditions, grouping keys, aggregates and CPF
-- measures as values, and the immutable Query that collects them (where, group_by, agg,
-- order_by, limit, having). Nothing here reads a dataset: cpf.query.compile turns a Query into
-- a plan, cpf.query.run runs it (cpf.query puts the stages together).
local schema = require "cpf.schema"
local suggest = require "cpf.suggest"

local q = {}

-- ---------------------------------------------------------------- constructors

local Cond = { __name = "cpf.condition" }
local Key = { __name = "cpf.key" }
local Agg = { __name = "cpf.aggregate" }

local function cond(t) return setmetatable(t, Cond) end
local function is_cond(v) return getmetatable(v) == Cond end
local function is_key(v) return getmetatable(v) == Key end
local function is_agg(v) return getmetatable(v) == Agg end
q.is_cond, q.is_key, q.is_agg = is_cond, is_key, is_agg
--- The key of a plain column (what the compiler makes of a column name in group_by).
function q.column_key(name) return setmetatable({ kind = "column", column = name, name = name }, Key) end

local function need_value(fname, v)
  if v == nil then error(("bad argument #1 to '%s' (value expected)"):format(fname), 3) end
end

function q.eq(v) need_value("eq", v) return cond { op = "eq", value = v } end
function q.gt(v) need_value("gt", v) return cond { op = "range", lo = v, lo_open = true } end
function q.ge(v) need_value("ge", v) return cond { op = "range", lo = v } end
function q.lt(v) need_value("lt", v) return cond { op = "range", hi = v, hi_open = true } end
function q.le(v) need_value("le", v) return cond { op = "range", hi = v } end
function q.between(lo, hi)
  if lo == nil or hi == nil then error("bad argument to 'between' (two bounds expected)", 2) end
  return cond { op = "range", lo = lo, hi = hi }
end
function q.one_of(list)
  if type(list) ~= "table" then error("bad argument #1 to 'one_of' (table expected)", 2) end
  return cond { op = "set", values = list }
end
function q.prefix(p)
  if type(p) ~= "string" then error("bad argument #1 to 'prefix' (string expected)", 2) end
  return cond { op = "prefix", value = p }
end
function q.match(pattern)
  if type(pattern) ~= "string" then error("bad argument #1 to 'match' (string expected)", 2) end
  return cond { op = "match", value = pattern }
end
function q.is_null() return cond { op = "null" } end
function q.not_null() return cond { op = "not", cond = cond { op = "null" } } end
function q.not_(c)
  return cond { op = "not", cond = q.as_cond(c) }
end
function q.any(list)
  if type(list) ~= "table" then error("bad argument #1 to 'any' (table of conditions expected)", 2) end
  local conds = {}
  for i, c in ipairs(list) do conds[i] = q.as_cond(c) end
  return cond { op = "or", conds = conds }
end

--- A plain value means equality, a list means "one of", a function is a predicate.
function q.as_cond(v)
  if is_cond(v) then return v end
  if type(v) == "function" then return cond { op = "fn", fn = v } end
  if type(v) == "table" and not is_key(v) and not is_agg(v) then return q.one_of(v) end
  if v == nil then error("condition expected, got nil", 3) end
  return q.eq(v)
end

local FAMILIES = {}
for _, f in ipairs(schema.family_order) do FAMILIES[f] = true end

local function key(t) return setmetatable(t, Key) end

-- The result names of the year, month and family keys, and the column each is computed from by
-- default: the virtual keys of the schema (annee, mois, famille).
local KEY_NAME, KEY_COLUMN = {}, {}
for name, v in pairs(schema.virtual_keys) do KEY_NAME[v.kind], KEY_COLUMN[v.kind] = name, v.column end

--- The periods of a month or date column as keys: cpf.year (2024), cpf.semester ("2024-S2"),
--- cpf.quarter ("2024-T1"), cpf.month ("2024-05") and cpf.month_of_year (1 to 12, whatever
--- the year), named as the schema's virtual keys (annee, semestre, trimestre, mois).
function q.year(column) return key { kind = "year", column = column, name = KEY_NAME.year } end
function q.semester(column) return key { kind = "semester", column = column, name = KEY_NAME.semester } end
function q.quarter(column) return key { kind = "quarter", column = column, name = KEY_NAME.quarter } end
function q.month(column) return key { kind = "month", column = column, name = KEY_NAME.month } end
function q.month_of_year(column)
  return key { kind = "month_of_year", column = column, name = KEY_NAME.month_of_year }
end
--- cpf.bucket(column, bounds): a key of ranges, "< b1", "[b1, b2)", ..., ">= bn". Bounds are
--- numbers, or for a month or date column "YYYY-MM" / "YYYY-MM-DD" texts (labels in months).
function q.bucket(column, bounds)
  if type(bounds) ~= "table" or #bounds == 0 then error("bad argument #2 to 'bucket' (list of bounds expected)", 2) end
  local kind = type(bounds[1]) == "string" and "string" or "number"
  for i, b in ipairs(bounds) do
    if kind == "number" and (type(b) ~= "number" or b ~= b) then
      error(("bad argument #2 to 'bucket' (bound %d is %s, a number expected)")
        :format(i, b ~= b and "NaN" or type(b)), 2)
    end
    if kind == "string" and not (type(b) == "string" and (b:match("^%d%d%d%d%-%d%d$")
                                   or b:match("^%d%d%d%d%-%d%d%-%d%d$"))) then
      error(("bad argument #2 to 'bucket' (bound %d is %s, \"YYYY-MM\" or \"YYYY-MM-DD\" expected)")
        :format(i, type(b) == "string" and ("%q"):format(b) or type(b)), 2)
    end
  end
  for i = 2, #bounds do
    if not (bounds[i] > bounds[i - 1]) then error("bucket: bounds must increase", 2) end
  end
  return key { kind = "bucket", column = column, bounds = bounds, name = schema.normalize(column) .. "_tranche" }
end
function q.key(column, fn, name)
  if type(fn) ~= "function" then error("bad argument #2 to 'key' (function expected)", 2) end
  return key { kind = "fn", column = column, fn = fn, name = name or (schema.normalize(column) .. "_cle") }
end

--- cpf.family "statut_dossier" is a grouping key; cpf.family "cancelled" is a condition.
function q.family(arg)
  if FAMILIES[arg] then
    return cond { op = "fn", fn = function(v) return schema.families[v] == arg end,
                  label = "family " .. arg, column_hint = KEY_COLUMN.family }
  end
  return key { kind = "fn", column = arg or KEY_COLUMN.family, fn = function(v) return schema.families[v] end,
               name = KEY_NAME.family, order = schema.family_order }
end

--- A column or virtual key by name, under another name in the result (the request language's
--- --by "Région=region_lieu_formation"): resolved when the query runs, as a plain name is.
function q.named_key(column, name) return key { kind = "named", column = column, name = name } end

--- Renames a key or an aggregate in the result: cpf.year("date validation"):as("year")
function Key:as(name) local t = {} for k, v in pairs(self) do t[k] = v end t.name = name return key(t) end
Key.__index = Key

local function agg(t) return setmetatable(t, Agg) end
Agg.__index = {}

-- What a result column holds, for the display formats: count, money, rate, number or key.
local VALUE_KINDS = { count = true, money = true, rate = true, number = true, key = true }
q.value_kinds = VALUE_KINDS

--- The same aggregate with the kind of value it gives: cpf.sum "x":kind("money").
function Agg.__index.kind(self, k)
  if not VALUE_KINDS[k] then
    error(("bad argument #1 to 'kind' (count, money, rate, number or key expected, got %s)"):format(tostring(k)), 2)
  end
  local t = {}
  for field, v in pairs(self) do t[field] = v end
  t.value_kind = k
  return agg(t)
end

-- The kind of a CPF column named by any of its names, or nil.
local function column_kind(name)
  if type(name) ~= "string" then return nil end
  local c = schema.find_column(schema.columns, name)
  return c and schema.column_kinds[c.name]
end

--- The kind of value an aggregate gives: its own (agg:kind) or what it computes: counts of rows
--- and distinct values are counts; a sum, min or max has its column's kind; a mean, median or
--- weighted mean of amounts is an amount; a share is a rate, and so is a ratio of two things of
--- one kind; amount / count is an amount (a price).
function q.value_kind(a)
  if a.value_kind then return a.value_kind end
  local k = a.op
  if k == "count" or k == "count_values" or k == "distinct" then return "count" end
  if k == "share" then return "rate" end
  if k == "filtered" then return q.value_kind(a.inner) end
  local c1 = column_kind(a.column)
  if k == "sum" or k == "min" or k == "max" then return c1 or "number" end
  if k == "mean" or k == "quantile" or k == "wmean" then return c1 == "money" and "money" or "number" end
  if k == "ratio" then
    local c2 = column_kind(a.column2)
    if c1 and c1 == c2 then return "rate" end
    if c1 == "money" and c2 == "count" then return "money" end
  end
  return "number"
end

function q.count(column) return agg { op = column and "count_values" or "count", column = column } end
function q.sum(column) return agg { op = "sum", column = column } end
function q.mean(column) return agg { op = "mean", column = column } end
function q.min(column) return agg { op = "min", column = column } end
function q.max(column) return agg { op = "max", column = column } end
function q.distinct(column) return agg { op = "distinct", column = column } end
function q.median(column) return agg { op = "quantile", column = column, q = 0.5 } end
function q.quantile(column, p)
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then
    error("bad argument #2 to 'quantile' (number in [0, 1] expected)", 2)
  end
  return agg { op = "quantile", column = column, q = p }
end
function q.ratio(a, b) return agg { op = "ratio", column = a, column2 = b } end
function q.wmean(x, w) return agg { op = "wmean", column = x, column2 = w } end
-- A name as the aggregate the places that take one use (share, filtered, combine), one rule
-- for all: a CPF measure by its name (montant, prix_moyen), else the sum of the column of that
-- name (nb_dossiers), checked when the query runs; nil and a message for anything else.
local function part_agg(v)
  if is_agg(v) then return v end
  if type(v) ~= "string" then return nil, ("got %s"):format(type(v)) end
  if q.measures[v] then return q.measures[v] end
  -- a measure cpf refuses (titulaires) at once; a column's sum is refused when it runs, as any
  local refusal = not schema.by_name[v] and schema.measure_refusal(v)
  if refusal then return nil, refusal end
  return q.sum(v)
end

-- The aggregates whose values do not add up across groups: a share of one means nothing.
local NOT_ADDITIVE = { ratio = "a ratio", wmean = "a weighted mean", mean = "a mean", quantile = "a quantile",
                       distinct = "a distinct count" }

--- A measure as a fraction of its total over all groups, or with {within = keys} over the
--- groups sharing those keys' values (each year's funders adding up to 1): an aggregate, a
--- measure name or a column name (its sum), which must add up across groups.
function q.share(inner, opts)
  local a, why = part_agg(inner)
  if not a then
    error(("bad argument #1 to 'share' (aggregate, measure or column name expected, %s)"):format(why), 2)
  end
  local core_op = a
  while core_op.op == "filtered" do core_op = core_op.inner end
  if NOT_ADDITIVE[core_op.op] then
    error(("bad argument #1 to 'share' (%s does not add up across groups: share the sums it is made of)")
      :format(NOT_ADDITIVE[core_op.op]), 2)
  end
  local within
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #2 to 'share' ({within = keys} expected)", 2) end
    within = opts.within
    if type(within) == "string" then within = { within } end
    if within ~= nil and (type(within) ~= "table" or #within == 0) then
      error("bad argument #2 to 'share' (within: a key name or a list of them)", 2)
    end
  end
  return agg { op = "share", inner = a, within = within }
end

--- An aggregate counted only over the rows a condition keeps: cpf.filtered(cpf.sum "x", {col = v}).
--- The condition applies to everything inside, ANDed with the conditions of filtered aggregates
--- around it: a node of the aggregate tree, like share and combine.
function q.filtered(inner, where)
  local a, why = part_agg(inner)
  if not a then
    error(("bad argument #1 to 'filtered' (aggregate, measure or column name expected, %s)"):format(why), 2)
  end
  if type(where) ~= "table" and type(where) ~= "function" then
    error(("bad argument #2 to 'filtered' ({column = condition} or function expected, got %s)")
      :format(type(where)), 2)
  end
  return agg { op = "filtered", inner = a, where = where }
end
--- Several aggregates (or measure names) combined per group by a Lua function (called once per
--- group with their values, nil where a group has none).
function q.combine(parts, fn)
  if type(parts) ~= "table" or is_agg(parts) or #parts == 0 then
    error("bad argument #1 to 'combine' (list of aggregates or measure names expected)", 2)
  end
  if type(fn) ~= "function" then
    error(("bad argument #2 to 'combine' (function expected, got %s)"):format(type(fn)), 2)
  end
  local list = {}
  for i, p in ipairs(parts) do
    local a, why = part_agg(p)
    if not a then error(("combine: part %d is no aggregate, measure or column name (%s)"):format(i, why), 2) end
    list[i] = a
  end
  return agg { op = "combine", parts = list, fn = fn }
end
--- Custom reducer, the slow path: {column =, init =, step =, final =, merge =}.
--- init: a function returning each group's first accumulator, or a number, string or boolean
--- used as it is (a table would be shared by every group). step is called with the values
--- present only: missing values are skipped, as by every other aggregate.
function q.reduce(spec)
  if type(spec) ~= "table" or type(spec.step) ~= "function" then
    error("bad argument #1 to 'reduce' ({column =, init =, step =, final =} expected)", 2)
  end
  if type(spec.column) ~= "string" then
    error(("reduce: 'column' must be a column name, got %s"):format(type(spec.column)), 2)
  end
  local init = spec.init
  if type(init) == "table" then
    error("reduce: 'init' is a table, which every group would share: give a function that returns a new one", 2)
  elseif init ~= nil and type(init) ~= "function" and type(init) ~= "number" and type(init) ~= "string"
         and type(init) ~= "boolean" then
    error(("reduce: 'init' must be a function or a number, string or boolean, got %s"):format(type(init)), 2)
  end
  for _, field in ipairs { "final", "merge" } do
    if spec[field] ~= nil and type(spec[field]) ~= "function" then
      error(("reduce: '%s' must be a function, got %s"):format(field, type(spec[field])), 2)
    end
  end
  return agg { op = "reduce", column = spec.column, spec = spec }
end

-- ---------------------------------------------------------------- CPF measures

-- The measures of schema.measures as aggregates.
q.measures = {}
for name, m in pairs(schema.measures) do
  if type(m) == "function" then q.measures[name] = m(q) else q.measures[name] = q[m[1]](m[2], m[3]) end
end
for name, kind in pairs(schema.measure_kinds) do q.measures[name] = q.measures[name]:kind(kind) end

local function measure(name)
  local refusal = schema.measure_refusal(name)
  if refusal then error(refusal, 0) end
  local m = q.measures[name]
  if not m then
    local names = {}
    for n in pairs(q.measures) do names[#names + 1] = n end
    table.sort(names)
    error(("unknown measure '%s'%s"):format(tostring(name), suggest.hint(name, names)), 0)
  end
  return m
end

local function as_agg(name, a)
  if type(a) == "string" then return measure(a) end
  if not is_agg(a) then
    error(("agg: '%s' must be an aggregate or a measure name, got %s"):format(tostring(name), type(a)), 3)
  end
  return a
end

-- ---------------------------------------------------------------- the query object

local Query = {}
Query.__index = Query
q.Query = Query

function q.new(ds)
  return setmetatable({ ds = ds, where_list = {}, key_list = {}, agg_list = {}, order = {} }, Query)
end

-- q.group_by(...) written with a dot passes its first argument as the query: say so at the
-- call rather than fail later on a string.
local function check_query(self, method)
  if getmetatable(self) ~= Query then
    error(("bad argument #1 to '%s' (query expected, got %s: call it as q:%s(...))")
      :format(method, type(self), method), 3)
  end
end

local function copy(self)
  local t = {}
  for k, v in pairs(self) do
    if type(v) == "table" and k ~= "ds" then
      local c = {}
      for i, x in pairs(v) do c[i] = x end
      t[k] = c
    else
      t[k] = v
    end
  end
  return setmetatable(t, Query)
end

--- where{col = value, ...} | where(column_or_key, value) | where(function(row) ... end)
function Query:where(target, value)
  check_query(self, "where")
  local n = copy(self)
  if type(target) == "function" and value == nil then
    n.where_list[#n.where_list + 1] = { fn = target }
  elseif type(target) == "table" and not is_key(target) and value == nil then
    n.where_list[#n.where_list + 1] = { map = target }
  elseif target ~= nil and value ~= nil then
    n.where_list[#n.where_list + 1] = { target = target, value = value }
  else
    error("bad arguments to 'where' ({column = value}, (column, value) or a row function expected)", 2)
  end
  return n
end

function Query:group_by(...)
  check_query(self, "group_by")
  local n = copy(self)
  for i = 1, select("#", ...) do
    local k = select(i, ...)
    if not (type(k) == "string" or is_key(k)) then
      error(("bad argument #%d to 'group_by' (column name or key expected, got %s)"):format(i, type(k)), 2)
    end
    n.key_list[#n.key_list + 1] = k
  end
  return n
end

--- agg{name = aggregate | "measure", ...} (ordered by name), agg{"measure", ...},
--- agg{{"name", aggregate}, ...} (in order); several calls append.
function Query:agg(spec)
  check_query(self, "agg")
  if type(spec) ~= "table" then error("bad argument #1 to 'agg' (table expected)", 2) end
  local n = copy(self)
  local named = {}
  for k in pairs(spec) do
    if type(k) == "string" then named[#named + 1] = k end
  end
  table.sort(named)
  for _, v in ipairs(spec) do
    if type(v) == "string" then
      n.agg_list[#n.agg_list + 1] = { name = v, agg = as_agg(v, v) }
    elseif type(v) == "table" and type(v[1]) == "string" then
      n.agg_list[#n.agg_list + 1] = { name = v[1], agg = as_agg(v[1], v[2]) }
    else
      error("agg: list entries must be measure names or {name, aggregate} pairs", 2)
    end
  end
  for _, k in ipairs(named) do n.agg_list[#n.agg_list + 1] = { name = k, agg = as_agg(k, spec[k]) } end
  return n
end

function Query:order_by(...)
  check_query(self, "order_by")
  local n = copy(self)
  n.order = { ... }
  return n
end

--- limit(n [, {per = column or {columns}, others = true}]): the first n rows in the query's
--- order; with per, the first n of each group of rows sharing those columns' values; with
--- others, the groups left out folded into one "Autres" row (one per group with per), its
--- measures computed from their rows (cpf.query.rollup).
function Query:limit(count, opts)
  check_query(self, "limit")
  if type(count) ~= "number" or count < 0 or count ~= math.floor(count) then
    error("bad argument #1 to 'limit' (whole number expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'limit' ({per = column, others = true} expected)", 2)
  end
  local n = copy(self)
  n.max_rows, n.limit_per, n.with_others = count, opts and opts.per, opts and opts.others and true or nil
  return n
end

--- totals(): a subtotal row after each group of the first key (with two keys or more) and a
--- grand total last, over every row the conditions keep (SQL's ROLLUP), each measure computed
--- from those rows (cpf.query.rollup).
function Query:totals()
  check_query(self, "totals")
  local n = copy(self)
  n.with_totals = true
  return n
end

--- having{column = condition, ...}: conditions on the result's columns (aggregates and
--- measures by their result name, keys too), applied after aggregation, before order_by and
--- limit; the condition constructors of where. Several calls add conditions.
function Query:having(conds)
  check_query(self, "having")
  if type(conds) ~= "table" or q.is_cond(conds) then
    error("bad argument #1 to 'having' ({column = condition} expected)", 2)
  end
  local n = copy(self)
  n.having_list = n.having_list or {}
  n.having_list[#n.having_list + 1] = conds
  return n
end

local function describe(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if is_key(v) then return ("%s(%s)"):format(v.kind == "fn" and "key" or v.kind, tostring(v.column)) end
  if is_cond(v) then
    if v.op == "eq" then return describe(v.value) end
    if v.op == "range" then
      return ("%s%s, %s%s"):format(v.lo_open and "(" or "[", v.lo == nil and "-inf" or describe(v.lo),
        v.hi == nil and "+inf" or describe(v.hi), v.hi_open and ")" or "]")
    end
    if v.op == "set" then
      local t = {}
      for i, x in ipairs(v.values) do t[i] = describe(x) end
      return "one of {" .. table.concat(t, ", ") .. "}"
    end
    if v.op == "not" then return "not " .. describe(v.cond) end
    if v.op == "or" then
      local t = {}
      for i, x in ipairs(v.conds) do t[i] = describe(x) end
      return "any{" .. table.concat(t, ", ") .. "}"
    end
    if v.op == "fn" then return v.label or "function" end
    if v.op == "null" then return "null" end
    return v.op .. " " .. describe(v.value)
  end
  if is_agg(v) then
    if v.op == "share" then return "share(" .. describe(v.inner) .. ")" end
    if v.op == "filtered" then return describe(v.inner) .. " filtered" end
    if v.op == "combine" then return "combine(...)" end
    local args = {}
    if v.column then args[#args + 1] = v.column end
    if v.column2 then args[#args + 1] = v.column2 end
    if v.q and v.q ~= 0.5 then args[#args + 1] = tostring(v.q) end
    return v.op .. "(" .. table.concat(args, ", ") .. ")"
  end
  if type(v) == "table" then
    local t = {}
    for i, x in ipairs(v) do t[i] = describe(x) end
    return "{" .. table.concat(t, ", ") .. "}"
  end
  return tostring(v)
end

function Query:__tostring()
  local lines = { "cpf query" }
  for _, w in ipairs(self.where_list) do
    if w.fn then lines[#lines + 1] = "  where row function (slow path)"
    elseif w.map then
      local names = {}
      for k in pairs(w.map) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do lines[#lines + 1] = ("  where %s = %s"):format(k, describe(w.map[k])) end
    else
      lines[#lines + 1] = ("  where %s = %s"):format(describe(w.target), describe(w.value))
    end
  end
  if #self.key_list > 0 then
    local t = {}
    for i, k in ipairs(self.key_list) do t[i] = type(k) == "string" and k or describe(k) end
    lines[#lines + 1] = "  group by " .. table.concat(t, ", ")
  end
  for _, a in ipairs(self.agg_list) do lines[#lines + 1] = ("  %s = %s"):format(a.name, describe(a.agg)) end
  for _, conds in ipairs(self.having_list or {}) do
    local names = {}
    for name in pairs(conds) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      lines[#lines + 1] = ("  having %s: %s"):format(name, describe(q.as_cond(conds[name])))
    end
  end
  if #self.order > 0 then lines[#lines + 1] = "  order by " .. table.concat(self.order, ", ") end
  if self.max_rows then
    local per = self.limit_per
    if type(per) == "table" then per = table.concat(per, ", ") end
    lines[#lines + 1] = "  limit " .. self.max_rows .. (per and " per " .. per or "")
  end
  return table.concat(lines, "\n")
end

-- Query:run is the third stage's (cpf.query.run), installed by cpf.query.

return q
