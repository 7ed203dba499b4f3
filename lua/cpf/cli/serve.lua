-- cpf.cli.serve — the `cpf serve` command: checks its options and what nginx's workers will
-- read (and, with --fetch, write), converts DATA to a snapshot when it is a CSV, writes an
-- nginx.conf that serves it with cpf.resty, and runs nginx in the foreground.
local cpf = require "cpf"
local core = require "cpf.core"
local errors = require "cpf.errors"
local serve_nginx = require "cpf.serve_nginx"

local M = {}

-- nginx.conf takes paths as quoted strings, and the shell commands below quote them: refuse what
-- could end one, start a variable or run a command
local function safe_path(path, what)
  if path:find("[%z\1-\31\"'`\\;{}$\127]") then
    errors.usage(("%s: a path for nginx cannot hold quotes, backslashes, ';', '{', '}', '$' or control "
      .. "characters: '%s'"):format(what, path))
  end
  return path
end

--- cpf serve DATA [options]; tools: cpf.cli's read_args, usage, fail, whole_option,
--- data_options, load_options and the help text.
function M.serve(args, tools)
  local read_args, usage, fail, whole_option = tools.read_args, tools.usage, tools.fail, tools.whole_option
  local data_options, load_options = tools.data_options, tools.load_options
  local known, short = data_options { host = "value", port = "value", workers = "value", prefix = "value",
                               ["max-rows"] = "value", ["check-every"] = "value", user = "value",
                               nginx = "value", ["max-request"] = "value", ["max-pattern"] = "value",
                               ref = "list", cors = "value", fetch = "flag", url = "value",
                               ["fetch-every"] = "value" }
  local pos, opts = read_args(args, known, short)
  if opts.help then io.stdout:write(tools.help) return 0 end
  if #pos ~= 1 then usage("serve needs one DATA file") end
  local host = opts.host or "127.0.0.1"
  if not host:match("^[%w%.%-:%[%]]+$") then usage(("--host must be an address or a name, got '%s'"):format(host)) end
  local port = whole_option(opts, "port") or 8080
  if port < 1 or port > 65535 then usage("--port must be from 1 to 65535") end
  local workers = whole_option(opts, "workers") or core.load_threads()
  if workers < 1 or workers > 64 then usage("--workers must be from 1 to 64") end
  local max_rows = whole_option(opts, "max-rows") or 10000
  local max_request = whole_option(opts, "max-request") or 4096
  local max_pattern = whole_option(opts, "max-pattern") or 100
  local check_every = tonumber(opts["check-every"] or "1")
  if not check_every or check_every <= 0 then usage("--check-every must be a number of seconds above 0") end
  local cors = opts.cors
  if cors and not (cors == "*" or cors:match("^https?://[%w%.%-]+:?%d*$")) then
    usage(("--cors must be an origin (https://host[:port]) or *, got '%s'"):format(cors))
  end
  local lo = load_options(opts)
  local user = opts.user
  if user and not user:match("^[%w_][%w_.%-]*$") then usage(("--user must be a user name, got '%s'"):format(user)) end

  local nginx = opts.nginx or serve_nginx.find()
  local found = nginx and io.open(nginx, "rb")
  if found then found:close() end
  -- OpenResty's nginx has the Lua module built in; Debian's loads it from serve_nginx.MODULES
  local built_in, build = false, ""
  if found then
    -- closed before the exec below: an unreaped shell would stay a zombie child of nginx's master
    local probe = io.popen(("'%s' -V 2>&1"):format(safe_path(nginx, "--nginx")))
    build = probe:read("*a")
    probe:close()
    built_in = build:find("lua-nginx-module", 1, true) ~= nil
  end
  local module = serve_nginx.MODULES .. "/ngx_http_lua_module.so"
  local m = not built_in and io.open(module, "rb")
  if m then m:close() end
  if not found or not (built_in or m) then
    return fail(("cpf serve needs nginx and its Lua module (%s): apt-get install nginx libnginx-mod-http-lua")
      :format(not found and (nginx or "nginx") .. " not found" or module .. " not found"))
  end
  local lua_dir, core_dir = serve_nginx.luajit_build()
  safe_path(lua_dir, "cpf's Lua directory")
  safe_path(core_dir, "cpf's C core directory")

  local prefix = opts.prefix
  if not prefix then
    prefix = os.tmpname() -- a fresh name of our own, made a directory
    os.remove(prefix)
    prefix = prefix:gsub("/lua_", "/cpf-serve-")
  end
  prefix = safe_path(serve_nginx.absolute(prefix), "--prefix")
  for _, dir in ipairs { prefix, prefix .. "/conf", prefix .. "/logs", prefix .. "/tmp" } do
    if not serve_nginx.succeeds("mkdir -p '" .. dir .. "'") then return fail(dir .. ": cannot create the directory") end
  end
  local data = pos[1]
  local snapshot, fetch
  if opts.fetch then
    -- DATA is the history folder the server fetches into; its cpf-latest.cpfsnap is served
    -- (503 until the first fetch, when the folder holds none yet)
    local every = tonumber(opts["fetch-every"] or "86400")
    if not every or every < 1 then usage("--fetch-every must be a number of seconds from 1") end
    if opts.url and not opts.url:match("^https?://[^/%s\"'\\]+[^%s\"'\\]*$") then
      usage(("--url must be an http:// or https:// address, got '%s'"):format(opts.url))
    end
    local made, merr = core.make_dirs(data)
    if not made then return fail(merr) end
    local dir = safe_path(serve_nginx.absolute(data), "DATA")
    snapshot = dir .. "/" .. cpf.history_latest
    fetch = { dir = dir, url = opts.url, every = every }
  elseif opts.url or opts["fetch-every"] then
    usage("--url and --fetch-every go with --fetch")
  elseif cpf.is_snapshot(data) then
    -- a history folder: its cpf-latest.cpfsnap, which cpf fetch replaces by a rename (swapped in)
    snapshot = serve_nginx.absolute(cpf.history_path(data))
  else
    snapshot = prefix .. "/data.cpfsnap"
    io.stderr:write(("cpf: converting %s to %s\n"):format(data, snapshot))
    local ds, err = cpf.convert(data, snapshot, lo)
    if not ds then return fail(err) end
    ds:close()
  end
  safe_path(snapshot, "DATA")
  -- --ref NAME=FILE: reference tables that requests join by name (join=NAME:COLUMN)
  local refs = {}
  for _, text in ipairs(opts.ref or {}) do
    local name, file = text:match("^([%w_]+)=(.+)$")
    if not name then usage(("--ref '%s': expected NAME=FILE, NAME letters, digits and _"):format(text)) end
    if refs[name] then usage(("--ref: the reference '%s' is declared twice"):format(name)) end
    local path
    if cpf.is_snapshot(file) then
      path = serve_nginx.absolute(file)
    else
      path = prefix .. "/ref-" .. name .. ".cpfsnap"
      local ref, err = cpf.convert(file, path)
      if not ref then return fail(("--ref %s: %s"):format(name, err)) end
      ref:close()
    end
    refs[name] = safe_path(path, "--ref " .. name)
  end
  local ref_names = {}
  for name in pairs(refs) do ref_names[#ref_names + 1] = name end
  table.sort(ref_names)
  local ref_fields = {}
  for i, name in ipairs(ref_names) do ref_fields[i] = ("%s = %q"):format(name, refs[name]) end

  local function write(path, text)
    local f, err = io.open(path, "wb")
    if not f then error(err, 0) end
    f:write(text)
    f:close()
  end
  write(prefix .. "/conf/init_worker.lua", ("require(\"cpf.resty\").init_worker { snapshot = %q, "
    .. "max_rows = %d, max_request = %d, max_pattern = %d, check_every = %s, refs = { %s }, cors = %s, fetch = %s }\n")
    :format(snapshot, max_rows, max_request, max_pattern, tostring(check_every), table.concat(ref_fields, ", "),
      cors and ("%q"):format(cors) or "false",
      fetch and ("{ dir = %q, url = %s, every = %s }"):format(fetch.dir,
        fetch.url and ("%q"):format(fetch.url) or "nil", tostring(fetch.every)) or "false"))
  write(prefix .. "/conf/nginx.conf", table.concat({
    "# written by cpf serve: nginx with its Lua module, serving " .. snapshot,
    built_in and "# the Lua module is built into this nginx" or
      ('load_module "%s/ndk_http_module.so";\nload_module "%s";'):format(serve_nginx.MODULES, module),
    user and ("user %s;"):format(user) or "# workers: nginx's default user when started by root (--user)",
    ("worker_processes %d;"):format(workers),
    -- the proxy settings reach the workers (cpf.fetch's transfers: libcurl reads them)
    "env http_proxy;\nenv https_proxy;\nenv no_proxy;\nenv HTTPS_PROXY;\nenv NO_PROXY;",
    ('pid "%s/logs/nginx.pid";'):format(prefix),
    ('error_log "%s/logs/error.log" warn;'):format(prefix),
    "events { worker_connections 1024; }",
    "http {",
    ('  access_log "%s/logs/access.log";'):format(prefix),
    (('  client_body_temp_path "P/tmp/body";\n  proxy_temp_path "P/tmp/proxy";\n  fastcgi_temp_path '
      .. '"P/tmp/fastcgi";\n  uwsgi_temp_path "P/tmp/uwsgi";\n  scgi_temp_path "P/tmp/scgi";')
      :gsub("P", function() return prefix end)),
    "  server_tokens off;",
    -- text answers over 1 kB compressed for clients that ask (nginx makes the ETag weak then)
    "  gzip on;",
    "  gzip_min_length 1024;",
    "  gzip_vary on;",
    "  gzip_types text/csv text/tab-separated-values application/json application/x-ndjson text/markdown "
      .. "text/plain image/svg+xml;",
    "  large_client_header_buffers 4 64k;",
    ('  lua_package_path "%s/?.lua;%s/?/init.lua;;";'):format(lua_dir, lua_dir),
    ('  lua_package_cpath "%s/?.so;;";'):format(core_dir),
    ('  init_worker_by_lua_file "%s/conf/init_worker.lua";'):format(prefix),
    "  server {",
    ("    listen %s:%d;"):format(host:find(":") and not host:find("^%[") and "[" .. host .. "]" or host, port),
    "    location / { content_by_lua_block { require(\"cpf.resty\").handle() } }",
    serve_nginx.error_pages(),
    "  }",
    "}",
    "" }, "\n"))
  -- what the workers read (nginx's master opens the logs and makes the temporary folders)
  local read_by_workers = { fetch and { fetch.dir, "DATA, fetched into", "write" } or { snapshot, "DATA" },
    { prefix .. "/conf/init_worker.lua", "the prefix" },
    { lua_dir .. "/cpf/init.lua", "cpf's Lua directory" }, { core_dir .. "/cpf/core.so", "cpf's C core" } }
  for _, name in ipairs(ref_names) do read_by_workers[#read_by_workers + 1] = { refs[name], "--ref " .. name } end
  local workers_user = user or build:match("%-%-user=([%w_][%w_.%-]*)") or "nobody"
  local cannot = serve_nginx.unreadable_by_workers(workers_user, read_by_workers)
  if cannot then
    if not opts.prefix then os.execute("rm -rf '" .. prefix .. "'") end -- the prefix made for nothing
    return fail(cannot)
  end
  io.stderr:write(("cpf: serving %s on http://%s:%d/ with %d worker%s (nginx prefix %s); Ctrl-C stops it\n")
    :format(data, host, port, workers, workers == 1 and "" or "s", prefix))
  local _, err = core.exec { nginx, "-p", prefix, "-e", prefix .. "/logs/error.log",
                                            "-c", prefix .. "/conf/nginx.conf", "-g", "daemon off;" }
  return fail("cannot run nginx: " .. tostring(err))
end

return M
