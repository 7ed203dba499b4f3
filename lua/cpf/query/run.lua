-- cpf.query.run — the third stage of a query: its plan (cpf.query.compile, kept while the query
-- lives) run in one C call, the measures made in Lua (combinations, shares, custom reducers)
-- computed once per group, and the result store wrapped as a result, sorted and cut in C;
-- having and a limit per group are the result's own operations (cpf.transform, loaded when a
-- query has them).
local core = require "cpf.core"
local schema = require "cpf.schema"
local result = require "cpf.result"
local errors = require "cpf.errors"
local q = require "cpf.query.build"
local compile = require "cpf.query.compile"

local M = {}

local PERIOD_KINDS = { year = true, semester = true, quarter = true, month = true }

-- A value computed in Lua as a result holds it: NaN and ±inf (a division by zero in a
-- combine) are no value, as a ratio over zero is.
local function finite(v)
  if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then return nil end
  return v
end

-- The date of a dataset's extraction: the latest value of the schema's date column
-- (schema.source.date_column), nil without it; computed once per dataset.
local extraction_dates = setmetatable({}, { __mode = "k" })
local function extraction_date(ds)
  local known = extraction_dates[ds]
  if known ~= nil then return known or nil end
  local column = schema.source.date_column
  local date = false
  local info = ds:column(column)
  if info and info.type == "date" then
    local ok, res = pcall(function() return q.new(ds):agg { { "d", q.max(info.name) } }:run() end)
    if ok and res[1] and res[1].d then date = res[1].d end
  end
  extraction_dates[ds] = date
  return date or nil
end

-- A query's compiled plan, kept while the query lives (queries are immutable and bound to one
-- dataset, which never changes): running a query again rebuilds no column map, mask or label
-- list, and calls none of its Lua functions (keys, conditions) again.
local compiled = setmetatable({}, { __mode = "k" })

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
    return finite(how.fn((table.unpack or unpack)(args, 1, #how.combine)))
  end
  if how.reduce then return finite(run.reduced[how][g]) end
  -- a share: the totals of the groups sharing the `within` keys' values (one total without)
  local totals = run.totals[how]
  if totals == nil then
    local key_values = {}
    for i, name in ipairs(how.within or {}) do
      local k = run.key_index[name]
      if not k then
        error(("share: within names no key of the query ('%s'; its keys: %s)")
          :format(tostring(name), table.concat(run.key_names, ", ")), 0)
      end
      key_values[i] = run.store:key_values(k)
    end
    local function id(h)
      if #key_values == 0 then return "" end
      local t = {}
      for i, kv in ipairs(key_values) do
        local v = kv[h]
        t[i] = v == nil and "\0" or type(v) .. tostring(v)
      end
      return table.concat(t, "\1")
    end
    totals = { id = id, sums = {} }
    for h = 1, run.raw.groups do
      local v = read_value(run, how.share, h)
      if v ~= nil and type(v) ~= "number" then
        error(("share: the aggregate inside is a %s in a group; share needs numbers"):format(type(v)), 0)
      end
      totals.sums[id(h)] = (totals.sums[id(h)] or 0) + (v or 0)
    end
    run.totals[how] = totals
  end
  local total = totals.sums[totals.id(g)]
  local v = read_value(run, how.share, g)
  if v ~= nil and total ~= 0 then return v / total end
end

--- Runs the query: one C call. q:run{...} is q:agg{...}:run(). Installed as Query:run.
function M.query(self, spec)
  if getmetatable(self) ~= q.Query then
    error(("bad argument #1 to 'run' (query expected, got %s: call it as q:run(...))"):format(type(self)), 2)
  end
  if spec ~= nil then
    if type(spec) ~= "table" then
      error(("bad argument #1 to 'run' (table of measures expected, got %s)"):format(type(spec)), 2)
    end
    -- agg's refusal raised at this caller's line, not at this file's
    local ok, with_measures = pcall(self.agg, self, spec)
    if not ok then error((tostring(with_measures):gsub("^[^:\n]*:%d+: ", "", 1)), 2) end
    return with_measures:run()
  end
  local ds = self.ds
  if ds:is_closed() then error("dataset is closed", 2) end
  local out = compiled[self]
  if not out then
    out = compile.query(self, ds)
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
  local key_index = {}
  for k, name in ipairs(out.names) do key_index[name] = k end
  local run = { raw = raw, reduced = {}, totals = {}, store = store, key_index = key_index, key_names = out.names }
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
  -- the period keys, and the extraction's date that may leave the last period partial
  local periods, any_period = {}, false
  for k, key_spec in ipairs(out.keys) do
    if PERIOD_KINDS[key_spec.kind] then periods[out.names[k]] = key_spec.kind any_period = true end
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
  if any_period then result.set_periods(res, { periods = periods, extraction = extraction_date(ds) }) end
  -- sums and counts add up across rows and periods (windows, totals); ratios, means do not
  local additive = {}
  for _, a in ipairs(self.agg_list) do
    local op = a.agg.op
    if op == "sum" or op == "count" or op == "count_values" then additive[a.name] = true end
  end
  result.set_additive(res, additive)
  result.set_query(res, self)
  if not sorted_in_c then
    local ok2, sorted = pcall(res.sorted, res, (table.unpack or unpack)(self.order))
    if not ok2 then error(errors.strip(sorted), 0) end
    res = sorted
    if plain_limit then res = res:head(plain_limit) end
  end
  if self.having_list or self.limit_per then
    local transform = require "cpf.transform" -- loaded on first use: most queries have neither
    local ok3, derived = pcall(function()
      for _, conds in ipairs(self.having_list or {}) do res = transform.where(res, conds, "having") end
      if self.limit_per then return transform.head_per(res, self.max_rows, self.limit_per) end
      if self.max_rows then return res:head(self.max_rows) end
      return res
    end)
    if not ok3 then error(errors.is(derived) and derived.msg or derived, 0) end
    res = derived
  end
  -- the rows that stand for several groups, computed from their rows (loaded when asked)
  if self.with_others or self.with_totals then
    local rollup = require "cpf.query.rollup" -- loaded on first use: most queries have neither
    if self.with_others then
      local per = self.limit_per
      if type(per) == "string" then per = { per } end
      res = rollup.others(self, res, per)
    end
    if self.with_totals then res = rollup.totals(self, res) end
  end
  return res
end

return M
