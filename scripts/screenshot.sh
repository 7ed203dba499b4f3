#!/usr/bin/env bash
# Renders an HTML report of cpf in a real headless Chromium (Debian's package) and takes a
# screenshot: build/report.html -> build/report.png. Also dumps the DOM Chromium built and checks
# that it holds the table and the chart. `make screenshot` runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/install-deps.sh screenshot # chromium when missing, never removing a package
mkdir -p build
lua5.4 - <<'LUA'
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath
local cpf = require "cpf"
assert(require("cpf.gen").write("build/report.csv", 50000, { seed = 3 }))
local ds = assert(cpf.load("build/report.csv"))
local res = ds:where { annee = 2025 }:group_by("region_lieu_formation")
  :agg { "dossiers", "montant", "taux_annulation" }:order_by("-taux_annulation"):run()
assert(res:write("build/report.html", "html", {
  title = "Taux d'annulation par région, 2025", chart = { x = "region_lieu_formation", y = "taux_annulation" } }))
LUA
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --hide-scrollbars --user-data-dir="$(mktemp -d)")
url="file://$PWD/build/report.html"
chromium "${flags[@]}" --window-size=1200,1400 --screenshot="$PWD/build/report.png" "$url" 2>/dev/null
chromium "${flags[@]}" --dump-dom "$url" 2>/dev/null > build/report.dom.html
for part in "<table" "<svg" "<rect" "Île-de-France"; do
  grep -q -- "$part" build/report.dom.html || { echo "screenshot: the rendered page has no $part" >&2; exit 1; }
done
size=$(stat -c %s build/report.png)
[ "$size" -gt 20000 ] || { echo "screenshot: build/report.png is only $size bytes" >&2; exit 1; }
echo "build/report.png: $size bytes; the rendered page has its table and chart"
