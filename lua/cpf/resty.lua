-- cpf.resty — a library that serves one snapshot over HTTP inside OpenResty / nginx-lua
-- workers, usable in any nginx.conf (cpf serve writes one that uses it). Per worker, the
-- simplest way:
--
--   init_worker_by_lua_block { require("cpf.resty").init_worker { snapshot = "/srv/cpf.cpfsnap" } }
--   location /cpf/ { content_by_lua_block { require("cpf.resty").handle() } }
--
-- or instances of one's own (lua-resty style: nil, err for bad settings):
--
--   local server = assert(require("cpf.resty").new { snapshot = "/srv/cpf.cpfsnap", prefix = "/cpf" })
--   server:open(); server:watch()       -- in init_worker_by_lua*
--   server:handle()                     -- in content_by_lua*
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

local _M = { _VERSION = cpf._VERSION }

local Server = {}
Server.__index = Server

-- The settings of new(opts), with their defaults and checks (nil when right, else why not).
local function positive(v) if type(v) ~= "number" or v <= 0 then return "must be a number above 0" end end
local function whole(v)
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) then return "must be a whole number from 1" end
end
local SETTINGS = {
  snapshot = { nil, function(v) if type(v) ~= "string" then return "(a path) is required" end end },
  check_every = { 1, positive },      -- seconds between checks that the file was replaced
  max_rows = { 10000, whole },        -- rows a result may have
  max_request = { 4096, whole },      -- bytes of the request line's target (path and query string)
  max_pattern = { 100, whole },       -- bytes of a ~ pattern of where
  title = { cpf.schema.source.title, function(v) if type(v) ~= "string" then return "must be a string" end end },
  refs = { {}, function(v) if type(v) ~= "table" then return "must be a table {name = snapshot path}" end end },
  -- the origin whose pages may read the answers (CORS): "https://host[:port]", "*", or false
  cors = { false, function(v)
    if v ~= false and (type(v) ~= "string" or v == "" or v:find("[%c%s]")) then
      return 'must be false, "*" or an origin such as "https://example.org"'
    end
  end },
  -- false, or {dir =, url =, every = 86400}: one worker fetches the current extraction into the
  -- history folder dir every `every` seconds (cpf.fetch); snapshot is then dir's cpf-latest
  fetch = { false, function(v)
    if v == false then return end
    if type(v) ~= "table" or type(v.dir) ~= "string" or (v.url ~= nil and type(v.url) ~= "string")
       or (v.every ~= nil and (type(v.every) ~= "number" or v.every < 1)) then
      return "must be false or {dir = FOLDER, url = BASE (optional), every = SECONDS (1 or more)}"
    end
  end },
  -- the location the endpoints are under ("/cpf": /cpf/query...), "" for the server's root
  prefix = { "", function(v)
    if type(v) ~= "string" or (v ~= "" and not v:match("^/[%w%-_/%.]*[^/]$")) then
      return 'must be "" or a path such as "/cpf"'
    end
  end },
}

local JSON = format.media_type("json") -- errors and /health
local STREAMED_ROWS = 5000 -- a result of more rows is sent in pieces as it is written (query)

-- The parameters of each endpoint: "list" may repeat, "one" may not. A query's are the request
-- fields of the request table.
local ROUTES = { -- under the server's prefix
  ["/query"] = request.http_parameters(),
  ["/describe"] = { format = "one" },
  ["/health"] = {},
  ["/"] = {},
}

-- ---------------------------------------------------------------- the served dataset

--- A server of one snapshot, or nil, message for a setting it cannot take. opts: snapshot
--- (path, required), check_every (1 s), max_rows (10000), max_request (4096 bytes),
--- max_pattern (100 bytes), title (the dashboard's), refs ({name = snapshot path}: the
--- references requests join by name), prefix ("": the location of its endpoints). Nothing is
--- opened yet: server:open() (the snapshot and the references), server:watch().
function _M.new(opts)
  if type(opts) ~= "table" then return nil, "cpf.resty.new: a table of settings expected" end
  local settings = {}
  for k in pairs(opts) do
    if not SETTINGS[k] then return nil, ("cpf.resty.new: unknown setting '%s'"):format(tostring(k)) end
  end
  for k, spec in pairs(SETTINGS) do
    local v = opts[k]
    if v == nil then v = spec[1] end
    local why = spec[2](v)
    if why then return nil, ("cpf.resty.new: setting '%s' %s"):format(k, why) end
    settings[k] = v
  end
  -- current: the served dataset { ds, signature, etag, users, retired, dashboard }; warned: the
  -- last signature whose snapshot could not be opened (logged once); references: name -> dataset
  local self = setmetatable({ settings = settings, current = nil, warned = nil, references = {} }, Server)
  self.request_settings = { format = "json", reference = function(name) return self:reference(name) end,
                            format_options = { table = { ascii = false } } }
  return self
end

-- What names a snapshot's content: its header (which holds the checksum of its column table,
-- and so of every column's), the same on every machine that serves a copy of the file — so
-- that behind a proxy, any machine answers a client's If-None-Match; its signature otherwise.
local function content_id(path, signature)
  local f = io.open(path, "rb")
  local header = f and f:read(104)
  if f then f:close() end
  if header and #header == 104 and header:sub(1, 8) == core.snapshot_magic then return header end
  return signature
end

local function open_served(settings)
  local path = settings.snapshot
  local signature, err = core.file_signature(path)
  if not signature then return nil, err end
  local id = content_id(path, signature)
  local ds, oerr = cpf.open(path)
  if not ds then return nil, oerr end
  -- replaced between the header read and the open: the ETag would name another file
  if core.file_signature(path) ~= signature then
    ds:close()
    return nil, path .. ": replaced while it was being opened (the next check serves it)"
  end
  local etag = '"' .. ngx.md5(cpf._VERSION .. "\0" .. id):sub(1, 20) .. '"'
  -- /describe's answer, computed once per snapshot on a thread of its own (off the worker's
  -- event loop, at a lower priority than requests) from now on: describe polls it
  local job, jerr = ds:describe_async(3)
  return { ds = ds, signature = signature, etag = etag, users = 0, description_job = job,
           description_error = jerr, description_texts = {} }
end

local function release(served)
  served.users = served.users - 1
  if served.retired and served.users == 0 and not served.ds:is_closed() then
    served.ds:close()
    -- a description still being computed stops at its next column (its thread is joined
    -- when the job is collected)
    if served.description_job then served.description_job:cancel() end
  end
end

local function inode(signature) return signature and signature:match("dev=%d+;ino=%d+") end

-- Retires the served dataset: closed now unless a request still uses it.
local function retire(old)
  old.retired = true
  old.users = old.users + 1
  release(old)
end

--- Checks whether the snapshot was replaced and serves the new one (the timer of watch).
function Server:check()
  local settings, current = self.settings, self.current
  local signature = core.file_signature(settings.snapshot)
  if not signature or (current and signature == current.signature) or signature == self.warned then return end
  if current and inode(signature) == inode(current.signature) then
    -- the mapped file itself was written (cp, >, truncate), not replaced by a rename: its pages
    -- may be gone, and reading them would kill the worker (SIGBUS). Stop serving it now.
    ngx.log(ngx.ERR, "cpf: ", settings.snapshot, " was modified in place (replace it by a rename, as cpf convert "
      .. "does): it is no longer served")
    self.current = nil
    retire(current)
    current = nil
  end
  local new, err = open_served(settings)
  if not new then
    self.warned = signature
    ngx.log(ngx.ERR, "cpf: keeping the served dataset: ", err)
    return
  end
  self.current, self.warned = new, nil
  if current then retire(current) end
end

--- Opens the snapshot and the references: true, or nil, message (the first failure; what
--- opened is kept, and a snapshot that cannot be opened yet is served once check finds it).
function Server:open()
  local first
  local served, err = open_served(self.settings)
  if served then self.current = served else first = err end
  for name, path in pairs(self.settings.refs) do
    local ref, rerr = cpf.open(path)
    if ref then self.references[name] = ref else first = first or ("reference " .. name .. ": " .. rerr) end
  end
  if first then return nil, first end
  return true
end

--- Fetches the current extraction into the fetch setting's folder now, then every `every`
--- seconds (cpf.fetch_async: the transfer, the load and the snapshot's writing on threads of
--- their own, polled each second from an ngx timer; never on the event loop). A new extraction
--- replaces the folder's cpf-latest.cpfsnap by a rename, which every worker's check swaps in.
--- Call it in one worker only (init_worker does, in worker 0). true, or nil, message.
function Server:fetch_every()
  local f = self.settings.fetch
  if not f then return nil, "cpf.resty: no fetch setting" end
  local function run(premature)
    if premature then return end
    -- the whole fetch in this one timer (its coroutine is resumed where it was made, as
    -- ngx_lua wants), polled every second; ngx.sleep leaves the event loop to the requests
    local job = cpf.fetch_async { dir = f.dir, url = f.url }
    while true do
      local finished, answer, err = job:poll()
      if finished then
        if answer and answer.status == "new" then
          ngx.log(ngx.NOTICE, "cpf: fetched the extraction of ", answer.date, " (", answer.rows, " rows) into ",
            answer.snapshot)
        elseif not answer then
          ngx.log(ngx.ERR, "cpf: fetch: ", err)
        end
        break
      end
      if ngx.worker.exiting() then job:cancel() return end
      ngx.sleep(1)
    end
    ngx.timer.at(f.every or 86400, run)
  end
  return ngx.timer.at(0, run)
end

--- Starts the check for a replaced snapshot every check_every seconds (an ngx timer): true,
--- or nil, message.
function Server:watch()
  return ngx.timer.every(self.settings.check_every, function(premature)
    if not premature then self:check() end
  end)
end

-- ---------------------------------------------------------------- responses

-- body: a string (sent with its length), nil (headers only), or a function(print) that sends
-- the body in pieces (chunked: a large answer is never held whole).
local function send(status, content_type, body, extra)
  ngx.status = status
  ngx.header["Content-Type"] = content_type
  ngx.header["X-Content-Type-Options"] = "nosniff"
  ngx.header["Cache-Control"] = "no-cache"
  if ngx.ctx.cpf_cors then -- set by serve: a page of that origin may read this answer
    ngx.header["Access-Control-Allow-Origin"] = ngx.ctx.cpf_cors
    ngx.header["Access-Control-Expose-Headers"] = "ETag, X-Cpf-Note"
    ngx.header["Vary"] = "Origin"
  end
  for k, v in pairs(extra or {}) do ngx.header[k] = v end
  if type(body) == "function" then return body() end
  -- the length known: nginx's gzip leaves answers under gzip_min_length as they are
  if body then ngx.header["Content-Length"] = #body end
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
function Server:reference(name)
  local ref = self.references[name]
  if ref then return ref end
  local names = {}
  for k in pairs(self.references) do names[#names + 1] = k end
  table.sort(names)
  if #names == 0 then
    return nil, "join: a request cannot name a file; this server declares no reference to join "
      .. "(cpf serve --ref NAME=FILE)", "usage"
  end
  return nil, ("join: no reference named '%s' (this server declares: %s)")
    :format(name:sub(1, 40), table.concat(names, ", ")), "usage"
end

-- The request's notes (a partial period its changes compare: what the command line writes on
-- stderr) as X-Cpf-Note headers, one each; a byte a header cannot carry is %-escaped.
local function note_headers(notes)
  if #notes == 0 then return nil end
  local values = {}
  for i, note in ipairs(notes) do
    values[i] = tostring(note):gsub("[^\32-\126]", function(c) return ("%%%02X"):format(c:byte()) end)
  end
  return values
end

local function answer(served, fmt, text, notes)
  local extra = { ETag = served.etag, ["X-Cpf-Note"] = note_headers(notes or {}) }
  if fmt == "html" or fmt == "svg" then
    extra["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
  end
  return send(200, format.media_type(fmt), text, extra)
end

-- ---------------------------------------------------------------- endpoints

-- A ~ pattern a server runs for anyone: short, and with at most one quantifier (* + - ?) and no
-- back-reference, balance or frontier, so that matching a value stays linear-ish (Lua's matcher
-- backtracks: ".-.-.-.-" or "^.?.?.?...$" against long values runs for minutes, and each more
-- quantifier multiplies that).
local function check_pattern(settings, w)
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
  local _, repeats = plain:gsub("[%*%+%-%?]", "")
  if repeats > 1 then
    refuse(400, ("--where '%s': a ~ pattern may repeat one item at most (one of * + - ?)"):format(shown))
  end
end

-- a matching If-None-Match, once the request is known to be right
-- Whether If-None-Match names the served dataset's ETag: a list, "*", and weak tags compared
-- weakly (nginx's gzip makes the ETag it sends weak: W/"...").
local function not_modified(served)
  local header = ngx.var.http_if_none_match
  if not header then return false end
  local matches = header:match("^%s*%*%s*$") ~= nil
  for tag in header:gmatch('%s*(W?/?"[^"]*")') do
    if tag:gsub("^W/", "") == served.etag then matches = true end
  end
  if matches then
    send(304, JSON, nil, { ETag = served.etag })
    return true
  end
end

local function query(self, served, params)
  local settings = self.settings
  for _, f in ipairs(request.fields_of("http")) do
    if f.pattern then
      for _, w in ipairs(params[f.name] or {}) do check_pattern(settings, w) end
    end
  end
  local req, err = request.parse(params, self.request_settings)
  if not req then refuse(400, err) end
  local ok, cerr = req:check(served.ds:columns())
  if not ok then refuse(400, cerr) end
  -- before the query runs: the same request on the same snapshot gives the same bytes (a client
  -- holds this ETag from an answer to it), so a 304 costs no query
  if not_modified(served) then return end
  local res, rerr = req:run(served.ds, nil, { checked = true })
  if not res then refuse(400, rerr) end
  if #res > settings.max_rows then
    refuse(400, ("the result has %d rows, more than this server's limit of %d: add limit=N or narrow the question")
      :format(#res, settings.max_rows))
  end
  if #res > STREAMED_ROWS then
    -- a large answer goes out as the format writes it (format.write's pieces), never whole in
    -- memory; a failure midway aborts the connection: the client sees a cut answer, never a
    -- complete-looking one
    local fmt = req.output.format
    return answer(served, fmt, function()
      local written, werr = req:write(res, { write = function(_, piece)
        local sent, perr = ngx.print(piece)
        -- waits until the client took it: a client that reads slowly never makes the worker
        -- hold the whole answer
        if sent then sent, perr = ngx.flush(true) end
        if not sent then return nil, perr end
        return true
      end })
      if not written then
        ngx.log(ngx.ERR, "cpf: an answer cut midway: ", tostring(werr))
        -- ngx.exit does not come back: the dataset is released here, not after serve's pcall
        release(served)
        ngx.ctx.cpf_released = true
        return ngx.exit(ngx.ERROR)
      end
    end, req:notes(res))
  end
  local text, terr = req:text(res)
  if not text then refuse(400, terr) end
  return answer(served, req.output.format, text, req:notes(res))
end

-- The description of the served snapshot (ds:describe(3)) as its job computed it: until the
-- job is done, a 503 with Retry-After (a client tries again; /health and queries meanwhile
-- answer as usual).
local function description(served)
  if served.description then return served.description end
  local job = served.description_job
  if not job then refuse(500, "cannot describe the snapshot: " .. tostring(served.description_error)) end
  local finished, res, err, kind = job:poll()
  if not finished then
    errors.raise("io", ("the description of this snapshot is being computed (%d of %d columns done): "
      .. "try again in a moment"):format(res, err), { status = 503, headers = { ["Retry-After"] = "2" } })
  end
  if not res then
    -- replaced while described: the next check serves the new file, with its own description
    if kind == "io" then refuse(503, "cannot describe the snapshot: " .. err) end
    refuse(500, "cannot describe the snapshot: " .. err)
  end
  served.description, served.description_job = res, nil
  return res
end

-- Each format's text is made once per snapshot.
local function describe(self, served, params)
  local out, err = request.output({ format = params.format }, self.request_settings)
  if not out then refuse(400, err) end
  if not_modified(served) then return end
  local text = served.description_texts[out.format]
  if not text then
    local terr
    text, terr = out:text(description(served))
    if not text then refuse(400, terr) end
    served.description_texts[out.format] = text
  end
  return answer(served, out.format, text)
end

local function health(served)
  return send(200, JSON, ('{"status": "ok", "version": %s, "rows": %d, "columns": %d, "dataset": %s}\n')
    :format(json.string_text(cpf._VERSION), #served.ds, #served.ds:columns(), served.etag), { ETag = served.etag })
end

-- The dashboard: the demo report's sections (cpf demo --html), each a chart and its table, in
-- one page with nothing to fetch (cpf.report). Built once per dataset.
local function dashboard_page(settings, ds)
  return cpf.report { title = settings.title, dataset = ds,
                      sections = report.demo_sections(ds, "fr") }:format("html")
end

-- A dataset that is not the CPF export (no year, region or funders) gets its columns instead.
local function columns_page(settings, served)
  return description(served):format("html", { title = settings.title, chart = false })
end

local function dashboard(self, served)
  if not_modified(served) then return end
  if not served.dashboard then
    local ok, page = pcall(dashboard_page, self.settings, served.ds)
    served.dashboard = ok and page or columns_page(self.settings, served)
  end
  return answer(served, "html", served.dashboard)
end

-- ---------------------------------------------------------------- the handler

local function serve(self)
  local settings = self.settings
  local method = ngx.req.get_method()
  local uri = ngx.var.uri
  local prefix = settings.prefix
  ngx.ctx.cpf_cors = settings.cors or nil
  if method == "OPTIONS" and settings.cors then -- a browser's preflight: what a page may ask
    return send(204, JSON, nil, { ["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS",
      ["Access-Control-Allow-Headers"] = "If-None-Match", ["Access-Control-Max-Age"] = "86400" })
  end
  local route = uri:sub(1, #prefix) == prefix and ROUTES[uri:sub(#prefix + 1) == "" and "/" or uri:sub(#prefix + 1)]
  if not route then
    refuse(404, ("no such endpoint '%s' (%s/query, %s/describe, %s/health, %s/)")
      :format(uri:sub(1, 200), prefix, prefix, prefix, prefix))
  end
  uri = uri:sub(#prefix + 1)
  if method ~= "GET" and method ~= "HEAD" then
    return fail(405, ("method %s is not allowed: GET or HEAD"):format(method:sub(1, 20)), { Allow = "GET, HEAD" })
  end
  local target = ngx.var.request_uri or ""
  if #target > settings.max_request then
    refuse(400, ("request: longer than %d bytes"):format(settings.max_request))
  end
  local params = parameters(route)
  local served = self.current
  if not served then refuse(503, "no dataset is served: see the error log") end
  served.users = served.users + 1
  local ok, err = pcall(function()
    if uri == "/query" then return query(self, served, params)
    elseif uri == "/describe" then return describe(self, served, params)
    elseif uri == "/health" then return health(served)
    else return dashboard(self, served) end
  end)
  if not ngx.ctx.cpf_released then release(served) end
  if not ok then error(err, 0) end
end

--- In content_by_lua*: answers the request (every error a JSON 4xx or 500, never a raise).
function Server:handle()
  local ok, err = pcall(serve, self)
  if ok then return end
  if errors.is(err) and err.status then return fail(err.status, err.msg, err.headers) end
  ngx.log(ngx.ERR, "cpf: ", tostring(err))
  return fail(500, "internal error")
end

-- ---------------------------------------------------------------- the worker's default server

local default -- the server init_worker made, which handle() uses

--- In init_worker_by_lua*: the worker's default server (new(opts), raising on a bad setting),
--- its snapshot opened (a failure is logged: 503 until a good snapshot replaces it) and
--- watched.
function _M.init_worker(opts)
  local server, err = _M.new(opts)
  if not server then error(err, 2) end
  local ok, oerr = server:open()
  -- a history folder fetched into holds no snapshot before its first fetch: 503 until then
  if not ok and not (server.settings.fetch and not core.file_signature(server.settings.snapshot)) then
    ngx.log(ngx.ERR, "cpf: ", oerr)
  end
  local watching, werr = server:watch()
  if not watching then ngx.log(ngx.ERR, "cpf: cannot start the snapshot check: ", werr) end
  if server.settings.fetch and ngx.worker.id() == 0 then -- one worker fetches for all
    local fetching, ferr = server:fetch_every()
    if not fetching then ngx.log(ngx.ERR, "cpf: cannot start fetching: ", ferr) end
  end
  default = server
end

--- In content_by_lua*: the default server answers the request.
function _M.handle()
  if not default then
    return fail(500, "cpf.resty: init_worker was not called in this worker (init_worker_by_lua*)")
  end
  return default:handle()
end

return _M
