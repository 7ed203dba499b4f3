-- cpf — fast analysis of the CPF "formations engagées" open dataset: the public Lua API.
-- The C core (cpf.core) loads and stores the columns; this layer adds the CPF knowledge.
local core = require "cpf.core"
local schema = require "cpf.schema"
local query = require "cpf.query"
local result = require "cpf.result"
local history = require "cpf.history"

local cpf = {
  _VERSION = "0.1.0",
  schema = schema,
}

local dataset_mt = core.dataset_metatable
local Dataset = dataset_mt.__index -- methods written in C, completed below

-- cpf.load's options: the load fields of the request table (cpf.request), read when a load is
-- given options (a script that only opens snapshots never compiles the request language).
local load_option_set
local function load_options()
  if not load_option_set then
    load_option_set = {}
    -- the request table loads with the first load given options
    for _, f in ipairs(require("cpf.request").fields_of("lua", "load")) do load_option_set[f.name] = true end
  end
  return load_option_set
end

-- level: where the error points, 3 (the default) being the caller of the function calling this
local function check_options(opts, allowed, fname, level)
  level = level or 3
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #2 to '%s' (table expected, got %s)"):format(fname, type(opts)), level)
  end
  for k in pairs(opts) do
    if not allowed[k] then error(("%s: unknown option '%s'"):format(fname, tostring(k)), level) end
  end
  return opts
end

local function human_bytes(n)
  if n >= 1024 * 1024 * 1024 then return ("%.1f GB"):format(n / 1024 ^ 3) end
  if n >= 1024 * 1024 then return ("%.1f MB"):format(n / 1024 ^ 2) end
  if n >= 1024 then return ("%.1f kB"):format(n / 1024) end
  return ("%d B"):format(n)
end
cpf.human_bytes = human_bytes

-- A progress line on stderr, rewritten in place: bytes read, rows/s, percent.
local function stderr_progress(path)
  local clock = core.clock
  local start = clock()
  local shown = false
  return function(done, total, rows)
    local elapsed = clock() - start
    if done < total and elapsed < 1 and not shown then return end -- quick loads stay silent
    shown = true
    io.stderr:write(("\r%s: %s / %s  %d rows  %.0f rows/s  %3.0f%%%s"):format(
      path, human_bytes(done), human_bytes(total), rows,
      elapsed > 0 and rows / elapsed or 0, total > 0 and 100 * done / total or 100,
      done >= total and "\n" or ""))
  end
end

local load_cached, cache_tag -- defined with the snapshots below

-- A CSV's source and the columns its header gives (what cpf.load and cpf.header share):
-- source, specs, separator, or nil, message, kind.
-- The columns an open CSV source's header gives: specs, separator, or nil, message, kind.
local function read_header(source, path, opts)
  local labels, sep, kind = source:header(opts.sep, opts.encoding)
  if not labels then return nil, sep, kind end
  local specs, err
  specs, err, kind = schema.resolve(labels, opts.types)
  if not specs then return nil, path .. ":1: " .. err, kind end
  return specs, sep
end

local function open_csv(path, opts)
  local source, err, kind = core.open(path)
  if not source then return nil, err, kind end
  local specs, sep
  specs, sep, kind = read_header(source, path, opts)
  if not specs then source:close() return nil, sep, kind end
  return source, specs, sep
end

--- The columns a CSV would load as, from its header alone: { {name, label, type}, ... } in file
--- order, type "auto" where the values will decide. Only for files that can be read twice: a
--- pipe or a device gives nil, message (its header would be consumed). opts: sep, types.
function cpf.header(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'header' (string expected, got %s)"):format(type(path)), 2)
  end
  opts = check_options(opts, { sep = true, types = true, encoding = true }, "header")
  local file, err = core.file_kind(path)
  if file ~= "regular" then
    if not file then return nil, err, "io" end
    return nil, ("%s: the header of a %s cannot be read ahead of its rows"):format(path, file), "usage"
  end
  local source, specs, kind = open_csv(path, opts)
  if not source then return nil, specs, kind end
  source:close()
  local columns = {}
  for i, s in ipairs(specs) do columns[i] = { name = s.name, label = s.label, type = s.type } end
  return columns
end

-- The options of cpf.load and cpf.load_async, checked (errors at the caller of those) and
-- completed: progress is a function or nil.
local function checked_load_options(opts, fname, path)
  if opts ~= nil and type(opts) == "table" and next(opts) == nil then opts = nil end
  opts = check_options(opts, opts ~= nil and load_options() or {}, fname, 4)
  if opts.columns ~= nil and (type(opts.columns) ~= "table" or #opts.columns == 0) then
    error(fname .. ": option 'columns' must be a non-empty list of column names", 3)
  end
  if opts.types ~= nil and type(opts.types) ~= "table" then
    error(fname .. ": option 'types' must be a table {column = type}", 3)
  end
  local progress = opts.progress
  if progress == true then progress = stderr_progress(path)
  elseif progress ~= nil and progress ~= false and type(progress) ~= "function" then
    error(fname .. ": option 'progress' must be a function or true", 3)
  end
  if progress == false then progress = nil end
  for _, key in ipairs { "sep", "decimal" } do
    local v = opts[key]
    if v ~= nil and (type(v) ~= "string" or #v ~= 1) then
      error(("%s: option '%s' must be a one-character string"):format(fname, key), 3)
    end
  end
  local bad_sep = ({ ["\0"] = "a NUL byte", ['"'] = "the quote", ["\r"] = "a line break",
                     ["\n"] = "a line break" })[opts.sep]
  if bad_sep then
    error(("%s: option 'sep' cannot be %s (leave it out to detect the separator)"):format(fname, bad_sep), 3)
  end
  if opts.decimal ~= nil and opts.decimal ~= "." and opts.decimal ~= "," then
    error(fname .. ": option 'decimal' must be \".\" or \",\"", 3)
  end
  local th = opts.thousands
  if th ~= nil and th ~= " " and th ~= "." and th ~= "," and th ~= "'" and th ~= "none" then
    error(fname .. [[: option 'thousands' must be " ", ".", ",", "'" or "none"]], 3)
  end
  if th ~= nil and th ~= "none" and (th == opts.decimal or th == (opts.sep or "")) then
    error(("%s: option 'thousands' cannot be the %s too"):format(fname, th == opts.decimal and "decimal mark"
      or "separator"), 3)
  end
  local enc = opts.encoding
  if enc ~= nil and enc ~= "utf-8" and enc ~= "cp1252" and enc ~= "latin1" then
    error(fname .. [[: option 'encoding' must be "utf-8", "cp1252" or "latin1"]], 3)
  end
  if opts.on_error ~= nil and opts.on_error ~= "fail" and opts.on_error ~= "skip" then
    error(fname .. [[: option 'on_error' must be "fail" or "skip"]], 3)
  end
  local max = opts.max_rejects
  if max ~= nil and (type(max) ~= "number" or max ~= math.floor(max) or max < 0 or max >= 2^53) then
    error(fname .. ": option 'max_rejects' must be a whole number from 0", 3)
  end
  local threads = opts.threads
  if threads ~= nil
     and (type(threads) ~= "number" or threads ~= math.floor(threads) or threads < 1 or threads > 64) then
    error(fname .. ": option 'threads' must be a whole number from 1 to 64", 3)
  end
  if opts.parser ~= nil and opts.parser ~= "auto" and opts.parser ~= "libcsv" then
    error(fname .. ": option 'parser' must be \"auto\" or \"libcsv\"", 3)
  end
  return opts, progress
end

-- The source of a CSV and the columns to load from it, with the core's load options:
-- source, specs, core options, or nil, message, kind.
local function core_options(sep, opts, progress)
  return { sep = sep, decimal = opts.decimal, thousands = opts.thousands, progress = progress,
           libcsv_only = opts.parser == "libcsv", threads = opts.threads, on_error = opts.on_error,
           max_rejects = opts.max_rejects, encoding = opts.encoding }
end

local function prepare_load(path, opts, progress)
  local source, specs, sep = open_csv(path, opts)
  if not source then return nil, specs, sep end -- sep: the kind
  local err, kind
  if opts.columns then specs, err, kind = schema.select(specs, opts.columns) end
  if not specs then source:close() return nil, path .. ":1: " .. err, kind end
  return source, specs, core_options(sep, opts, progress)
end

--- Load a delimited file into a dataset.
--- opts: sep (one character; detected from the header by default), decimal ("." or ","),
--- types ({column = type} overrides), progress (function(bytes_done, bytes_total, rows), or
--- true for a progress line on stderr). Returns the dataset, or nil and "path:row:col: message".
function cpf.load(path, opts)
  if type(path) == "table" then return cpf.load_many(path, opts) end
  if type(path) ~= "string" then
    error(("bad argument #1 to 'load' (string expected, got %s)"):format(type(path)), 2)
  end
  local progress
  opts, progress = checked_load_options(opts, "load", path)
  path = history.data_path(path) -- a history folder: its latest extraction
  if opts.cache then return load_cached(path, opts) end
  local source, specs, core_opts = prepare_load(path, opts, progress)
  if not source then return nil, specs, core_opts end
  local ds, err, kind = source:load(specs, core_opts)
  source:close() -- close the file and free what was read of it now, not at the next collection
  return ds, err, kind
end

-- ---------------------------------------------------------------- a data file opened once

local Source = {}
Source.__index = Source

--- cpf.source(path [, opts]): a data file opened once for what a front end does before it
--- loads — read the columns, check a request against them, then load only the columns it
--- reads (cpf query) — with cpf.load's options but cache and columns. A snapshot (by its
--- extension or its first bytes) is opened as cpf.open does. src.snapshot; src:columns() (as
--- cpf.header gives them; a snapshot's as ds:columns()); src:load([columns]) -> the dataset,
--- or nil, message, kind (the file is closed then; a snapshot has all its columns);
--- src:close(). Returns nil, message, kind when the file cannot be opened or its header read.
function cpf.source(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'source' (string expected, got %s)"):format(type(path)), 2)
  end
  local progress
  opts, progress = checked_load_options(opts, "source", path)
  path = history.data_path(path) -- a history folder: its latest extraction
  if opts.cache or opts.columns then
    error(("source: option '%s' is not for source (cache: cpf.load; columns: src:load)")
      :format(opts.cache and "cache" or "columns"), 2)
  end
  local source, err, kind
  if not path:match("%.cpfsnap$") then source, err, kind = core.open(path) end
  -- a snapshot: seen by its first bytes when it opened as a file, else by cpf.is_snapshot (a
  -- large one may have no line break in the first MiB a CSV's header must end within)
  if not source or source:starts_with(core.snapshot_magic) then
    if source then source:close() end
    if not cpf.is_snapshot(path) then return nil, err, kind end
    local ds, oerr, okind = cpf.open(path)
    if not ds then return nil, oerr, okind end
    return setmetatable({ path = path, snapshot = true, ds = ds }, Source)
  end
  local specs, sep
  specs, sep, kind = read_header(source, path, opts)
  if not specs then source:close() return nil, sep, kind end
  return setmetatable({ path = path, snapshot = false, source = source, specs = specs, sep = sep, opts = opts,
                        progress = progress }, Source)
end

function Source:columns()
  if self.snapshot then
    if not self.ds then error("source: already loaded or closed", 2) end
    return self.ds:columns()
  end
  local columns = {}
  for i, s in ipairs(self.specs) do columns[i] = { name = s.name, label = s.label, type = s.type } end
  return columns
end

function Source:load(columns)
  if self.snapshot then
    local ds = self.ds
    if not ds then error("source: already loaded or closed", 2) end
    self.ds = nil
    return ds
  end
  local source = self.source
  if not source then error("source: already loaded or closed", 2) end
  if columns ~= nil and (type(columns) ~= "table" or #columns == 0) then
    error("bad argument #1 to 'load' (a non-empty list of column names expected)", 2)
  end
  self.source = nil
  local specs, err, kind = self.specs, nil, nil
  if columns then specs, err, kind = schema.select(specs, columns) end
  if not specs then source:close() return nil, self.path .. ":1: " .. err, kind end
  local ds
  ds, err, kind = source:load(specs, core_options(self.sep, self.opts, self.progress))
  source:close() -- close the file and free what was read of it now, not at the next collection
  return ds, err, kind
end

function Source:close()
  if self.source then self.source:close() self.source = nil end
  if self.ds then self.ds:close() self.ds = nil end
end

-- A background load (cpf.load_async): job:poll(), job:wait(), job:cancel().
local Job = {}
Job.__index = Job

local function finished_job(path, ds, err, kind)
  return setmetatable({ path = path, answer = { ds, err, kind } }, Job)
end

-- The load's answer, kept: the dataset (saved as the cache first, when asked), or nil, message, kind.
function Job:finish(ds, err, kind)
  if ds and self.cache then ds:save(self.cache.snapshot, self.cache.tag) end -- best effort, as load_cached
  self.answer, self.core_job = { ds, err, kind }, nil
  return true, ds, err, kind
end

--- false, bytes_done, bytes_total, rows while the load runs; then true, dataset, or true, nil,
--- message, kind ("cancelled" after job:cancel()). Never blocks.
function Job:poll()
  local a = self.answer
  if a then return true, a[1], a[2], a[3] end
  local finished, ds, err, kind = self.core_job:poll()
  if not finished then return false, ds, err, kind end
  return self:finish(ds, err, kind)
end

--- Blocks until the load ends; returns what poll returns then.
function Job:wait()
  local a = self.answer
  if a then return true, a[1], a[2], a[3] end
  local _, ds, err, kind = self.core_job:wait()
  return self:finish(ds, err, kind)
end

--- Stops the load at its next checkpoint (every few MB): poll then answers true, nil,
--- "path: load cancelled", "cancelled". A finished job keeps its answer.
function Job:cancel()
  if self.core_job then self.core_job:cancel() end
end

function Job:__tostring()
  -- through poll, which keeps the answer: printing a job never loses its dataset
  local finished, done, total = self:poll()
  local a = self.answer
  if finished then
    return ("cpf load job %s: %s"):format(self.path, a[1] and "done" or ("failed: " .. tostring(a[2])))
  end
  return ("cpf load job %s: loading, %s / %s"):format(self.path, human_bytes(done), human_bytes(total))
end

--- Load in the background: the CSV is read by cpf's own threads, which never call Lua, and the
--- call returns at once with a job (see Job); a snapshot, or a valid cache with opts.cache,
--- opens at once (milliseconds) into a finished job. Options as cpf.load but progress: poll the
--- job. Returns nil, message, kind when the file cannot be opened or its header read. A job
--- that is collected, or whose Lua state closes, cancels its load and waits for its threads.
function cpf.load_async(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'load_async' (%s)"):format(type(path) == "table"
      and "one path: several files load with cpf.load" or ("string expected, got " .. type(path))), 2)
  end
  opts = checked_load_options(opts, "load_async", path)
  if opts.progress ~= nil then
    error("load_async: option 'progress' is not for load_async: job:poll() gives the progress", 2)
  end
  path = history.data_path(path) -- a history folder: its latest extraction
  if cpf.is_snapshot(path) then
    local ds, err, kind = cpf.open(path)
    if not ds then return nil, err, kind end
    return finished_job(path, ds)
  end
  -- a pipe, FIFO or device is read whole before its load starts, which would block here
  local file_kind = core.file_kind(path) -- nil when missing: the open below says why, as cpf.load
  if file_kind and file_kind ~= "regular" then
    return nil, ("%s: a %s cannot load in the background (cpf.load reads it)"):format(path, file_kind), "usage"
  end
  local cache
  if opts.cache then
    local tag, err = cache_tag(path, opts)
    if not tag then return nil, err, "io" end
    local snapshot = path .. ".cpfsnap"
    local ds, found = core.open_snapshot(snapshot, true)
    if ds and found == tag then return finished_job(path, ds) end
    if ds then ds:close() end
    cache = { snapshot = snapshot, tag = tag }
  end
  local source, specs, core_opts = prepare_load(path, opts, nil)
  if not source then return nil, specs, core_opts end
  local core_job, err, kind = source:load_async(specs, core_opts)
  if not core_job then return nil, err, kind end
  return setmetatable({ path = path, core_job = core_job, cache = cache }, Job)
end

-- Conditions, keys, aggregates and measures (see cpf.query).
for _, name in ipairs { "eq", "gt", "ge", "lt", "le", "between", "one_of", "prefix", "match",
                        "is_null", "not_null", "not_", "any", "year", "semester", "quarter", "month",
                        "month_of_year", "bucket", "key",
                        "family", "count", "sum", "mean", "min", "max", "distinct", "median",
                        "quantile", "ratio", "wmean", "share", "filtered", "combine", "reduce" } do
  cpf[name] = query[name]
end
cpf.measures = query.measures

--- cpf.result(columns [, rows [, keys [, kinds]]]): a result from column names and row tables
--- (kinds: {column = "count" | "money" | "rate" | "number" | "key"} for the display formats),
--- checked here so that a wrong argument fails at the call, not in a later format.
function cpf.result(columns, rows, keys, kinds)
  local function list_of_names(v, argn, what)
    if type(v) ~= "table" then
      error(("bad argument #%d to 'result' (%s expected, got %s)"):format(argn, what, type(v)), 3)
    end
    for i, name in ipairs(v) do
      if type(name) ~= "string" then
        error(("bad argument #%d to 'result' (%s: entry %d is a %s)"):format(argn, what, i, type(name)), 3)
      end
    end
  end
  list_of_names(columns, 1, "list of column names")
  if rows ~= nil then
    if type(rows) ~= "table" then
      error(("bad argument #2 to 'result' (list of rows expected, got %s)"):format(type(rows)), 2)
    end
    for i, row in ipairs(rows) do
      if type(row) ~= "table" then
        error(("bad argument #2 to 'result' (row %d is a %s, a table expected)"):format(i, type(row)), 2)
      end
    end
  end
  if keys ~= nil then
    list_of_names(keys, 3, "list of key column names")
    local known = {}
    for _, c in ipairs(columns) do known[c] = true end
    for _, k in ipairs(keys) do
      if not known[k] then error(("bad argument #3 to 'result' (key '%s' is not a column)"):format(k), 2) end
    end
  end
  if kinds ~= nil then
    if type(kinds) ~= "table" then
      error(("bad argument #4 to 'result' ({column = kind} expected, got %s)"):format(type(kinds)), 2)
    end
    for c, k in pairs(kinds) do
      if not query.value_kinds[k] then
        error(("bad argument #4 to 'result' (kind of '%s' must be count, money, rate, number or key)")
          :format(tostring(c)), 2)
      end
    end
  end
  return result.new(columns, rows, keys, nil, kinds)
end

-- ds.group_by("annee") written with a dot passes the key as the dataset: say so at the call.
local function check_dataset(self, method)
  if getmetatable(self) ~= dataset_mt then
    error(("bad argument #1 to '%s' (dataset expected, got %s: call it as ds:%s(...))")
      :format(method, type(self), method), 3)
  end
end

--- A new query on the dataset (plans are immutable: each call returns a new query).
function Dataset:query() check_dataset(self, "query") return query.new(self) end
function Dataset:where(...) check_dataset(self, "where") return query.new(self):where(...) end
function Dataset:group_by(...) check_dataset(self, "group_by") return query.new(self):group_by(...) end
function Dataset:agg(spec) check_dataset(self, "agg") return query.new(self):agg(spec) end
--- One-row result of aggregates over the whole dataset: ds:run{dossiers = cpf.sum "nb_dossiers"}
function Dataset:run(spec) check_dataset(self, "run") return query.new(self):agg(spec):run() end

--- Funder split in long form: one row per funder (and per group of the query, if any) with
--- montant (Σ part), part (share of Σ montant_engage) and dossiers (files co-funded; nil for
--- France compétences, which the export does not count separately).
function Dataset:funders(q)
  check_dataset(self, "funders")
  q = q or query.new(self)
  if getmetatable(q) ~= query.Query then error("bad argument #1 to 'funders' (query expected)", 2) end
  local spec = { { "montant_total", query.sum "montant_engage" } }
  for _, f in ipairs(schema.funders) do
    local part, files = schema.funder_columns(f)
    spec[#spec + 1] = { "part_" .. f, query.sum(part) }
    if files then spec[#spec + 1] = { "dossiers_" .. f, query.sum(files) } end
  end
  -- the query's keys and conditions only: its own aggregates, order and limit do not apply
  local base = q:agg {}
  base.agg_list, base.order, base.max_rows, base.limit_per, base.having_list = {}, {}, nil, nil, nil
  local wide = base:agg(spec):run()
  local key_names = {}
  for _, c in ipairs(wide:columns()) do
    if c == "montant_total" then break end
    key_names[#key_names + 1] = c
  end
  local rows = {}
  for _, r in ipairs(wide) do
    for _, f in ipairs(schema.funders) do
      local row = {}
      for _, k in ipairs(key_names) do row[k] = r[k] end
      row.financeur = f
      row.montant = r["part_" .. f]
      row.part = (row.montant and r.montant_total and r.montant_total ~= 0) and row.montant / r.montant_total or nil
      row.dossiers = r["dossiers_" .. f]
      rows[#rows + 1] = row
    end
  end
  local columns = {}
  for i, k in ipairs(key_names) do columns[i] = k end
  for _, c in ipairs { "financeur", "montant", "part", "dossiers" } do columns[#columns + 1] = c end
  local keys = { (table.unpack or unpack)(key_names) }
  keys[#keys + 1] = "financeur"
  local kinds = { financeur = "key", montant = "money", part = "rate", dossiers = "count" }
  for _, k in ipairs(key_names) do kinds[k] = "key" end
  return result.new(columns, rows, keys, nil, kinds)
end

local SNAPSHOT_MAGIC = core.snapshot_magic -- the first bytes of every snapshot

--- Whether a path names a snapshot rather than a CSV: by its extension .cpfsnap, or by its
--- first bytes. Only a regular file is read ahead: opening a FIFO would block, and reading a
--- pipe or a device would take bytes that its load needs.
function cpf.is_snapshot(path)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'is_snapshot' (string expected, got %s)"):format(type(path)), 2)
  end
  path = history.data_path(path) -- a history folder: its latest extraction
  if path:match("%.cpfsnap$") then return true end
  if core.file_kind(path) ~= "regular" then return false end
  local f = io.open(path, "rb")
  if not f then return false end
  local ok, head = pcall(f.read, f, #SNAPSHOT_MAGIC)
  f:close()
  return ok and head == SNAPSHOT_MAGIC
end

--- Open a snapshot written by ds:save: the file is mapped read-only and its columns are used in
--- place. The column table is checked now; each column's values when first read (ds:verify()
--- checks them all at once), with opts.verify (default true) their checksums too.
function cpf.open(path, opts)
  if type(path) ~= "string" then
    error(("bad argument #1 to 'open' (string expected, got %s)"):format(type(path)), 2)
  end
  opts = check_options(opts, { verify = true }, "open")
  -- a history folder: its latest extraction
  local ds, err, kind = core.open_snapshot(history.data_path(path), opts.verify ~= false)
  if not ds then return nil, err, kind end
  return ds
end

-- A load option's value as the cache's tag writes it: a list of names sorted (the columns
-- asked for), a map as its sorted NAME\0VALUE pairs (types), anything else as text. Names
-- may hold any byte but NUL.
local function tag_value(v)
  if type(v) ~= "table" then return tostring(v) end
  local items = {}
  if #v > 0 then
    for i, x in ipairs(v) do items[i] = tostring(x) end
    table.sort(items)
    return table.concat(items, "\0")
  end
  for k, x in pairs(v) do items[#items + 1] = tostring(k) .. "\0" .. tostring(x) end
  table.sort(items)
  return table.concat(items, "\1")
end

-- What a cached snapshot must have been made from: the CSV's identity (size, modification and
-- change times, inode) and every load option that changes what is loaded (the load fields
-- marked `tag` in the request table: the columns asked for among them, so that a snapshot of
-- some columns never answers for the whole file).
function cache_tag(path, opts)
  local signature, err = core.file_signature(path)
  if not signature then return nil, err end
  local parts = { "cpf " .. cpf._VERSION, signature }
  -- the request table, loaded with the first cached load (load_options above says why)
  for _, name in ipairs(require("cpf.request").load_tag_fields()) do
    parts[#parts + 1] = name .. "=" .. tag_value(opts[name])
  end
  return table.concat(parts, ";")
end

--- cpf.load(csv, {cache = true}): reuse the snapshot csv .. ".cpfsnap" while the CSV (size,
--- modification and change times, inode) and the load options (columns included) are
--- unchanged; otherwise load the CSV and write the snapshot for next time (a snapshot that
--- cannot be written is skipped: the load still works).
function load_cached(path, opts)
  local tag, err = cache_tag(path, opts)
  if not tag then return nil, err, "io" end
  local snap = path .. ".cpfsnap"
  local ds, found = core.open_snapshot(snap, true)
  if ds and found == tag then return ds end
  if ds then ds:close() end
  local plain = {}
  for k, v in pairs(opts) do if k ~= "cache" then plain[k] = v end end
  local kind
  ds, err, kind = cpf.load(path, plain)
  if not ds then return nil, err, kind end
  ds:save(snap, tag)
  return ds
end

--- Load a CSV and write it as a snapshot (default path: csv .. ".cpfsnap"), tagged like the
--- cache's so that cpf.load(csv, {cache = true}) reuses it. Returns the dataset, or nil, message.
function cpf.convert(csv, out, opts)
  if type(csv) ~= "string" then
    error(("bad argument #1 to 'convert' (string expected, got %s)"):format(type(csv)), 2)
  end
  if out ~= nil and type(out) ~= "string" then
    error(("bad argument #2 to 'convert' (string expected, got %s)"):format(type(out)), 2)
  end
  opts = check_options(opts, opts ~= nil and load_options() or {}, "convert")
  if out and core.same_file(csv, out) then
    return nil, out .. ": is an input file: refusing to overwrite it", "usage"
  end
  local plain = {}
  for k, v in pairs(opts) do if k ~= "cache" then plain[k] = v end end
  local tag, err = cache_tag(csv, plain)
  if not tag then return nil, err, "io" end
  local ds, kind
  ds, err, kind = cpf.load(csv, plain)
  if not ds then return nil, err, kind end
  local ok
  ok, err, kind = ds:save(out or csv .. ".cpfsnap", tag)
  if not ok then ds:close() return nil, err, kind end
  return ds
end

--- Several extractions with the same columns as one dataset, with a "source" column holding
--- each row's file path. Returns the dataset, or nil and the first error.
function cpf.load_many(paths, opts)
  if #paths == 0 then error("bad argument #1 to 'load' (list of paths is empty)", 3) end
  local parts = {}
  local function close_all() for _, d in ipairs(parts) do d:close() end end
  for i, p in ipairs(paths) do
    if type(p) ~= "string" then
      close_all()
      error(("bad argument #1 to 'load' (path %d is a %s)"):format(i, type(p)), 3)
    end
    local ds, err, kind = cpf.load(p, opts)
    if not ds then close_all() return nil, err, kind end
    if ds:column("source") then
      close_all()
      ds:close()
      return nil, p .. ":1: has a column named 'source', which cpf.load adds for several files", "data"
    end
    parts[i] = ds
  end
  local ds, err, kind = core.concat(parts, paths)
  close_all()
  return ds, err, kind
end

--- What changed between two extractions: per key, each measure's old and new value and the
--- difference new - old (a group missing on one side counts as 0 there; both missing: nil).
function cpf.compare(old, new, keys, measures)
  if type(keys) == "string" then keys = { keys } end
  if type(keys) ~= "table" then error("bad argument #3 to 'compare' (key or list of keys expected)", 2) end
  if type(measures) == "string" then measures = { measures } end
  if type(measures) ~= "table" then error("bad argument #4 to 'compare' (measures expected)", 2) end
  local unpack = table.unpack or unpack
  local a = old:group_by(unpack(keys)):agg(measures):run()
  local b = new:group_by(unpack(keys)):agg(measures):run()
  -- the result has the key columns first, then the measures
  local key_names, measure_names = {}, {}
  for i, c in ipairs(a:columns()) do
    if i <= #keys then key_names[#key_names + 1] = c else measure_names[#measure_names + 1] = c end
  end
  local function key_of(r)
    local t = {}
    for i, k in ipairs(key_names) do t[i] = tostring(r[k]) .. "\0" .. type(r[k]) end
    return table.concat(t, "\1")
  end
  local rows, index = {}, {}
  local function row_for(r)
    local k = key_of(r)
    local row = index[k]
    if not row then
      row = {}
      for _, name in ipairs(key_names) do row[name] = r[name] end
      index[k] = row
      rows[#rows + 1] = row
    end
    return row
  end
  for _, r in ipairs(a) do
    local row = row_for(r)
    for _, m in ipairs(measure_names) do row[m .. "_old"] = r[m] end
  end
  for _, r in ipairs(b) do
    local row = row_for(r)
    for _, m in ipairs(measure_names) do row[m .. "_new"] = r[m] end
  end
  local out_columns = {}
  for _, k in ipairs(key_names) do out_columns[#out_columns + 1] = k end
  for _, m in ipairs(measure_names) do
    for _, suffix in ipairs { "_old", "_new", "_diff" } do out_columns[#out_columns + 1] = m .. suffix end
    for _, row in ipairs(rows) do
      local o, n = row[m .. "_old"], row[m .. "_new"]
      if o ~= nil or n ~= nil then row[m .. "_diff"] = (n or 0) - (o or 0) end
    end
  end
  -- rows stay in the groups' own order (families, buckets): the old side's, then new keys
  local kinds, measure_kinds = {}, a:kinds()
  for _, k in ipairs(key_names) do kinds[k] = "key" end
  for _, m in ipairs(measure_names) do
    for _, suffix in ipairs { "_old", "_new", "_diff" } do kinds[m .. suffix] = measure_kinds[m] end
  end
  return result.new(out_columns, rows, key_names, result.key_order(a), kinds)
end

--- Column description by name (schema.find_column: canonical name, header as written...):
--- {name, label, type, missing, bytes}, or nil.
function Dataset:column(name)
  check_dataset(self, "column")
  local c = schema.find_column(self:columns(), name)
  if c and not c.virtual then return c end
  return nil
end

-- Text of a min/max value: exact numbers, months and dates as they are.
--- The description of a dataset, any delimited file's: one row per column with its name, label
--- (the header as written), type, missing and distinct counts (missing not counted), min and
--- max (numbers, months, dates) and, for text columns, the `top` (default 3) most frequent
--- values with their row counts, cut to 32 characters (none with top = 0). What cpf describe,
--- :Cpf describe and /describe show. progress(done, total) is called between two columns.
function Dataset:describe(top, progress)
  check_dataset(self, "describe")
  -- cpf.describe and the formats' helpers it needs load on first use
  return require("cpf.describe").describe(self, top, progress)
end

--- The same description computed on a thread of its own, for a dataset opened from a
--- snapshot file: a job (job:poll() -> false, columns_done, columns | true, description |
--- true, nil, message, kind; job:wait(); job:cancel()), or nil, message for another dataset.
function Dataset:describe_async(top)
  check_dataset(self, "describe_async")
  return require("cpf.describe").describe_async(self, top) -- loaded on first use, as above
end

-- ds:get, ds:distinct and ds:dictionary (written in C) hand a name that is not canonical to
-- this: the canonical name of the column it designates, or nil (then "unknown column").
function dataset_mt.__column_name(ds, name)
  local c = Dataset.column(ds, name)
  return c and c.name
end

-- The output formats' modules are loaded on first use: a script that only queries (a report
-- from a snapshot in a fresh process) does not compile them.
local function terminal_text(s) return require("cpf.format.common").terminal_text(s) end

-- One line, at most 16 characters, cut between UTF-8 characters.
local function preview_cell(v)
  local s = terminal_text(v == nil and "" or tostring(v))
  local chars = 0
  for i = 1, #s do
    if s:byte(i) < 128 or s:byte(i) >= 192 then
      chars = chars + 1
      if chars == 16 then return s:sub(1, i - 1) .. "…" end
    end
  end
  return s
end

-- "cpf dataset: N rows × C columns, size" then the first rows of the first columns.
function dataset_mt.__tostring(ds)
  if ds:is_closed() then return "cpf dataset (closed)" end
  local cols = ds:columns()
  local lines = { ("cpf dataset: %d rows × %d columns, %s"):format(#ds, #cols, human_bytes(ds:memory())) }
  local shown = math.min(#cols, 5)
  local header = {}
  for j = 1, shown do header[j] = terminal_text(cols[j].name) .. " (" .. cols[j].type .. ")" end
  lines[#lines + 1] = "  " .. table.concat(header, " | ") .. (shown < #cols and " | …" or "")
  for i = 1, math.min(#ds, 3) do
    local cells = {}
    for j = 1, shown do cells[j] = preview_cell(ds:get(i, j)) end
    lines[#lines + 1] = "  " .. table.concat(cells, " | ")
  end
  if #ds > 3 then lines[#lines + 1] = ("  … %d more row%s"):format(#ds - 3, #ds == 4 and "" or "s") end
  return table.concat(lines, "\n")
end

-- Output formats (cpf.format): res:write / res:format, custom formats, terminal bars.
local function format_function(name)
  -- loaded on first use, as the dataset's preview above
  return function(...) return require("cpf.format")[name](...) end
end
--- A history folder (cpf fetch DIR): hist:extractions(), hist:path(which), hist:open(which)
--- (which: "latest", "previous" or a date YYYY-MM-DD). cpf.history(DIR) -> history | nil,
--- message, kind.
function cpf.history(dir) return history.open(dir) end
--- What changed between two extractions (datasets): cpf.changes(old, new, {where =, by =,
--- measure =}) -> a result with M_prec, M, M_evol per measure and `change` (cpf.changes).
function cpf.changes(old, new, opts) return require("cpf.changes").compare(old, new, opts) end -- on first use
--- Each validation month's files by status family: cpf.cohorts(ds, {where =, recent_months =}).
function cpf.cohorts(ds, opts) return require("cpf.changes").cohorts(ds, opts) end -- on first use
--- The data file a path stands for: a history folder's latest extraction, else the path.
function cpf.history_path(path) return history.data_path(path) end
cpf.history_latest = history.LATEST -- "cpf-latest.cpfsnap", in a history folder

--- The current extraction from the portal into a history folder (cpf.fetch, loaded on first
--- use): cpf.fetch{dir =, url =, retries =, progress =} -> answer | nil, message, kind;
--- cpf.fetch_async{...} -> a job to poll.
function cpf.fetch(opts) return require("cpf.fetch").fetch(opts) end
function cpf.fetch_async(opts) return require("cpf.fetch").fetch_async(opts) end

cpf.formats = { register = format_function "register", names = format_function "names",
                number_text = format_function "number_text" }
cpf.bar = format_function "bar"
--- cpf.report{title =, subtitle =, source =, dataset =, locale =, sections = {...}}: one page of
--- several results (lua/cpf/report.lua), as HTML or Markdown.
function cpf.report(spec) return require("cpf.report").new(spec) end

return cpf
