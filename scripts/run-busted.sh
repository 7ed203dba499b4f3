#!/usr/bin/env bash
# Runs the busted suite under Lua 5.4 and LuaJIT with TAP output, keeps each log in build/,
# shows the failing tests and ends with one line "N passed, N failed" summed over both.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p build

total_passed=0
total_failed=0
for lua in lua5.4 luajit; do
  log="build/busted-$lua.tap"
  "$lua" /usr/bin/busted -o TAP >"$log" 2>&1
  status=$?
  passed=$(grep -c '^ok ' "$log")
  skipped=$(grep -c '^ok [0-9]* - # SKIP' "$log")
  failed=$(grep -c '^not ok ' "$log")
  passed=$((passed - skipped))
  # the failing tests with their diagnostics (the "#" lines after "not ok")
  awk '/^not ok /{show=1; print; next} /^#/{if (show) print; next} {show=0}' "$log"
  plan=$(grep -E '^1\.\.[0-9]+' "$log" | tail -n 1 | cut -d. -f3)
  if [ -z "$plan" ]; then
    # no plan: busted did not get to the end; that is a failure, not zero tests
    echo "not ok - $lua: busted stopped without a TAP plan (exit status $status); end of $log:"
    tail -n 20 "$log" | sed 's/^/# /'
    failed=$((failed + 1))
  elif [ "$plan" -ne $((passed + skipped + failed)) ]; then
    echo "not ok - $lua: the TAP plan announces $plan tests, $((passed + skipped + failed)) reported"
    failed=$((failed + 1))
  elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "not ok - $lua: busted exited with status $status without a failing test; see $log"
    failed=$((failed + 1))
  fi
  echo "$lua: $passed passed, $failed failed, $skipped skipped (log: $log)"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
done

echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
