-- cpf_oneshot.lua: CSV → "files, amount and average price by region and year", one process from
-- start to finish, on 1 and on 2 threads, loading only the 4 columns the report needs (what
-- `cpf query` does). Each thread count runs in its own child process; prints one JSON line each:
--   {"tool":"cpf_oneshot","threads":T,"seconds":S,"rows":R,"groups":G,"sum_dossiers":D,...}
-- seconds: from the child's first line to its result (the interpreter's own start, ~2 ms, aside).
-- Usage (from the repository root): lua5.4 bench/cpf_oneshot.lua FILE
local path, child = arg[1], tonumber(arg[3])
assert(path, "usage: bench/cpf_oneshot.lua FILE")

if not child then
  for _, threads in ipairs { 1, 2 } do
    local p = assert(io.popen(("lua5.4 bench/cpf_oneshot.lua '%s' --child %d"):format(path, threads)))
    io.write(p:read("*a"))
    assert(p:close(), "child failed")
  end
  return
end

local lib = dofile("bench/lib.lua")
local clock = require("cpf.core").clock
local start = clock()
local cpf = require "cpf"
local ds = assert(cpf.load(path, { threads = child, columns = { "region_lieu_formation",
  "date_validation", "nb_dossiers", "montant_engage" } }))
local res = ds:group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant", "prix_moyen" }:run()
local seconds = clock() - start
local d, m = lib.totals(res)
local rss = lib.status_kb("VmHWM")
print(('{"tool":"cpf_oneshot","threads":%d,"seconds":%.6f,"rows":%d,"groups":%d,"sum_dossiers":%d,'
  .. '"sum_montant":%.2f,"maxrss_kb":%d}'):format(child, seconds, #ds, #res, d, m, rss))
