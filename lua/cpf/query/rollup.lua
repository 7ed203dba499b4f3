-- cpf.query.rollup — the rows that stand for several groups: a grand total and subtotals (SQL's
-- ROLLUP) and "Autres", the groups a limit left out, folded into one row. Each is the query run
-- again over the rows it covers (without its keys, or with a condition that keeps the groups
-- left out), so that every measure is recomputed from the rows themselves — a price is
-- Σ montant / Σ dossiers, a rate, a distinct count or a quantile are those of the rows, never
-- a sum of ratios. The rows are marked (result:row_kind) for the formats.
local result = require "cpf.result"
local q = require "cpf.query.build"

local rollup = {}

-- The query's conditions, keys and measures only: its order, limit, having and flags dropped.
local function base_query(query)
  local base = query:agg {}
  base.order, base.max_rows, base.limit_per, base.having_list = {}, nil, nil, nil
  base.with_totals, base.with_others = nil, nil
  return base
end

-- The query with other keys (a list of its own key entries, maybe none).
local function regrouped(base, keys)
  local n = base:agg {}
  n.key_list = {}
  for i, k in ipairs(keys) do n.key_list[i] = k end
  return n
end

-- The condition "one of these values" on a key, the missing value included when listed.
local function one_of(values)
  local present, null = {}, false
  for _, v in ipairs(values) do
    if v == nil then null = true else present[#present + 1] = v end
  end
  local c = #present > 0 and q.one_of(present) or nil
  if null then c = c and q.any { c, q.is_null() } or q.is_null() end
  return c
end

-- A row of a one-row (or empty) result, with every key of `names` set from `keys_of`.
local function row_of(res, names, keys_of)
  local row = {}
  if res[1] then for k, v in pairs(res[1]) do row[k] = v end end
  for _, name in ipairs(names) do row[name] = keys_of and keys_of[name] or nil end
  return row
end

-- The rows of a result as a plain list, with their kinds (nil for a group).
local function rows_of(res)
  local rows, kinds = {}, {}
  for i, r in ipairs(res) do
    local t = {}
    for k, v in pairs(r) do t[k] = v end
    rows[i] = t
    kinds[i] = res:row_kind(i)
  end
  return rows, kinds
end

local function assemble(res, rows, kinds)
  local out = result.new(res:columns(), rows, res:keys(), result.key_order(res), res:kinds())
  result.set_labels(out, res:labels())
  result.set_order(out, result.order_of(res))
  result.set_additive(out, result.additive(res))
  result.set_periods(out, result.periods(res))
  result.set_row_kinds(out, kinds)
  return out
end

--- res with one "Autres" row after the groups of `query` that `res` keeps (a limit's first n):
--- the query run over the rows of the groups left out. per: the result columns whose groups
--- each get their own "Autres" (those of a limit per group). With no group left out, res.
function rollup.others(query, res, per)
  local names = res:keys()
  per = per or {}
  local is_per = {}
  for _, p in ipairs(per) do is_per[p] = true end
  local folded -- the key folded, its index in the query's keys
  for i, name in ipairs(names) do
    if not is_per[name] then
      if folded then
        error(("others: the rows are folded by one key, and '%s' and '%s' are both free: give the others to per")
          :format(names[folded], name), 0)
      end
      folded = i
    end
  end
  if not folded then error("others: every key is a per key: there is nothing to fold", 0) end
  local base = base_query(query)
  local per_index = {}
  for i, name in ipairs(names) do if is_per[name] then per_index[#per_index + 1] = i end end
  -- the groups res keeps, by the values of the per keys
  local groups, order = {}, {}
  for _, r in ipairs(res) do
    local id = {}
    for _, i in ipairs(per_index) do id[#id + 1] = tostring(r[names[i]]) .. "\0" .. type(r[names[i]]) end
    id = table.concat(id, "\1")
    if not groups[id] then
      groups[id] = { values = {}, kept = {} }
      for _, i in ipairs(per_index) do groups[id].values[names[i]] = r[names[i]] end
      order[#order + 1] = id
    end
    local kept = groups[id].kept
    kept[#kept + 1] = r[names[folded]]
    kept.n = (kept.n or 0) + 1
  end
  local rows, kinds = rows_of(res)
  local out_rows, out_kinds = {}, {}
  local position = {} -- the last row of each group, where its Autres follows
  for i, r in ipairs(res) do
    local id = {}
    for _, k in ipairs(per_index) do id[#id + 1] = tostring(r[names[k]]) .. "\0" .. type(r[names[k]]) end
    position[table.concat(id, "\1")] = i
  end
  local autres = {}
  for _, id in ipairs(order) do
    local g = groups[id]
    local qg = regrouped(base, {})
    for _, i in ipairs(per_index) do
      qg = qg:where(query.key_list[i], g.values[names[i]] == nil and q.is_null() or q.eq(g.values[names[i]]))
    end
    local kept_values = {}
    for k = 1, g.kept.n do kept_values[k] = g.kept[k] end
    local c = one_of(kept_values)
    if c then qg = qg:where(query.key_list[folded], q.not_(c)) end
    local left = qg:run()
    if left[1] and next(left[1]) ~= nil then
      local row = row_of(left, names, g.values)
      autres[position[id]] = row
    end
  end
  for i, r in ipairs(rows) do
    out_rows[#out_rows + 1] = r
    out_kinds[#out_rows] = kinds[i]
    if autres[i] then
      out_rows[#out_rows + 1] = autres[i]
      out_kinds[#out_rows] = "others"
    end
  end
  return assemble(res, out_rows, out_kinds)
end

--- res with a subtotal row after each group of its first key (with two keys or more) and a
--- grand total last: the query run over the whole selection (every row its conditions keep,
--- whatever having and limit drop), grouped by its first key or by nothing. The groups keep
--- together in the order their first key's values come in res.
function rollup.totals(query, res)
  local names = res:keys()
  local base = base_query(query)
  local rows, kinds = rows_of(res)
  local out_rows, out_kinds = {}, {}
  if #names >= 2 then
    local first = names[1]
    local subtotals = {}
    for _, r in ipairs(regrouped(base, { query.key_list[1] }):run()) do
      subtotals[tostring(r[first]) .. "\0" .. type(r[first])] = r
    end
    local order, members = {}, {}
    for i, r in ipairs(rows) do
      local id = tostring(r[first]) .. "\0" .. type(r[first])
      if not members[id] then members[id] = {} order[#order + 1] = id end
      members[id][#members[id] + 1] = i
    end
    for _, id in ipairs(order) do
      for _, i in ipairs(members[id]) do
        out_rows[#out_rows + 1] = rows[i]
        out_kinds[#out_rows] = kinds[i]
      end
      local sub = subtotals[id]
      if sub then
        local row = {}
        for k, v in pairs(sub) do row[k] = v end
        out_rows[#out_rows + 1] = row
        out_kinds[#out_rows] = "subtotal"
      end
    end
  else
    for i, r in ipairs(rows) do out_rows[i] = r out_kinds[i] = kinds[i] end
  end
  local total = regrouped(base, {}):run()
  out_rows[#out_rows + 1] = row_of(total, names)
  out_kinds[#out_rows] = "total"
  return assemble(res, out_rows, out_kinds)
end

-- ---------------------------------------------------------------- components

local function both_present(a, b) return { [a] = q.not_null(), [b] = q.not_null() } end

--- The sums a measure is made of, and how to make it from their totals over several groups (a
--- window of periods): parts (aggregates that add up across groups), fn(total of each part...)
--- -> the value. A ratio is Σa / Σb over the rows where both are present, a weighted mean
--- Σ(x·w) / Σw, a mean Σx / count, a combination (taux_annulation) its function of its sums.
--- nil for a measure that is no function of sums (a median, a distinct count, a minimum).
function rollup.components(a)
  local op = a.op
  if op == "sum" or op == "count" or op == "count_values" then return { a }, function(x) return x end end
  local function ratio(x, y) if x ~= nil and y ~= nil and y ~= 0 then return x / y end end
  if op == "ratio" then
    local both = both_present(a.column, a.column2)
    return { q.filtered(q.sum(a.column), both), q.filtered(q.sum(a.column2), both) }, ratio
  end
  if op == "mean" then return { q.sum(a.column), q.count(a.column) }, ratio end
  if op == "wmean" then
    local weight = q.filtered(q.sum(a.column2), both_present(a.column, a.column2))
    -- Σ(x·w) of a group is its weighted mean times its weights' sum
    local product = q.combine({ a, weight }, function(v, w) if v ~= nil and w ~= nil then return v * w end end)
    return { product, weight }, ratio
  end
  if op == "filtered" then
    local parts, fn = rollup.components(a.inner)
    if not parts then return nil end
    local out = {}
    for i, p in ipairs(parts) do out[i] = q.filtered(p, a.where) end
    return out, fn
  end
  if op == "combine" then
    local parts = {}
    for i, p in ipairs(a.parts) do
      local sub, fn = rollup.components(p)
      if not sub or #sub ~= 1 or fn(1) ~= 1 then return nil end -- parts that are sums themselves
      parts[i] = sub[1]
    end
    return parts, a.fn
  end
  return nil
end

--- The totals of each measure's components for each group of a query's result, by the groups'
--- keys: a function(row) -> list of component values for that row's group, and the fn that
--- makes the measure from their totals; nil when the measure is no function of sums.
function rollup.component_values(query, names, measure)
  local agg
  for _, a in ipairs(query.agg_list) do if a.name == measure then agg = a.agg end end
  if not agg then return nil end
  local parts, fn = rollup.components(agg)
  if not parts then return nil end
  local n = base_query(query)
  n.agg_list = {}
  local spec = {}
  for i, p in ipairs(parts) do spec[i] = { "\1part" .. i, p } end
  local res = n:agg(spec):run()
  local function id(row)
    local t = {}
    for i, k in ipairs(names) do t[i] = tostring(row[k]) .. "\0" .. type(row[k]) end
    return table.concat(t, "\1")
  end
  local by_id = {}
  for _, r in ipairs(res) do
    local values = {}
    for i = 1, #parts do values[i] = r["\1part" .. i] end
    by_id[id(r)] = values
  end
  return function(row) return by_id[id(row)] end, fn, #parts
end

return rollup
