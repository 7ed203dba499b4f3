-- cpf.health — :checkhealth cpf: the module and its C core, built for this Neovim's LuaJIT.
local M = {}

-- Neovim 0.7 has require("health").report_*, later versions vim.health.*
local function reporter()
  local h = vim.health or require "health"
  return {
    start = h.start or h.report_start, ok = h.ok or h.report_ok,
    warn = h.warn or h.report_warn, error = h.error or h.report_error, info = h.info or h.report_info,
  }
end

local function find(name, path)
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", (name:gsub("%.", "/")))
    if (vim.uv or vim.loop).fs_stat(file) then return file end
  end
end

function M.check()
  local r = reporter()
  r.start("cpf")
  local ok, cpf = pcall(require, "cpf")
  if not ok then
    local core = find("cpf.core", package.cpath)
    r.error("require 'cpf' failed: " .. tostring(cpf),
      core and { "the core found (" .. core .. ") does not load in this Neovim: rebuild it with make LUA=luajit" }
        or { "build the C core in the plugin's directory: make LUA=luajit (the plugin manager's build step)" })
    return
  end
  r.ok(("cpf %s (%s)"):format(cpf._VERSION, find("cpf", package.path) or "lua/cpf/init.lua"))
  local core = require "cpf.core" -- required here, where a missing build is reported
  r.ok(("C core loaded for %s: %s"):format(jit and jit.version or _VERSION,
    find("cpf.core", package.cpath) or "cpf.core"))
  if not jit then r.warn("this Neovim runs without LuaJIT: the core must be built for " .. _VERSION) end
  r.ok(("background loads use %d thread%s (one per core)"):format(core.load_threads(),
    core.load_threads() == 1 and "" or "s"))
  if type(cpf.load_async) ~= "function" then r.error("cpf.load_async is missing: the Lua layer is older than 0.1.0") end
end

return M
