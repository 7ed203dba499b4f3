-- cpf_snapshot.lua: snapshot open + the region × year report, in a fresh process. The snapshot
-- (FILE .. ".cpfsnap") is written first if missing, by another process, not timed.
--   {"tool":"cpf_snapshot","mode":"open_report","seconds":S,...} and a "save" line when written.
-- Usage (from the repository root): lua5.4 bench/cpf_snapshot.lua FILE
local path, child = arg[1], arg[2]
assert(path, "usage: bench/cpf_snapshot.lua FILE")
local lib = dofile("bench/lib.lua")
local snap = path .. ".cpfsnap"

if not child then
  local f = io.open(snap, "rb")
  if f then f:close() else
    local p = assert(io.popen(("lua5.4 bench/cpf_snapshot.lua '%s' --save"):format(path)))
    io.write(p:read("*a"))
    assert(p:close(), "saving the snapshot failed")
  end
  local p = assert(io.popen(("lua5.4 bench/cpf_snapshot.lua '%s' --open"):format(path)))
  io.write(p:read("*a"))
  assert(p:close(), "opening the snapshot failed")
  return
end

local clock = require("cpf.core").clock
local start = clock()
local cpf = require "cpf"
if child == "--save" then
  local ds = assert(cpf.load(path))
  local t0 = clock()
  assert(ds:save(snap))
  print(('{"tool":"cpf_snapshot","mode":"save","seconds":%.6f,"rows":%d}'):format(clock() - t0, #ds))
  return
end
local ds = assert(cpf.open(snap))
local res = ds:group_by("region_lieu_formation", "annee"):agg { "dossiers", "montant", "prix_moyen" }:run()
local seconds = clock() - start
local d, m = lib.totals(res)
local rss = lib.status_kb("VmHWM")
print(('{"tool":"cpf_snapshot","mode":"open_report","seconds":%.6f,"rows":%d,"groups":%d,'
  .. '"sum_dossiers":%d,"sum_montant":%.2f,"maxrss_kb":%d}'):format(seconds, #ds, #res, d, m, rss))
