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
usage: cpf fetch DIR [--url BASE] [--retries N] [-q]

Downloads the current extraction of the CPF file into the history folder DIR (made if
missing), when it changed: the portal's catalog entry is read first (its modified date and row count), and a folder
that already holds that extraction downloads nothing. The export comes compressed (gzip) into
a temporary file in DIR; a cut transfer resumes where it stopped, on an automatic retry or on
the next run; a 429 is waited out, server errors are retried with a growing pause. What
arrived is checked (the gzip stream whole, the CPF header, the portal's row count) before it
becomes DIR/cpf-YYYY-MM-DD.cpfsnap (the extraction's latest DATE_COLUMN), with
DIR/cpf-YYYY-MM-DD.json (what the portal said); DIR/cpf-latest.cpfsnap then names the newest
extraction. Proxies: http_proxy, https_proxy and no_proxy from the environment.

The file: "TITLE" (PUBLISHER), from its portal at URL
(--url another address: a mirror).

Prints what it did on stderr, with a progress line on a terminal (not with -q). Exit 0 when
the folder holds the current extraction, 1 on any failure (nothing half-written is left as a
snapshot).

options:
]],
}
M.HELP.fetch = M.HELP.fetch:gsub("[A-Z][A-Z_]+[A-Z]", { TITLE = schema.source.title,
  PUBLISHER = schema.source.publisher, URL = schema.portal.url, DATE_COLUMN = schema.source.date_column })

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
  if opts.url and not opts.url:match("^https?://[^/%s]+") then
    tools.usage(("--url must be an http:// or https:// address, got '%s'"):format(opts.url))
  end
  local show, clear
  if not opts.quiet and core.stderr_is_tty() then show, clear = progress_line() end
  local answer, err = fetch.fetch { dir = pos[1], url = opts.url, retries = retries, progress = show }
  if clear then clear() end
  if not answer then return tools.fail("fetch: " .. err) end
  if answer.status == "unchanged" then
    io.stderr:write(("cpf: %s already holds the current extraction (%s, %d rows): nothing downloaded\n")
      :format(pos[1], answer.date, answer.rows))
  else
    io.stderr:write(("cpf: wrote %s: the extraction of %s, %d rows (%s downloaded%s)\n"):format(answer.snapshot,
      answer.date, answer.rows, cpf.human_bytes(answer.bytes), answer.resumed > 0 and ", resumed" or ""))
  end
  return 0
end

return M
