-- cpf_query.lua: the cpf side of the warm query benchmark. Loads FILE once on 2 threads (not
-- timed), then times every query class of the side-by-side comparison on the loaded dataset.
-- The peers (bench/duckdb.mjs, bench/polars.mjs, bench/chdb.mjs) run the same classes, written
-- in bench/classes.mjs; the names, result columns and row order must stay the same on both
-- sides, or the answer check of bench/report.lua fails.
--
-- Each class is built and run once untimed (warm-up; with --answers, its answer is written to
-- DIR/<class>.cpf.tsv), then N times (--runs: default 7, bench/run.sh asks 15) `build(ds):run()` (a
-- fresh query each time: compiling it is part of answering, as a peer parses and plans its SQL
-- each time), N times the same followed by reading every cell of the result once, so that a lazy
-- result cannot look faster than it is, and N times the same followed by res:format("csv").
-- A class with `after(res)` (a result's own method: join, change, cumsum) has it applied to the
-- query's result inside the timed part: the timed unit is then `after(build(ds):run())`.
-- join_ref joins to the reference table bench/ref_rncp.lua writes beside FILE (lib.ref_path),
-- loaded once, untimed, when the class first runs (as the peers load theirs).
-- Prints one JSON line per class:
--   {"tool":"cpf","mode":"warm","class":C,"seconds":S,"min_seconds":S,"read_seconds":S,
--    "read_min_seconds":S,"csv_seconds":S,"csv_min_seconds":S,"groups":G,"rows":R,"maxrss_kb":K}
-- seconds = median of the 7 runs; groups = rows of the result.
-- Usage (from the repository root):
--   lua5.4 bench/cpf_query.lua FILE [--answers DIR] [--runs N] [--only CLASS,CLASS...]
local lib = dofile("bench/lib.lua")
local cpf = require "cpf"
local clock = require("cpf.core").clock

local function usage(message)
  io.stderr:write("cpf_query.lua: ", message, "\n",
    "usage: lua5.4 bench/cpf_query.lua FILE [--answers DIR] [--runs N] [--only CLASS,...]\n")
  os.exit(2)
end

local path, answers, runs, only = nil, nil, 7, nil
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--answers" then answers = arg[i + 1]; i = i + 2
    elseif a == "--runs" then runs = tonumber(arg[i + 1]); i = i + 2
    elseif a == "--only" then
      only = {}
      for name in (arg[i + 1] or ""):gmatch("[^,]+") do only[name] = true end
      i = i + 2
    elseif a:sub(1, 2) == "--" then usage("unknown option " .. a)
    elseif not path then path = a; i = i + 1
    else usage("unexpected argument " .. a) end
  end
end
if not path then usage("missing FILE") end
if not runs or runs < 1 or runs % 1 ~= 0 then usage("--runs wants a positive integer") end

-- The constants every engine uses (bench/classes.mjs has the same).
local CLOS = "Clos - Réalisation Totale"   -- the most frequent status of the export
local PREFIX = "37"                        -- ~9 % of the rows have a code_rncp starting with it
local AMOUNT = 1000                        -- montant_engage > 1000: about half of the rows
local MIN_FILES = 100                      -- having: code_rncp x month groups of >= 100 files
local TOP = 3                              -- top3_per_region: the first 3 rows of each region

local year, month = cpf.year "date_validation", cpf.month "date_validation"
local REGION = "region_lieu_formation"

-- Result columns and their kinds, written in the answer files' header and used by the report
-- to compare values: key (exact), count (exact integer), money (cents), real (relative), text
-- (exact: a column of labels, not a key).
local BY_REGION_YEAR = { { REGION, "key" }, { "annee", "key" }, { "dossiers", "count" },
  { "montant", "money" }, { "prix_moyen", "real" } }
local function region_year(q) return q:group_by(REGION, year):agg { "dossiers", "montant", "prix_moyen" } end
local BY_CODE_MONTH = { { "code_rncp", "key" }, { "mois", "key" }, { "dossiers", "count" }, { "montant", "money" } }

-- join_ref's reference table, loaded on first use (not timed); both columns text, as every
-- engine is told.
local reference
local function ref()
  if not reference then
    local refpath = lib.ref_path(path)
    local f = io.open(refpath, "rb")
    if not f then
      error(("no reference table %s: write it with `lua5.4 bench/ref_rncp.lua %s`"):format(refpath, path), 0)
    end
    f:close()
    reference = assert(cpf.load(refpath, { types = { code_rncp = "string", libelle = "string" } }))
  end
  return reference
end

local CLASSES = {
  { name = "region_year", columns = BY_REGION_YEAR,
    build = function(ds) return region_year(ds:query()) end },
  { name = "rncp_month", columns = { { "code_rncp", "key" }, { "mois", "key" }, { "dossiers", "count" },
      { "montant", "money" } },
    build = function(ds) return ds:group_by("code_rncp", month):agg { "dossiers", "montant" } end },
  { name = "rs_month", columns = { { "code_rs", "key" }, { "mois", "key" }, { "dossiers", "count" },
      { "montant", "money" } },
    build = function(ds) return ds:group_by("code_rs", month):agg { "dossiers", "montant" } end },
  { name = "eq_filter", columns = BY_REGION_YEAR,
    build = function(ds) return region_year(ds:where { statut_dossier = CLOS }) end },
  { name = "prefix_fn", columns = BY_REGION_YEAR,
    build = function(ds)
      return region_year(ds:where { code_rncp = function(v) return v:sub(1, #PREFIX) == PREFIX end })
    end },
  { name = "gt_filter", columns = BY_REGION_YEAR,
    build = function(ds) return region_year(ds:where { montant_engage = cpf.gt(AMOUNT) }) end },
  { name = "gt_fn", columns = BY_REGION_YEAR,
    build = function(ds) return region_year(ds:where { montant_engage = function(v) return v > AMOUNT end }) end },
  { name = "quantiles", columns = { { REGION, "key" }, { "mediane", "real" }, { "p90", "real" } },
    build = function(ds)
      return ds:group_by(REGION):agg { { "mediane", cpf.median "montant_engage" },
        { "p90", cpf.quantile("montant_engage", 0.9) } }
    end },
  { name = "median_all", columns = { { "mediane", "real" } },
    build = function(ds) return ds:query():agg { { "mediane", cpf.median "montant_engage" } } end },
  { name = "distinct", columns = { { REGION, "key" }, { "certifications", "count" } },
    build = function(ds) return ds:group_by(REGION):agg { { "certifications", cpf.distinct "code_rncp" } } end },
  { name = "top10", columns = { { "libelle_formacode_principal", "key" }, { "dossiers", "count" },
      { "montant", "money" } },
    build = function(ds)
      return ds:group_by("libelle_formacode_principal"):agg { "dossiers", "montant" }
               :order_by("-montant"):limit(10)
    end },
  { name = "filtered", columns = { { REGION, "key" }, { "annee", "key" }, { "dossiers", "count" },
      { "montant", "money" }, { "dossiers_clos", "count" }, { "montant_clos", "money" } },
    build = function(ds)
      return ds:group_by(REGION, year):agg { "dossiers", "montant",
        { "dossiers_clos", cpf.filtered("dossiers", { statut_dossier = CLOS }) },
        { "montant_clos", cpf.filtered("montant", { statut_dossier = CLOS }) } }
    end },
  { name = "three_keys", columns = { { REGION, "key" }, { "modalite_presence", "key" }, { "annee", "key" },
      { "dossiers", "count" }, { "montant", "money" } },
    build = function(ds) return ds:group_by(REGION, "modalite_presence", year):agg { "dossiers", "montant" } end },
  -- Results from results (doc/api.md): conditions on aggregates, top n per group, a join to a
  -- reference table, the change from the previous period, a running total.
  { name = "having", columns = BY_CODE_MONTH,
    build = function(ds)
      return ds:group_by("code_rncp", month):agg { "dossiers", "montant" }:having { dossiers = cpf.ge(MIN_FILES) }
    end },
  { name = "top3_per_region", columns = { { REGION, "key" }, { "code_rncp", "key" }, { "dossiers", "count" },
      { "montant", "money" } },
    build = function(ds)
      return ds:group_by(REGION, "code_rncp"):agg { "dossiers", "montant" }
               :order_by(REGION, "-montant", "code_rncp"):limit(TOP, { per = REGION })
    end },
  { name = "join_ref", columns = { BY_CODE_MONTH[1], BY_CODE_MONTH[2], BY_CODE_MONTH[3], BY_CODE_MONTH[4],
      { "libelle", "text" } },
    setup = ref,
    build = function(ds) return ds:group_by("code_rncp", month):agg { "dossiers", "montant" } end,
    after = function(res) return res:join(ref(), "code_rncp", { columns = { "libelle" } }) end },
  { name = "yoy_change", columns = { { REGION, "key" }, { "annee", "key" }, { "montant", "money" },
      { "montant_prec", "money" }, { "montant_evol", "money" }, { "montant_evol_pct", "real" } },
    build = function(ds) return ds:group_by(REGION, "annee"):agg { "montant" } end,
    after = function(res) return res:change("montant", { over = "annee" }) end },
  { name = "cumsum_month", columns = { { "mois", "key" }, { "dossiers", "count" }, { "dossiers_cumul", "count" } },
    build = function(ds) return ds:group_by("mois"):agg { "dossiers" } end,
    after = function(res) return res:cumsum("dossiers", { over = "mois" }) end },
}

-- ------------------------------------------------------------------ answers
-- One line per row, tab-separated, the header "name:kind" first. \N is a missing value; text
-- escapes backslash, tab, CR and LF. Counts are written exact, money to the cent, the rest
-- with 12 significant digits (the report compares those with a relative tolerance).
local function cell(v, kind)
  if v == nil then return "\\N" end
  if type(v) == "string" then
    return (v:gsub("[\\\t\r\n]", { ["\\"] = "\\\\", ["\t"] = "\\t", ["\r"] = "\\r", ["\n"] = "\\n" }))
  end
  if type(v) == "boolean" then return tostring(v) end
  if kind == "money" then return ("%.2f"):format(v) end
  if kind == "real" then return ("%.12g"):format(v) end
  -- keys (years) and counts: integers, written without a decimal point
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.12g"):format(v)
end

local function write_answer(dir, class, res)
  local names = {}
  for i, c in ipairs(class.columns) do names[i] = c[1] end
  -- the result's own columns must be the class's: a renamed aggregate would otherwise be
  -- written as missing values and compared as such
  local got = res:columns()
  assert(table.concat(got, ",") == table.concat(names, ","),
    ("class %s: result columns %s, expected %s"):format(class.name, table.concat(got, ","), table.concat(names, ",")))
  local out = {}
  local header = {}
  for i, c in ipairs(class.columns) do header[i] = c[1] .. ":" .. c[2] end
  out[1] = table.concat(header, "\t")
  for _, row in res:rows() do
    local line = {}
    for i, c in ipairs(class.columns) do line[i] = cell(row[c[1]], c[2]) end
    out[#out + 1] = table.concat(line, "\t")
  end
  local f = assert(io.open(("%s/%s.cpf.tsv"):format(dir, class.name), "wb"))
  f:write(table.concat(out, "\n"), "\n")
  f:close()
end

-- ------------------------------------------------------------------- timing
local function timed(n, fn)
  local t = {}
  for i = 1, n do
    local t0 = clock()
    fn()
    t[i] = clock() - t0
  end
  table.sort(t)
  local m = (n + 1) // 2
  return n % 2 == 1 and t[m] or (t[m] + t[m + 1]) / 2, t[1]
end

-- Every cell once, through the public row interface.
local function read_all(res)
  local cols = res:columns()
  for _, row in res:rows() do
    for i = 1, #cols do local _ = row[cols[i]] end
  end
end

local ds = assert(cpf.load(path, { threads = 2 }))
for _, class in ipairs(CLASSES) do
  if not only or only[class.name] then
    collectgarbage()                          -- the previous class's garbage is not this one's
    if class.setup then class.setup() end     -- once, untimed (join_ref's reference table)
    local after = class.after or function(res) return res end
    local function answer() return after(class.build(ds):run()) end
    local res = answer()                      -- warm-up, and the answer
    if answers then write_answer(answers, class, res) end
    local s, s_min = timed(runs, function() res = answer() end)
    local r, r_min = timed(runs, function() read_all(answer()) end)
    local c, c_min = timed(runs, function() answer():format("csv") end)
    print(('{"tool":"cpf","mode":"warm","class":"%s","lua":"%s","seconds":%.6f,"min_seconds":%.6f,'
      .. '"read_seconds":%.6f,"read_min_seconds":%.6f,"csv_seconds":%.6f,"csv_min_seconds":%.6f,"groups":%d,'
      .. '"rows":%d,"maxrss_kb":%d}'):format(class.name, jit and "luajit" or _VERSION, s, s_min, r, r_min, c, c_min,
      #res, #ds, lib.status_kb("VmHWM")))
    io.stdout:flush()
  end
end
