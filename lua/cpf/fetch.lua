-- cpf.fetch — the current extraction from the publisher's portal (schema.portal: Opendatasoft,
-- Explore API v2.1) into a history folder: the catalog entry is read first and the export downloaded
-- only when the extraction changed; the gzip export goes to a temporary file in the folder,
-- resumed where it stopped (on a retry or the next run); what arrived is checked (gzip
-- complete, the CPF header, the portal's row count) before it becomes a snapshot named by its
-- extraction date, renamed in, and cpf-latest.cpfsnap follows it.
--
-- Each transfer runs on a thread of its own (core.http_job, libcurl), the load (with the
-- gzip inflation) on the loader's (cpf.load_async), the snapshot's writing on its own
-- (core.save_job): fetch_async's job is polled, so that a host's loop stays free.
-- The folder holds, per extraction, cpf-YYYY-MM-DD.cpfsnap and cpf-YYYY-MM-DD.json (what the
-- portal said), and while a download is under way .cpf-fetch.* files.
local core = require "cpf.core"
local schema = require "cpf.schema"
local history = require "cpf.history"
local json = require "cpf.format.json"

local M = {}

local read_file, write_file = history.read_file, history.write_file

-- The first n bytes of a file (never the whole export into Lua).
local function head_of(path, n)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read(n) or ""
  f:close()
  return s
end

-- ---------------------------------------------------------------- the steps

-- Runs a core job to its end from inside the fetch's coroutine: yields (step, done, total,
-- attempt) while it runs; then what it answers.
local running -- the fetch job whose coroutine runs: await keeps its core job there (cancel)
local function await(step, job, err, kind)
  if not job then return nil, err, kind end
  running.current = job
  while true do
    local finished, a, b, c, d = job:poll()
    if finished then return a, b, c, d end
    coroutine.yield(step, a, b, c)
  end
end

local function fail(msg, kind) error({ fetch_error = msg, kind = kind or "io" }, 0) end

-- The portal's catalog entry: {modified =, data_processed =, records_count =}.
local function read_metadata(opts, url)
  local answer, err, kind = await("metadata", core.http_job { url = url, max_body = 4 * 1024 * 1024,
    retries = opts.retries, backoff = opts.backoff, max_wait = opts.max_wait })
  if not answer then fail(err, kind) end
  local doc, jerr = json.decode(answer.body or "")
  if not doc then
    fail(("%s: the answer is not JSON (%s): is --url the portal's address?"):format(url, jerr), "data")
  end
  local d = type(doc.metas) == "table" and type(doc.metas.default) == "table" and doc.metas.default or {}
  for _, field in ipairs { "modified", "records_count" } do
    if d[field] == nil then
      fail(("%s: the answer has no metas.default.%s: is --url the portal's address?"):format(url, field), "data")
    end
  end
  if type(d.records_count) ~= "number" or d.records_count < 0 or d.records_count % 1 ~= 0 then
    fail(("%s: metas.default.records_count is not a count of rows"):format(url), "data")
  end
  return { modified = tostring(d.modified), data_processed = d.data_processed and tostring(d.data_processed),
           records_count = d.records_count }
end

-- The day the extraction was made: the latest value of the file's column that dates it
-- (schema.source.date_column), else the portal's data_processed, else modified.
local function extraction_date(ds, meta)
  local date_column = schema.source.date_column
  if ds:column(date_column) then
    local latest
    for _, v in ipairs(ds:distinct(date_column)) do
      local d = v.value and tostring(v.value):match("^(%d%d%d%d%-%d%d%-%d%d)")
      if d and (not latest or d > latest) then latest = d end
    end
    if latest then return latest end
  end
  local day = "^(%d%d%d%d%-%d%d%-%d%d)"
  local from = (meta.data_processed or ""):match(day) or meta.modified:match(day)
  if not from then
    fail(("the extraction has no %s and the portal no date: cannot name it"):format(date_column), "data")
  end
  return from
end

-- The header is the CPF export's when most of the schema's columns are in it.
local function check_header(ds, url)
  local known, names = 0, {}
  for _, c in ipairs(ds:columns()) do names[c.name] = true end
  local expected = 0
  for _, c in ipairs(schema.columns) do
    if not c.virtual then
      expected = expected + 1
      if names[c.name] then known = known + 1 end
    end
  end
  if known * 4 < expected * 3 then
    fail(("%s: the export's header is not the CPF file's (%d of its %d columns): is --url the %s portal?")
      :format(url, known, expected, schema.source.publisher), "data")
  end
end

local function fetch(opts)
  local dir = opts.dir
  local base = (opts.url or schema.portal.url):gsub("/+$", "")
  local made, merr = core.make_dirs(dir)
  if not made then fail(merr) end
  local meta_url = base .. "/api/explore/v2.1/catalog/datasets/" .. schema.portal.dataset
  local meta = read_metadata(opts, meta_url)
  local part, part_meta, validator = dir .. "/.cpf-fetch.csv.gz", dir .. "/.cpf-fetch.json", dir .. "/.cpf-fetch.etag"
  -- unchanged: an extraction of the folder has the same modified date and row count; what a
  -- run that stopped after writing it left undone is done now (cpf-latest, --keep, cleaning up)
  for _, e in ipairs(history.extractions(dir)) do
    if e.modified == meta.modified and e.records_count == meta.records_count then
      local linked, link_err = history.link_latest(dir)
      if not linked then fail(link_err) end
      if opts.keep then history.keep(dir, opts.keep) end
      os.remove(part)
      os.remove(validator)
      os.remove(part_meta)
      return { status = "unchanged", date = e.date, snapshot = e.snapshot, rows = meta.records_count }
    end
  end
  -- the download, resumed when the partial file is of this same extraction
  -- what the partial file is a download of: the catalog entry's modified date and rows
  local this = ("%s\n%d\n"):format(meta.modified, meta.records_count)
  if read_file(part_meta) ~= this then
    os.remove(part)
    os.remove(validator)
    local ok, werr = write_file(part_meta, this)
    if not ok then fail(werr) end
  end
  local export_url = meta_url .. "/exports/csv?" .. schema.portal.export_query
  local known = read_file(validator)
  local dl, err, kind = await("download", core.http_job { url = export_url, path = part,
    if_range = known and known:match("^[^\n]+"), validator_path = validator,
    retries = opts.retries, backoff = opts.backoff, max_wait = opts.max_wait })
  if not dl then fail(err, kind) end
  local function discard(msg)
    -- what arrived is not the export: the next run downloads it again
    os.remove(part)
    os.remove(validator)
    os.remove(part_meta)
    fail(msg, "data")
  end
  local start = head_of(part, 200):lower()
  if dl.content_type:lower():match("^text/html") or start:find("<html", 1, true) then
    discard(("%s: the portal answered an HTML page, not the export (Content-Type %s)"):format(export_url,
      dl.content_type ~= "" and dl.content_type or "none"))
  end
  if core.file_kind(part) ~= "regular" or head_of(part, 2) ~= "\31\139" then
    discard(("%s: the answer is not a gzip file (Content-Type %s)"):format(export_url,
      dl.content_type ~= "" and dl.content_type or "none"))
  end
  -- loading it checks the gzip stream is whole and every record
  local cpf = require "cpf" -- the public API, which requires nothing of this module
  local ds, lerr = await("load", cpf.load_async(part, { threads = opts.threads }))
  if not ds then discard(("%s: %s"):format(export_url, lerr)) end
  check_header(ds, export_url)
  if #ds ~= meta.records_count then
    local rows = #ds
    ds:close()
    discard(("%s: the export has %d rows, the portal says %d: incomplete, run cpf fetch again")
      :format(export_url, rows, meta.records_count))
  end
  local date = extraction_date(ds, meta)
  local snapshot = history.snapshot_path(dir, date)
  -- written on a thread of its own too (seconds for the real file)
  local saved, serr, skind = await("save", core.save_job(ds, snapshot, "fetched " .. meta.modified))
  ds:close()
  if not saved then fail(serr, skind) end
  local ok, werr = history.record(dir, date, meta, dl.etag)
  if not ok then fail(werr) end
  -- cpf-latest.cpfsnap names the newest extraction (this one, unless an older was fetched)
  local linked, link_err = history.link_latest(dir)
  if not linked then fail(link_err) end
  local gone = opts.keep and history.keep(dir, opts.keep) or {}
  os.remove(part)
  os.remove(validator)
  os.remove(part_meta)
  return { status = "new", date = date, snapshot = snapshot, rows = meta.records_count, bytes = dl.size,
           resumed = dl.resumed, restarted = dl.restarted, attempts = dl.attempts, removed = gone }
end

-- ---------------------------------------------------------------- the job

local Job = {}
Job.__index = Job

--- job:poll() -> false, step, done, total, attempt while it runs ("metadata", "download",
--- "load", "save"); true, answer | true, nil, message, kind once it ended.
function Job:poll()
  if self.answer then return true, self.answer[1], self.answer[2], self.answer[3] end
  if self.cancelled and self.step ~= "save" then -- never a next step once cancelled
    self.answer = { nil, "fetch cancelled", "cancelled" }
    return true, nil, "fetch cancelled", "cancelled"
  end
  local outer = running
  running = self
  local ok, step, a, b, c = coroutine.resume(self.co)
  running = outer
  if ok and coroutine.status(self.co) ~= "dead" then
    self.step = step
    if self.cancelled and step ~= "save" then
      self.answer = { nil, "fetch cancelled", "cancelled" }
      return true, nil, "fetch cancelled", "cancelled"
    end
    return false, step, a, b, c
  end
  if ok then self.answer = { step }
  elseif type(step) == "table" and step.fetch_error then self.answer = { nil, step.fetch_error, step.kind }
  else self.answer = { nil, tostring(step), "io" } end
  return true, self.answer[1], self.answer[2], self.answer[3]
end

--- job:cancel(): stops at the next poll (a transfer within a tenth of a second: the next run
--- resumes it); a snapshot being written is finished first (the job then answers as usual).
function Job:cancel()
  self.cancelled = true
  if self.current and self.step ~= "save" then self.current:cancel() end
end

--- job:wait(progress): polls until it ends, calling progress(step, done, total, attempt).
function Job:wait(progress, interval)
  while true do
    local finished, a, b, c, d = self:poll()
    if finished then return a, b, c end
    if progress then progress(a, b, c, d) end
    core.sleep(interval or 0.1)
  end
end

-- The options: the request table's fetch fields (cpf.request), the load's threads, and a
-- progress function for cpf.fetch; each of one Lua type.
local TYPES = { dir = "string", url = "string", retries = "number", backoff = "number", max_wait = "number",
                keep = "number", threads = "number", progress = "function" }
local FIELDS
local function fields()
  if not FIELDS then
    FIELDS = { threads = TYPES.threads, progress = TYPES.progress }
    -- the request language loads with the first fetch
    for _, f in ipairs(require("cpf.request").fields_of("lua", "fetch")) do FIELDS[f.name] = TYPES[f.name] end
  end
  return FIELDS
end

--- cpf.fetch_async{dir =, url =, retries =, backoff =, max_wait =, threads =} -> job.
function M.fetch_async(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'fetch_async' (table expected)", 2) end
  for k, v in pairs(opts) do
    local want = fields()[k]
    if not want then error(("fetch: unknown option '%s'"):format(tostring(k)), 2) end
    if type(v) ~= want then error(("fetch: option '%s' must be a %s"):format(k, want), 2) end
  end
  if not opts.dir then error("fetch: option 'dir' (the history folder) is required", 2) end
  if opts.keep and (opts.keep < 1 or opts.keep % 1 ~= 0) then
    error("fetch: option 'keep' must be a whole number from 1", 2)
  end
  if opts.retries and (opts.retries < 0 or opts.retries > 100 or opts.retries % 1 ~= 0) then
    error("fetch: option 'retries' must be a whole number from 0 to 100", 2)
  end
  for _, name in ipairs { "backoff", "max_wait" } do
    if opts[name] and not (opts[name] >= 0 and opts[name] <= 86400) then
      error(("fetch: option '%s' must be a number of seconds from 0 to 86400"):format(name), 2)
    end
  end
  if opts.url and not opts.url:match("^https?://[^/%s]+") then
    error(("fetch: option 'url' must be an http:// or https:// address, got '%s'"):format(opts.url), 2)
  end
  local job = setmetatable({}, Job)
  job.co = coroutine.create(function() return fetch(opts) end)
  return job
end

--- cpf.fetch{dir =, url =, progress =, ...} -> answer | nil, message, kind; answer: {status =
--- "new" | "unchanged", date =, snapshot =, rows =, bytes =, resumed =, attempts =}.
function M.fetch(opts)
  local job = M.fetch_async(opts)
  return job:wait(opts.progress)
end

return M
