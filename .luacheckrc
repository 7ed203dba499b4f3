-- .luacheckrc — settings for luacheck (`make lint`: luacheck lua/ bin/ plugin/ spec/ examples/ bench/).
-- The code runs on Lua 5.1 to 5.4 and LuaJIT alike: "max" allows the globals of all of them
-- (loadstring, setfenv, unpack, table.unpack, jit...), each use being guarded at run time.
std = "max"
max_line_length = 120

-- bin/cpf has no .lua suffix: checked when bin/ is.
include_files = { "**/*.lua", "bin/cpf", ".luacheckrc" }
exclude_files = { "build/**", "bench/node_modules/**", "bench/out/**", "luarocks-tree/**" }

files["spec"] = { std = "+busted" }

-- lua/: `not (a > b)` is written on purpose where a value may be NaN, for which it differs from
-- `a <= b` (bucket bounds, range conditions, bar scaling); luacheck's W581 advises the opposite.
files["lua"] = { ignore = { "581" } }

-- The Neovim front end runs inside Neovim, whose API is the global `vim`.
files["lua/cpf/nvim.lua"] = { ignore = { "581" }, read_globals = { "vim" } }
files["lua/cpf/health.lua"] = { read_globals = { "vim" } }
files["plugin"] = { globals = { "vim" } }
-- The HTTP service runs inside nginx-lua, whose API is the global `ngx` (ngx.status and
-- ngx.header are assigned).
files["lua/cpf/resty.lua"] = { globals = { "ngx" } }
