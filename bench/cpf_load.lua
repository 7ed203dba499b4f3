-- cpf_load.lua: the cpf side of the load benchmark. Loads FILE on one thread, then on one thread
-- a core (the default), each in a process of its own (a second load in the same process meets the
-- first one's freed memory, which makes the comparison depend on the C library's state), and
-- prints a JSON line for each:
-- {"tool":"cpf_load","threads":T,"lua":L,"seconds":S,"rows":R,"memory_bytes":M,"csv_bytes":C,"rss_kb":K,"maxrss_kb":H}
-- seconds is the wall time of cpf.load alone; rss_kb is the resident size after that load.
-- Usage (from the repository root): lua5.4 bench/cpf_load.lua FILE [THREADS]
local lib = dofile("bench/lib.lua")
local cpf = require "cpf"
local clock = require("cpf.core").clock

local path = assert(arg[1], "usage: bench/cpf_load.lua FILE [THREADS]")

local status = lib.status_kb

local f = assert(io.open(path, "rb"))
local size = f:seek("end")
f:close()
if not arg[2] then -- each thread count in a fresh process: this script again, with THREADS
  local cores = tonumber(io.popen("nproc"):read("*l")) or 1
  local interpreter = arg[-1] or "lua5.4"
  for _, threads in ipairs { 1, cores } do
    local p = assert(io.popen(("%s bench/cpf_load.lua '%s' %d"):format(interpreter, path, threads)))
    io.write(p:read("*a"))
    assert(p:close(), "the load failed")
  end
  return
end
for _, threads in ipairs { tonumber(arg[2]) } do
  local t0 = clock()
  local ds = assert(cpf.load(path, { threads = threads }))
  local seconds = clock() - t0
  print(('{"tool":"cpf_load","threads":%d,"lua":"%s","seconds":%.4f,"rows":%d,"memory_bytes":%d,'
    .. '"csv_bytes":%d,"rss_kb":%d,"maxrss_kb":%d}'):format(threads, jit and "luajit" or _VERSION,
    seconds, #ds, ds:memory(), size, status("VmRSS"), status("VmHWM")))
  ds:close()
  collectgarbage()
end
