#!/usr/bin/env bash
# bench/run.sh -- one side-by-side benchmark run of cpf against its peers
# (libcsv tokenise floor, DuckDB, hand-written pure Lua), medians and ratios.
#
# Usage: bash bench/run.sh [--rows N] [--runs K] [--pure-runs P] [--quick]
#   --rows N       rows of the generated file (default 2000000)
#   --runs K       runs of each measurement, K >= 3 (default 3); median + min
#   --pure-runs P  runs of the pure Lua peer (default 1: it is the slow one and
#                  only serves as an order of magnitude; the report says so)
#   --quick        N=200000, K=3: a fast smoke run (later flags still override)
# `make bench` builds build/lua5.4 then calls this with no arguments.
#
# What it does, in order:
#   1. dependencies: lua5.4, luajit, node, npm, cc must be on PATH; installs
#      bench/node_modules with `npm ci` (falls back to `npm install`) when
#      @duckdb/node-api is missing; builds bench/libcsv_raw with cc -O2 when it
#      is missing or older than its source; `make` and `make LUA=luajit`
#      (no-ops when up to date) so both cpf modules are current.
#   2. data: bench/data/cpf-<N>.csv, with N abbreviated when round (2000000 ->
#      cpf-2m.csv, 200000 -> cpf-200k.csv, 12345 -> cpf-12345.csv), generated
#      with `bin/cpf gen N FILE --seed 1` if missing. The file is read once
#      (cat > /dev/null) before timing so every tool sees it in the page cache:
#      the figures are parsing, not disk.
#   3. measurements, round-robin: run 1 of every measurement, then run 2, ...
#      so a slow drift of the machine is spread over all tools instead of
#      landing on whichever ran last.
#   4. report: every JSON line printed by a measurement is appended to
#      bench/out/results-<N>.jsonl (raw data, not tracked), then
#      bench/report.lua turns it into Markdown: stdout, bench/results.md and
#      bench/out/results-<N>.md.
# Progress goes to stderr; stdout carries only the Markdown report.
# Exit status is 1 if any measurement failed (the report still gets written
# and lists the failures), 0 otherwise.
#
# HOW TO ADD A MEASUREMENT (e.g. "cpf oneshot", "cpf warm query", "cpf
# snapshot open") -- two ways, pick one:
#   a) Generic pickup, no edit here: drop a script bench/cpf_<name>.lua that
#      takes the CSV path as arg[1] and prints one or more flat JSON lines with
#      at least "tool" and "seconds" (optionally "mode", "threads", "lua",
#      "maxrss_kb", "rows", "sum_dossiers", "sum_montant"). Every bench/cpf_*.lua
#      other than cpf_load.lua (which has explicit rows, below) is run with
#      lua5.4 K times. Each distinct (tool, mode, threads, lua) becomes a row;
#      lines carrying sum_dossiers/sum_montant join the totals check.
#      bench/cpf_query.lua (tool "cpf_query", a "mode" per line) is expected
#      to arrive this way.
#   b) Explicit: write a function m_<name> below that prints JSON lines and
#      add <name> to MEASUREMENTS (give it a run count in RUNS_OF if it
#      should not run K times).
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 1          # everything below is repo-relative

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments
ROWS=2000000
RUNS=3
PURE_RUNS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:-}; shift 2 ;;
    --runs) RUNS=${2:-}; shift 2 ;;
    --pure-runs) PURE_RUNS=${2:-}; shift 2 ;;
    --quick) ROWS=200000; RUNS=3; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || die "--rows wants a positive integer"
[[ "$RUNS" =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 3 ] || die "--runs wants an integer >= 3 (medians)"
[[ "$PURE_RUNS" =~ ^[1-9][0-9]*$ ]] || die "--pure-runs wants a positive integer"

# ------------------------------------------------------------- dependencies
for tool in lua5.4 luajit node npm cc make; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH"
done

if [ ! -f bench/node_modules/@duckdb/node-api/package.json ]; then
  # npm ci keeps the locked version; npm install is the fallback when the
  # lock file and package.json disagree.
  log "installing bench/node_modules (@duckdb/node-api)"
  npm ci --prefix bench >&2 || npm install --prefix bench >&2 \
    || die "npm could not install bench dependencies"
fi

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
CSV_BYTES=$(stat -c %s "$CSV")
log "warming the page cache with $CSV ($((CSV_BYTES / 1048576)) MiB)"
cat "$CSV" >/dev/null

# ------------------------------------------------------------- measurements
# Each m_<name> prints JSON lines on stdout (the peers' own output, as is).
m_libcsv_raw()        { bench/libcsv_raw "$CSV"; }
m_cpf_load_lua54()    { lua5.4 bench/cpf_load.lua "$CSV"; }
m_cpf_load_luajit()   { luajit bench/cpf_load.lua "$CSV"; }
m_duckdb_load_1t()    { node bench/duckdb.mjs "$CSV" --threads 1 --mode load; }
m_duckdb_load_2t()    { node bench/duckdb.mjs "$CSV" --threads 2 --mode load; }
m_duckdb_oneshot_1t() { node bench/duckdb.mjs "$CSV" --threads 1 --mode oneshot; }
m_duckdb_oneshot_2t() { node bench/duckdb.mjs "$CSV" --threads 2 --mode oneshot; }
m_duckdb_warm_1t()    { node bench/duckdb.mjs "$CSV" --threads 1 --mode warm; }
m_duckdb_warm_2t()    { node bench/duckdb.mjs "$CSV" --threads 2 --mode warm; }
m_pure_lua()          { lua5.4 bench/pure_lua.lua "$CSV"; }
# --- hooks: explicit cpf rows go here (or use a bench/cpf_*.lua, see top) ---
# m_cpf_snapshot_open() { lua5.4 bench/cpf_snapshot.lua "$CSV"; }

# Order = order of the rows in the report.
MEASUREMENTS=(libcsv_raw cpf_load_lua54 cpf_load_luajit)
# Generic pickup of the other bench/cpf_*.lua scripts (sorted by the glob).
for script in bench/cpf_*.lua; do
  [ -f "$script" ] || continue
  [ "$script" = bench/cpf_load.lua ] && continue
  MEASUREMENTS+=("script:$script")
done
MEASUREMENTS+=(duckdb_load_1t duckdb_load_2t duckdb_oneshot_1t duckdb_oneshot_2t
               duckdb_warm_1t duckdb_warm_2t pure_lua)

# Runs per measurement: K unless listed here.
declare -A RUNS_OF=([pure_lua]=$PURE_RUNS)

JSONL="bench/out/results-$TAG.jsonl"
: >"$JSONL"

json_str() {  # a bash string as a JSON string (the few escapes needed here)
  local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"
}

# Facts about the run, as one JSON line the report reads back.
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MEM_KB=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)
DUCKDB_VERSION=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
  bench/node_modules/@duckdb/node-api/package.json | head -n 1)
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  GIT_REV="$GIT_REV+dirty"   # the lead's uncommitted edits were measured
fi
{
  printf '{"tool":"_meta","date":%s' "$(json_str "$(date '+%Y-%m-%d %H:%M %Z')")"
  printf ',"nproc":%s,"cpu":%s,"mem_kb":%s' "$(nproc)" "$(json_str "${CPU_MODEL:-unknown}")" "${MEM_KB:-0}"
  printf ',"file":%s,"rows":%s,"csv_bytes":%s' "$(json_str "$CSV")" "$ROWS" "$CSV_BYTES"
  printf ',"runs":%s,"pure_runs":%s,"git":%s' "$RUNS" "$PURE_RUNS" "$(json_str "$GIT_REV")"
  # Name and version only (the -v banners go on with copyright notices).
  printf ',"lua":%s,"luajit":%s' "$(json_str "$(lua5.4 -v 2>&1 | head -n 1 | cut -d' ' -f1,2)")" \
    "$(json_str "$(luajit -v 2>&1 | head -n 1 | cut -d' ' -f1,2)")"
  printf ',"node":%s,"duckdb":%s}\n' "$(json_str "$(node --version)")" "$(json_str "${DUCKDB_VERSION:-unknown}")"
} >>"$JSONL"

# Run one measurement once; keep its JSON lines, note a failure.
FAILED=0
run_one() {
  local name=$1 run=$2 out status
  if [[ "$name" == script:* ]]; then
    out=$(lua5.4 "${name#script:}" "$CSV")
  else
    out=$("m_$name")
  fi
  status=$?
  if [ $status -ne 0 ] || ! grep -q '^{' <<<"$out"; then
    log "  $name run $run FAILED (exit $status)"
    printf '{"tool":"_failed","name":%s,"run":%s,"status":%s}\n' \
      "$(json_str "$name")" "$run" "$status" >>"$JSONL"
    FAILED=1
    return
  fi
  grep '^{' <<<"$out" >>"$JSONL"
  # Progress: the seconds of each line the run printed.
  grep '^{' <<<"$out" | sed -n 's/.*"seconds":\([0-9.eE+-]*\).*/\1/p' | tr '\n' ' ' |
    { read -r secs; log "  $name run $run: ${secs}s"; }
}

T_START=$(date +%s)
max_runs=$RUNS
[ "$PURE_RUNS" -gt "$max_runs" ] && max_runs=$PURE_RUNS
for ((run = 1; run <= max_runs; run++)); do
  log "run $run/$max_runs on $CSV"
  for name in "${MEASUREMENTS[@]}"; do
    [ "$run" -le "${RUNS_OF[$name]:-$RUNS}" ] || continue
    run_one "$name" "$run"
  done
done
log "measurements done in $(( $(date +%s) - T_START )) s; raw lines in $JSONL"

# ------------------------------------------------------------------- report
lua5.4 bench/report.lua "$JSONL" >"bench/out/results-$TAG.md" || die "report.lua failed"
cp "bench/out/results-$TAG.md" bench/results.md
cat bench/results.md
log "report written to bench/results.md"
exit $FAILED
