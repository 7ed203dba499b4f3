-- bench/report.lua: turns the JSON lines collected by bench/run.sh into the
-- Markdown report (stdout), and checks every peer's warm answers against cpf's.
-- Plain Lua 5.4, no dependencies.
--
-- Usage: lua5.4 bench/report.lua bench/out/results-2m.jsonl > bench/results.md
-- Exit status: 0; 3 when a check fails (an answer differs from cpf's, a totals
-- mismatch, a peer's answer missing): the report is complete all the same.
--
-- Input: one flat JSON object per line (no nesting, no arrays), as the
-- measurements print them, plus the lines run.sh adds itself:
--   {"tool":"_meta", ...}            date, machine, file, versions (exactly one)
--   {"tool":"_peer","engine":E,...}  a peer that loaded, with its version
--   {"tool":"_missing","engine":E,"reason":R}  a peer that did not
--   {"tool":"_failed", ...}          a run that exited non-zero or printed no JSON
-- and {"tool":"_failed_class","engine":E,"class":C,"error":M} from a peer.
-- Lines with "mode":"warm" and a "class" are the warm query classes (one
-- table); one-shots have their own table; every other line is grouped into
-- rows by (tool, mode, threads, lua), in order of first appearance, so any
-- new bench/cpf_*.lua output gets its own rows unasked.
-- The answers (bench/out/answers/<class>.<engine>.tsv, written by the warm
-- processes of round 1) are compared row by row with cpf's: see check_answer.

local path = assert(arg[1], "usage: lua5.4 bench/report.lua RESULTS.jsonl")

-- Flat JSON object -> Lua table. A pattern scanner is enough: the
-- measurements print only strings, numbers, booleans and null at the top level.
local function parse(line)
  local t, pos = {}, 1
  while true do
    local ks, ke, key = line:find('"([^"]*)"%s*:%s*', pos)
    if not ks then break end
    pos = ke + 1
    local c = line:sub(pos, pos)
    if c == '"' then
      local i, buf = pos + 1, {}
      while i <= #line do
        local ch = line:sub(i, i)
        if ch == "\\" then
          local e = line:sub(i + 1, i + 1)
          if e == "u" then   -- JSON.stringify escapes control characters so
            buf[#buf + 1] = "?"
            i = i + 6
          else
            buf[#buf + 1] = ({ n = " ", t = " ", r = "" })[e] or e
            i = i + 2
          end
        elseif ch == '"' then
          break
        else
          buf[#buf + 1] = ch
          i = i + 1
        end
      end
      t[key] = table.concat(buf)
      pos = i + 1
    else
      local raw = line:match("^[^,}]*", pos)
      pos = pos + #raw
      raw = raw:gsub("%s+$", "")
      if raw == "true" then t[key] = true
      elseif raw == "false" then t[key] = false
      elseif raw ~= "null" then t[key] = tonumber(raw) end
    end
  end
  return t
end

local ENGINES = { "cpf", "duckdb", "polars", "chdb" }
local PEERS = { "duckdb", "polars", "chdb" }
local NAME = { cpf = "cpf", duckdb = "DuckDB", polars = "polars", chdb = "chDB" }

local meta, failures, peers, missing, failed_class = {}, {}, {}, {}, {}
local groups, order = {}, {}                 -- process rows
local warm, classes = {}, {}                 -- warm[class][engine] = { lines }, classes in order
local oneshots = {}                          -- oneshots[engine .. threads] = { lines }
local exports = {}                           -- exports[engine] = { lines }: the export class

local function add_class(class)
  if not warm[class] then
    warm[class] = {}
    classes[#classes + 1] = class
  end
  return warm[class]
end

for line in io.lines(path) do
  if line:match("^%s*{") then
    local t = parse(line)
    if t.tool == "_meta" then meta = t
    elseif t.tool == "_failed" then failures[#failures + 1] = t
    elseif t.tool == "_peer" then peers[t.engine] = t
    elseif t.tool == "_missing" then missing[t.engine] = t.reason or "?"
    elseif t.tool == "_failed_class" then
      failed_class[t.engine] = failed_class[t.engine] or {}
      failed_class[t.engine][t.class] = t.error or "?"
      add_class(t.class)
    elseif t.mode == "warm" and t.class then
      local w = add_class(t.class)
      w[t.tool] = w[t.tool] or {}
      table.insert(w[t.tool], t)
    elseif t.mode == "export" then
      exports[t.tool] = exports[t.tool] or {}
      table.insert(exports[t.tool], t)
    elseif t.tool == "cpf_oneshot" or t.mode == "oneshot" then
      local engine = t.tool == "cpf_oneshot" and "cpf" or t.tool
      local k = engine .. (t.threads or "")
      oneshots[k] = oneshots[k] or {}
      table.insert(oneshots[k], t)
    elseif t.tool then
      local key = table.concat({ t.tool, t.mode or "", tostring(t.threads or ""), t.lua or "" }, "|")
      local g = groups[key]
      if not g then
        g = { key = key, tool = t.tool, mode = t.mode, threads = t.threads, lua = t.lua, runs = {} }
        groups[key] = g
        order[#order + 1] = g
      end
      g.runs[#g.runs + 1] = t
    end
  end
end

-- Median of one numeric field over lines (mean of the middle two when the
-- count is even); nil when no line has the field.
local function median_of(lines, field)
  local v = {}
  for _, r in ipairs(lines or {}) do
    if type(r[field]) == "number" then v[#v + 1] = r[field] end
  end
  if #v == 0 then return nil end
  table.sort(v)
  local m = (#v + 1) // 2
  if #v % 2 == 1 then return v[m] end
  return (v[m] + v[m + 1]) / 2
end
local function min_of(lines, field)
  local best
  for _, r in ipairs(lines or {}) do
    local x = r[field]
    if type(x) == "number" and (not best or x < best) then best = x end
  end
  return best
end
local function median(g, field) return g and median_of(g.runs, field) end
local function minimum(g, field) return g and min_of(g.runs, field) end

local MiB = 1024 * 1024
local function fmt(pattern, x) return x and pattern:format(x) or "n/a" end
local function ratio(a, b) return (a and b and b > 0) and a / b or nil end
local function ms(s)
  if not s then return nil end
  local v = s * 1000
  return (v >= 100 and "%.0f" or v >= 10 and "%.1f" or "%.2f"):format(v)
end
local function mib(kb) return kb and ("%.0f"):format(kb / 1024) or "n/a" end

local out = {}
local function say(s) out[#out + 1] = s or "" end
local checks_ok = true

-- ------------------------------------------------------------------ header
say("# cpf benchmarks")
say()
say(("- date: %s (commit %s)"):format(meta.date or "?", meta.git or "?"))
say(("- machine: %s, %s CPUs (nproc), %.1f GiB memory; load average %s at the start"):format(
  meta.cpu or "?", tostring(meta.nproc or "?"), (meta.mem_kb or 0) / MiB, meta.loadavg or "?"))
say(("- file: `%s`, %s rows, %.1f MB (%.1f MiB)"):format(meta.file or "?",
  tostring(meta.rows or "?"), (meta.csv_bytes or 0) / 1e6, (meta.csv_bytes or 0) / MiB))
local function peer_version(e, package)
  local p = peers[e]
  if not p then return ("%s %s: missing"):format(package, meta[e .. "_package"] or "?") end
  return ("%s %s (%s %s)"):format(package, meta[e .. "_package"] or "?", NAME[e], p.version or "?")
end
say(("- versions: %s; %s; node %s; %s; %s; %s"):format(meta.lua or "?", meta.luajit or "?", meta.node or "?",
  peer_version("duckdb", "@duckdb/node-api"), peer_version("polars", "nodejs-polars"),
  peer_version("chdb", "chdb")))
say(("- runs: %s rounds of every process, round-robin (median and min of the rounds); warm queries:"
  .. " %s timed runs in each process, median; pure Lua: %s run%s, it is the slow peer and serves as an"
  .. " order of magnitude"):format(tostring(meta.runs or "?"), tostring(meta.warm_runs or "?"),
  tostring(meta.pure_runs or "?"), meta.pure_runs == 1 and "" or "s"))
say("- threads: 2 for every engine (DuckDB `threads`, POLARS_MAX_THREADS, ClickHouse `max_threads`,"
  .. " cpf.load's `threads`)")
local missing_list = {}
for _, e in ipairs(PEERS) do
  if missing[e] then missing_list[#missing_list + 1] = ("**%s missing**: %s"):format(NAME[e], missing[e]) end
end
if #missing_list > 0 then say("- " .. table.concat(missing_list, "; ")) end
say()

-- ------------------------------------------------------------ the answers
-- An answer file: a header of name:kind, then one row per line, tab-separated.
local function read_answer(file)
  local f = io.open(file, "rb")
  if not f then return nil end
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  local header = table.remove(lines, 1) or ""
  local kinds = {}
  for col in (header .. "\t"):gmatch("([^\t]*)\t") do
    local name, kind = col:match("^(.*):(%a+)$")
    kinds[#kinds + 1] = { name = name or col, kind = kind or "key" }
  end
  return { header = header, kinds = kinds, rows = lines }
end

local function split(line)
  local t = {}
  for v in (line .. "\t"):gmatch("([^\t]*)\t") do t[#t + 1] = v end
  return t
end

-- Two cells agree: keys, counts, text (labels) and missing values exactly;
-- money within a cent (the peers add doubles, cpf adds exact cents; a sum that
-- lands on a half cent may round either way) plus 1e-12 relative; reals
-- (averages, quantiles, relative changes) within 1e-9 relative.
local function same_cell(a, b, kind)
  if a == b then return true end
  if kind == "key" or kind == "count" or kind == "text" then return false end
  local x, y = tonumber(a), tonumber(b)
  if not x or not y then return false end
  local scale = math.max(math.abs(x), math.abs(y))
  if kind == "money" then return math.abs(x - y) <= 0.01 + 1e-12 * scale end
  return math.abs(x - y) <= 1e-9 * scale + 1e-12
end

local function short(s) return #s > 60 and s:sub(1, 57) .. "..." or s end

-- "agree", or "differs: ..." with the first differing row.
local function compare(ref, ans, engine)
  if ans.header ~= ref.header then
    return false, ("differs: columns `%s`, cpf's `%s`"):format(short(ans.header), short(ref.header))
  end
  local n = math.min(#ref.rows, #ans.rows)
  for i = 1, n do
    if ref.rows[i] ~= ans.rows[i] then
      local a, b = split(ref.rows[i]), split(ans.rows[i])
      for j = 1, math.max(#a, #b) do
        local k = ref.kinds[j] or { name = "?", kind = "key" }
        if not same_cell(a[j], b[j], k.kind) then
          return false, ("differs: first differing row %d, %s: cpf `%s`, %s `%s` (row: `%s`)"):format(
            i, k.name, short(a[j] or "(none)"), NAME[engine], short(b[j] or "(none)"), short(ans.rows[i]))
        end
      end
    end
  end
  if #ref.rows ~= #ans.rows then
    local first = n + 1
    return false, ("differs: first differing row %d: cpf has %d rows, %s %d"):format(
      first, #ref.rows, NAME[engine], #ans.rows)
  end
  return true, "agree"
end

local answers = {}     -- answers[class][engine] = { ok = bool|nil, text = ... }
local dir = meta.answers or "bench/out/answers"
for _, class in ipairs(classes) do
  answers[class] = {}
  local ref = read_answer(("%s/%s.cpf.tsv"):format(dir, class))
  for _, e in ipairs(PEERS) do
    local a
    if missing[e] then
      a = { text = "missing (" .. NAME[e] .. " did not load)" }
    elseif failed_class[e] and failed_class[e][class] then
      a = { ok = false, text = "no answer: the class failed: " .. short(failed_class[e][class]) }
    elseif not ref then
      a = { ok = false, text = "no cpf answer to compare with" }
    else
      local ans = read_answer(("%s/%s.%s.tsv"):format(dir, class, e))
      if not ans then
        a = { ok = false, text = "no answer file" }
      else
        local ok, text = compare(ref, ans, e)
        -- the timed runs must have returned as many rows as the answer
        for _, r in ipairs(warm[class][e] or {}) do
          if ok and r.groups and r.groups ~= #ans.rows then
            ok, text = false, ("differs: a timed run returned %d rows, the answer %d"):format(r.groups, #ans.rows)
          end
        end
        a = { ok = ok, text = text }
      end
    end
    if a.ok == false then checks_ok = false end
    answers[class][e] = a
  end
  if ref then
    for _, r in ipairs(warm[class].cpf or {}) do
      if r.groups and r.groups ~= #ref.rows then
        checks_ok = false
        answers[class].cpf_note = ("a timed cpf run returned %d rows, its answer %d"):format(r.groups, #ref.rows)
      end
    end
  elseif warm[class].cpf then
    checks_ok = false
  end
end

-- ----------------------------------------------------------- warm classes
local TARGET_WARM = 0.5
say("## Warm queries")
say()
say("Data loaded once per process; each class run once untimed (its answer checked against cpf's, below),"
  .. " then timed; milliseconds, median over the rounds of each round's median. cpf run = `q:run()`,"
  .. " cpf run+read = the same, then every cell of the result read once.")
say()
say(("| class | rows | cpf run (min) | cpf run+read (min) | cpf run+csv (min) | med/min | DuckDB | polars | chDB"
  .. " | fastest peer | run / fastest | run+read / fastest | target ≤ %s | answers |"):format(TARGET_WARM))
say("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|---|---|")
local passed, judged = 0, 0
local steady, timed_classes = 0, 0 -- cpf classes whose median is within STEADY × their minimum
local STEADY = 1.25
for _, class in ipairs(classes) do
  local w = warm[class]
  local function cell_of(e, field)
    if e ~= "cpf" and missing[e] then return "missing" end
    if failed_class[e] and failed_class[e][class] then return "error" end
    return ms(median_of(w[e], field)) or "n/a"
  end
  local best, best_e
  for _, e in ipairs(PEERS) do
    local s = not missing[e] and median_of(w[e], "seconds")
    if s and (not best or s < best) then best, best_e = s, e end
  end
  local run, read = median_of(w.cpf, "seconds"), median_of(w.cpf, "read_seconds")
  local r = ratio(run, best)
  local verdict = "n/a"
  if r then
    judged = judged + 1
    if r <= TARGET_WARM then passed = passed + 1; verdict = "PASS" else verdict = "MISS" end
  end
  local bad = {}
  for _, e in ipairs(PEERS) do
    if answers[class][e].ok == false then bad[#bad + 1] = NAME[e] end
  end
  if answers[class].cpf_note then bad[#bad + 1] = "cpf" end
  local agree = #bad > 0 and ("**DIFFERS** (" .. table.concat(bad, ", ") .. ")") or "agree"
  local function with_min(field, min_field)
    return ("%s (%s)"):format(cell_of("cpf", field), ms(min_of(w.cpf, min_field)) or "n/a")
  end
  local spreads = {} -- each round's median over its own minimum (15 runs in one process)
  for _, line in ipairs(w.cpf or {}) do
    spreads[#spreads + 1] = { spread = ratio(line.seconds, line.min_seconds) }
  end
  local spread = median_of(spreads, "spread")
  if spread then
    timed_classes = timed_classes + 1
    if spread <= STEADY then steady = steady + 1 end
  end
  say(("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"):format(class,
    fmt("%d", median_of(w.cpf, "groups")), with_min("seconds", "min_seconds"),
    with_min("read_seconds", "read_min_seconds"), with_min("csv_seconds", "csv_min_seconds"), fmt("%.2f", spread),
    cell_of("duckdb", "seconds"), cell_of("polars", "seconds"), cell_of("chdb", "seconds"),
    best_e and NAME[best_e] or "n/a", fmt("%.2f", r), fmt("%.2f", ratio(read, best)), verdict, agree))
end
-- each process's high-water mark: the load and every class
local function peak(e)
  local worst
  for _, class in ipairs(classes) do
    local v = median_of(warm[class][e], "maxrss_kb")
    if v and (not worst or v > worst) then worst = v end
  end
  return worst
end
say(("| peak RSS, MiB | | %s | | | | %s | %s | %s | | | | | |"):format(mib(peak("cpf")),
  missing.duckdb and "missing" or mib(peak("duckdb")), missing.polars and "missing" or mib(peak("polars")),
  missing.chdb and "missing" or mib(peak("chdb"))))
say()
say(("%d of %d classes within the target (cpf run ≤ %s × the fastest peer)."):format(passed, judged, TARGET_WARM))
say()
say(("Steady runs: %d of %d classes have their cpf median within %s × their minimum (med/min: in each round's"
  .. " process, the median of its %s timed runs over their minimum; the median of the rounds)."):format(
  steady, timed_classes, STEADY, fmt("%d", meta.cpf_warm_runs or meta.warm_runs)))
say()
say("What the classes are (same rows, same order on every engine: cpf's default order, keys ascending,"
  .. " missing values last; SQL `ORDER BY ... NULLS LAST`):")
say("- region_year: files (Σ nb_dossiers), amount (Σ montant_engage), average price (Σ amount / Σ files)"
  .. " by region and year of `date validation`.")
say("- rncp_month, rs_month: files and amount by `code_rncp` (`code_rs`) and month.")
say("- eq_filter: statut_dossier = 'Clos - Réalisation Totale', then region_year.")
say("- prefix_fn: cpf a Lua function `v:sub(1, 2) == \"37\"` on code_rncp; peers `LIKE '37%'`,"
  .. " `str.startsWith`; then region_year.")
say("- gt_filter: `cpf.gt(1000)` on montant_engage, peers `> 1000`; gt_fn: cpf the Lua function"
  .. " `v > 1000`, the peers gt_filter again; then region_year.")
say("- quantiles: median and 90th percentile of montant_engage by region (linear interpolation, R type 7:"
  .. " DuckDB quantile_cont, polars quantile(…, 'linear'), ClickHouse quantileExactInclusive);"
  .. " median_all: the median of all rows.")
say("- distinct: distinct code_rncp by region; top10: files and amount of the 10"
  .. " libelle_formacode_principal of largest amount.")
say("- filtered: files and amount, and the same over the rows of status 'Clos - Réalisation Totale'"
  .. " (`cpf.filtered`, SQL `FILTER (WHERE …)`, polars `filter` inside `agg`) by region and year;"
  .. " three_keys: files and amount by region, modalite_presence and year.")
say("- having: rncp_month's groups of at least 100 files (cpf `q:having{dossiers = cpf.ge(100)}`, SQL"
  .. " `HAVING sum(nb_dossiers) >= 100`, polars `filter` after `agg`).")
say("- top3_per_region: files and amount by region and code_rncp, the 3 codes of largest amount in each"
  .. " region (ties by code), region ascending then amount descending (cpf `order_by` +"
  .. " `limit(3, {per = region})`, DuckDB `QUALIFY row_number() OVER (PARTITION BY region …) <= 3`,"
  .. " ClickHouse the same `row_number()` filtered in an outer query, polars a sort then"
  .. " `intRange(0, len()).over(region) < 3`).")
say("- join_ref: rncp_month left-joined on code_rncp to a 20 000-row reference table (each code once,"
  .. " `code_rncp;libelle`, text; written by bench/ref_rncp.lua beside the data file, loaded once per"
  .. " process, untimed), bringing `libelle`; cpf times `q:run()` then `res:join(ref, \"code_rncp\","
  .. " {columns = {\"libelle\"}})`, the peers the query with its `LEFT JOIN`.")
say("- yoy_change: amount by region and year, with the previous year's amount within the region"
  .. " (`montant_prec`: the previous year present), the difference and the relative change (none when"
  .. " the previous amount is missing or 0); cpf `q:run()` then `res:change(\"montant\", {over = \"annee\"})`,"
  .. " SQL `LAG` (ClickHouse `lagInFrame`) `OVER (PARTITION BY region ORDER BY annee)`, polars"
  .. " `shift(1).over(region)`.")
say("- cumsum_month: files by month and their running total in month order (a row without a month would"
  .. " have none); cpf `q:run()` then `res:cumsum(\"dossiers\", {over = \"mois\"})`, SQL"
  .. " `sum(dossiers) OVER (ORDER BY mois)`, polars `cumSum`.")
say("- What a peer's time covers: DuckDB `runAndReadAll` (the result materialised), polars `collectSync`"
  .. " (a DataFrame), chDB `query(sql, 'TabSeparated')` (the result as one string). A query is built"
  .. " anew for every run on every engine (cpf compiles it, the peers parse and plan their SQL).")
say()

-- ----------------------------------------------------------------- answers
say("## Answers check")
say()
say("Each peer's answer to each class (round 1, untimed) against cpf's, row by row: keys, counts, labels and"
  .. " missing values exactly, money within a cent, averages, quantiles and relative changes within 1e-9 relative"
  .. " (`bench/out/answers/<class>.<engine>.tsv`).")
say()
say("| class | DuckDB | polars | chDB |")
say("|---|---|---|---|")
for _, class in ipairs(classes) do
  local a = answers[class]
  local function t(e) return a[e].ok == false and ("**" .. a[e].text .. "**") or a[e].text end
  local note = a.cpf_note and (" (**" .. a.cpf_note .. "**)") or ""
  say(("| %s%s | %s | %s | %s |"):format(class, note, t("duckdb"), t("polars"), t("chdb")))
end
say()
if #classes == 0 then
  say("No warm class ran: **nothing checked**.")
  checks_ok = false
else
  say(checks_ok and "Answers: every peer that loaded agrees with cpf on every class."
    or "Answers: **FAIL**, see above.")
end
say()

-- --------------------------------------------------------------- one-shot
local TARGET_ONESHOT = 0.3
local function os_time(lines) return median_of(lines, "process_seconds") or median_of(lines, "seconds") end
local best_os, best_os_e
for _, e in ipairs(PEERS) do
  local s = os_time(oneshots[e .. "2"])
  if s and (not best_os or s < best_os) then best_os, best_os_e = s, e end
end
local duck_rss = median_of(oneshots.duckdb2, "maxrss_kb")
say("## One-shot: region × year straight from the CSV")
say()
say("A new process reads the CSV and answers region_year: process s = the whole process timed from outside"
  .. " (interpreter or node start, the engine's package, the read, the query, the exit), in-script s = from"
  .. " the script's first line to the result. cpf loads only the 4 columns it needs; polars scans lazily"
  .. " (`scanCSV`); chDB reads with `file()`; DuckDB with `read_csv`.")
say()
say("| one-shot | threads | process s | in-script s | peak RSS MiB | × fastest peer (2 threads) | RSS × DuckDB |")
say("|---|--:|--:|--:|--:|--:|--:|")
for _, row in ipairs { { "cpf", 2 }, { "duckdb", 2 }, { "polars", 2 }, { "chdb", 2 }, { "cpf", 1 }, { "duckdb", 1 } } do
  local e, th = row[1], row[2]
  local lines = oneshots[e .. th]
  if lines or (e ~= "cpf" and th == 2) then
    local s, rss = os_time(lines), median_of(lines, "maxrss_kb")
    say(("| %s | %d | %s | %s | %s | %s | %s |"):format(NAME[e], th,
      (e ~= "cpf" and missing[e]) and "missing" or fmt("%.3f", s), fmt("%.3f", median_of(lines, "seconds")),
      mib(rss), fmt("%.2f", ratio(s, best_os)), fmt("%.2f", ratio(rss, duck_rss))))
  end
end
say()
local cpf_os = os_time(oneshots.cpf2)
local os_ratio = ratio(cpf_os, best_os)
say(("cpf one-shot / fastest peer's (%s), 2 threads: %s, target ≤ %s: %s."):format(
  best_os_e and NAME[best_os_e] or "n/a", fmt("%.2f", os_ratio), TARGET_ONESHOT,
  os_ratio and (os_ratio <= TARGET_ONESHOT and "PASS" or "MISS") or "n/a"))
say()

-- ------------------------------------------------------ the other processes
local function label(g)
  local parts
  if g.tool == "libcsv_raw" then parts = { "libcsv raw tokenise" }
  elseif g.tool == "cpf_load" then parts = { "cpf load" }
  elseif NAME[g.tool] then parts = { NAME[g.tool] }
  elseif g.tool == "pure_lua" then parts = { "pure Lua 5.4" }
  else parts = { (g.tool:gsub("_", " ")) } end
  if g.mode then parts[#parts + 1] = g.mode end
  if g.threads then
    parts[#parts + 1] = g.threads .. (g.threads == 1 and " thread" or " threads")
  end
  if g.lua then parts[#parts + 1] = "(" .. (g.lua == "luajit" and "LuaJIT" or g.lua) .. ")" end
  return table.concat(parts, " ")
end
local function find(pred)
  for _, g in ipairs(order) do if pred(g) then return g end end
end
local libcsv = find(function(g) return g.tool == "libcsv_raw" end)
-- the reference: cpf.load on one thread (the issue's "single-thread load" target)
local cpf = find(function(g) return g.tool == "cpf_load" and g.lua ~= "luajit" and (g.threads or 1) == 1 end)
local cpfjit = find(function(g) return g.tool == "cpf_load" and g.lua == "luajit" and (g.threads or 1) == 1 end)
local pure = find(function(g) return g.tool == "pure_lua" end)
local libcsv_s = median(libcsv, "seconds")
local cpf_s = median(cpf, "seconds")

say("## Loads, snapshot, pure Lua")
say()
say("| tool | runs | median s | min s | × libcsv raw | × cpf load | peak RSS MiB |")
say("|---|--:|--:|--:|--:|--:|--:|")
for _, g in ipairs(order) do
  local s = median(g, "seconds")
  say(("| %s | %d | %s | %s | %s | %s | %s |"):format(label(g), #g.runs,
    fmt("%.3f", s), fmt("%.3f", minimum(g, "seconds")),
    fmt("%.2f", ratio(s, libcsv_s)), fmt("%.2f", ratio(s, cpf_s)), mib(median(g, "maxrss_kb"))))
end
for _, e in ipairs(PEERS) do
  if missing[e] then say(("| %s load | — | missing | | | | |"):format(NAME[e])) end
end
say()
say("What each row times (wall clock, file in the page cache):")
say("- libcsv raw tokenise: `csv_parse` with empty callbacks over an mmap'ed, pre-faulted"
  .. " file -- the floor for any libcsv-based loader. Its RSS includes the mapped file.")
say("- cpf load: `cpf.load(path)` alone (bench/cpf_load.lua), in a fresh process.")
say("- DuckDB / polars / chDB load: the load of their warm process, timed alone: DuckDB `CREATE TABLE t AS"
  .. " SELECT * FROM read_csv(...)` (in-memory instance), polars `readCSV` (rechunked), chDB `CREATE TABLE t"
  .. " ENGINE = Memory AS SELECT * FROM file(...)`; peak RSS when the load ends.")
say("- cpf snapshot: `ds:save` (once, when the snapshot is missing) and `cpf.open` + region_year in a fresh process.")
say("- pure Lua 5.4: hand-written reader + region×year aggregation (bench/pure_lua.lua).")
say("- peak RSS: median over runs of each process's high-water mark (maxrss / VmHWM);"
  .. " node's includes the runtime itself.")
say()

-- ------------------------------------------------------------------ export
-- An export file: header and rows, each a list of cells (the separator read from the header line:
-- ',' or ';'; fields quoted with '"', doubled inside; no line break inside a field here).
local function read_export(file)
  local f = file and io.open(file, "rb")
  if not f then return nil end
  local rows, sep = {}, nil
  for line in f:lines() do
    line = line:gsub("\r$", "")
    sep = sep or (line:find(";", 1, true) and ";" or ",")
    local cells, i = {}, 1
    while i <= #line + 1 do
      if line:sub(i, i) == '"' then
        local j, text = i + 1, {}
        while true do
          local q = line:find('"', j, true) or #line + 1
          text[#text + 1] = line:sub(j, q - 1)
          if line:sub(q + 1, q + 1) == '"' then text[#text + 1] = '"'; j = q + 2 else i = q + 1; break end
        end
        cells[#cells + 1] = table.concat(text)
      else
        local k = line:find(sep, i, true) or #line + 1
        cells[#cells + 1] = line:sub(i, k - 1)
        i = k
      end
      i = i + 1 -- the separator
    end
    rows[#rows + 1] = cells
  end
  f:close()
  return rows
end
local EXPORT_KINDS = { "key", "key", "count", "money" }
-- "agree" or "differs: ..." against cpf's file: same header, rows, keys and files exactly, amounts
-- within a cent (same_cell), an empty cell a missing value.
local function check_export(ref, ans)
  if not ref then return "no cpf file" end
  if not ans then return "no file" end
  if #ans ~= #ref then return ("differs: %d rows, cpf %d"):format(#ans - 1, #ref - 1) end
  for i = 2, #ref do
    for j, kind in ipairs(EXPORT_KINDS) do
      local a, b = ans[i][j], ref[i][j]
      a, b = a ~= "" and a or nil, b ~= "" and b or nil
      if not same_cell(b, a, kind) then
        return ("differs: row %d column %d: %s, cpf %s"):format(i - 1, j, short(tostring(a)), short(tostring(b)))
      end
    end
  end
  return "agree"
end
local function export_time(e) return os_time(exports[e]) end
local export_ref = read_export(exports.cpf and exports.cpf[1].out)
say("## Export: code_rncp × month to a CSV file")
say()
say("A new process reads the CSV, groups code_rncp × month (files, amount) and writes the rows to a CSV file with"
  .. " the engine's own writer: cpf `cpf query FILE --by code_rncp,mois --measure dossiers,montant --format csv"
  .. " -o OUT`, DuckDB `COPY (SELECT …) TO OUT`, polars `scanCSV … collectSync().writeCSV(OUT)`, chDB"
  .. " `SELECT … INTO OUTFILE OUT FORMAT CSVWithNames`; whole process timed from outside. Files compared"
  .. " with cpf's: keys and files exactly, amounts within a cent.")
say()
say("| engine | runs | process s (median) | min | × cpf | peak RSS MiB | file |")
say("|---|--:|--:|--:|--:|--:|---|")
for _, e in ipairs(ENGINES) do
  local lines = exports[e]
  if lines or (e ~= "cpf" and missing[e]) then
    local s = export_time(e)
    say(("| %s | %d | %s | %s | %s | %s | %s |"):format(NAME[e], lines and #lines or 0,
      (e ~= "cpf" and missing[e]) and "missing" or fmt("%.3f", s),
      fmt("%.3f", lines and (min_of(lines, "process_seconds") or min_of(lines, "seconds"))),
      fmt("%.2f", ratio(s, export_time("cpf"))), mib(median_of(lines or {}, "maxrss_kb")),
      e == "cpf" and "reference" or check_export(export_ref, read_export(lines and lines[1].out))))
    if e ~= "cpf" and lines and check_export(export_ref, read_export(lines[1].out)) ~= "agree" then
      checks_ok = false
    end
  end
end
say()

-- ----------------------------------------------------------------- targets
local csv_bytes = median(cpf, "csv_bytes") or meta.csv_bytes
say("## Targets")
say()
-- Time ratios are judged on medians; the min/min ratio is shown beside them
-- because a 2-CPU machine is noisy and a verdict near its limit should be
-- read with both figures in view.
say("| measure | value (medians) | min/min | target | verdict |")
say("|---|--:|--:|--:|---|")
-- at_least: the value must reach the limit instead of staying under it
local function target(name, value, limit, fmtstr, minvalue, at_least)
  local verdict
  if not value then verdict = "n/a (missing data)"
  elseif limit then verdict = (at_least and value >= limit or not at_least and value <= limit) and "PASS" or "MISS"
  else verdict = "info" end
  fmtstr = fmtstr or "%.2f"
  say(("| %s | %s | %s | %s | %s |"):format(name, fmt(fmtstr, value),
    minvalue and fmtstr:format(minvalue) or "—", limit and ((at_least and "≥ " or "≤ ") .. limit) or "—", verdict))
end
local function min_ratio(a, b) return a and b and ratio(minimum(a, "seconds"), minimum(b, "seconds")) end
local function row(tool, mode, threads)
  return find(function(g) return g.tool == tool and (mode == nil or g.mode == mode)
    and (threads == nil or g.threads == threads) and g.lua ~= "luajit" end)
end
target("cpf load, 1 thread (Lua 5.4) / libcsv raw tokenise", ratio(cpf_s, libcsv_s), 1.5, nil,
  min_ratio(cpf, libcsv))
target("cpf load, 1 thread (LuaJIT) / libcsv raw tokenise",
  ratio(median(cpfjit, "seconds"), libcsv_s), nil, nil, min_ratio(cpfjit, libcsv))
target("cpf memory (`ds:memory()`) / CSV size", ratio(median(cpf, "memory_bytes"), csv_bytes), 0.6)
local rss = median(cpf, "rss_kb")
target("cpf RSS after load (whole process) / CSV size", ratio(rss and rss * 1024, csv_bytes), 0.6)
target("pure Lua / cpf load (Lua 5.4): how many times faster cpf is",
  ratio(median(pure, "seconds"), cpf_s), nil, "%.1f", min_ratio(pure, cpf))
local function warm_min(class, e) return min_of(warm[class] and warm[class][e], "min_seconds") end
local function warm_med(class, e) return median_of(warm[class] and warm[class][e], "seconds") end
target(("warm classes within %s × the fastest peer (of %d)"):format(TARGET_WARM, judged),
  judged > 0 and passed or nil, judged > 0 and judged or nil, "%d", nil, true)
target("cpf warm region_year / DuckDB warm region_year", ratio(warm_med("region_year", "cpf"),
  warm_med("region_year", "duckdb")), 0.1, nil,
  ratio(warm_min("region_year", "cpf"), warm_min("region_year", "duckdb")))
target("Lua-function condition on the amount (gt_fn) / `cpf.gt` (gt_filter)",
  ratio(warm_med("gt_fn", "cpf"), warm_med("gt_filter", "cpf")), 1.5, nil,
  ratio(warm_min("gt_fn", "cpf"), warm_min("gt_filter", "cpf")))
target("three keys (region, modalite, year), cpf seconds", warm_med("three_keys", "cpf"), 0.05, "%.4f")
target(("warm classes whose cpf median ≤ %s × their minimum (of %d)"):format(STEADY, timed_classes),
  timed_classes > 0 and steady or nil, timed_classes > 0 and timed_classes or nil, "%d", nil, true)
local function warm_field(class, e, field) return median_of(warm[class] and warm[class][e], field) end
local function warm_field_min(class, e, field) return min_of(warm[class] and warm[class][e], field) end
target("rncp_month: cpf run + every cell read / chDB (its answer as text)",
  ratio(warm_field("rncp_month", "cpf", "read_seconds"), warm_med("rncp_month", "chdb")), 0.5, nil,
  ratio(warm_field_min("rncp_month", "cpf", "read_min_seconds"), warm_min("rncp_month", "chdb")))
target("rncp_month: cpf run + format(\"csv\") / chDB (its answer as text)",
  ratio(warm_field("rncp_month", "cpf", "csv_seconds"), warm_med("rncp_month", "chdb")), 0.5, nil,
  ratio(warm_field_min("rncp_month", "cpf", "csv_min_seconds"), warm_min("rncp_month", "chdb")))
local function export_min(e)
  return exports[e] and (min_of(exports[e], "process_seconds") or min_of(exports[e], "seconds"))
end
target("export: cpf query -o out.csv / DuckDB COPY (process)", ratio(export_time("cpf"), export_time("duckdb")), 0.5,
  nil, ratio(export_min("cpf"), export_min("duckdb")))
do
  local best_export
  for _, e in ipairs(PEERS) do
    local t = export_time(e)
    if t and (not best_export or t < best_export) then best_export = t end
  end
  target("export: cpf / fastest peer (process)", ratio(export_time("cpf"), best_export), nil)
end
target(("cpf one-shot 2 threads / fastest peer one-shot 2 threads (process)"), os_ratio, TARGET_ONESHOT)
target("cpf one-shot 2 threads / DuckDB one-shot 2 threads (process)", ratio(cpf_os, os_time(oneshots.duckdb2)), 0.5)
target("cpf one-shot 1 thread / DuckDB one-shot 1 thread (process)",
  ratio(os_time(oneshots.cpf1), os_time(oneshots.duckdb1)), nil)
target("cpf one-shot peak RSS / DuckDB one-shot peak RSS, 2 threads",
  ratio(median_of(oneshots.cpf2, "maxrss_kb"), duck_rss), nil)
local snap = row("cpf_snapshot", "open_report")
target("cpf snapshot open + report in a fresh process, seconds", median(snap, "seconds"), 0.02, "%.4f",
  minimum(snap, "seconds"))
target("cpf snapshot open + report in a fresh process, peak RSS MiB", median(snap, "maxrss_kb") and
  median(snap, "maxrss_kb") / 1024, 50, "%.0f")
local load2 = find(function(g) return g.tool == "cpf_load" and g.lua ~= "luajit" and g.threads == 2 end)
target("cpf load 2 threads / 1 thread (Lua 5.4)", ratio(median(load2, "seconds"), cpf_s), 0.6, nil,
  min_ratio(load2, cpf))
local wc = find(function(g) return g.tool == "wc_lines" end)
target("cpf load 2 threads / `wc -l` of the file (the machine's reading speed)",
  ratio(median(load2, "seconds"), median(wc, "seconds")), 4, "%.1f", min_ratio(load2, wc))
target("cpf snapshot open + report / cpf CSV load", ratio(median(snap, "seconds"), cpf_s), 0.1, "%.3f")
target("cpf RSS after load / DuckDB peak RSS after load (2 threads)",
  ratio(rss, median(row("duckdb", "load", 2), "maxrss_kb")), 0.5)
-- pure Lua times itself from its first line: against cpf's in-script figure, not the process one
target("pure Lua / cpf one-shot 2 threads (in-script): how many times faster",
  ratio(median(pure, "seconds"), median_of(oneshots.cpf2, "seconds")), 20, "%.1f", nil, true)
say()

-- ---------------------------------------------------------- totals check
-- Every process row and one-shot whose lines carry sum_dossiers / sum_montant
-- is compared with the pure Lua peer (or the first such row): same files and
-- amount over all region×year groups. Amounts are float sums in different
-- orders, so they agree within max(0.01 €, 1e-9 relative). Row counts are
-- checked against the generated row count (libcsv counts the header record
-- too: minus 1).
say("## Totals check")
say()
local all = {}
for _, g in ipairs(order) do all[#all + 1] = g end
local ONESHOT_ROWS = { { "cpf", 2 }, { "cpf", 1 }, { "duckdb", 2 }, { "duckdb", 1 }, { "polars", 2 }, { "chdb", 2 } }
for _, row_spec in ipairs(ONESHOT_ROWS) do
  local lines = oneshots[row_spec[1] .. row_spec[2]]
  if lines then
    all[#all + 1] = { tool = row_spec[1], mode = "oneshot", threads = row_spec[2], runs = lines }
  end
end
local ref
for _, g in ipairs(all) do
  if g.runs[1].sum_dossiers then
    if g.tool == "pure_lua" then ref = g break end
    ref = ref or g
  end
end
local totals_ok = true
local function close(a, b)
  return math.abs(a - b) <= math.max(0.01, 1e-9 * math.abs(b))
end
say("| tool | rows | sum_dossiers | sum_montant | verdict |")
say("|---|--:|--:|--:|---|")
for _, g in ipairs(all) do
  local r1 = g.runs[1]
  local rows = r1.rows
  if rows and g.tool == "libcsv_raw" then rows = rows - 1 end
  local problems = {}
  for _, r in ipairs(g.runs) do   -- every run, not only the first, must agree
    local n = r.rows and (g.tool == "libcsv_raw" and r.rows - 1 or r.rows)
    if n and meta.rows and n ~= meta.rows then problems.rows = true end
    if ref and r.sum_dossiers then
      if r.sum_dossiers ~= ref.runs[1].sum_dossiers then problems.dossiers = true end
      if not (r.sum_montant and close(r.sum_montant, ref.runs[1].sum_montant)) then
        problems.montant = true
      end
    end
  end
  local verdict
  if next(problems) then
    local what = {}
    for _, k in ipairs({ "rows", "dossiers", "montant" }) do
      if problems[k] then what[#what + 1] = k end
    end
    verdict = "**FAIL** (" .. table.concat(what, ", ") .. ")"
    totals_ok = false
  elseif g == ref then
    verdict = "reference"
  else
    verdict = r1.sum_dossiers and "agree" or (rows and "rows agree" or "—")
  end
  say(("| %s | %s | %s | %s | %s |"):format(label(g), fmt("%d", rows and math.tointeger(rows)),
    fmt("%.0f", r1.sum_dossiers), fmt("%.2f", r1.sum_montant), verdict))
end
say()
if not ref then
  say("No tool reported sums: totals not checked.")
else
  say(("Totals: %s (sums compared with %s)."):format(
    totals_ok and "PASS -- every tool agrees" or "**FAIL**", label(ref)))
end
if not totals_ok then checks_ok = false end
say()

if #failures > 0 then
  say("## Failed runs")
  say()
  for _, f in ipairs(failures) do
    say(("- %s, run %s: exit status %s"):format(f.name or "?", tostring(f.run), tostring(f.status)))
  end
  for _, e in ipairs(ENGINES) do
    for class, err in pairs(failed_class[e] or {}) do
      say(("- %s, class %s: %s"):format(NAME[e], class, err))
    end
  end
  say()
end

io.write(table.concat(out, "\n"), "\n")
os.exit(checks_ok and 0 or 3)
