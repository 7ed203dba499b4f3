-- cpf.cli — the `cpf` command: subcommands, their options and help texts.
-- Data goes to stdout, messages to stderr; exit 1 on errors, 2 on usage errors.
local cpf = require "cpf"
local core = require "cpf.core"
local request = require "cpf.request"
local errors = require "cpf.errors"
local format = require "cpf.format"
local common = require "cpf.format.common"
local serve = require "cpf.cli.serve"
local history = require "cpf.cli.history"

local cli = {}

local USAGE = [[
usage: cpf COMMAND [ARGS]

commands:
  query DATA... [--where COND]... [--by KEYS] [--measure MEASURES] [--sort COLS]
        [--limit N] [--format FORMAT] [-o OUT]
                      files, amounts, prices... by any keys, without writing Lua
  describe DATA...    columns: label, type, missing and distinct counts, min/max, top values
  run SCRIPT.lua [DATA...] [-- ARGS...]
                      run a report script with cpf, the loaded data and the arguments
  convert DATA.csv [OUT.cpfsnap]
                      save a CSV file as a snapshot, which opens in milliseconds
  gen ROWS OUT.csv [--seed N] [--fields] [--no-bom] [--crlf]
                      write a realistic generated CPF file
  demo [DIR] [--rows N] [--html PAGE.html]
                      generate a file and print a short report on it (and as a page)
  serve DATA [--host H] [--port P] [--workers N] [--prefix DIR]
                      answer queries over HTTP (nginx with its Lua module)
  fetch DIR [--url BASE]
                      download the current extraction from the portal into a history folder
  history DIR         the extractions a history folder holds: rows, files, amount
  changes DIR [OLD NEW] [--by KEYS] [--measure MEASURES]
                      what changed between two extractions, per key
  cohorts DATA        each validation month's files by status family, recent ones flagged
  --version           print the version
  --help, COMMAND --help, help COMMAND

DATA is a CSV file (the CPF export or any delimited file), '-' for standard input, or a
snapshot written by 'cpf convert' (a .cpfsnap file, or any file starting with CPFSNAP).
Data goes to stdout, messages to stderr. Exit status: 0 ok, 1 error, 2 usage error.
]]

local DATA_HELP = request.data_help()

-- The options of cpf query: its request fields and the command line's own (-o, --plugin), from
-- the request table; the data options follow.
local QUERY_OPTIONS_HELP
do
  local fields = {}
  for _, f in ipairs(request.fields_of("cli")) do
    if f.class ~= "load" and f.help_section ~= "data" then fields[#fields + 1] = f end
  end
  QUERY_OPTIONS_HELP = request.help(fields)
end

local HELP = {
  gen = [[
usage: cpf gen ROWS OUT.csv [--seed N] [--fields] [--no-bom] [--crlf]

Writes ROWS rows of realistic, deterministic CPF data (same seed, same bytes).
  --seed N     seed of the generator (default 1)
  --fields     API field names in the header instead of the export labels
  --no-bom     no UTF-8 byte order mark
  --crlf       CRLF line endings
]],
  demo = [[
usage: cpf demo [DIR] [--rows N] [--html PAGE.html]

Generates a CPF file (200000 rows by default) in DIR (default: a temporary directory),
loads it and prints a short report. --html also writes the report as one page in French
(cpf.report: charts, tables, the source line; prints on A4), ready to be sent.
]],
  serve = [[
usage: cpf serve DATA [--host 127.0.0.1] [--port 8080] [--workers N] [--prefix DIR]
                      [--max-rows N] [--max-request N] [--max-pattern N] [--check-every S]
                      [--ref NAME=FILE]... [--user NAME] [--nginx PATH] [--cors ORIGIN]
                      [data options]
       cpf serve DIR --fetch [--url BASE] [--fetch-every S] [options]

Serves one dataset over HTTP with Debian's nginx and its Lua module (apt-get install nginx
libnginx-mod-http-lua), in the foreground: this process becomes nginx's master, so a signal to
it (Ctrl-C, kill PID) stops the server. A CSV is converted to a snapshot in the prefix first; a
snapshot is served in place, and when the file is replaced (cpf convert writes a temporary and
renames it) the workers serve the new one within --check-every seconds, without a restart; a
snapshot written over in place (cp) stops being served until a good one replaces it. A
history folder (cpf fetch DIR) is served from its latest extraction; with --fetch, one worker
fetches the current extraction into DIR at start and every --fetch-every seconds (default
86400: daily; cpf fetch's checks, on threads of their own), and a new one is swapped in as a
replaced snapshot is (503 until the first, when DIR holds none yet; the workers' user must be
able to write DIR; http_proxy, https_proxy and no_proxy reach the workers).

  GET /query?where=...&by=...&measure=...&sort=...&limit=...&format=...
                             the request fields of cpf query (not its data options nor
                             -o); default format json; join=NAME:COLUMN with a --ref
  GET /describe[?format=]    the columns, as cpf describe
  GET /health                {"status": "ok", "rows": N, ...}
  GET /                      a dashboard page (charts and tables, nothing fetched)
Bad requests get 400, 404 or 405 with {"error": "..."}.

  --host H         address to listen on (default 127.0.0.1: this machine only)
  --port P         port (default 8080)
  --workers N      nginx worker processes, 1 to 64 (default: one per core); they share the
                   snapshot's pages
  --prefix DIR     nginx's directory: conf/, logs/ (access.log, error.log), the converted
                   snapshot (default: a new directory under $TMPDIR or /tmp)
  --max-rows N     rows a result may have (default 10000)
  --max-request N  bytes of a request's path and query string (default 4096)
  --max-pattern N  bytes of a ~ pattern in where (default 100)
  --cors ORIGIN    let pages of ORIGIN (https://host[:port], or * for any) read the answers:
                   Access-Control-Allow-Origin on them, preflight OPTIONS answered (default: none)
  --nginx PATH     the nginx to run (default: nginx on PATH or in /usr/sbin; OpenResty's, which
                   has the Lua module built in, works too)
  --check-every S  seconds between checks for a replaced snapshot (default 1)
  --ref NAME=FILE  a reference table (CSV, converted to a snapshot in the prefix, or a
                   snapshot) that requests join by name: join=NAME:COLUMN (repeatable;
                   a request never names a file)
  --user NAME      the workers' user when started by root (default: nginx's, nobody, which
                   must be able to read cpf's files and the snapshot: checked before serving)
  --fetch          DATA is a history folder to fetch the current extraction into (cpf fetch)
  --url BASE       with --fetch: the portal's address (default: the publisher's)
  --fetch-every S  with --fetch: seconds between two fetches (default 86400)
]],
  query = [[
usage: cpf query DATA... [--where COND]... [--by KEYS] [--measure MEASURES] [--sort COLS]
                 [--limit N] [--per KEYS] [--having COND]... [--join FILE:COL]...
                 [--change COL:PERIOD] [--cumsum COL:PERIOD] [--rank COL:KEYS]
                 [--format FORMAT] [-o OUT] [data options]

Groups the rows kept by the conditions by the keys and prints the measures of each group.
Only the columns the query names are loaded. Several DATA files are loaded as one dataset
with a 'source' column (cpf.load{...}).

]] .. QUERY_OPTIONS_HELP .. "\n" .. [[
example:
  cpf query data.csv --where 'statut_dossier=Validé' --where annee=2023 \
      --by region_lieu_formation --measure dossiers,montant,prix_moyen --sort -montant --limit 10
]] .. "\n" .. DATA_HELP,
  describe = [[
usage: cpf describe DATA... [--top N] [--format FORMAT] [-o OUT] [data options]

One row per column: its name, its header as written (label), its storage type, the number of
missing values, the number of distinct values (missing not counted), the smallest and
largest value (numbers, months, dates) and, for text columns, the most frequent values with
their row counts (--top N, default 3; values cut to 32 characters). With the table format
(the default) a first line gives the path, the number of rows and of columns.

  --top N          how many frequent values to show (0: none)
  --format FORMAT  any output format (see cpf query --help), -o OUT, --opt, --plugin as there
]] .. "\n" .. DATA_HELP,
  run = [[
usage: cpf run SCRIPT.lua [DATA...] [-- ARGS...] [data options]

Loads each DATA (CSV, or snapshot) as its own dataset and runs SCRIPT.lua as a chunk called
with three arguments:

  local cpf, datasets, args = ...
    cpf        the module (require "cpf" works too)
    datasets   the list of loaded datasets, in the order of DATA (datasets.paths[i]: the
               path of datasets[i]); empty when no DATA is given
    args       the list of the arguments after '--'

The global 'arg' is set as for a Lua script: arg[0] = SCRIPT.lua, arg[1..n] = ARGS.
Formats the script registers exist while it runs. An error in the script prints
'cpf: SCRIPT.lua:LINE: message' on stderr and exits with status 1 (the line is the script's
own when the error comes from inside cpf); os.exit(n) exits with n.

example:
  cpf run examples/top10_certifications.lua data.csv -- 2024
]] .. "\n" .. DATA_HELP,
  convert = [[
usage: cpf convert DATA.csv [OUT.cpfsnap] [--sep C] [--decimal C] [--threads N] [-q]

Loads DATA.csv and saves it as a snapshot (ds:save), by default DATA.csv.cpfsnap. 'cpf
query', 'cpf describe' and 'cpf run' take the snapshot in place of the CSV and open it in
milliseconds (cpf.open). Prints the rows, the two sizes and the time on stderr (not with -q).
]] .. "\n" .. DATA_HELP,
}

-- Messages name files, columns and values of the data: shown escaped (errors.message), so that
-- no control character of theirs reaches the terminal.
local function usage_error(msg, command)
  io.stderr:write(errors.message(msg), "\n")
  io.stderr:write(command and ("try 'cpf " .. command .. " --help'\n") or "try 'cpf --help'\n")
  return 2
end

local function fail(msg)
  io.stderr:write(errors.message(msg), "\n")
  return 1
end

-- A usage error raised from deep inside a command: caught by main.
local usage = errors.usage

local whole_number = request.whole_number

-- The words of a command against its options (request.read_args); a wrong option raises.
local function read_args(args, known, short)
  local pos, opts, rest = request.read_args(args, 2, known, short)
  if not pos then usage(opts) end
  return pos, opts, rest
end

-- The options of a command that loads DATA: the load fields and -q, with `extra`.
local function data_options(extra)
  local known, short = {}, {}
  for _, f in ipairs(request.fields_of("cli")) do
    if f.class == "load" or f.help_section == "data" then known[f.name] = f.shape == "flag" and "flag" or "value" end
  end
  for k, v in pairs(extra or {}) do known[k] = v end
  for _, f in ipairs(request.fields_of("cli")) do
    if f.short and known[f.name] then short[f.short] = f.name end
  end
  return known, short
end

-- ---------------------------------------------------------------- loading data

-- opts[name] as a whole number, nil when absent; a usage error otherwise.
local function whole_option(opts, name)
  if opts[name] == nil then return nil end
  local n = whole_number(opts[name])
  if not n then usage(("--%s must be a whole number, got '%s'"):format(name, opts[name])) end
  return n
end

-- cpf.load's options from the command line's (usage errors raise), with a progress line on a
-- terminal unless -q.
local function load_options(opts)
  local lo, err = request.load_options(opts)
  if not lo then usage(err) end
  if not opts.quiet and core.stderr_is_tty() then lo.progress = true end
  return lo
end

-- One dataset from one path or several CSV paths; nil, message on failure. `output` (-o) must
-- not be one of the inputs: writing the result would destroy the data.
local function load_dataset(paths, lo, output)
  local files = {}
  for i, p in ipairs(paths) do files[i] = p == "-" and "/dev/stdin" or p end
  for _, p in ipairs(files) do
    if output and core.same_file(p, output) then
      return nil, output .. ": is an input file: refusing to overwrite it"
    end
  end
  if #files == 1 and cpf.is_snapshot(files[1]) then return cpf.open(files[1]) end
  if #files > 1 then
    for _, p in ipairs(files) do
      if cpf.is_snapshot(p) then
        return nil, p .. ": a snapshot cannot be loaded together with other files (give the CSV files)"
      end
    end
    return cpf.load(files, lo)
  end
  return cpf.load(files[1], lo)
end

-- The records a load of CSV with --on-error skip set aside, on stderr: how many, and the first
-- ones where an editor finds them (FILE:LINE:COLUMN). A snapshot's are listed by describe.
local function note_rejects(ds, path)
  local rejects = ds:rejects()
  if #rejects == 0 or cpf.is_snapshot(path) then return end
  io.stderr:write(("cpf: %d malformed record%s set aside (--on-error skip)%s\n"):format(#rejects,
    #rejects > 1 and "s" or "", #rejects > 5 and ", the first 5:" or ":"))
  for i = 1, math.min(5, #rejects) do
    local r = rejects[i]
    io.stderr:write(("  %s:%d%s: %s\n"):format(r.file or path, r.line, r.column and (":" .. r.column) or "",
      r.message))
  end
end

-- ---------------------------------------------------------------- plugins and output

local function run_plugins(opts)
  for _, file in ipairs(opts.plugin or {}) do
    local chunk, err = loadfile(file)
    if not chunk then error(err, 0) end
    local ok, perr = pcall(chunk, cpf)
    if not ok then error(tostring(perr), 0) end
  end
end

-- What the command line adds to a request: the environment's locale (a French LC_ALL,
-- LC_NUMERIC or LANG gives fr) and --join's references, files it loads.
local SETTINGS = { locale = common.environment_locale(), reference = request.file_reference }

-- The output settings of the format options (usage errors raise).
local function output_settings(opts)
  local fields = {}
  for _, f in ipairs(request.fields_of("cli", "request")) do
    if f.output and opts[f.name] ~= nil then fields[f.name] = opts[f.name] end
  end
  local out, err = request.output(fields, SETTINGS)
  if not out then usage(err) end
  return out
end

-- A failure of a request: exit 2 with a hint for a usage error, 1 for any other.
local function request_failure(msg, kind)
  if kind == "usage" then usage(msg) end
  return fail(msg)
end

-- ---------------------------------------------------------------- commands

function cli.gen(args)
  local pos, opts = request.read_args(args, 2, { seed = "value", fields = "flag", ["no-bom"] = "flag", crlf = "flag" })
  if not pos then return usage_error(opts, "gen") end
  if opts.help then io.stdout:write(HELP.gen) return 0 end
  if #pos ~= 2 then return usage_error("gen needs ROWS and OUT.csv", "gen") end
  local rows = whole_number(pos[1])
  if not rows then return usage_error("ROWS must be a whole number, got '" .. pos[1] .. "'", "gen") end
  local seed = 1
  if opts.seed then
    seed = whole_number(opts.seed)
    if not seed then return usage_error("--seed must be a whole number", "gen") end
  end
  local ok, err = require("cpf.gen").write(pos[2], rows, { -- the generator loads for gen and demo only
    seed = seed, header = opts.fields and "fields" or "labels",
    bom = not opts["no-bom"], crlf = opts.crlf or false,
  })
  if not ok then return fail(err) end
  return 0
end

function cli.demo(args)
  local pos, opts = request.read_args(args, 2, { rows = "value", html = "value" })
  if not pos then return usage_error(opts, "demo") end
  if opts.help then io.stdout:write(HELP.demo) return 0 end
  local rows = opts.rows and whole_number(opts.rows) or 200000
  if not rows then return usage_error("--rows must be a whole number", "demo") end
  local dir = pos[1] or os.getenv("TMPDIR") or "/tmp"
  local made, merr = core.make_dirs(dir) -- `cpf demo DIR` makes DIR
  if not made then return fail(merr) end
  local path = dir .. "/cpf-demo.csv"
  io.stderr:write(("cpf: generating %d rows into %s\n"):format(rows, path))
  local ok, err = require("cpf.gen").write(path, rows, { seed = 2026 }) -- loaded for gen and demo only
  if not ok then return fail(err) end
  local report = require "cpf.report" -- the report's modules load for the demo only
  local ds, lerr = cpf.load(path, { progress = core.stderr_is_tty() or nil })
  if not ds then return fail(lerr) end
  local out = io.stdout
  out:write(tostring(ds), "\n\n")
  for _, s in ipairs(report.demo_sections(ds, "C")) do
    out:write(s.title, "\n", s.result:format("table", { thousands = " " }), "\n")
  end
  if opts.html then
    -- the same report as one page a French reader can be sent
    ok, err = cpf.report { title = cpf.schema.source.title,
                           subtitle = ("Rapport de démonstration sur %s lignes générées"):format(
                             common.display_number(#ds, 0, { thousands = "\226\128\175" })),
                           dataset = ds, sections = report.demo_sections(ds, "fr") }:write(opts.html)
    if not ok then ds:close() return fail(err) end
    io.stderr:write(("cpf: wrote %s\n"):format(opts.html))
  end
  ds:close()
  return 0
end

-- The request run on the loaded data and written out (its notes on stderr): the exit status.
local function answer(req, ds, where, opts, run_opts)
  local res, err, kind = req:run(ds, where, run_opts)
  if not res then return request_failure(err, kind) end
  for _, note in ipairs(req:notes(res)) do io.stderr:write(errors.message(note), "\n") end
  local ok
  ok, err, kind = req:write(res, opts.output or io.stdout)
  if not ok then return request_failure(err, kind) end
  ds:close()
  return 0
end

function cli.query(args)
  local pos, opts, rest = read_args(args, request.options_of("cli"))
  if opts.help then io.stdout:write(HELP.query) return 0 end
  for _, a in ipairs(rest) do pos[#pos + 1] = a end
  if #pos == 0 then usage("query needs a DATA file") end
  local lo = load_options(opts)
  run_plugins(opts)
  local req, rerr, rkind = request.from_options(opts, SETTINGS)
  if not req then return request_failure(rerr, rkind) end

  -- the columns the query reads ('source' is added by the load of several files)
  local columns = {}
  for _, name in ipairs(req.columns) do
    if not (name == "source" and #pos > 1) then columns[#columns + 1] = name end
  end
  if #pos == 1 and not lo.cache then
    -- one file, opened once: its header checked against the request, then only the columns the
    -- request reads loaded from the same open file (a snapshot: opened, checked, queried)
    local path = pos[1] == "-" and "/dev/stdin" or pos[1]
    if opts.output and core.same_file(path, opts.output) then
      return fail(opts.output .. ": is an input file: refusing to overwrite it")
    end
    local src, serr = cpf.source(path, lo)
    if not src then return fail(serr) end
    local where = src.snapshot and pos[1] or (pos[1] .. ":1")
    local ok, cerr = req:check(src:columns(), where)
    if not ok then src:close() return fail(cerr) end
    local load = columns
    if #columns > 0 and not src.snapshot then load = req:load_columns(src:columns()) end
    local ds, err = src:load(not src.snapshot and #columns > 0 and load or nil)
    if not ds then return fail(err) end
    note_rejects(ds, pos[1])
    return answer(req, ds, where, opts, { checked = true })
  end
  if not lo.cache and #columns > 0 then
    -- several files (CSV only): only the columns the query reads are loaded, once the first
    -- file's header shows it has them all; a pipe's header cannot be read ahead: it is loaded
    -- whole and checked by the run
    local header = cpf.header(pos[1], { sep = lo.sep, types = lo.types })
    if header then
      -- the load of several files adds the column 'source'
      if #pos > 1 then header[#header + 1] = { name = "source", label = "source" } end
      local ok, err = req:check(header, pos[1] .. ":1")
      if not ok then return fail(err) end
      lo.columns = columns
    end
  end
  local ds, err = load_dataset(pos, lo, opts.output)
  if not ds then return fail(err) end
  note_rejects(ds, pos[1])
  return answer(req, ds, (#pos == 1 and cpf.is_snapshot(pos[1])) and pos[1] or (pos[1] .. ":1"), opts)
end

-- describe: the output fields, -o and --plugin, the data options, --top
local DESCRIBE_OPTIONS = { top = "value" }
for _, f in ipairs(request.fields_of("cli")) do
  if f.output or f.class == "cli" and f.help_section ~= "data" then
    DESCRIBE_OPTIONS[f.name] = f.shape == "one" and "value" or "list"
  end
end

-- A progress line on a terminal (not with -q) once describing takes a second: the columns done.
local function describe_progress(opts)
  if opts.quiet or not core.stderr_is_tty() then return nil end
  local start, shown = core.clock(), false
  return function(done, total)
    if not shown and (done == total or core.clock() - start < 1) then return end
    io.stderr:write(("\rcpf: describing: %d / %d columns"):format(done, total), done == total and "\n" or "")
    shown = true
  end
end

function cli.describe(args)
  local pos, opts, rest = read_args(args, data_options(DESCRIBE_OPTIONS))
  if opts.help then io.stdout:write(HELP.describe) return 0 end
  for _, a in ipairs(rest) do pos[#pos + 1] = a end
  if #pos == 0 then usage("describe needs a DATA file") end
  local lo = load_options(opts)
  local top = whole_option(opts, "top") or 3
  run_plugins(opts)
  local out = output_settings(opts)
  local ds, err = load_dataset(pos, lo, opts.output)
  if not ds then return fail(err) end
  note_rejects(ds, pos[1])
  local ok, kind
  if out.format == "table" then
    -- a title line, then the table (in the file too with -o)
    local text
    text, err, kind = out:describe(ds, table.concat(pos, ", "), top, describe_progress(opts))
    if not text then return request_failure(err, kind) end
    if opts.output then -- through a temporary renamed over it, as res:write does
      ok, err = format.write_text(opts.output, text)
      if not ok then return fail(err) end
    else
      io.stdout:write(text)
    end
  else
    ok, err, kind = out:write(ds:describe(top), opts.output or io.stdout)
    if not ok then return request_failure(err, kind) end
  end
  ds:close()
  return 0
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:close()
  return size
end

function cli.convert(args)
  local known, short = data_options()
  known.cache = nil
  local pos, opts, rest = read_args(args, known, short)
  if opts.help then io.stdout:write(HELP.convert) return 0 end
  for _, a in ipairs(rest) do pos[#pos + 1] = a end
  if #pos < 1 or #pos > 2 then usage("convert needs DATA.csv and at most one OUT.cpfsnap") end
  local lo = load_options(opts)
  local src = pos[1]
  local out = pos[2] or (src == "-" and "stdin.cpfsnap" or src .. ".cpfsnap")
  local start = core.clock()
  local ds, err
  if src == "-" then -- no file to tag the snapshot with: a plain one
    ds, err = load_dataset({ src }, lo)
    if not ds then return fail(err) end
    local ok, serr = ds:save(out)
    if not ok then ds:close() return fail(serr) end
  else -- tagged: cpf.load(src, {cache = true}) and `cpf query --cache` reuse it
    ds, err = cpf.convert(src, out, lo)
    if not ds then return fail(err) end
  end
  note_rejects(ds, src)
  local elapsed = core.clock() - start
  if not opts.quiet then
    local human = cpf.human_bytes
    local in_size, out_size = file_size(src == "-" and "/dev/stdin" or src), file_size(out)
    io.stderr:write(("cpf: %s -> %s: %d rows, %s -> %s in %.2f s\n"):format(src, out, #ds,
      in_size and in_size > 0 and human(in_size) or "?", out_size and human(out_size) or "?", elapsed))
  end
  ds:close()
  return 0
end

-- Where an error happened in a script: its message, given the script's line when the error
-- was raised from inside cpf (or anything else) without the script's position.
local function script_error_handler(script)
  local source = "@" .. script
  local prefix = script:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  return function(e)
    if type(e) ~= "string" then
      local mt = getmetatable(e)
      e = (type(e) == "table" and mt and mt.__tostring) and tostring(e)
        or ("(error object is a " .. type(e) .. " value)")
    end
    if not e:find("^" .. prefix .. ":%d+:") then
      for level = 2, 100 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.source == source and info.currentline and info.currentline > 0 then
          e = ("%s:%d: %s"):format(script, info.currentline, e)
          break
        end
      end
    end
    return e
  end
end

function cli.run(args)
  local pos, opts, rest = read_args(args, data_options())
  if opts.help then io.stdout:write(HELP.run) return 0 end
  if #pos == 0 then usage("run needs a SCRIPT.lua") end
  local lo = load_options(opts)
  local script = pos[1]
  local f, oerr = io.open(script, "rb")
  if not f then return fail(oerr) end
  f:close()
  local chunk, lerr = loadfile(script)
  if not chunk then return fail(lerr) end
  local datasets = { paths = {} }
  for i = 2, #pos do
    local ds, err = load_dataset({ pos[i] }, lo)
    if not ds then
      for _, d in ipairs(datasets) do d:close() end
      local data = io.open(pos[i], "rb")
      if data then data:close() else err = err .. " (arguments for the script go after '--')" end
      return fail(err)
    end
    datasets[#datasets + 1] = ds
    datasets.paths[#datasets] = pos[i]
  end
  local script_args = {}
  for i, a in ipairs(rest) do script_args[i] = a end
  local global_arg = { [0] = script }
  for i, a in ipairs(rest) do global_arg[i] = a end
  _G.arg = global_arg
  -- Lua 5.1's xpcall passes no arguments to the function: a closure carries them
  local ok, err = xpcall(function() return chunk(cpf, datasets, script_args) end, script_error_handler(script))
  io.stdout:flush()
  if not ok then return fail(err) end
  for _, d in ipairs(datasets) do d:close() end
  return 0
end

-- ---------------------------------------------------------------- cpf serve

-- cpf serve (cpf.cli.serve), with this file's helpers.
function cli.serve(args)
  return serve.serve(args, { read_args = read_args, usage = usage, fail = fail, whole_option = whole_option,
    data_options = data_options, load_options = load_options, help = HELP.serve })
end

-- The history folder's commands (cpf.cli.history), with this file's helpers.
local function output_fields()
  local fields = {}
  for _, f in ipairs(request.fields_of("cli")) do if f.output then fields[#fields + 1] = f end end
  return fields
end
local HISTORY_TOOLS = { read_args = read_args, usage = usage, fail = fail, whole_option = whole_option,
  fail_now = function(msg) errors.raise("io", msg) end,
  output_settings = output_settings, output_fields = output_fields,
  output_options = function() return DESCRIBE_OPTIONS end }
for _, command in ipairs { "fetch", "history", "changes", "cohorts" } do
  HELP[command] = history.HELP[command]
  cli[command] = function(args) return history[command](args, HISTORY_TOOLS) end
end

function cli.main(args)
  local command = args[1]
  if command == nil or command == "--help" or command == "-h" then
    io.stdout:write(USAGE)
    return command == nil and 2 or 0
  end
  if command == "help" then
    local topic = args[2]
    if topic == nil then io.stdout:write(USAGE) return 0 end
    if not HELP[topic] then return usage_error(("no command '%s'"):format(topic)) end
    io.stdout:write(HELP[topic])
    return 0
  end
  if command == "--version" then
    io.stdout:write("cpf ", cpf._VERSION, "\n")
    return 0
  end
  local run = HELP[command] and cli[command]
  if type(run) ~= "function" then
    return usage_error(("unknown command '%s'"):format(command))
  end
  local ok, code = pcall(run, args)
  if not ok then
    if errors.is(code) then
      if code.kind == "usage" then return usage_error(code.msg, command) end
      return fail(code.msg)
    end
    return fail(tostring(code))
  end
  return code
end

return cli
