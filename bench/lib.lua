-- bench/lib.lua — what the cpf benchmark scripts share: module paths of this checkout, the
-- report's totals (checked against the peers and pure Lua) and the process's memory figures.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/" .. (jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))) .. "/?.so;"
  .. package.cpath

local lib = {}

--- Σ dossiers and Σ montant over a result's rows (through res:rows(), the public interface,
--- whatever the result's inner layout).
function lib.totals(res)
  local d, m = 0, 0
  for _, r in res:rows() do d = d + (r.dossiers or 0); m = m + (r.montant or 0) end
  return d, m
end

--- The reference table of the join_ref warm class for a data file: code_rncp;libelle, one row
--- per code (bench/ref_rncp.lua writes it; bench/peer_lib.mjs's refPath gives the same name).
function lib.ref_path(csv)
  return (csv:gsub("%.csv$", "")) .. ".ref-rncp.csv"
end

--- A field of /proc/self/status in kB: "VmRSS" (now) or "VmHWM" (peak).
function lib.status_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s*(%d+)")
    if v then return tonumber(v) end
  end
  return 0
end

return lib
