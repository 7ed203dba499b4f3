-- cpf.serve_nginx — what `cpf serve` needs around nginx: finding it and its Lua module, the
-- LuaJIT build of cpf that its workers load, nginx's own refusals in JSON, and the check that
-- the workers' user can read what they will read. cpf.cli writes the configuration with these.
local serve_nginx = {}

-- A path as require finds it: the first template of `path` whose file exists.
local function find_module(name, path)
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", (name:gsub("%.", "/")))
    local f = io.open(file, "rb")
    if f then f:close() return file end
  end
end

function serve_nginx.absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local pwd = os.getenv("PWD") or io.popen("pwd"):read("*l")
  return pwd .. "/" .. path
end

-- The Lua directory of cpf and the C core built for LuaJIT (nginx's Lua): paths, or raises.
function serve_nginx.luajit_build()
  local init = find_module("cpf", package.path)
  local lua_dir = init and serve_nginx.absolute(init):match("^(.*)/cpf/init%.lua$")
  if not lua_dir then error("cpf serve: cpf/init.lua is not found on package.path", 0) end
  local core_so
  if jit then core_so = find_module("cpf.core", package.cpath) end
  if not core_so then
    local checkout = lua_dir:match("^(.*)/lua$")
    local built = checkout and checkout .. "/build/luajit/cpf/core.so"
    local f = built and io.open(built, "rb")
    if f then f:close() core_so = built end
  end
  if not core_so then
    error("cpf serve needs the C core built for LuaJIT, which nginx's Lua module runs: make LUA=luajit in the "
      .. "checkout, or install the rock for LuaJIT (README)", 0)
  end
  return lua_dir, serve_nginx.absolute(core_so):match("^(.*)/cpf/core%.so$")
end

serve_nginx.MODULES = "/usr/lib/nginx/modules"

function serve_nginx.find()
  for dir in ((os.getenv("PATH") or "") .. ":/usr/sbin:/usr/local/sbin"):gmatch("[^:]+") do
    local f = io.open(dir .. "/nginx", "rb")
    if f then f:close() return dir .. "/nginx" end
  end
end

-- os.execute's success: true from Lua 5.2 on, 0 in Lua 5.1 and LuaJIT.
function serve_nginx.succeeds(command)
  local r = os.execute(command)
  return r == true or r == 0
end

-- What nginx itself refuses (a path climbing above /, a method such as TRACE, a body too large,
-- a request line too long) answered in JSON like cpf's, from internal locations that only
-- nginx's redirects reach (from outside they are an unknown path).
local NGINX_ERRORS = { { 400, "bad request" }, { 404, "no such endpoint" },
  { 405, "method not allowed: GET or HEAD" }, { 413, "request: the body is too large" },
  { 414, "request: the request line is too long" } }

function serve_nginx.error_pages()
  local lines = {}
  for _, e in ipairs(NGINX_ERRORS) do lines[#lines + 1] = ("    error_page %d /.cpf-%d;"):format(e[1], e[1]) end
  for _, e in ipairs(NGINX_ERRORS) do
    lines[#lines + 1] = table.concat({
      ("    location = /.cpf-%d {"):format(e[1]),
      '      internal; default_type "application/json; charset=utf-8";',
      "      add_header X-Content-Type-Options nosniff always;",
      ("      return %d '{\"error\": \"%s\"}\\n';"):format(e[1], e[2]),
      "    }" }, "\n")
  end
  return table.concat(lines, "\n")
end

-- Started by root, nginx's workers drop to `user`: each of `files` ({path, what}) must be
-- readable by that user, or every request would get 503 once the server says it is serving.
-- Returns the message naming the first one that is not, or nil (not root, or all readable; the
-- check needs util-linux's runuser, which Debian always has).
-- files[i][3] == "write": that one (a folder) must be writable too (cpf serve --fetch).
function serve_nginx.unreadable_by_workers(user, files)
  local id = io.popen("id -u 2>/dev/null")
  local uid = id:read("*l")
  id:close()
  if uid ~= "0" or not serve_nginx.succeeds("command -v runuser >/dev/null 2>&1") then return nil end
  if not serve_nginx.succeeds(("id -u '%s' >/dev/null 2>&1"):format(user)) then
    return ("nginx's workers would run as '%s', which is not a user here: give --user NAME"):format(user)
  end
  for _, file in ipairs(files) do
    if file[3] == "write" and not serve_nginx.succeeds(("runuser -u '%s' -- test -w '%s' 2>/dev/null")
        :format(user, file[1])) then
      return ("nginx's workers run as '%s', who cannot write %s (%s): make it writable by '%s', or give --user "
        .. "with a user who can"):format(user, file[1], file[2], user)
    end
    if not serve_nginx.succeeds(("runuser -u '%s' -- test -r '%s' 2>/dev/null"):format(user, file[1])) then
      return ("nginx's workers run as '%s', who cannot read %s (%s): make it and its folders readable by '%s', "
        .. "move it, or give --user with a user who can read it"):format(user, file[1], file[2], user)
    end
  end
end

return serve_nginx
