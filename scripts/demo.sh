#!/usr/bin/env bash
# The demo: installs the missing Debian packages, builds the module for Lua 5.4, generates a
# CPF file and prints a short report on it. Arguments go to `cpf demo` ([DIR] [--rows N]).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh demo
make --no-print-directory
exec ./bin/cpf demo "$@"
