-- cpf.changes — what changed between two extractions of the CPF file: the same request (where,
-- by, measure) run on each by the query engine, its rows joined on their keys (a full outer
-- join of two small results: no loop over the datasets' rows). For each measure M the result
-- has M_prec (the older extraction), M (the newer) and M_evol (the difference), as res:change
-- names them; a key absent on one side counts 0 for sums and counts and is missing for ratios.
-- The column `change` says what happened to the row: added, removed, revised or unchanged.
-- Also the cohorts of validation months (cohorts) and a page of the month's changes (report).
local request = require "cpf.request"
local result = require "cpf.result"
local base = require "cpf.transform.base"
local schema = require "cpf.schema"

local M = {}

local unpack = table.unpack or unpack

-- The fields a comparison takes from the request table: the query's, never its transforms.
local QUERY_FIELDS = { where = true, by = true, measure = true }

local function key_of(row, keys)
  local parts = {}
  for i, k in ipairs(keys) do
    local v = row[k]
    parts[i] = v == nil and "\0nil" or type(v) .. "\0" .. tostring(v)
  end
  return table.concat(parts, "\1")
end

--- cpf.changes(old, new, opts) -> result | nil, message, kind. old, new: datasets (two
--- extractions); opts: the request fields where, by, measure (default dossiers,montant), as
--- cpf.request takes them.
function M.compare(old, new, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not QUERY_FIELDS[k] then
      return nil, ("changes: takes where, by and measure, not '%s'"):format(tostring(k)), "usage"
    end
  end
  local req, err, kind = request.parse(opts)
  if not req then return nil, err, kind end
  local res_old, oerr, okind = req:run(old)
  if not res_old then return nil, oerr, okind end
  local res_new, nerr, nkind = req:run(new)
  if not res_new then return nil, nerr, nkind end
  local keys = res_new:keys()
  local kinds, additive = res_new:kinds(), result.additive(res_new) or {}
  local measures = {}
  for _, c in ipairs(res_new:columns()) do
    local is_key = false
    for _, k in ipairs(keys) do if k == c then is_key = true end end
    if not is_key then measures[#measures + 1] = c end
  end
  local columns, out_kinds = {}, {}
  for _, k in ipairs(keys) do columns[#columns + 1] = k; out_kinds[k] = kinds[k] end
  for _, m in ipairs(measures) do
    for _, name in ipairs { m .. "_prec", m, m .. "_evol" } do
      columns[#columns + 1] = name
      out_kinds[name] = kinds[m]
    end
  end
  columns[#columns + 1] = "change"
  out_kinds.change = "key" -- a label (its values' titles: schema.value_labels)
  -- the older rows by key, then each newer row joined to its older one, then the older rows
  -- that have no newer one
  local older, seen, rows = {}, {}, {}
  for _, row in ipairs(res_old) do older[key_of(row, keys)] = row end
  -- a measure on one side: a sum or a count is 0 where the key has no row, a ratio missing
  local function side(row, m)
    if row == nil or row[m] == nil then return additive[m] and 0 or nil end
    return row[m]
  end
  local function joined(a, b) -- a: the older row or nil, b: the newer or nil
    local row, revised = {}, false
    for _, k in ipairs(keys) do row[k] = (b or a)[k] end
    for _, m in ipairs(measures) do
      local before, after = side(a, m), side(b, m)
      row[m .. "_prec"], row[m] = before, after
      if before ~= nil and after ~= nil then row[m .. "_evol"] = select(2, base.adder(kinds[m]))(after, before) end
      if before ~= after then revised = true end
    end
    row.change = not a and "added" or not b and "removed" or revised and "revised" or "unchanged"
    return row
  end
  for _, row in ipairs(res_new) do
    local k = key_of(row, keys)
    seen[k] = true
    rows[#rows + 1] = joined(older[k], row)
  end
  for _, row in ipairs(res_old) do
    if not seen[key_of(row, keys)] then rows[#rows + 1] = joined(row, nil) end
  end
  local res = result.new(columns, rows, keys, result.key_order(res_new), out_kinds)
  if #keys > 0 then res = res:sorted(unpack(keys)) end
  local add = {}
  for _, m in ipairs(measures) do
    if additive[m] then add[m .. "_prec"], add[m], add[m .. "_evol"] = true, true, true end
  end
  result.set_additive(res, add)
  local labels = res:labels()
  for _, m in ipairs(measures) do
    labels[m .. "_prec"] = base.labels_from(res_new, m, "%s, extraction précédente", "%s, previous extraction")
    labels[m .. "_evol"] = base.labels_from(res_new, m, "Évolution (%s)", "Change (%s)")
  end
  labels.change = { fr = "Changement", en = "Change" }
  result.set_labels(res, labels)
  return res
end

-- The report's short titles of the compared columns (a section is one page wide).
local REPORT_LABELS = { dossiers_prec = "Dossiers avant", dossiers_evol = "Écart", montant_prec = "Montant avant",
                        montant_evol = "Écart montant", lignes_prec = "Lignes avant", lignes_evol = "Écart lignes" }

-- res without its `change` column, or its last `last` rows only.
local function trimmed(res, keep_change, last)
  local columns, rows = {}, {}
  for _, c in ipairs(res:columns()) do if keep_change or c ~= "change" then columns[#columns + 1] = c end end
  for i = last and math.max(1, #res - last + 1) or 1, #res do rows[#rows + 1] = res[i] end
  local out = result.new(columns, rows, res:keys(), result.key_order(res), res:kinds())
  result.set_labels(out, res:labels())
  return out
end

M.REPORT_MONTHS = 12 -- the revised validation months the page shows: the most recent

--- A page in French of what changed between two extractions (cpf.report): the whole (files
--- and amount), by year of validation, by status family, and the most recent validation
--- months whose figures were revised, added or removed. names: {old =, new =} (the
--- extractions' dates or paths, for the title). A report, or nil, message, kind.
function M.report(old, new, names)
  local report = require "cpf.report" -- the page's maker, loaded with the first page
  local sections = {}
  for _, s in ipairs {
    { "Ensemble", {} },
    { "Par année de validation", { by = "annee" } },
    { "Par famille de statut", { by = "famille", measure = "dossiers" } },
    { "Mois de validation révisés", { by = "mois" }, true },
  } do
    local res, err, kind = M.compare(old, new, s[2])
    if not res then return nil, err, kind end
    local note
    if s[3] then
      local all = #res
      res = res:where { change = { "added", "removed", "revised" } }
      note = ("%d mois sur %d ont changé%s ; les autres sont identiques d'une extraction à l'autre."):format(#res, all,
        #res > M.REPORT_MONTHS and (", les %d plus récents ci-dessus"):format(M.REPORT_MONTHS) or "")
      res = trimmed(res, true, M.REPORT_MONTHS)
    else
      res = trimmed(res, false)
    end
    sections[#sections + 1] = { title = s[1], result = res, chart = false, note = note, labels = REPORT_LABELS }
  end
  local function named(v) return report.long_date(v, "fr") or v end
  return report.new { title = ("Ce qui a changé entre les extractions du %s et du %s"):format(named(names.old),
                        named(names.new)),
                      subtitle = schema.source.title, dataset = new, locale = "fr", sections = sections }
end

-- ---------------------------------------------------------------- cohorts

-- A cohort is "recent" while its validation month is one of this many last months up to the
-- extraction's own month (12: June 2025 to May 2026 for an extraction of May 2026): its files
-- are mostly still in training or waiting to be closed, and their statuses keep moving from one
-- extraction to the next (a CPF training lasts a few months, closing a file takes months
-- more); its shares are not final yet.
M.RECENT_MONTHS = 12

local function month_index(text) -- "YYYY-MM[-DD]" -> months since year 0
  local y, m = tostring(text):match("^(%d%d%d%d)%-(%d%d)")
  return y and tonumber(y) * 12 + tonumber(m) - 1
end

--- cpf.cohorts(ds, {where =, recent_months = 12}) -> a result, one row per validation month
--- (mois): its files (dossiers), the share of them in each status family as the extraction
--- knows them (share_validated ... share_cancelled: dossiers of the family / dossiers of the
--- month), and `cohort`: "recent" for the last recent_months months up to the extraction's
--- own month, else "closed". nil, message, kind on a wrong request.
function M.cohorts(ds, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "where" and k ~= "recent_months" then
      return nil, ("cohorts: takes where and recent_months, not '%s'"):format(tostring(k)), "usage"
    end
  end
  local recent = opts.recent_months or M.RECENT_MONTHS
  if type(recent) ~= "number" or recent < 0 or recent % 1 ~= 0 then
    return nil, "cohorts: recent_months must be a whole number from 0", "usage"
  end
  local req, err, kind = request.parse { where = opts.where, by = "mois,famille", measure = "dossiers" }
  if not req then return nil, err, kind end
  local res, rerr, rkind = req:run(ds)
  if not res then return nil, rerr, rkind end
  local families = schema.family_order
  local months, by_month = {}, {}
  for _, row in ipairs(res) do
    local m = row.mois
    if m ~= nil then
      if not by_month[m] then
        by_month[m] = { mois = m, dossiers = 0, counts = {} }
        months[#months + 1] = m
      end
      local t = by_month[m]
      t.dossiers = t.dossiers + (row.dossiers or 0)
      if row.famille ~= nil then t.counts[row.famille] = (t.counts[row.famille] or 0) + (row.dossiers or 0) end
    end
  end
  table.sort(months, function(a, b) return tostring(a) < tostring(b) end)
  local extraction = res:extraction()
  local last = extraction and month_index(extraction)
  local columns, kinds, labels = { "mois", "dossiers" }, { mois = "key", dossiers = "count", cohort = "key" }, {}
  for _, f in ipairs(families) do
    local name = "share_" .. f
    columns[#columns + 1] = name
    kinds[name] = "rate"
    labels[name] = { fr = schema.value_labels.fr.famille[f] .. " (part)",
                     en = schema.value_labels.en.famille[f] .. " (share)" }
  end
  columns[#columns + 1] = "cohort"
  labels.cohort = { fr = "Cohorte", en = "Cohort" }
  local rows = {}
  for i, m in ipairs(months) do
    local t = by_month[m]
    local row = { mois = m, dossiers = t.dossiers }
    for _, f in ipairs(families) do
      -- recomputed from the counts: never an average of shares
      row["share_" .. f] = t.dossiers > 0 and (t.counts[f] or 0) / t.dossiers or nil
    end
    -- the extraction's month and the recent_months - 1 before it: recent
    local age = last and month_index(m) and last - month_index(m)
    row.cohort = (age == nil or age < recent) and "recent" or "closed"
    rows[i] = row
  end
  local out = result.new(columns, rows, { "mois" }, nil, kinds)
  result.set_labels(out, labels)
  result.set_additive(out, { dossiers = true })
  return out
end

return M
