#!/usr/bin/env bash
# The full test suite: installs the missing Debian packages, builds the module for Lua 5.4, 5.3,
# 5.1 and LuaJIT and runs busted under each (make test). The last line is always "N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! bash scripts/install-deps.sh test; then
  echo "cpf: installing the test dependencies failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
mkdir -p build
make --no-print-directory test 2>&1 | tee build/test.log
status=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' build/test.log | tail -n 1)
if [ -z "$summary" ]; then
  # the build failed: make stopped before the suite could print its summary
  echo "cpf: make test failed before the test suite ran (exit status $status)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
# make's own "Error" line may follow the summary: repeat it so that it stays the last line
if [ "$(tail -n 1 build/test.log)" != "$summary" ]; then echo "$summary"; fi
exit "$status"
