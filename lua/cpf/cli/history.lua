-- cpf.cli.history — the commands of a history folder (cpf fetch), their options (the request
-- table's "fetch" fields) and help texts; cpf.cli dispatches to them with its helpers.
local cpf = require "cpf"
local core = require "cpf.core"
local request = require "cpf.request"
local fetch = require "cpf.fetch"
local schema = require "cpf.schema"

local M = {}

M.HELP = {
  fetch = [[
usage: cpf fetch DIR [--url BASE] [--retries N] [--keep N] [-q]

Downloads the current extraction of the CPF file into the history folder DIR (made if
missing), when it changed: the portal's catalog entry is read first (its modified date and row count), and a folder
that already holds that extraction downloads nothing. The export comes compressed (gzip) into
a temporary file in DIR; a cut transfer resumes where it stopped, on an automatic retry or on
the next run; a 429 is waited out, server errors are retried with a growing pause. What
arrived is checked (the gzip stream whole, the CPF header, the portal's row count) before it
becomes DIR/cpf-YYYY-MM-DD.cpfsnap (the extraction's latest DATE_COLUMN), with
DIR/cpf-YYYY-MM-DD.json (what the portal said); DIR/cpf-latest.cpfsnap then names the newest
extraction; with --keep N, only the newest N extractions stay. Proxies: http_proxy,
https_proxy and no_proxy from the environment.

The file: "TITLE" (PUBLISHER), from its portal at URL
(--url another address: a mirror).

Prints what it did on stderr, with a progress line on a terminal (not with -q). Exit 0 when
the folder holds the current extraction, 1 on any failure (nothing half-written is left as a
snapshot).

options:
]],
  changes = [[
usage: cpf changes DIR [OLD NEW] [--where COND]... [--by KEYS] [--measure LIST]
                   [--format FORMAT] [-o OUT] [--html PAGE.html]
       cpf changes OLD_DATA NEW_DATA [...]

What changed between two extractions of the CPF file: the same question (--where, --by,
--measure, default dossiers,montant) asked of each, and per key, for each measure M, M_prec
(the older extraction), M (the newer) and M_evol (the difference); `change` says whether the
row was added, removed, revised or unchanged. A key absent on one side counts 0 for sums and
counts and is missing for ratios. In the history folder DIR (cpf fetch DIR), OLD and NEW are
extraction dates (YYYY-MM-DD), previous or latest (the default: previous latest); or two data
files, snapshots or CSV. The line on stderr names the two extractions. --html also writes
a page in French of the month's changes (the whole, by year, by status family, the revised
validation months), ready to be sent.

example:
  cpf changes ~/cpf --by mois --measure dossiers,montant    # the months the new extraction revised

options:
]],
  cohorts = [[
usage: cpf cohorts DATA [--where COND]... [--recent-months N] [--format FORMAT] [-o OUT]

The cohorts of validation months: for each month (mois), its files (dossiers) and the share
of them in each status family as the extraction knows them (share_validated, share_in_training,
share_left_training, share_completed, share_cancelled: the family's files over the month's).
`cohort` says "recent" for the last N months (default 12) up to the extraction's own month
(the month of its latest DATE_COLUMN): their files are mostly still in training or waiting
to be closed, so their shares move from one extraction to the next; "closed" otherwise.
DATA may be a history folder (its latest extraction).

options:
]],
  history = [[
usage: cpf history DIR [--format FORMAT] [-o OUT]

The extractions the history folder DIR holds (cpf fetch DIR), oldest first: the extraction's
date, its rows (lignes), its files (dossiers) and their amount (montant), in any format.
cpf.history(DIR) opens one by date, "latest" or "previous"; DIR given as DATA to any command
stands for its latest extraction (DIR/cpf-latest.cpfsnap).

options:
]],
}
M.HELP.fetch = M.HELP.fetch:gsub("[A-Z][A-Z_]+[A-Z]", { TITLE = schema.source.title,
  PUBLISHER = schema.source.publisher, URL = schema.portal.url, DATE_COLUMN = schema.source.date_column })
M.HELP.cohorts = M.HELP.cohorts:gsub("DATE_COLUMN", schema.source.date_column)

-- A data file as a whole dataset: a snapshot (or a history folder's latest) opened, a CSV loaded.
local function open_data(path)
  if cpf.is_snapshot(path) then return cpf.open(path) end
  return cpf.load(path)
end

local STEPS = { metadata = "reading the catalog entry", download = "downloading", load = "checking the export",
                save = "writing the snapshot" }

-- A progress line on stderr: the step, and for the download its bytes.
local function progress_line()
  local last, shown = 0, false
  return function(step, done, total, attempt)
    local now = core.clock()
    if now - last < 0.2 then return end
    last = now
    local text = "cpf: " .. (STEPS[step] or step)
    if step == "download" then
      text = text .. " " .. cpf.human_bytes(done) .. (total > 0 and (" of %s (%d%%)"):format(cpf.human_bytes(total),
        math.floor(100 * done / total)) or "") .. (attempt > 1 and (", attempt %d"):format(attempt) or "")
    end
    io.stderr:write("\r\27[K", text)
    shown = true
  end, function() if shown then io.stderr:write("\r\27[K") end end
end

--- cpf fetch DIR [--url BASE] [--retries N] [-q]; tools: cpf.cli's read_args, usage, fail.
function M.fetch(args, tools)
  local known, short = { quiet = "flag" }, { q = "quiet" }
  for _, f in ipairs(request.fields_of("cli", "fetch")) do known[f.name] = "value" end
  local pos, opts = tools.read_args(args, known, short)
  if opts.help then io.stdout:write(M.HELP.fetch, request.help(request.fields_of("cli", "fetch"))) return 0 end
  if #pos ~= 1 then tools.usage("fetch needs one DIR (the history folder)") end
  local retries = opts.retries and tools.whole_option(opts, "retries")
  local keep = opts.keep and tools.whole_option(opts, "keep")
  if keep == 0 then tools.usage("--keep must be a whole number from 1") end
  if opts.url and not opts.url:match("^https?://[^/%s]+") then
    tools.usage(("--url must be an http:// or https:// address, got '%s'"):format(opts.url))
  end
  local show, clear
  if not opts.quiet and core.stderr_is_tty() then show, clear = progress_line() end
  local answer, err = fetch.fetch { dir = pos[1], url = opts.url, retries = retries, keep = keep, progress = show }
  if clear then clear() end
  if not answer then return tools.fail("fetch: " .. err) end
  if answer.status == "unchanged" then
    io.stderr:write(("cpf: %s already holds the current extraction (%s, %d rows): nothing downloaded\n")
      :format(pos[1], answer.date, answer.rows))
  else
    io.stderr:write(("cpf: wrote %s: the extraction of %s, %d rows (%s downloaded%s)\n"):format(answer.snapshot,
      answer.date, answer.rows, cpf.human_bytes(answer.bytes), answer.resumed > 0 and ", resumed" or ""))
    if #answer.removed > 0 then
      io.stderr:write(("cpf: removed the extractions of %s (--keep %d)\n"):format(table.concat(answer.removed, ", "),
        keep))
    end
  end
  return 0
end

-- The two datasets cpf changes compares: DIR [OLD NEW] in a history folder, or two data files;
-- each with its name (an extraction date or a path).
local function changes_data(pos, tools)
  local function open_file(path)
    local ds, err = open_data(path)
    if not ds then tools.fail_now(err) end
    return ds, path
  end
  if #pos == 2 and not cpf.history(pos[1]) then return open_file(pos[1]), pos[1], open_file(pos[2]), pos[2] end
  if #pos ~= 1 and #pos ~= 3 then tools.usage("changes needs DIR [OLD NEW], or two data files OLD NEW") end
  local hist, err = cpf.history(pos[1])
  if not hist then tools.fail_now(err) end
  local out = {}
  for i, which in ipairs { pos[2] or "previous", pos[3] or "latest" } do
    local ds, e, kind = hist:open(which)
    if not ds then
      if kind == "usage" then tools.usage(e) end
      tools.fail_now(e)
    end
    out[2 * i - 1], out[2 * i] = ds, e.date
  end
  return out[1], out[2], out[3], out[4]
end

--- cpf changes DIR [OLD NEW] [--where] [--by] [--measure] [output options]
function M.changes(args, tools)
  local known, short = { html = "value" }, {}
  for k, v in pairs(tools.output_options()) do known[k] = v end
  for _, name in ipairs { "where", "by", "measure" } do
    local f = request.field[name]
    known[name] = f.shape == "one" and "value" or "list"
  end
  local pos, opts = tools.read_args(args, known, short)
  if opts.help then
    io.stdout:write(M.HELP.changes, request.help { request.field.where, request.field.by, request.field.measure },
      request.help(tools.output_fields()))
    return 0
  end
  local out = tools.output_settings(opts)
  local old, old_name, new, new_name = changes_data(pos, tools)
  local res, err, kind = cpf.changes(old, new, { where = opts.where, by = opts.by, measure = opts.measure })
  if not res then
    if kind == "usage" then tools.usage(err) end
    return tools.fail(err)
  end
  io.stderr:write(("cpf: changes from %s (%d rows) to %s (%d rows)\n"):format(old_name, #old, new_name, #new))
  local ok, werr = out:write(res, opts.output or io.stdout)
  if not ok then return tools.fail(werr) end
  if opts.html then
    local page, perr = require("cpf.changes").report(old, new, { old = old_name, new = new_name }) -- with --html only
    if not page then return tools.fail(perr) end
    local written, herr = page:write(opts.html)
    if not written then return tools.fail(herr) end
    io.stderr:write(("cpf: wrote %s\n"):format(opts.html))
  end
  return 0
end

--- cpf cohorts DATA [--where] [--recent-months N] [output options]
function M.cohorts(args, tools)
  local known = { where = "list", recent_months = "value" }
  for k, v in pairs(tools.output_options()) do known[k] = v end
  local pos, opts = tools.read_args(args, known)
  if opts.help then
    io.stdout:write(M.HELP.cohorts, request.help { request.field.where, request.field.recent_months },
      request.help(tools.output_fields()))
    return 0
  end
  if #pos ~= 1 then tools.usage("cohorts needs one DATA") end
  local recent = opts.recent_months and tools.whole_option(opts, "recent_months")
  local out = tools.output_settings(opts)
  local ds, err = open_data(pos[1])
  if not ds then return tools.fail(err) end
  local res, cerr, kind = cpf.cohorts(ds, { where = opts.where, recent_months = recent })
  if not res then
    if kind == "usage" then tools.usage(cerr) end
    return tools.fail(cerr)
  end
  local ok, werr = out:write(res, opts.output or io.stdout)
  if not ok then return tools.fail(werr) end
  return 0
end

--- cpf history DIR [output options]: a row per extraction, oldest first.
function M.history(args, tools)
  local pos, opts = tools.read_args(args, tools.output_options())
  if opts.help then io.stdout:write(M.HELP.history, request.help(tools.output_fields())) return 0 end
  if #pos ~= 1 then tools.usage("history needs one DIR (a history folder: cpf fetch DIR)") end
  local out = tools.output_settings(opts)
  local hist, err = cpf.history(pos[1])
  if not hist then return tools.fail(err) end
  local rows = {}
  for i, e in ipairs(hist:extractions()) do
    local ds, oerr = cpf.open(e.snapshot)
    if not ds then return tools.fail(oerr) end
    local totals = ds:run { "lignes", "dossiers", "montant" }
    rows[i] = { extraction = e.date, lignes = totals[1].lignes, dossiers = totals[1].dossiers,
                montant = totals[1].montant }
    ds:close()
  end
  if #rows == 0 then return tools.fail(("%s holds no extraction: cpf fetch %s"):format(pos[1], pos[1])) end
  local ok, werr, kind = out:write(cpf.result({ "extraction", "lignes", "dossiers", "montant" }, rows,
    { "extraction" }), opts.output or io.stdout)
  if not ok then return tools.fail(werr, kind) end
  return 0
end

return M
