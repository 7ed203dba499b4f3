-- cpf.resty — an HTTP service of one snapshot inside OpenResty / nginx-lua workers: `cpf serve`
-- writes the nginx.conf that uses it, and a hand-written one calls the same two functions:
--
--   init_worker_by_lua_block { require("cpf.resty").init_worker { snapshot = "/srv/cpf.cpfsnap" } }
--   location / { content_by_lua_block { require("cpf.resty").handle() } }
--
-- Endpoints: GET /query (the request fields of the request table, cpf.request: where, by,
-- measure, sort, limit, per, having, change, cumsum, rank, format, locale, title, bar, opt...;
-- join=NAME:COLUMN with a reference the server declares, never a file), /describe, /health
-- and / (a dashboard page). Every bad request is a 4xx with
-- {"error": "..."}; nothing a request says can name a file, run Lua or read anything but the
-- served dataset. Each worker maps the snapshot (pages shared between workers), checks the file
-- every check_every seconds and swaps to a replaced one; a dataset is closed once the last
-- request using it is done.
local cpf = require "cpf"
local core = require "cpf.core"
local request = require "cpf.request"
local errors = require "cpf.errors"
local format = require "cpf.format"
local report = require "cpf.report"
local json = require "cpf.format.json"

local M = {}

local settings = {
  snapshot = nil,      -- the snapshot's path (required)
  check_every = 1,     -- seconds between checks that the file was replaced
  max_rows = 10000,    -- rows a result may have
  max_request = 4096,  -- bytes of the request line's target (path and query string)
  max_pattern = 100,   -- bytes of a ~ pattern of where
  title = "Mon Compte Formation – formations engagées",
  refs = {},           -- reference tables requests may join: name -> snapshot path
}
local references = {} -- name -> the reference's dataset, opened by init_worker

local JSON = format.media_type("json") -- errors and /health

-- The parameters of each endpoint: "list" may repeat, "one" may not. A query's are the request
-- fields of the request table.
local ROUTES = {
  ["/query"] = request.http_parameters(),
  ["/describe"] = { format = "one" },
  ["/health"] = {},
  ["/"] = {},
}

-- ---------------------------------------------------------------- the served dataset

local current -- { ds, signature, etag, users, retired, dashboard }

local function open_served()
  local path = settings.snapshot
  local signature, err = core.file_signature(path)
  if not signature then return nil, err end
  local ds, oerr = cpf.open(path)
  if not ds then return nil, oerr end
  local etag = '"' .. ngx.md5(cpf._VERSION .. "\0" .. signature):sub(1, 20) .. '"'
  return { ds = ds, signature = signature, etag = etag, users = 0 }
end

local function release(served)
  served.users = served.users - 1
  if served.retired and served.users == 0 and not served.ds:is_closed() then served.ds:close() end
end

local warned -- the last signature whose snapshot could not be opened (logged once)

local function inode(signature) return signature and signature:match("dev=%d+;ino=%d+") end

local function check_replaced(premature)
  if premature then return end
  local signature = core.file_signature(settings.snapshot)
  if not signature or (current and signature == current.signature) or signature == warned then return end
  if current and inode(signature) == inode(current.signature) then
    -- the mapped file itself was written (cp, >, truncate), not replaced by a rename: its pages
    -- may be gone, and reading them would kill the worker (SIGBUS). Stop serving it now.
    ngx.log(ngx.ERR, "cpf: ", settings.snapshot, " was modified in place (replace it by a rename, as cpf convert "
      .. "does): it is no longer served")
    local old = current
    current = nil
    old.retired = true
    old.users = old.users + 1
    release(old)
  end
  local new, err = open_served()
  if not new then
    warned = signature
    ngx.log(ngx.ERR, "cpf: keeping the served dataset: ", err)
    return
  end
  local old = current
  current, warned = new, nil
  if old then
    old.retired = true
    old.users = old.users + 1
    release(old) -- closes it now unless a request still uses it
  end
end

--- In init_worker_by_lua*: opens the snapshot and starts the check for a replaced file.
--- opts: snapshot (path, required), check_every, max_rows, max_request, max_pattern, title.
function M.init_worker(opts)
  for k, v in pairs(opts or {}) do
    if settings[k] == nil and k ~= "snapshot" then error("cpf.resty: unknown setting '" .. tostring(k) .. "'", 2) end
    settings[k] = v
  end
  if type(settings.snapshot) ~= "string" then error("cpf.resty: setting 'snapshot' (a path) is required", 2) end
  local served, err = open_served()
  if not served then ngx.log(ngx.ERR, "cpf: ", err) else current = served end
  for name, path in pairs(settings.refs) do
    local ref, rerr = cpf.open(path)
    if ref then references[name] = ref else ngx.log(ngx.ERR, "cpf: reference ", name, ": ", rerr) end
  end
  local ok, terr = ngx.timer.every(settings.check_every, check_replaced)
  if not ok then ngx.log(ngx.ERR, "cpf: cannot start the snapshot check: ", terr) end
end

-- ---------------------------------------------------------------- responses

local function send(status, content_type, body, extra)
  ngx.status = status
  ngx.header["Content-Type"] = content_type
  ngx.header["X-Content-Type-Options"] = "nosniff"
  ngx.header["Cache-Control"] = "no-cache"
  for k, v in pairs(extra or {}) do ngx.header[k] = v end
  if body then ngx.print(body) end -- nginx ends the request when the handler returns
end

local function fail(status, msg, extra)
  return send(status, JSON, '{"error": ' .. json.string_text(msg) .. "}\n", extra)
end

-- A request error: an error value (cpf.errors) with its HTTP status, raised inside serve and
-- answered by handle.
local function refuse(status, msg) errors.raise(status == 503 and "io" or "usage", msg, { status = status }) end

-- The query string's parameters, checked against the route's: name -> text or list of texts.
local function parameters(allowed)
  local args, err = ngx.req.get_uri_args(100)
  if err == "truncated" then refuse(400, "request: more than 100 parameters") end
  local names = {}
  for k in pairs(allowed) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for k, v in pairs(args) do
    if not allowed[k] then
      refuse(400, ("unknown parameter '%s'%s"):format(k, #names > 0 and " (" .. table.concat(names, ", ") .. ")" or
        ": this endpoint takes none"))
    end
    local values = type(v) == "table" and v or { v }
    if #values > 1 and allowed[k] ~= "list" then refuse(400, ("parameter '%s' given more than once"):format(k)) end
    for _, x in ipairs(values) do
      if x == true then refuse(400, ("parameter '%s' needs a value (%s=...)"):format(k, k)) end
    end
    out[k] = allowed[k] == "list" and values or values[1]
  end
  return out
end

-- What a request adds to its fields: JSON by default, and join=NAME:COLUMN's references,
-- those the server declares (cpf serve --ref), never a file.
local function reference(name)
  local ref = references[name]
  if ref then return ref end
  local names = {}
  for k in pairs(references) do names[#names + 1] = k end
  table.sort(names)
  if #names == 0 then
    return nil, "join: a request cannot name a file; this server declares no reference to join "
      .. "(cpf serve --ref NAME=FILE)", "usage"
  end
  return nil, ("join: no reference named '%s' (this server declares: %s)")
    :format(name:sub(1, 40), table.concat(names, ", ")), "usage"
end
local SETTINGS = { format = "json", reference = reference }

local function answer(served, fmt, text)
  local extra = { ETag = served.etag }
  if fmt == "html" or fmt == "svg" then
    extra["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
  end
  return send(200, format.media_type(fmt), text, extra)
end

-- ---------------------------------------------------------------- endpoints

-- A ~ pattern a server runs for anyone: short, and with at most one repetition (* + -) and no
-- back-reference, balance or frontier, so that matching a value stays linear-ish (Lua's matcher
-- backtracks: ".-.-.-.-" against long values runs for minutes).
local function check_pattern(w)
  local pattern = w:match("~(.*)$")
  if not pattern then return end
  local shown = w:sub(1, 40)
  if #pattern > settings.max_pattern then
    refuse(400, ("--where '%s': a ~ pattern is limited to %d bytes"):format(shown, settings.max_pattern))
  end
  local plain = pattern:gsub("%%.", function(e)
    if e:match("^%%[%dbf]$") then
      refuse(400, ("--where '%s': %s is not served (back-references, %%b and %%f)"):format(shown, e))
    end
    return "x"
  end):gsub("%[.-%]", "x")
  local _, repeats = plain:gsub("[%*%+%-]", "")
  if repeats > 1 then
    refuse(400, ("--where '%s': a ~ pattern may repeat one item at most (one of * + -)"):format(shown))
  end
end

-- a matching If-None-Match, once the request is known to be right
local function not_modified(served)
  if ngx.var.http_if_none_match == served.etag then
    send(304, JSON, nil, { ETag = served.etag })
    return true
  end
end

local function query(served, params)
  for _, f in ipairs(request.fields_of("http")) do
    if f.pattern then
      for _, w in ipairs(params[f.name] or {}) do check_pattern(w) end
    end
  end
  local req, err = request.parse(params, SETTINGS)
  if not req then refuse(400, err) end
  local res, rerr = req:run(served.ds)
  if not res then refuse(400, rerr) end
  -- only now: a request is answered 304 once it is known to be right (an unknown column, a bad
  -- value is found by the run)
  if not_modified(served) then return end
  if #res > settings.max_rows then
    refuse(400, ("the result has %d rows, more than this server's limit of %d: add limit=N or narrow the question")
      :format(#res, settings.max_rows))
  end
  local text, terr = req:text(res)
  if not text then refuse(400, terr) end
  return answer(served, req.output.format, text)
end

local function describe(served, params)
  local out, err = request.output({ format = params.format }, SETTINGS)
  if not out then refuse(400, err) end
  if not_modified(served) then return end
  local text, terr = out:text(served.ds:describe(3))
  if not text then refuse(400, terr) end
  return answer(served, out.format, text)
end

local function health(served)
  return send(200, JSON, ('{"status": "ok", "version": %s, "rows": %d, "columns": %d, "dataset": %s}\n')
    :format(json.string_text(cpf._VERSION), #served.ds, #served.ds:columns(), served.etag), { ETag = served.etag })
end

-- The dashboard: the demo report's sections (cpf demo --html), each a chart and its table, in
-- one page with nothing to fetch (cpf.report). Built once per dataset.
local function dashboard_page(ds)
  return cpf.report { title = settings.title, dataset = ds,
                      sections = report.demo_sections(ds, "fr") }:format("html")
end

-- A dataset that is not the CPF export (no year, region or funders) gets its columns instead.
local function columns_page(ds)
  return ds:describe(3):format("html", { title = settings.title, chart = false })
end

local function dashboard(served)
  if not_modified(served) then return end
  if not served.dashboard then
    local ok, page = pcall(dashboard_page, served.ds)
    served.dashboard = ok and page or columns_page(served.ds)
  end
  return answer(served, "html", served.dashboard)
end

-- ---------------------------------------------------------------- the handler

local function serve()
  local method = ngx.req.get_method()
  local uri = ngx.var.uri
  local route = ROUTES[uri]
  if not route then refuse(404, ("no such endpoint '%s' (/query, /describe, /health, /)"):format(uri:sub(1, 200))) end
  if method ~= "GET" and method ~= "HEAD" then
    return fail(405, ("method %s is not allowed: GET or HEAD"):format(method:sub(1, 20)), { Allow = "GET, HEAD" })
  end
  local target = ngx.var.request_uri or ""
  if #target > settings.max_request then
    refuse(400, ("request: longer than %d bytes"):format(settings.max_request))
  end
  local params = parameters(route)
  local served = current
  if not served then refuse(503, "no dataset is served: see the error log") end
  served.users = served.users + 1
  local ok, err = pcall(function()
    if uri == "/query" then return query(served, params)
    elseif uri == "/describe" then return describe(served, params)
    elseif uri == "/health" then return health(served)
    else return dashboard(served) end
  end)
  release(served)
  if not ok then error(err, 0) end
end

--- In content_by_lua*: answers the request.
function M.handle()
  local ok, err = pcall(serve)
  if ok then return end
  if errors.is(err) and err.status then return fail(err.status, err.msg) end
  ngx.log(ngx.ERR, "cpf: ", tostring(err))
  return fail(500, "internal error")
end

return M
