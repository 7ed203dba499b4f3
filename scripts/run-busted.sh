#!/usr/bin/env bash
# Runs the busted suite under each configuration named on the command line (default: lua5.4
# luajit) with TAP output, keeps each log in build/, shows the failing tests and ends with one
# line "N passed, N failed" summed over all of them.
#   lua5.4, lua5.3, lua5.1, luajit
#                    the suite on build/<lua> under that interpreter
#   asan             the suite under Lua 5.4 on build/asan (AddressSanitizer + UBSan, leaks checked)
#   tsan             the thread specs (#threads, but #no_tsan: those that run a subprocess, which
#                    the preloaded runtime breaks) under Lua 5.4 on build/tsan (ThreadSanitizer)
#   lint             luacheck over lua/, bin/, plugin/, spec/, examples/ and bench/ (.luacheckrc): one test
#                    per directory, failed by any warning
#   fuzz             each libFuzzer harness of fuzz/ for 15 s (CPF_FUZZ_SECONDS) on its corpus:
#                    one test per harness, failed by any finding
# The sanitizer builds instrument the module only: their runtimes are preloaded into the
# interpreter, and any report fails the run. CPF_SANITIZED=1 tells the specs: the thread specs
# then sample their thread counts (every count runs in the plain runs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p build
[ $# -gt 0 ] || set -- lua5.4 luajit
CC=${CC:-cc}
# cpf fetch's specs talk to a stand-in portal on 127.0.0.1: never through a proxy the machine has
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
fuzz_seconds=${CPF_FUZZ_SECONDS:-15} # per harness; make check-all gives each 120

total_passed=0
total_failed=0
for config in "$@"; do
  log="build/busted-$config.tap"
  started=$SECONDS
  case "$config" in
    asan)
      ASAN_OPTIONS=detect_leaks=1 CPF_BUILD_DIR=build/asan CPF_SANITIZED=1 \
        LD_PRELOAD="$($CC -print-file-name=libasan.so) $($CC -print-file-name=libubsan.so)" \
        lua5.4 /usr/bin/busted -o TAP --exclude-tags=no_asan >"$log" 2>&1 ;;
    tsan)
      TSAN_OPTIONS="halt_on_error=1 report_signal_unsafe=0" CPF_BUILD_DIR=build/tsan CPF_SANITIZED=1 \
        LD_PRELOAD="$($CC -print-file-name=libtsan.so)" \
        lua5.4 /usr/bin/busted -o TAP --tags=threads --exclude-tags=no_tsan >"$log" 2>&1 ;;
    fuzz)
      # TAP of our own: one line per harness, "not ok" when it stopped on a finding
      {
        n=0
        for f in $(make --no-print-directory -s fuzz-list); do
          n=$((n + 1))
          if make --no-print-directory fuzz FUZZERS="$f" FUZZ_SECONDS="$fuzz_seconds" >"build/fuzz-$f.log" 2>&1; then
            echo "ok $n - fuzz $f: $(grep -m 1 '^stat::number_of_executed_units' "build/fuzz-$f.log" | sed 's/.*: //') runs in $fuzz_seconds s"
          else
            echo "not ok $n - fuzz $f: a finding or a failure, see build/fuzz-$f.log"
            tail -n 15 "build/fuzz-$f.log" | sed 's/^/# /'
          fi
        done
        echo "1..$n"
      } >"$log" 2>&1 ;;
    lint)
      # TAP of our own: one line per directory, "not ok" when luacheck warns (.luacheckrc)
      {
        n=0
        for dir in lua bin plugin spec examples bench; do
          n=$((n + 1))
          if out=$(luacheck --no-color --formatter plain "$dir/" 2>&1); then
            echo "ok $n - luacheck $dir/: no warning"
          else
            echo "not ok $n - luacheck $dir/: $(printf '%s\n' "$out" | grep -c .) warnings"
            printf '%s\n' "$out" | head -n 20 | sed 's/^/# /'
          fi
        done
        echo "1..$n"
      } >"$log" 2>&1 ;;
    *) "$config" /usr/bin/busted -o TAP >"$log" 2>&1 ;;
  esac
  status=$?
  passed=$(grep -c '^ok ' "$log")
  skipped=$(grep -c '^ok [0-9]* - # SKIP' "$log")
  failed=$(grep -c '^not ok ' "$log")
  passed=$((passed - skipped))
  # the failing tests with their diagnostics (the "#" lines after "not ok")
  awk '/^not ok /{show=1; print; next} /^#/{if (show) print; next} {show=0}' "$log"
  plan=$(grep -E '^1\.\.[0-9]+' "$log" | tail -n 1 | cut -d. -f3)
  if grep -qE '^(==[0-9]+==|WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Thread)Sanitizer)|runtime error:' "$log"; then
    # a sanitizer report, even one that did not stop the interpreter
    echo "not ok - $config: a sanitizer reported an error; see $log:"
    grep -m 5 -E '^(==[0-9]+==|WARNING: ThreadSanitizer|SUMMARY)|runtime error:' "$log" | sed 's/^/# /'
    failed=$((failed + 1))
  elif [ -z "$plan" ]; then
    # no plan: busted did not get to the end; that is a failure, not zero tests
    echo "not ok - $config: busted stopped without a TAP plan (exit status $status); end of $log:"
    tail -n 20 "$log" | sed 's/^/# /'
    failed=$((failed + 1))
  elif [ "$plan" -ne $((passed + skipped + failed)) ]; then
    echo "not ok - $config: the TAP plan announces $plan tests, $((passed + skipped + failed)) reported"
    failed=$((failed + 1))
  elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "not ok - $config: busted exited with status $status without a failing test; see $log"
    failed=$((failed + 1))
  fi
  echo "$config: $passed passed, $failed failed, $skipped skipped in $((SECONDS - started)) s (log: $log)"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
done

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
