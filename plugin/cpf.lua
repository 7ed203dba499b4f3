-- plugin/cpf.lua — Neovim: registers :Cpf and makes the C core built in this checkout
-- (make LUA=luajit → build/luajit/cpf/core.so) findable; everything else loads on first use
-- (lua/cpf/nvim.lua). :help cpf
if vim.g.loaded_cpf then return end
vim.g.loaded_cpf = true

-- this file is ROOT/plugin/cpf.lua: ROOT/lua is on 'runtimepath' already, the core is not
local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/plugin/[^/]*$")
local core = root and root .. "/build/luajit/?.so"
local uv = vim.uv or vim.loop -- vim.loop before Neovim 0.10
if core and uv.fs_stat(root .. "/build/luajit/cpf/core.so") and not package.cpath:find(core, 1, true) then
  package.cpath = core .. ";" .. package.cpath
end

-- cpf.nvim, or nil after one line saying what is missing (never a traceback of search paths)
local function plugin()
  local ok, nvim = pcall(require, "cpf.nvim")
  if ok then return nvim end
  if tostring(nvim):find("module 'cpf.core' not found", 1, true) then
    vim.notify(("cpf: the C core is not built: run make LUA=luajit in %s"):format(root or "the plugin's folder"),
      vim.log.levels.ERROR)
  else
    vim.notify("cpf: " .. tostring(nvim):match("^[^\n]*"), vim.log.levels.ERROR)
  end
end

vim.api.nvim_create_user_command("Cpf", function(cmd)
  local nvim = plugin()
  if nvim then nvim.command(cmd.args) end
end, {
  nargs = "*",
  desc = "cpf: open, query, describe CPF data (:help cpf)",
  complete = function(arglead, line, pos)
    local ok, nvim = pcall(require, "cpf.nvim") -- without the core: nothing to complete
    return ok and nvim.complete(arglead, line, pos) or {}
  end,
})
