-- cpf_query.lua: the cpf side of the query benchmark. Loads FILE (not timed), then times warm
-- queries on the loaded dataset, each run 7 times, median reported. Prints one JSON line per mode:
--   region_year   files, amount and average price by region and year (the DuckDB "warm" query)
--   eq_condition  the same with a built-in equality condition on a string column
--   fn_condition  the same with the equivalent Lua-function condition (once per distinct value)
--   two_keys_year grouping by two columns plus a derived year
-- and one "oneshot_process" line: load + region_year, timed from the start of the script.
-- Usage (from the repository root): lua5.4 bench/cpf_query.lua FILE
local lib = dofile("bench/lib.lua")
local clock = require("cpf.core").clock
local start = clock()
local cpf = require "cpf"

local path = assert(arg[1], "usage: bench/cpf_query.lua FILE")
local ds = assert(cpf.load(path))

local function region_year(q)
  return q:group_by("region_lieu_formation", cpf.year "date validation")
          :agg{ "dossiers", "montant", "prix_moyen" }:run()
end
local first = region_year(ds:query())
local oneshot = clock() - start

local function median_time(fn)
  local t = {}
  for i = 1, 7 do
    local t0 = clock()
    fn()
    t[i] = clock() - t0
  end
  table.sort(t)
  return t[4]
end

local totals = lib.totals
local function maxrss() return lib.status_kb("VmHWM") end

-- Totals join the report's check (against DuckDB and pure Lua) only for the unfiltered query;
-- a filtered query's totals are printed under other names.
local function emit(mode, seconds, res, filtered)
  local d, m = totals(res)
  print(('{"tool":"cpf_query","mode":"%s","lua":"%s","seconds":%.6f,"rows":%d,"groups":%d,'
    .. '"%s":%d,"%s":%.2f,"maxrss_kb":%d}'):format(mode, jit and "luajit" or _VERSION,
    seconds, #ds, #res, filtered and "where_sum_dossiers" or "sum_dossiers", d,
    filtered and "where_sum_montant" or "sum_montant", m, maxrss()))
end

emit("oneshot_process", oneshot, first)
local res
emit("region_year", median_time(function() res = region_year(ds:query()) end), res)
local by_eq = ds:where{ statut_dossier = "Clos - Réalisation Totale" }
local by_fn = ds:where{ statut_dossier = function(v) return v == "Clos - Réalisation Totale" end }
local r_eq, r_fn
local t_eq = median_time(function() r_eq = region_year(by_eq) end)
local t_fn = median_time(function() r_fn = region_year(by_fn) end)
-- the two conditions select the same rows: same totals, or the benchmark is void
local d_eq, m_eq = totals(r_eq)
local d_fn, m_fn = totals(r_fn)
assert(d_eq == d_fn and m_eq == m_fn, "the equality and the function condition disagree")
emit("eq_condition", t_eq, r_eq, true)
emit("fn_condition", t_fn, r_fn, true)
emit("two_keys_year", median_time(function()
  res = ds:group_by("region_lieu_formation", "modalite_presence", cpf.year "date validation")
          :agg{ "dossiers", "montant" }:run()
end), res)
