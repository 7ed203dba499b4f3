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
  result.set_order(out, res:order())
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

return rollup
