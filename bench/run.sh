#!/usr/bin/env bash
# bench/run.sh -- one side-by-side benchmark run of cpf against its peers
# (libcsv tokenise floor, DuckDB, polars, chDB, hand-written pure Lua):
# medians, ratios, and every warm answer checked against cpf's.
#
# Usage: bash bench/run.sh [--rows N] [--runs K] [--warm-runs W] [--pure-runs P] [--quick]
#   --rows N       rows of the generated file (default 2000000)
#   --runs K       rounds: runs of each process, K >= 1 (default 2); median + min
#   --warm-runs W  timed runs of each warm query class inside a process (default 7)
#   --pure-runs P  runs of the pure Lua peer (default 1: it is the slow one and
#                  only serves as an order of magnitude; the report says so)
#   --quick        N=200000: a fast smoke run (later flags still override)
# `make bench` builds build/lua5.4 then calls this with no arguments.
#
# What it does, in order:
#   1. dependencies: lua5.4, luajit, node, npm, cc must be on PATH; installs
#      bench/node_modules with `npm ci` (falls back to `npm install`) from the
#      pinned bench/package.json and package-lock.json when a peer's package
#      is missing or the lock file is newer than the install; then probes each
#      peer (node bench/<peer>.mjs --probe). A peer that cannot be installed or
#      fails to load is left out of the measurements and reported as missing,
#      with the reason, never dropped silently. Builds bench/libcsv_raw with
#      cc -O2 when it is missing or older than its source; `make` and
#      `make LUA=luajit` (no-ops when up to date) so both cpf modules are current.
#   2. data: bench/data/cpf-<N>.csv, with N abbreviated when round (2000000 ->
#      cpf-2m.csv, 200000 -> cpf-200k.csv, 12345 -> cpf-12345.csv), generated
#      with `bin/cpf gen N FILE --seed 1` if missing. The file is read once
#      (cat > /dev/null) before timing so every tool sees it in the page cache:
#      the figures are parsing, not disk. Beside it, the reference table of the
#      warm class join_ref, bench/data/cpf-<N>.ref-rncp.csv (20 000 rows,
#      `code_rncp;libelle`), written by bench/ref_rncp.lua when missing or
#      older than the data file.
#   3. measurements, round-robin: round 1 of every measurement, then round 2,
#      ... so a slow drift of the machine is spread over all tools instead of
#      landing on whichever ran last. Every engine gets 2 threads. In round 1
#      the warm processes (cpf and each peer) also write each class's answer to
#      bench/out/answers/<class>.<engine>.tsv (untimed). One-shot processes are
#      also timed from outside, whole process (process_seconds).
#   4. report: every JSON line printed by a measurement is appended to
#      bench/out/results-<N>.jsonl (raw data, not tracked), then
#      bench/report.lua turns it into Markdown -- stdout, bench/results.md and
#      bench/out/results-<N>.md -- comparing every peer's answers with cpf's.
# Progress goes to stderr; stdout carries only the Markdown report.
# Exit status is 1 if any measurement failed or any check failed (a peer's
# answer differs from cpf's, a totals mismatch); the report still gets written
# and says what. A performance target missed is not a failure.
#
# HOW TO ADD A MEASUREMENT (e.g. "cpf snapshot open") -- two ways, pick one:
#   a) Generic pickup, no edit here: drop a script bench/cpf_<name>.lua that
#      takes the CSV path as arg[1] and prints one or more flat JSON lines with
#      at least "tool" and "seconds" (optionally "mode", "threads", "lua",
#      "maxrss_kb", "rows", "sum_dossiers", "sum_montant"). Every bench/cpf_*.lua
#      without an explicit row below (cpf_load, cpf_oneshot, cpf_query) is run
#      with lua5.4 once a round. Each distinct (tool, mode, threads, lua)
#      becomes a row of the report's process table; lines carrying
#      sum_dossiers/sum_montant join the totals check.
#   b) Explicit: write a function m_<name> below that prints JSON lines (it gets
#      the round number as $1) and add <name> to MEASUREMENTS (give it a run
#      count in RUNS_OF if it should not run K times; list it in ONESHOTS if
#      its whole process time is the figure).
# A new warm query class goes into bench/cpf_query.lua AND bench/classes.mjs,
# under one name, with the same result columns and row order (on the cpf side,
# `after` applies a result's own method -- join, change, cumsum -- inside the
# timed part; a class reading join_ref's reference table says `ref: true` in
# classes.mjs and each driver loads it once, untimed).
set -u -o pipefail
export LC_ALL=C   # '.' decimals in $EPOCHREALTIME and awk, whatever the caller's locale

cd "$(dirname "$0")/.." || exit 1          # everything below is repo-relative

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments
ROWS=2000000
RUNS=2
WARM_RUNS=7
CPF_WARM_RUNS=15   # cpf's classes: 15 runs, the steadiness target's count (median <= 1.25 x minimum)
PURE_RUNS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:-}; shift 2 ;;
    --runs) RUNS=${2:-}; shift 2 ;;
    --warm-runs) WARM_RUNS=${2:-}; shift 2 ;;
    --pure-runs) PURE_RUNS=${2:-}; shift 2 ;;
    --quick) ROWS=200000; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "--rows wants a positive integer"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive integer"
[[ "$WARM_RUNS" =~ ^[1-9][0-9]*$ ]] || die "--warm-runs wants a positive integer"
[[ "$PURE_RUNS" =~ ^[1-9][0-9]*$ ]] || die "--pure-runs wants a positive integer"

json_str() {  # a bash string as a JSON string (the few escapes needed here)
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; s=${s//$'\n'/ }; s=${s//$'\r'/}
  printf '"%s"' "$s"
}

# ------------------------------------------------------------- dependencies
for tool in lua5.4 luajit node npm cc make; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
done

PEERS=(duckdb polars chdb)
# The package each peer's driver imports (its native part comes as a dependency of it).
declare -A PEER_PACKAGE=([duckdb]=@duckdb/node-api [polars]=nodejs-polars [chdb]=chdb)
declare -A MISSING=()          # peer -> why it is left out

need_install=0
for peer in "${PEERS[@]}"; do
  [ -f "bench/node_modules/${PEER_PACKAGE[$peer]}/package.json" ] || need_install=1
done
# npm writes node_modules/.package-lock.json: older than the lock file means
# the pins changed since the last install.
if [ ! -f bench/node_modules/.package-lock.json ] ||
   [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  need_install=1
fi
if [ "$need_install" = 1 ]; then
  # npm ci installs the locked versions. It refuses a lock file that lacks an
  # optional dependency some package names, and chdb names platform packages
  # (@chdb/lib-darwin-*, ...) that a registry may not have: then npm install,
  # which also keeps the locked versions, without writing the lock file
  # (--no-save). A failure is not fatal: the peers that did not install are
  # reported missing below.
  log "installing bench/node_modules (${PEER_PACKAGE[*]})"
  npm ci --prefix bench >&2 ||
    { log "npm ci failed: npm install --no-save, from the same lock file"
      npm install --no-save --prefix bench >&2; } ||
    log "npm could not install the bench dependencies: the peers that failed are reported missing"
fi

# Each peer must load and answer a trivial query before it is measured.
PEER_LINES=()
for peer in "${PEERS[@]}"; do
  err=$(mktemp)
  if out=$(node "bench/$peer.mjs" --probe 2>"$err") && grep -q '^{' <<<"$out"; then
    PEER_LINES+=("$(grep '^{' <<<"$out" | head -n 1)")
    log "peer $peer: $(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$out")"
  else
    reason=$(grep -v '^[[:space:]]*$' "$err" | grep -v '^    at ' | head -n 3 | tr '\n' ' ')
    [ -n "$reason" ] || reason="node bench/$peer.mjs --probe printed nothing"
    MISSING[$peer]=${reason:0:300}
    log "peer $peer MISSING: ${MISSING[$peer]}"
  fi
  rm -f "$err"
done

if [ ! -x bench/libcsv_raw ] || [ bench/libcsv_raw.c -nt bench/libcsv_raw ]; then
  log "building bench/libcsv_raw"
  cc -O2 -std=c99 -Wall -Wextra -pedantic -D_POSIX_C_SOURCE=200809L \
     -o bench/libcsv_raw bench/libcsv_raw.c -lcsv >&2 || die "could not build bench/libcsv_raw"
fi

# Both cpf modules: Lua 5.4 (the reference row) and LuaJIT. make's stdout
# goes to stderr so stdout stays pure Markdown.
log "make (lua5.4) and make LUA=luajit"
make --no-print-directory >&2 || die "make failed"
make --no-print-directory LUA=luajit >&2 || die "make LUA=luajit failed"

# --------------------------------------------------------------------- data
if   [ $((ROWS % 1000000)) -eq 0 ]; then TAG="$((ROWS / 1000000))m"
elif [ $((ROWS % 1000)) -eq 0 ];    then TAG="$((ROWS / 1000))k"
else TAG="$ROWS"
fi
CSV="bench/data/cpf-$TAG.csv"
mkdir -p bench/data bench/out
if [ ! -s "$CSV" ]; then
  log "generating $CSV ($ROWS rows, seed 1)"
  # Write to a temporary name first so an interrupted run leaves no
  # truncated file that a later run would take for complete.
  ./bin/cpf gen "$ROWS" "$CSV.tmp" --seed 1 >&2 || die "generator failed"
  mv "$CSV.tmp" "$CSV"
fi
REF="${CSV%.csv}.ref-rncp.csv"   # bench/lib.lua's ref_path, bench/peer_lib.mjs's refPath
if [ ! -s "$REF" ] || [ "$CSV" -nt "$REF" ]; then
  log "writing the reference table $REF (bench/ref_rncp.lua)"
  lua5.4 bench/ref_rncp.lua "$CSV" >&2 || die "bench/ref_rncp.lua failed"
fi
CSV_BYTES=$(stat -L -c %s "$CSV")
log "warming the page cache with $CSV ($((CSV_BYTES / 1048576)) MiB)"
cat "$CSV" >/dev/null

# Answers of this run only: a stale file of an earlier run is never compared.
ANSWERS=bench/out/answers
rm -rf "$ANSWERS" bench/out/exports
mkdir -p "$ANSWERS" bench/out/exports

# ------------------------------------------------------------- measurements
# Each m_<name> prints JSON lines on stdout (the peers' own output, as is);
# $1 is the round. The warm processes write their answers in round 1 only.
answers_arg() { [ "$1" = 1 ] && printf -- '--answers %s' "$ANSWERS"; }
m_libcsv_raw()        { bench/libcsv_raw "$CSV"; }
# The machine's reading speed of the file from the page cache: `wc -l`, the whole process.
# (no "rows": a quoted field may hold a line break, so lines are not records)
m_wc_lines() {
  local t0=$EPOCHREALTIME
  wc -l <"$CSV" >/dev/null || return
  printf '{"tool":"wc_lines","seconds":%s}\n' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }')"
}
m_cpf_load_lua54()    { lua5.4 bench/cpf_load.lua "$CSV"; }
m_cpf_load_luajit()   { luajit bench/cpf_load.lua "$CSV"; }
m_cpf_oneshot_1t()    { lua5.4 bench/cpf_oneshot.lua "$CSV" 1; }
m_cpf_oneshot_2t()    { lua5.4 bench/cpf_oneshot.lua "$CSV" 2; }
# shellcheck disable=SC2046  # answers_arg is two words or none
m_cpf_query()         { lua5.4 bench/cpf_query.lua "$CSV" --runs "$CPF_WARM_RUNS" $(answers_arg "$1"); }
m_duckdb_oneshot_1t() { node bench/duckdb.mjs "$CSV" --threads 1 --mode oneshot; }
m_duckdb_oneshot_2t() { node bench/duckdb.mjs "$CSV" --threads 2 --mode oneshot; }
# shellcheck disable=SC2046
m_duckdb_warm()       { node bench/duckdb.mjs "$CSV" --threads 2 --mode warm --runs "$WARM_RUNS" $(answers_arg "$1"); }
m_polars_oneshot()    { node bench/polars.mjs "$CSV" --threads 2 --mode oneshot; }
# shellcheck disable=SC2046
m_polars_warm()       { node bench/polars.mjs "$CSV" --threads 2 --mode warm --runs "$WARM_RUNS" $(answers_arg "$1"); }
m_chdb_oneshot()      { node bench/chdb.mjs "$CSV" --threads 2 --mode oneshot; }
# shellcheck disable=SC2046
m_chdb_warm()         { node bench/chdb.mjs "$CSV" --threads 2 --mode warm --runs "$WARM_RUNS" $(answers_arg "$1"); }
m_pure_lua()          { lua5.4 bench/pure_lua.lua "$CSV"; }
# The export class: code_rncp x month written to a CSV file by each engine (bench/report.lua
# compares the files with cpf's); the whole process is the figure (ONESHOTS).
EXPORTS=bench/out/exports
m_cpf_export() {
  local out="$EXPORTS/export.cpf.csv" t0=$EPOCHREALTIME
  lua5.4 bin/cpf query "$CSV" --by code_rncp,mois --measure dossiers,montant --format csv -o "$out" || return
  printf '{"tool":"cpf","mode":"export","threads":2,"seconds":%s,"out":%s}\n' \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }')" "$(json_str "$out")"
}
m_duckdb_export()     { node bench/duckdb.mjs "$CSV" --threads 2 --mode export --out "$EXPORTS/export.duckdb.csv"; }
m_polars_export()     { node bench/polars.mjs "$CSV" --threads 2 --mode export --out "$EXPORTS/export.polars.csv"; }
m_chdb_export()       { node bench/chdb.mjs "$CSV" --threads 2 --mode export --out "$EXPORTS/export.chdb.csv"; }

# Order of the round. The report has its own order (by section).
MEASUREMENTS=(wc_lines libcsv_raw cpf_load_lua54 cpf_load_luajit cpf_oneshot_1t cpf_oneshot_2t)
# Generic pickup of the other bench/cpf_*.lua scripts (sorted by the glob).
for script in bench/cpf_*.lua; do
  [ -f "$script" ] || continue
  case "$script" in bench/cpf_load.lua|bench/cpf_oneshot.lua|bench/cpf_query.lua) continue ;; esac
  MEASUREMENTS+=("script:$script")
done
MEASUREMENTS+=(cpf_query cpf_export)
# A peer's rows only when it loaded.
peer_present() { [ -z "${MISSING[$1]+x}" ]; }
peer_present duckdb && MEASUREMENTS+=(duckdb_oneshot_1t duckdb_oneshot_2t duckdb_warm duckdb_export)
peer_present polars && MEASUREMENTS+=(polars_oneshot polars_warm polars_export)
peer_present chdb && MEASUREMENTS+=(chdb_oneshot chdb_warm chdb_export)
MEASUREMENTS+=(pure_lua)

# Runs per measurement: K unless listed here.
declare -A RUNS_OF=([pure_lua]=$PURE_RUNS)
# Whole-process figures: timed from outside too (fork to exit).
declare -A ONESHOTS=([cpf_oneshot_1t]=1 [cpf_oneshot_2t]=1 [duckdb_oneshot_1t]=1 [duckdb_oneshot_2t]=1
                     [polars_oneshot]=1 [chdb_oneshot]=1 [cpf_export]=1 [duckdb_export]=1 [polars_export]=1
                     [chdb_export]=1)

JSONL="bench/out/results-$TAG.jsonl"
: >"$JSONL"

# Facts about the run, as JSON lines the report reads back.
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM_KB=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)   # the machine may be shared: how busy it was
package_version() {
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "bench/node_modules/$1/package.json" 2>/dev/null | head -n 1
}
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  GIT_REV="$GIT_REV+dirty"   # uncommitted edits were measured
fi
{
  printf '{"tool":"_meta","date":%s' "$(json_str "$(date '+%Y-%m-%d %H:%M %Z')")"
  printf ',"nproc":%s,"cpu":%s,"mem_kb":%s,"loadavg":%s' "$(nproc)" "$(json_str "${CPU_MODEL:-unknown}")" \
    "${MEM_KB:-0}" "$(json_str "$LOADAVG")"
  printf ',"file":%s,"rows":%s,"csv_bytes":%s' "$(json_str "$CSV")" "$ROWS" "$CSV_BYTES"
  printf ',"runs":%s,"warm_runs":%s,"cpf_warm_runs":%s,"pure_runs":%s,"git":%s' "$RUNS" "$WARM_RUNS" \
    "$CPF_WARM_RUNS" "$PURE_RUNS" "$(json_str "$GIT_REV")"
  printf ',"answers":%s' "$(json_str "$ANSWERS")"
  # Name and version only (the -v banners go on with copyright notices).
  printf ',"lua":%s,"luajit":%s' "$(json_str "$(lua5.4 -v 2>&1 | head -n 1 | cut -d' ' -f1,2)")" \
    "$(json_str "$(luajit -v 2>&1 | head -n 1 | cut -d' ' -f1,2)")"
  printf ',"node":%s' "$(json_str "$(node --version)")"
  for peer in "${PEERS[@]}"; do
    printf ',"%s_package":%s' "$peer" "$(json_str "$(package_version "${PEER_PACKAGE[$peer]}")")"
  done
  printf '}\n'
  for line in "${PEER_LINES[@]}"; do printf '%s\n' "$line"; done
  for peer in "${!MISSING[@]}"; do
    printf '{"tool":"_missing","engine":"%s","reason":%s}\n' "$peer" "$(json_str "${MISSING[$peer]}")"
  done
} >>"$JSONL"

# Run one measurement once; keep its JSON lines (those of a failed run too:
# a peer reports a failing class and goes on with the others), note a failure.
FAILED=0
run_one() {
  local name=$1 run=$2 out status t0 t1 secs
  t0=$EPOCHREALTIME
  if [[ "$name" == script:* ]]; then
    out=$(lua5.4 "${name#script:}" "$CSV")
  else
    out=$("m_$name" "$run")
  fi
  status=$?
  t1=$EPOCHREALTIME
  if [ -n "${ONESHOTS[$name]+x}" ]; then
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    out=$(sed "/^{/ s/}\$/,\"process_seconds\":$secs}/" <<<"$out")
  fi
  grep '^{' <<<"$out" >>"$JSONL"
  if [ $status -ne 0 ] || ! grep -q '^{' <<<"$out"; then
    log "  $name run $run FAILED (exit $status)"
    printf '{"tool":"_failed","name":%s,"run":%s,"status":%s}\n' \
      "$(json_str "$name")" "$run" "$status" >>"$JSONL"
    FAILED=1
    return
  fi
  # Progress: the seconds of each line the run printed.
  grep '^{' <<<"$out" | sed -n 's/.*"seconds":\([0-9.eE+-]*\).*/\1/p' | tr '\n' ' ' |
    { read -r secs; log "  $name run $run: ${secs}s"; }
}

T_START=$(date +%s)
max_runs=$RUNS
[ "$PURE_RUNS" -gt "$max_runs" ] && max_runs=$PURE_RUNS
for ((run = 1; run <= max_runs; run++)); do
  log "round $run/$max_runs on $CSV"
  for name in "${MEASUREMENTS[@]}"; do
    [ "$run" -le "${RUNS_OF[$name]:-$RUNS}" ] || continue
    run_one "$name" "$run"
  done
done
log "measurements done in $(( $(date +%s) - T_START )) s; raw lines in $JSONL"

# ------------------------------------------------------------------- report
# report.lua exits 3 when a check fails (the report is complete all the same),
# anything else non-zero when it could not write the report.
lua5.4 bench/report.lua "$JSONL" >"bench/out/results-$TAG.md"
status=$?
if [ $status -eq 3 ]; then
  log "a check FAILED: see the report's answers and totals sections"
  FAILED=1
elif [ $status -ne 0 ]; then
  die "report.lua failed"
fi
cp "bench/out/results-$TAG.md" bench/results.md
cat bench/results.md
log "report written to bench/results.md"
exit $FAILED
