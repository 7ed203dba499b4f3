-- cpf.query — conditions, grouping keys, aggregates and the immutable query plan. A query
-- compiles to plain tables that cpf.core runs in one C call; Lua functions given by the user
-- are called once per distinct value, never per row (except the documented row predicate).
local core = require "cpf.core"
local schema = require "cpf.schema"
local result = require "cpf.result"
local errors = require "cpf.errors"

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

function q.year(column) return key { kind = "year", column = column, name = KEY_NAME.year } end
function q.month(column) return key { kind = "month", column = column, name = KEY_NAME.month } end
function q.bucket(column, bounds)
  if type(bounds) ~= "table" or #bounds == 0 then error("bad argument #2 to 'bucket' (list of bounds expected)", 2) end
  for i, b in ipairs(bounds) do
    if type(b) ~= "number" or b ~= b then
      error(("bad argument #2 to 'bucket' (bound %d is %s, a number expected)")
        :format(i, b ~= b and "NaN" or type(b)), 2)
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
--- A measure as a fraction of its total over all groups.
function q.share(inner)
  if type(inner) == "string" then inner = q.sum(inner) end
  if not is_agg(inner) then error("bad argument #1 to 'share' (aggregate expected)", 2) end
  return agg { op = "share", inner = inner }
end

-- A measure name as its aggregate, for the places that take one (combine, filtered); nil and a
-- message when it is none.
local function part_agg(v)
  if is_agg(v) then return v end
  if type(v) ~= "string" then return nil, ("got %s"):format(type(v)) end
  local refusal = schema.measure_refusal(v)
  if refusal then return nil, refusal end
  if not q.measures[v] then return nil, ("unknown measure '%s'"):format(v) end
  return q.measures[v]
end

--- An aggregate counted only over the rows a condition keeps: cpf.filtered(cpf.sum "x", {col = v}).
--- The condition applies to everything inside, ANDed with the conditions of filtered aggregates
--- around it: a node of the aggregate tree, like share and combine.
function q.filtered(inner, where)
  local a, why = part_agg(inner)
  if not a then error(("bad argument #1 to 'filtered' (aggregate or measure name expected, %s)"):format(why), 2) end
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
    if not a then error(("combine: part %d is no aggregate or measure name (%s)"):format(i, why), 2) end
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
q.measures.taux_annulation = q.measures.taux_annulation:kind("rate") -- a combine: say it

local function measure(name)
  local refusal = schema.measure_refusal(name)
  if refusal then error(refusal, 0) end
  local m = q.measures[name]
  if not m then error(("unknown measure '%s'"):format(tostring(name)), 0) end
  return m
end

-- ---------------------------------------------------------------- resolving names

-- The column a name designates (schema.find_column, the one rule), as {index, name, type,
-- label, missing}; a virtual key as {virtual = kind, name, column = that column's info}.
-- Looked up once per name and query run.
local function find_column(ctx, name)
  local found = ctx.found[name]
  if found == nil then
    local c = schema.find_column(ctx.column_list, name)
    if c and c.virtual then
      found = { virtual = c.virtual, name = c.name, column = ctx.info_of[c.column] }
    else
      found = c and ctx.info_of[c] or false
    end
    ctx.found[name] = found
  end
  return found or nil
end

-- A plain column (never a virtual key): its info, or an error naming what asked for it.
local function resolve_column(ctx, name, what)
  if type(name) ~= "string" then error(("%s: column name expected, got %s"):format(what, type(name)), 0) end
  local info = find_column(ctx, name)
  if info and not info.virtual then return info end
  local v = schema.virtual_keys[name]
  if v and not info then
    error(("%s: '%s' is computed from the column '%s', which the dataset does not have")
      :format(what, name, v.column), 0)
  end
  if info then
    error(("%s: '%s' is a key computed from the column '%s', not a column"):format(what, name, info.column.name), 0)
  end
  error(("%s: unknown column '%s'"):format(what, name), 0)
end

-- The key a virtual name computes, on the column it was found on.
local function virtual_key(v)
  if v.virtual == "year" then return q.year(v.column.name) end
  if v.virtual == "month" then return q.month(v.column.name) end
  return q.family(v.column.name)
end

-- A key object, or a column name (virtual names annee/mois/famille included), as a key.
local function as_key(ctx, k)
  if is_key(k) and k.kind == "named" then return as_key(ctx, k.column):as(k.name) end
  if is_key(k) then return k end
  if type(k) == "string" then
    local info = find_column(ctx, k)
    if info and info.virtual then return virtual_key(info) end
    info = resolve_column(ctx, k, "group_by")
    return key { kind = "column", column = info.name, name = info.name }
  end
  error(("group_by: column name or key expected, got %s"):format(type(k)), 0)
end

-- ---------------------------------------------------------------- dates in Lua (for bounds)

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function days_in_month(y, m)
  local d = ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then d = 29 end
  return d
end

-- The [first, last] interval a bound value covers in a month or date column's units.
local function temporal_interval(info, v, what)
  local y, m, d
  if type(v) == "number" and v == math.floor(v) then
    y = v
  elseif type(v) == "string" then
    y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    if not y then y, m = v:match("^(%d%d%d%d)%-(%d%d)$") end
    if not y then y = v:match("^(%d%d%d%d)$") end
    y, m, d = tonumber(y), tonumber(m), tonumber(d)
    if m and (m < 1 or m > 12) then y = nil end
    if d and (d < 1 or d > days_in_month(y, m)) then y = nil end
  end
  if not y then
    error(("%s: expected a year, \"YYYY-MM\" or \"YYYY-MM-DD\" for %s column '%s', got %s")
      :format(what, info.type, info.name, type(v) == "string" and ("%q"):format(v) or tostring(v)), 0)
  end
  if info.type == "month" then
    if d and d ~= 1 then
      error(("%s: '%s' holds months; %q is not the first day of a month"):format(what, info.name, v), 0)
    end
    if m then return y * 12 + m - 1, y * 12 + m - 1 end
    return y * 12, y * 12 + 11
  end
  if d then local x = days_from_civil(y, m, d) return x, x end
  if m then return days_from_civil(y, m, 1), days_from_civil(y, m, days_in_month(y, m)) end
  return days_from_civil(y, 1, 1), days_from_civil(y, 12, 31)
end

-- ---------------------------------------------------------------- compiling conditions

-- Whether value v passes condition c (used per distinct value, in Lua).
local function test(c, v, what)
  local op = c.op
  if (op == "eq" or op == "set") and v ~= nil then
    for _, x in ipairs(op == "eq" and { c.value } or c.values) do
      if type(x) ~= type(v) then
        error(("%s: cannot compare %s values with %s %s"):format(what, type(v), type(x),
          type(x) == "string" and ("%q"):format(x) or tostring(x)), 0)
      end
    end
  end
  if op == "eq" then return v == c.value end
  if op == "set" then
    for _, x in ipairs(c.values) do if v == x then return true end end
    return false
  end
  if op == "null" then return v == nil end
  if op == "not" then return not test(c.cond, v, what) end
  if op == "or" then
    for _, x in ipairs(c.conds) do if test(x, v, what) then return true end end
    return false
  end
  if v == nil then return false end -- like SQL: a missing value passes no test but is_null
  if op == "fn" then return c.fn(v) and true or false end
  if op == "prefix" then
    if type(v) ~= "string" then error(("%s: prefix needs string values, got %s"):format(what, type(v)), 0) end
    return v:sub(1, #c.value) == c.value
  end
  if op == "match" then
    if type(v) ~= "string" then error(("%s: match needs string values, got %s"):format(what, type(v)), 0) end
    return v:match(c.value) ~= nil
  end
  if op == "range" then
    for _, b in ipairs { c.lo, c.hi } do
      if b ~= nil and type(b) ~= type(v) then
        error(("%s: cannot compare %s values with %s %s"):format(what, type(v), type(b), tostring(b)), 0)
      end
    end
    if c.lo ~= nil and (c.lo_open and not (v > c.lo) or not c.lo_open and not (v >= c.lo)) then return false end
    if c.hi ~= nil and (c.hi_open and not (v < c.hi) or not c.hi_open and not (v <= c.hi)) then return false end
    return true
  end
  error("unknown condition " .. tostring(op), 0)
end

--- A function(v) that answers test(c, v, what), made once for a condition tested on many values
--- (a result's rows): bounds and values checked on the first value of each type, not per call.
function q.tester(c, what)
  local op = c.op
  if op == "range" then
    local lo, hi, lo_open, hi_open = c.lo, c.hi, c.lo_open, c.hi_open
    local checked = {}
    return function(v)
      if v == nil then return false end
      local t = type(v)
      if not checked[t] then
        test(c, v, what) -- raises the message of a bound of another type
        checked[t] = true
      end
      if lo ~= nil then
        if lo_open then if not (v > lo) then return false end elseif not (v >= lo) then return false end
      end
      if hi ~= nil then
        if hi_open then if not (v < hi) then return false end elseif not (v <= hi) then return false end
      end
      return true
    end
  end
  if op == "eq" or op == "set" then
    local set, checked = {}, {}
    for _, x in ipairs(op == "eq" and { c.value } or c.values) do set[x] = true end
    return function(v)
      if v == nil then return false end
      local t = type(v)
      if not checked[t] then test(c, v, what) checked[t] = true end
      return set[v] == true
    end
  end
  if op == "not" then
    local inner = q.tester(c.cond, what)
    return function(v) return not inner(v) end
  end
  return function(v) return test(c, v, what) end
end

local compile_key -- forward

-- A condition evaluated once per distinct value of a key: a byte mask over the key's codes.
local function mask_cond(ckey, values, count, c, what)
  local bytes = {}
  for code = 1, count do bytes[code] = test(c, values[code], what) and "\1" or "\0" end
  bytes[count + 1] = test(c, nil, what) and "\1" or "\0" -- the "no value" code
  return { op = "mask", key = ckey, mask = table.concat(bytes) }
end

local function check_number(v, info, what)
  if v ~= v then error(("%s: NaN is not a value of '%s'"):format(what, info.name), 0) end
  if type(v) ~= "number" then
    error(("%s: '%s' is %s %s column, expected a number, got %s %s")
      :format(what, info.name, info.type == "integer" and "an" or "a", info.type, type(v),
              type(v) == "string" and ("%q"):format(v) or tostring(v)), 0)
  end
end

-- Condition on one plain column, compiled to the cheapest C form.
local function column_cond(ctx, info, c, what)
  local op = c.op
  if op == "not" then return { op = "not", conds = { column_cond(ctx, info, c.cond, what) } } end
  if op == "or" then
    local conds = {}
    for i, x in ipairs(c.conds) do conds[i] = column_cond(ctx, info, x, what) end
    return { op = "or", conds = conds }
  end
  if op == "null" then return { op = "null", column = info.index } end
  if info.type == "string" then
    local ckey = { kind = "column", column = info.index }
    local values = ctx.ds:dictionary(info.index)
    return mask_cond(ckey, values, #values, c, what)
  end
  if op == "fn" then -- once per distinct value of a numeric column (ascending), values present only
    local runs = core.value_runs(ctx.ds, info.index, c.fn) -- truthy keeps, as test() says
    return { op = "runs", column = info.index, runs = runs, with_missing = test(c, nil, what) }
  end
  if op == "prefix" or op == "match" then
    error(("%s: %s needs a string column, '%s' is %s"):format(what, op, info.name, info.type), 0)
  end
  if info.type == "month" or info.type == "date" then
    if op == "eq" then
      local lo, hi = temporal_interval(info, c.value, what)
      return { op = "range", column = info.index, lo = lo, hi = hi }
    end
    if op == "set" then
      local conds = {}
      for i, v in ipairs(c.values) do conds[i] = column_cond(ctx, info, q.eq(v), what) end
      return { op = "or", conds = conds }
    end
    if op == "range" then
      local t = { op = "range", column = info.index }
      if c.lo ~= nil then
        local first, last = temporal_interval(info, c.lo, what)
        if c.lo_open then t.lo, t.lo_open = last, true else t.lo = first end
      end
      if c.hi ~= nil then
        local first, last = temporal_interval(info, c.hi, what)
        if c.hi_open then t.hi, t.hi_open = first, true else t.hi = last end
      end
      return t
    end
  end
  if op == "eq" then
    check_number(c.value, info, what)
    return { op = "range", column = info.index, lo = c.value, hi = c.value }
  end
  if op == "set" then
    local conds = {}
    for i, v in ipairs(c.values) do
      check_number(v, info, what)
      conds[i] = { op = "range", column = info.index, lo = v, hi = v }
    end
    return { op = "or", conds = conds }
  end
  if op == "range" then
    if c.lo ~= nil then check_number(c.lo, info, what) end
    if c.hi ~= nil then check_number(c.hi, info, what) end
    return { op = "range", column = info.index, lo = c.lo, hi = c.hi, lo_open = c.lo_open, hi_open = c.hi_open }
  end
  error(("%s: unsupported condition '%s'"):format(what, tostring(op)), 0)
end

-- Whether a condition on the year or month key says the same as on the month or date column it
-- is computed from: equalities, sets and bounds (and their not, or, is_null) of whole years
-- (annee) or "YYYY-MM" months (mois). Anything else is tested on the key's values.
local function derived_as_range(c, kind)
  local function value_ok(v)
    if kind == "year" then return type(v) == "number" and v == math.floor(v) and v >= 0 and v <= 9999 end
    local m = type(v) == "string" and tonumber(v:match("^%d%d%d%d%-(%d%d)$"))
    return m and m >= 1 and m <= 12
  end
  local op = c.op
  if op == "null" then return true end
  if op == "not" then return derived_as_range(c.cond, kind) end
  if op == "or" then
    for _, x in ipairs(c.conds) do if not derived_as_range(x, kind) then return false end end
    return true
  end
  if op == "eq" then return value_ok(c.value) end
  if op == "set" then
    for _, v in ipairs(c.values) do if not value_ok(v) then return false end end
    return #c.values > 0
  end
  if op == "range" then
    return (c.lo == nil or value_ok(c.lo)) and (c.hi == nil or value_ok(c.hi))
  end
  return false
end

-- target: column name, virtual name or key; value: plain value, list, condition or function
local function compile_cond(ctx, target, value, what)
  local c = q.as_cond(value)
  if c.column_hint and target == nil then target = c.column_hint end
  local found = type(target) == "string" and find_column(ctx, target)
  if type(target) == "string" and not (found and found.virtual) then
    local info = resolve_column(ctx, target, what)
    return column_cond(ctx, info, c, what .. " " .. info.name)
  end
  if found and (found.virtual == "year" or found.virtual == "month")
     and (found.column.type == "month" or found.column.type == "date")
     and derived_as_range(c, found.virtual) then
    -- annee = 2023 is date_validation in 2023: a range on the column, no per-row key to compute
    return column_cond(ctx, found.column, c, what .. " " .. found.name)
  end
  local k = as_key(ctx, target)
  local ckey, labels = compile_key(ctx, k)
  local values, count = labels, labels and #labels
  if not labels then values, count = core.key_values(ctx.ds, ckey) end
  return mask_cond(ckey, values, count, c, what .. " " .. k.name)
end

-- Row predicate, the documented slow path: one Lua call per row.
local function rows_cond(ctx, fn)
  local ds, bytes = ctx.ds, {}
  for i = 1, #ds do bytes[i] = fn(ds:row(i)) and "\1" or "\0" end
  return { op = "rows", mask = table.concat(bytes) }
end

local function compile_where(ctx, where)
  local conds = {}
  for _, w in ipairs(where) do
    if w.fn then
      conds[#conds + 1] = rows_cond(ctx, w.fn)
    elseif w.target ~= nil or w.value ~= nil then
      conds[#conds + 1] = compile_cond(ctx, w.target, w.value, "where")
    else
      local names = {}
      for name in pairs(w.map) do names[#names + 1] = name end
      table.sort(names) -- a stable plan whatever the table order
      for _, name in ipairs(names) do
        conds[#conds + 1] = compile_cond(ctx, name, w.map[name], "where")
      end
    end
  end
  if #conds == 0 then return nil end
  return { op = "and", conds = conds }
end

-- ---------------------------------------------------------------- compiling keys

-- Returns the C key and, for keys whose values Lua computes, the label of each code.
function compile_key(ctx, k)
  local info = resolve_column(ctx, k.column, "group_by")
  if k.kind == "column" then return { kind = "column", column = info.index } end
  if k.kind == "year" or k.kind == "month" then return { kind = k.kind, column = info.index } end
  if k.kind == "bucket" then
    if info.type == "string" then error(("bucket: '%s' is a string column"):format(info.name), 0) end
    local labels, b = {}, k.bounds
    labels[1] = "< " .. tostring(b[1])
    for i = 1, #b - 1 do labels[i + 1] = ("[%s, %s)"):format(tostring(b[i]), tostring(b[i + 1])) end
    labels[#b + 1] = ">= " .. tostring(b[#b])
    return { kind = "bucket", column = info.index, bounds = b }, labels
  end
  if k.kind == "fn" then
    if info.type ~= "string" then
      error(("cpf.key: '%s' is a %s column; a key function needs a string column "
             .. "(use cpf.bucket or cpf.year for numbers and months)")
        :format(info.name, info.type), 0)
    end
    local values = ctx.ds:dictionary(info.index)
    local remap, labels, code_of = {}, {}, {}
    for i, v in ipairs(values) do
      local out = k.fn(v)
      local t = type(out)
      if out == nil then
        remap[i] = -1
      elseif (t ~= "string" and t ~= "number" and t ~= "boolean") or out ~= out then
        error(("cpf.key '%s': the function returned %s for %q; a key is a string, a number or a "
               .. "boolean (nil for no key)"):format(k.name, out ~= out and "NaN" or "a " .. t, v), 0)
      else
        if code_of[out] == nil then labels[#labels + 1] = out; code_of[out] = #labels - 1 end
        remap[i] = code_of[out]
      end
    end
    return { kind = "remap", column = info.index, remap = remap, outputs = #labels }, labels
  end
  error("unknown key kind " .. tostring(k.kind), 0)
end

-- ---------------------------------------------------------------- compiling aggregates

local function as_agg(name, a)
  if type(a) == "string" then return measure(a) end
  if not is_agg(a) then
    error(("agg: '%s' must be an aggregate or a measure name, got %s"):format(tostring(name), type(a)), 3)
  end
  return a
end

-- The C condition for the conditions of the filtered aggregates above a node (`conds`, outermost
-- first), compiled once per list: the leaves under one filtered node share it.
local function compile_filter(ctx, conds)
  if #conds == 0 then return nil end
  local f = ctx.filters[conds]
  if not f then
    local where = {}
    for i, w in ipairs(conds) do
      if type(w) == "function" then where[i] = { fn = w } else where[i] = { map = w } end
    end
    f = compile_where(ctx, where) or false
    ctx.filters[conds] = f
  end
  return f or nil
end

-- Compiles aggregate `a`, a node of the aggregate tree, under `conds` (the conditions of the
-- filtered nodes above it): adds the C aggregates it needs to `list` and returns how to read its
-- value back ({index}, {combine, fn}, {share} or {reduce}). Every kind nests in every other: a
-- filtered node only adds its condition to those its subtree is computed under.
local function compile_agg(ctx, a, list, name, conds)
  local what = "aggregate " .. name
  if a.op == "filtered" then
    local inner = {}
    for i, w in ipairs(conds) do inner[i] = w end
    inner[#inner + 1] = a.where
    return compile_agg(ctx, a.inner, list, name, inner)
  end
  if a.op == "share" then
    return { share = compile_agg(ctx, a.inner, list, name, conds) }
  end
  if a.op == "combine" then
    local parts = {}
    for i, p in ipairs(a.parts) do parts[i] = compile_agg(ctx, p, list, name, conds) end
    return { combine = parts, fn = a.fn }
  end
  local filter = compile_filter(ctx, conds)
  if a.op == "reduce" then
    local r = { reduce = a.spec, column = resolve_column(ctx, a.spec.column, what).name, filter = filter }
    ctx.reducers[#ctx.reducers + 1] = r
    return r
  end
  local t = { kind = a.op, q = a.q, filter = filter }
  if a.column ~= nil then
    local info = resolve_column(ctx, a.column, what)
    local refusal = schema.refusal(a.op, info.name)
    if refusal then error(refusal, 0) end
    if info.type == "string" and a.op ~= "count_values" and a.op ~= "distinct" then
      error(("%s: %s needs a numeric column, '%s' is a string column"):format(what, a.op, info.name), 0)
    end
    if (info.type == "month" or info.type == "date") and a.op ~= "count_values"
       and a.op ~= "distinct" and a.op ~= "min" and a.op ~= "max" then
      error(("%s: %s needs a numeric column, '%s' is a %s column (min and max work)")
        :format(what, a.op, info.name, info.type), 0)
    end
    t.column = info.index
  end
  if a.column2 ~= nil then
    local info = resolve_column(ctx, a.column2, what)
    local refusal = schema.refusal(a.op, info.name)
    if refusal then error(refusal, 0) end
    if info.type == "string" then
      error(("%s: %s needs a numeric column, '%s' is a string column"):format(what, a.op, info.name), 0)
    end
    t.column2 = info.index
  end
  -- the same aggregate asked twice (a measure and its parts, or under the same filter) is computed
  -- once; looked up by its description, so that a query of thousands of aggregates is not quadratic
  local id = ("%s %s %s %s"):format(t.kind, tostring(t.column), tostring(t.column2), tostring(t.q))
  if #conds > 0 then id = id .. " under " .. tostring(conds) end
  if ctx.aggs_by_id[id] then return { index = ctx.aggs_by_id[id] } end
  if t.kind == "ratio" and not filter and ctx.by_index[t.column].missing == 0
     and ctx.by_index[t.column2].missing == 0 then
    -- no value missing: Σa / Σb from the two sums, which other aggregates often need too
    return { combine = { compile_agg(ctx, q.sum(a.column), list, name, conds),
                         compile_agg(ctx, q.sum(a.column2), list, name, conds) },
             fn = function(x, y) if x ~= nil and y ~= nil and y ~= 0 then return x / y end end }
  end
  list[#list + 1] = t
  ctx.aggs_by_id[id] = #list
  return { index = #list }
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

--- limit(n [, {per = column or {columns}}]): the first n rows in the query's order; with per,
--- the first n of each group of rows sharing those columns' values.
function Query:limit(count, opts)
  check_query(self, "limit")
  if type(count) ~= "number" or count < 0 or count ~= math.floor(count) then
    error("bad argument #1 to 'limit' (whole number expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'limit' ({per = column} expected)", 2) end
  local n = copy(self)
  n.max_rows, n.limit_per = count, opts and opts.per
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

-- Custom reducers: the slow path, one Lua call per selected row. Sets each reducer's values by
-- group in values[reducer].
local function run_reducers(ds, reducers, raw, values)
  local gids = raw.row_groups
  for _, r in ipairs(reducers) do
    local spec, accs, init = r.reduce, {}, r.reduce.init
    for g = 1, raw.groups do
      if type(init) == "function" then accs[g] = init() else accs[g] = init end
    end
    local mask, step, byte = r.mask and raw.row_masks[r.mask], spec.step, string.byte
    for i = 1, #ds do
      local g = gids[i]
      if g and g > 0 and (not mask or byte(mask, i) == 1) then
        local v = ds:get(i, r.column)
        if v ~= nil then accs[g] = step(accs[g], v) end
      end
    end
    if spec.final then
      for g = 1, raw.groups do accs[g] = spec.final(accs[g]) end
    end
    values[r] = accs
  end
end

-- The value of a compiled aggregate (compile_agg's read node) in group g. `run` holds the
-- query's raw columns, the reducers' values and the totals of shares, computed once a run.
local function read_value(run, how, g)
  if how.index then return run.raw.aggs[how.index][g] end
  if how.combine then
    local args = {}
    for i, p in ipairs(how.combine) do args[i] = read_value(run, p, g) end
    return how.fn((table.unpack or unpack)(args, 1, #how.combine))
  end
  if how.reduce then return run.reduced[how][g] end
  local total = run.totals[how]
  if total == nil then
    total = 0
    for h = 1, run.raw.groups do
      local v = read_value(run, how.share, h)
      if v ~= nil and type(v) ~= "number" then
        error(("share: the aggregate inside is a %s in a group; share needs numbers"):format(type(v)), 0)
      end
      total = total + (v or 0)
    end
    run.totals[how] = total
  end
  local v = read_value(run, how.share, g)
  if v ~= nil and total ~= 0 then return v / total end
end

-- The rank (from 0) of each label of a family, bucket or key function in the order its groups
-- sort: the labels listed in `order` first, as listed, then the others by value.
local function label_ranks(labels, order)
  local listed = {}
  for i, v in ipairs(order or {}) do listed[v] = i end
  local codes = {}
  for c = 1, #labels do codes[c] = c end
  table.sort(codes, function(a, b)
    local x, y = listed[labels[a]] or math.huge, listed[labels[b]] or math.huge
    if x ~= y then return x < y end
    if labels[a] ~= labels[b] then return result.compare_values(labels[a], labels[b]) end
    return a < b
  end)
  local rank = {}
  for position, c in ipairs(codes) do rank[c] = position - 1 end
  return rank
end

-- A query's compiled plan, kept while the query lives (queries are immutable and bound to one
-- dataset, which never changes): running a query again rebuilds no column map, mask or label
-- list, and calls none of its Lua functions (keys, conditions) again.
local compiled = setmetatable({}, { __mode = "k" })

-- Compiles a query for its dataset: the C plan and how to read the result back; raises.
local function compile(self, ds)
  local ctx = { ds = ds, column_list = ds:columns(), info_of = {}, by_index = {}, found = {},
                aggs_by_id = {}, filters = {}, reducers = {} }
  for i, c in ipairs(ctx.column_list) do
    local info = { index = i, name = c.name, type = c.type, label = c.label, missing = c.missing }
    ctx.info_of[c], ctx.by_index[i] = info, info
  end
  local ok, out = pcall(function()
    local plan = { where = compile_where(ctx, self.where_list), keys = {}, aggs = {} }
    local names, labels, seen, keys = {}, {}, {}, {}
    for i, k in ipairs(self.key_list) do
      local kk = as_key(ctx, k)
      keys[i] = kk
      local ckey, lab = compile_key(ctx, kk)
      if lab then -- the C side sorts and labels the groups: give it the labels and their order
        ckey.labels, ckey.rank = lab, label_ranks(lab, kk.order or (kk.kind == "bucket" and lab))
      end
      plan.keys[i] = ckey
      labels[i] = lab
      names[i] = kk.name
      if seen[kk.name] then error(("duplicate result column '%s'"):format(kk.name), 0) end
      seen[kk.name] = true
    end
    local reads = {}
    for i, a in ipairs(self.agg_list) do
      if seen[a.name] then error(("duplicate result column '%s'"):format(a.name), 0) end
      seen[a.name] = true
      reads[i] = compile_agg(ctx, a.agg, plan.aggs, a.name, {})
    end
    if #ctx.reducers > 0 then
      plan.row_groups = true -- the group of every row, for the reducers' Lua loop
      local mask_of = {}
      for _, r in ipairs(ctx.reducers) do
        if r.filter then
          if not mask_of[r.filter] then
            plan.row_masks = plan.row_masks or {}
            plan.row_masks[#plan.row_masks + 1] = r.filter
            mask_of[r.filter] = #plan.row_masks
          end
          r.mask = mask_of[r.filter]
        end
      end
    end
    return { plan = plan, names = names, labels = labels, reads = reads, reducers = ctx.reducers, keys = keys }
  end)
  if not ok then error(out, 0) end
  out.prepared = core.prepare(ds, out.plan) -- the C structs, built once too
  return out
end

--- Runs the query: one C call. q:run{...} is q:agg{...}:run().
function Query:run(spec)
  check_query(self, "run")
  if spec ~= nil then return self:agg(spec):run() end
  local ds = self.ds
  if ds:is_closed() then error("dataset is closed", 2) end
  local out = compiled[self]
  if not out then
    out = compile(self, ds)
    compiled[self] = out
  end
  local store, extras = core.query(ds, out.prepared)
  local columns, sources = {}, {}
  for k, name in ipairs(out.names) do
    columns[k], sources[k] = name, { name, key = k }
  end
  -- aggregates C computed are read from the store; measures made in Lua (combinations,
  -- shares, custom reducers) are computed here once per group, then handed to the store
  local raw = { groups = store:groups(), row_groups = extras and extras.row_groups,
                row_masks = extras and extras.row_masks,
                aggs = setmetatable({}, { __index = function(t, i)
                  local v = store:agg_values(i); t[i] = v; return v end }) }
  local run = { raw = raw, reduced = {}, totals = {} }
  if #out.reducers > 0 then run_reducers(ds, out.reducers, raw, run.reduced) end
  for i, a in ipairs(self.agg_list) do
    columns[#columns + 1] = a.name
    local how = out.reads[i]
    if how.index then
      sources[#sources + 1] = { a.name, agg = how.index }
    else
      local values = {}
      for g = 1, raw.groups do values[g] = read_value(run, how, g) end
      sources[#sources + 1] = { a.name, values = values }
    end
  end
  store:set_columns(sources)
  local key_order = {}
  for k, key_spec in ipairs(out.keys) do
    local order = key_spec.order or (key_spec.kind == "bucket" and out.labels[k])
    if order then -- families and buckets keep their own order (for res:pivot)
      local rank = {}
      for i, v in ipairs(order) do rank[v] = i end
      key_order[out.names[k]] = rank
    end
  end
  local kinds = {}
  for _, n in ipairs(out.names) do kinds[n] = "key" end
  for _, a in ipairs(self.agg_list) do kinds[a.name] = q.value_kind(a.agg) end
  -- q:order_by and q:limit: a view of the store sorted and cut in C before any row is built
  -- (nil when a measure computed in Lua gives text: sorted in Lua, below)
  -- (having and limit per group: the limit waits for them)
  local sorted_in_c = true
  local plain_limit = not self.having_list and not self.limit_per and self.max_rows or nil
  if #self.order > 0 or plain_limit then
    local view = store:view(#self.order > 0 and result.sort_keys(columns, self.order, 0) or nil, plain_limit)
    if view then store = view else sorted_in_c = false end
  end
  local res = result.from_store(columns, store, out.names, key_order, kinds,
                                sorted_in_c and self.order or nil)
  if not sorted_in_c then
    local ok2, sorted = pcall(res.sorted, res, (table.unpack or unpack)(self.order))
    if not ok2 then error(errors.strip(sorted), 0) end
    res = sorted
    if plain_limit then res = res:head(plain_limit) end
  end
  if self.having_list or self.limit_per then
    local transform = require "cpf.transform"
    local ok3, derived = pcall(function()
      for _, conds in ipairs(self.having_list or {}) do res = transform.where(res, conds, "having") end
      if self.limit_per then return transform.head_per(res, self.max_rows, self.limit_per) end
      if self.max_rows then return res:head(self.max_rows) end
      return res
    end)
    if not ok3 then error(errors.is(derived) and derived.msg or derived, 0) end
    res = derived
  end
  return res
end

return q
