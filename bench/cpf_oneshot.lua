-- cpf_oneshot.lua: CSV → "files, amount and average price by region and year", one process from
-- start to finish, loading only the 4 columns the report needs (what `cpf query` does), on
-- THREADS threads (default 2). Prints one JSON line:
--   {"tool":"cpf_oneshot","threads":T,"seconds":S,"rows":R,"groups":G,"sum_dossiers":D,...}
-- seconds: from the script's first line to its result (the interpreter's own start, ~2 ms, aside;
-- bench/run.sh also times the whole process, as it does the peers' one-shots).
-- Usage (from the repository root): lua5.4 bench/cpf_oneshot.lua FILE [THREADS]
local lib = dofile("bench/lib.lua")
local clock = require("cpf.core").clock
local start = clock()
local cpf = require "cpf"

local path, threads = arg[1], tonumber(arg[2] or 2)
assert(path and threads, "usage: bench/cpf_oneshot.lua FILE [THREADS]")
local ds = assert(cpf.load(path, { threads = threads, columns = { "region_lieu_formation",
  "date_validation", "nb_dossiers", "montant_engage" } }))
local res = ds:group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant", "prix_moyen" }:run()
local seconds = clock() - start
local d, m = lib.totals(res)
local rss = lib.status_kb("VmHWM")
print(('{"tool":"cpf_oneshot","threads":%d,"seconds":%.6f,"rows":%d,"groups":%d,"sum_dossiers":%d,'
  .. '"sum_montant":%.2f,"maxrss_kb":%d}'):format(threads, seconds, #ds, #res, d, m, rss))
