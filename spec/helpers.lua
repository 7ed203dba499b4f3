-- spec/helpers.lua — run by busted before the specs (see .busted) and required by them:
-- points package.path/cpath at this checkout's lua/ and the build for the running Lua.
local helpers = {}

helpers.lua_name = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
helpers.interpreter = jit and "luajit" or helpers.lua_name
helpers.root = os.getenv("PWD") or "."

if not package.path:find("lua/?/init.lua", 1, true) then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  package.cpath = "build/" .. helpers.lua_name .. "/?.so;" .. package.cpath
end

function helpers.fixture(name)
  return "spec/fixtures/" .. name
end

local tmp_files = {}

function helpers.tmpname(suffix)
  local name = os.tmpname()
  os.remove(name)
  name = name .. (suffix or "")
  tmp_files[#tmp_files + 1] = name
  return name
end

function helpers.write_file(content, suffix)
  local name = helpers.tmpname(suffix or ".csv")
  local f = assert(io.open(name, "wb"))
  f:write(content)
  f:close()
  return name
end

function helpers.read_file(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function helpers.cleanup()
  for _, name in ipairs(tmp_files) do os.remove(name) end
  tmp_files = {}
end

-- Runs a shell command; returns stdout, stderr and the exit code.
function helpers.run(command)
  local err_file = helpers.tmpname(".err")
  local code_file = helpers.tmpname(".code")
  local p = io.popen("(" .. command .. ") 2>" .. err_file .. "; echo $? >" .. code_file)
  local out = p:read("*a")
  p:close()
  return out, helpers.read_file(err_file), tonumber(helpers.read_file(code_file))
end

-- Quotes a string for the shell.
function helpers.shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The cpf command under the Lua running the specs.
function helpers.cpf_command(args)
  return helpers.interpreter .. " bin/cpf " .. args
end

return helpers
