-- cpf_load.lua: the cpf side of the load benchmark. Loads FILE on one thread, then on one thread
-- a core (the default), and prints a JSON line for each:
-- {"tool":"cpf_load","threads":T,"lua":L,"seconds":S,"rows":R,"memory_bytes":M,"csv_bytes":C,"rss_kb":K,"maxrss_kb":H}
-- seconds is the wall time of cpf.load alone; rss_kb is the resident size after that load (the
-- previous dataset closed and collected first).
-- Usage (from the repository root): lua5.4 bench/cpf_load.lua FILE
local lib = dofile("bench/lib.lua")
local cpf = require "cpf"
local clock = require("cpf.core").clock

local path = assert(arg[1], "usage: bench/cpf_load.lua FILE")

local status = lib.status_kb

local f = assert(io.open(path, "rb"))
local size = f:seek("end")
f:close()
local cores = tonumber(io.popen("nproc"):read("*l")) or 1
for _, threads in ipairs { 1, cores } do
  local t0 = clock()
  local ds = assert(cpf.load(path, { threads = threads }))
  local seconds = clock() - t0
  print(('{"tool":"cpf_load","threads":%d,"lua":"%s","seconds":%.4f,"rows":%d,"memory_bytes":%d,'
    .. '"csv_bytes":%d,"rss_kb":%d,"maxrss_kb":%d}'):format(threads, jit and "luajit" or _VERSION,
    seconds, #ds, ds:memory(), size, status("VmRSS"), status("VmHWM")))
  ds:close()
  collectgarbage()
end
