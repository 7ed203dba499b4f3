-- cpf.transform — results made from results: rows kept by conditions on their values
-- (res:where, q:having), derived columns (res:with), reference tables joined (res:join, in
-- transform/join.lua), the first rows of each group (res:head(n, {per = ...})), values over
-- time (res:change, res:cumsum, res:rolling), shares within groups (res:share) and ranks
-- (res:rank). Every operation returns a new result and leaves its input unchanged; each new
-- column gets a kind and a French and English label for the display formats.
local result = require "cpf.result"
local base = require "cpf.transform.base"
local schema = require "cpf.schema"
local build = require "cpf.query.build"
local compile = require "cpf.query.compile"
local rollup = require "cpf.query.rollup"

local transform = {}

local fail, need_column, derived, copy_row = base.fail, base.need_column, base.derived, base.copy_row
local read_columns, with_columns = base.read_columns, base.with_columns
local kept_rows, value_text = base.kept_rows, base.value_text
local column_names, groups_of, need_new, numeric = base.column_names, base.groups_of, base.need_new, base.numeric
local labels_from = base.labels_from
transform.join = require("cpf.transform.join").join

local VALUE_KINDS = { count = true, money = true, rate = true, number = true }
-- The names of the schema's period keys (annee, mois...): a column res:with makes under one of
-- them holds labels (kind "key": a year prints 2020, never 2 020).
local PERIOD_NAMES = {}
for name in pairs(schema.virtual_keys) do PERIOD_NAMES[name] = true end

local adder = base.adder

-- ---------------------------------------------------------------- conditions on values

--- res:where{column = condition, ...}: the rows whose values pass every condition (the
--- condition constructors of a query's where: a value, a list, cpf.ge(100), cpf.not_(...), a
--- function of the value...). A missing value passes no condition but cpf.is_null, as in SQL.
function transform.where(res, conds, what)
  -- `what` names the caller in messages: "having" from a query; anything else a user passed
  -- through res:where is not a name
  what = what == "having" and "having" or "where"
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

local function over_options(res, column, opts, what)
  need_column(res, column, what)
  if type(opts) ~= "table" or opts.over == nil then fail(what, "opts.over names the column of the periods") end
  need_column(res, opts.over, what)
  return opts.over, by_columns(res, opts, opts.over, column, what)
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

-- A derived column's labels, recording the period column its values compare: a value on a
-- period the extraction covers only in part is marked by the display formats (common.partial_marks).
local function compares(labels, over)
  labels.compares = over
  return labels
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
  local _, sub = adder(res:kinds()[column])
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
          evol_v[i] = sub(v, previous)
          if previous ~= 0 then pct_v[i] = (v - previous) / previous end
        end
      end
    end
  end
  local kind = res:kinds()[column] or "number"
  return with_columns(res, {
    { name = prec, values = prec_v, kind = kind,
      labels = labels_from(res, column, "%s, période précédente", "%s, previous period") },
    { name = evol, values = evol_v, kind = kind,
      labels = compares(labels_from(res, column, "Évolution (%s)", "Change (%s)"), over) },
    { name = pct, values = pct_v, kind = "rate",
      labels = compares(labels_from(res, column, "Évolution en %% (%s)", "Change in %% (%s)"), over) },
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
  local add = adder(res:kinds()[column])
  for _, g in ipairs(ordered_groups(res, cols, n, over, by, what)) do
    local total
    for _, i in ipairs(g) do
      local v = numeric(cols[column][i], column, what)
      if v ~= nil then total = add(total or 0, v) end
      if cols[over][i] ~= nil then values[i] = total end
    end
  end
  return with_columns(res, {
    { name = cumul, values = values, kind = res:kinds()[column] or "number",
      labels = labels_from(res, column, "%s, cumul", "%s, running total") },
  })
end

-- Whether a result's column adds up across rows: a query's sum or count, or in a result made in
-- Lua a count or an amount. A ratio, a mean, a median or a distinct count does not.
local function adds_up(res, column)
  local known = result.additive(res) -- a query's; nil for a result made in Lua
  if known then return known[column] == true end
  local kind = res:kinds()[column]
  return kind == "count" or kind == "money"
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
  local kind = res:kinds()[column]
  -- what the window sums, row by row: the column itself when it adds up, else the sums a
  -- query's measure is made of (prix_moyen: Σ montant and Σ dossiers), recombined per window
  local parts_of, combine, nparts
  if not adds_up(res, column) then
    local query = result.query_of(res)
    if query then parts_of, combine, nparts = rollup.component_values(query, res:keys(), column) end
    if not parts_of then
      fail(what, ("'%s' is no sum of its rows (a median, a distinct count...): a window cannot be made of it")
        :format(column))
    end
  end
  local name = ("%s_glissant_%d"):format(column, n)
  need_new(res, { name }, what)
  local add = adder(kind)
  local cols, count = read_columns(res, { column, over, (table.unpack or unpack)(by) })
  local values, out = cols[column], {}
  local parts = {}
  if parts_of then
    local keys = res:keys()
    local key_cols = read_columns(res, keys)
    for i = 1, count do
      local row = {}
      for _, k in ipairs(keys) do row[k] = key_cols[k][i] end
      parts[i] = parts_of(row)
    end
  end
  for _, g in ipairs(ordered_groups(res, cols, count, over, by, what)) do
    local pos, row_at = positions(g, cols[over])
    local first
    for _, p in pairs(pos) do if not first or p < first then first = p end end
    for _, i in ipairs(g) do
      local p = pos[i]
      if p and p - n + 1 >= first and parts_of then
        local totals = {}
        for q = p - n + 1, p do
          local j = row_at[q]
          for k = 1, nparts do
            local v = j and parts[j] and parts[j][k]
            if v ~= nil then totals[k] = (totals[k] or 0) + v end
          end
        end
        local v = combine((table.unpack or unpack)(totals, 1, nparts))
        if v ~= nil and fn == "mean" then v = v / n end
        out[i] = v
      elseif p and p - n + 1 >= first then
        local total
        for q = p - n + 1, p do
          local j = row_at[q]
          local v = j and numeric(values[j], column, what)
          if v ~= nil then total = add(total or 0, v) end
        end
        if total ~= nil and fn == "mean" then total = total / n end
        out[i] = total
      end
    end
  end
  return with_columns(res, {
    { name = name, values = out, kind = (fn == "mean" and kind == "count") and "number" or kind or "number",
      labels = compares(labels_from(res, column, "%s, " .. n .. " périodes glissantes",
        "%s, rolling " .. n .. " periods"), over) },
  })
end

--- res:share(column, {within = keys}): column_part, each row's value over the sum of its group's
--- (the rows sharing the `within` columns' values; the whole result without within). The column
--- must add up (as for rolling); a missing value has no share, and a group summing to 0 none.
function transform.share(res, column, opts)
  local what = "share"
  opts = opts or {}
  if type(opts) ~= "table" then fail(what, ("options table expected, got %s"):format(type(opts))) end
  need_column(res, column, what)
  if not adds_up(res, column) then
    fail(what, ("'%s' does not add up across rows (a ratio, a mean, a median...): share the sums it is made "
      .. "of"):format(column))
  end
  local within = column_names(res, opts.within, what, "within")
  local name = column .. "_part"
  need_new(res, { name }, what)
  local cols, n = read_columns(res, { column, (table.unpack or unpack)(within) })
  local values, out = cols[column], {}
  for _, g in ipairs(groups_of(cols, n, within)) do
    local total = 0
    for _, i in ipairs(g) do total = total + (numeric(values[i], column, what) or 0) end
    for _, i in ipairs(g) do
      if values[i] ~= nil and total ~= 0 then out[i] = values[i] / total end
    end
  end
  local fr = #within > 0 and "Part de %s dans " .. table.concat(within, ", ") or "Part de %s"
  local en = #within > 0 and "Share of %s within " .. table.concat(within, ", ") or "Share of %s"
  return with_columns(res, { { name = name, values = out, kind = "rate", labels = labels_from(res, column, fr, en) } })
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
