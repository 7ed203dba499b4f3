-- cpf.cli — the `cpf` command: subcommands, their options and help texts.
-- Data goes to stdout, messages to stderr; exit 1 on errors, 2 on usage errors.
local cli = {}

local USAGE = [[
usage: cpf COMMAND [ARGS]

commands:
  gen ROWS OUT.csv [--seed N] [--fields] [--no-bom] [--crlf]
                      write a realistic generated CPF file
  demo [DIR]          generate a file and print a short report on it
  --version           print the version
  --help, COMMAND --help
]]

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
usage: cpf demo [DIR] [--rows N]

Generates a CPF file (200000 rows by default) in DIR (default: a temporary directory),
loads it and prints a short report.
]],
}

local function usage_error(msg, command)
  io.stderr:write("cpf: ", msg, "\n")
  io.stderr:write(command and ("try 'cpf " .. command .. " --help'\n") or "try 'cpf --help'\n")
  return 2
end

local function fail(msg)
  io.stderr:write("cpf: ", msg, "\n")
  return 1
end

-- Splits args into positionals and --options; `known` maps each option to "flag" (no value)
-- or "value".
local function parse(args, first, known, command)
  local pos, opts = {}, {}
  local i = first
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      opts.help = true
    elseif a:sub(1, 2) == "--" then
      local name = a:sub(3)
      local kind = known[name]
      if not kind then return nil, ("unknown option '%s'"):format(a) end
      if kind == "flag" then
        opts[name] = true
      else
        i = i + 1
        if args[i] == nil then return nil, ("option '%s' needs a value"):format(a) end
        opts[name] = args[i]
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return pos, opts
end

local function whole_number(s)
  local n = tonumber(s)
  if n and n >= 0 and n == math.floor(n) then return n end
end

function cli.gen(args)
  local pos, opts = parse(args, 2, { seed = "value", fields = "flag", ["no-bom"] = "flag", crlf = "flag" })
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
  local ok, err = require("cpf.gen").write(pos[2], rows, {
    seed = seed, header = opts.fields and "fields" or "labels",
    bom = not opts["no-bom"], crlf = opts.crlf or false,
  })
  if not ok then return fail(err) end
  return 0
end

function cli.demo(args)
  local pos, opts = parse(args, 2, { rows = "value" })
  if not pos then return usage_error(opts, "demo") end
  if opts.help then io.stdout:write(HELP.demo) return 0 end
  local rows = opts.rows and whole_number(opts.rows) or 200000
  if not rows then return usage_error("--rows must be a whole number", "demo") end
  local dir = pos[1] or os.getenv("TMPDIR") or "/tmp"
  local path = dir .. "/cpf-demo.csv"
  io.stderr:write(("cpf: generating %d rows into %s\n"):format(rows, path))
  local ok, err = require("cpf.gen").write(path, rows, { seed = 2026 })
  if not ok then return fail(err) end
  local cpf = require "cpf"
  local ds, lerr = cpf.load(path, { progress = require("cpf.core").stderr_is_tty() or nil })
  if not ds then return fail(lerr) end
  local out = io.stdout
  local function section(title, res)
    out:write(title, "\n", tostring(res), "\n\n")
  end
  out:write(tostring(ds), "\n\n")
  section("Files, amount, average price and duration, cancellation rate by year",
    ds:group_by("annee"):agg { "dossiers", "montant", "prix_moyen", "duree_moyenne", "taux_annulation" }:run())
  local last_year = ds:run { last = cpf.max "date_validation" }[1].last
  last_year = tonumber(last_year and last_year:sub(1, 4))
  if last_year then
    section(("Top 10 regions by amount in %d"):format(last_year),
      ds:where { annee = last_year }:group_by("region_lieu_formation")
        :agg { "dossiers", "montant", "prix_moyen" }:order_by("-montant"):limit(10):run())
  end
  section("Files by status family", ds:group_by("famille"):agg { "dossiers", { "part", cpf.share "nb_dossiers" } }:run())
  section("Who pays", ds:funders())
  ds:close()
  return 0
end

function cli.main(args)
  local command = args[1]
  if command == nil or command == "--help" or command == "-h" or command == "help" then
    io.stdout:write(USAGE)
    return command == nil and 2 or 0
  end
  if command == "--version" then
    io.stdout:write("cpf ", require("cpf")._VERSION, "\n")
    return 0
  end
  local run = cli[command]
  if type(run) ~= "function" or command == "main" then
    return usage_error(("unknown command '%s'"):format(command))
  end
  local ok, code = pcall(run, args)
  if not ok then return fail(tostring(code)) end
  return code
end

return cli
