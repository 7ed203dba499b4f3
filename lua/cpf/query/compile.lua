-- cpf.query.compile — the second stage of a query: a Query (cpf.query.build) and its dataset
-- turned into the plan of plain tables cpf.core runs in one C call. Names are resolved by the
-- schema's one rule, conditions on a text column become a mask over its dictionary (a Lua
-- function called once per distinct value, never per row, but the documented row predicate),
-- bounds on months and dates become ranges of stored values, keys and aggregates C structures.
local core = require "cpf.core"
local schema = require "cpf.schema"
local suggest = require "cpf.suggest"
local result = require "cpf.result"
local q = require "cpf.query.build"

local compile = {}

local is_key = q.is_key

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
  local names = {}
  for _, c in ipairs(ctx.column_list) do names[#names + 1] = c.name end
  for key in pairs(schema.virtual_keys) do names[#names + 1] = key end
  table.sort(names)
  error(("%s: unknown column '%s'%s"):format(what, name, suggest.hint(name, names)), 0)
end

-- The constructors of the period keys a virtual name may compute.
local PERIOD_KEYS = { year = "year", semester = "semester", quarter = "quarter", month = "month",
                      month_of_year = "month_of_year" }

-- The key a virtual name computes, on the column it was found on.
local function virtual_key(v)
  local period = PERIOD_KEYS[v.virtual]
  if period then return q[period](v.column.name) end
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
    return q.column_key(info.name)
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

-- "2024-T2" (a quarter) or "2024-S1" (a semester) -> its first and last months (1-12), or nil.
local function period_months(v)
  local y, kind, n = v:match("^(%d%d%d%d)%-([TS])(%d)$")
  n = tonumber(n)
  if not y or n < 1 or n > (kind == "T" and 4 or 2) then return nil end
  local len = kind == "T" and 3 or 6
  return tonumber(y), (n - 1) * len + 1, n * len
end

-- The [first, last] interval a bound value covers in a month or date column's units: a year, a
-- quarter ("2024-T2"), a semester ("2024-S1"), a month ("2024-05") or a day.
local function temporal_interval(info, v, what)
  local y, m, d
  if type(v) == "string" and period_months(v) then
    local py, first, last = period_months(v)
    if info.type == "month" then return py * 12 + first - 1, py * 12 + last - 1 end
    return days_from_civil(py, first, 1), days_from_civil(py, last, days_in_month(py, last))
  end
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
    error(("%s: expected a year, \"YYYY-Tn\", \"YYYY-Sn\", \"YYYY-MM\" or \"YYYY-MM-DD\" for %s column '%s', got %s")
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
    for _, b in pairs { lo = c.lo, hi = c.hi } do -- either bound may be absent (cpf.lt has no lo)
      if type(b) ~= type(v) then
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
function compile.tester(c, what)
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
    local inner = compile.tester(c.cond, what)
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

-- The periods whose conditions are ranges of the month or date column they are computed from.
local RANGE_PERIODS = { year = true, quarter = true, semester = true, month = true }

-- Whether a condition on a period key (year, semester, quarter, month) says the same as on the
-- month or date column it is computed from: equalities, sets and bounds (and their not, or,
-- is_null) of whole years (annee), "YYYY-Sn" (semestre), "YYYY-Tn" (trimestre) or "YYYY-MM"
-- (mois). Anything else is tested on the key's values.
local function derived_as_range(c, kind)
  local function value_ok(v)
    if kind == "year" then return type(v) == "number" and v == math.floor(v) and v >= 0 and v <= 9999 end
    if type(v) ~= "string" then return false end
    if kind == "quarter" then return v:match("^%d%d%d%d%-T[1-4]$") ~= nil end
    if kind == "semester" then return v:match("^%d%d%d%d%-S[12]$") ~= nil end
    local m = tonumber(v:match("^%d%d%d%d%-(%d%d)$"))
    return m ~= nil and m >= 1 and m <= 12
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
  if found and RANGE_PERIODS[found.virtual]
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

-- A bucket's numeric bound as its label writes it: the same text on every Lua (1.0 is "1").
local function bound_text(v)
  if math.type and math.type(v) == "integer" then return ("%d"):format(v) end
  return core.number_text(v)
end

-- Returns the C key and, for keys whose values Lua computes, the label of each code.
function compile_key(ctx, k)
  local info = resolve_column(ctx, k.column, "group_by")
  if k.kind == "column" then return { kind = "column", column = info.index } end
  if PERIOD_KEYS[k.kind] then return { kind = k.kind, column = info.index } end
  if k.kind == "bucket" then
    if info.type == "string" then error(("bucket: '%s' is a string column"):format(info.name), 0) end
    local b, texts = k.bounds, {}
    local temporal = info.type == "month" or info.type == "date"
    if temporal and type(b[1]) ~= "string" then
      error(("bucket: '%s' is a %s column: give its bounds as \"YYYY-MM\" (or \"YYYY-MM-DD\"), got the number %s")
        :format(info.name, info.type, bound_text(b[1])), 0)
    end
    if not temporal and type(b[1]) == "string" then
      error(("bucket: '%s' is a %s column: its bounds are numbers, got %q"):format(info.name, info.type, b[1]), 0)
    end
    if temporal then -- the stored units: months (year * 12 + month - 1) or days
      local codes = {}
      for i, v in ipairs(b) do
        codes[i] = temporal_interval(info, v, "bucket")
        if i > 1 and not (codes[i] > codes[i - 1]) then error("bucket: bounds must increase", 0) end
        texts[i] = v
      end
      b = codes
    else
      for i, v in ipairs(b) do texts[i] = bound_text(v) end
    end
    local labels = { "< " .. texts[1] }
    for i = 1, #texts - 1 do labels[i + 1] = ("[%s, %s)"):format(texts[i], texts[i + 1]) end
    labels[#texts + 1] = ">= " .. texts[#texts]
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
    return { share = compile_agg(ctx, a.inner, list, name, conds), within = a.within }
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

--- Compiles a query for its dataset: the C plan and how to read the result back; raises.
function compile.query(self, ds)
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

--- Days since 1970-01-01 of a proleptic Gregorian date (the date columns' stored unit).
compile.days_from_civil = days_from_civil

return compile
