-- plugin/cpf.lua — Neovim: registers :Cpf and makes the C core built in this checkout
-- (make LUA=luajit → build/luajit/cpf/core.so) findable; everything else loads on first use
-- (lua/cpf/nvim.lua). :help cpf
if vim.g.loaded_cpf then return end
vim.g.loaded_cpf = true

-- this file is ROOT/plugin/cpf.lua: ROOT/lua is on 'runtimepath' already, the core is not
local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/plugin/[^/]*$")
local core = root and root .. "/build/luajit/?.so"
if core and vim.loop.fs_stat(root .. "/build/luajit/cpf/core.so") and not package.cpath:find(core, 1, true) then
  package.cpath = core .. ";" .. package.cpath
end

vim.api.nvim_create_user_command("Cpf", function(cmd)
  require("cpf.nvim").command(cmd.args)
end, {
  nargs = "*",
  desc = "cpf: open, query, describe CPF data (:help cpf)",
  complete = function(arglead, line, pos) return require("cpf.nvim").complete(arglead, line, pos) end,
})
