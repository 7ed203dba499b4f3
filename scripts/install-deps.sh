#!/usr/bin/env bash
# Installs the Debian packages cpf needs that are missing: `demo` for building and running,
# `test` adds LuaJIT, busted, luacheck (make lint), LuaRocks, the other Lua headers, clang with
# its sanitizer and libFuzzer runtimes (the fuzzers; the check that the engine compiles without
# __GNUC__), the sanitizer runtimes of gcc (libasan, libubsan, libtsan), Neovim (the plugin's
# tests), nginx with its Lua module, curl and Chromium (cpf serve's tests), strace (the writers'
# fsync and rename, spec/45), Python (the stand-in portal of cpf fetch's tests) and the
# fr_FR.UTF-8 locale;
# `screenshot` adds Chromium (scripts/screenshot.sh).
set -euo pipefail
what=${1:-test}
packages=(gcc make libc6-dev binutils lua5.4 liblua5.4-dev libcsv-dev zlib1g-dev libcurl4-openssl-dev)
if [ "$what" = test ]; then
  packages+=(luajit2 libluajit2-5.1-dev lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev lua-busted
             lua-check luarocks locales clang libclang-rt-14-dev libasan8 libubsan1 libtsan2 neovim
             nginx libnginx-mod-http-lua curl chromium strace python3)
fi
if [ "$what" = screenshot ]; then packages+=(chromium); fi
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# LuaJIT is Debian's luajit2 (OpenResty's, the one nginx-lua needs); a machine that has plain
# luajit with its headers instead keeps it (same interpreter name and include path): asking for
# luajit2 there would have apt replace it, which --no-remove refuses
if [ "$what" = test ] && installed luajit && installed libluajit-5.1-dev; then
  packages=("${packages[@]/#luajit2/luajit}")
  packages=("${packages[@]/#libluajit2-5.1-dev/libluajit-5.1-dev}")
fi
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
  # apt's own errors stay visible; --no-remove: installing never uninstalls anything (plain
  # luajit and Debian's nginx-lua, which needs luajit2, would replace each other)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-remove "${missing[@]}" >/dev/null
fi
# The locale test loads numbers under LC_ALL=fr_FR.UTF-8, where strtod reads "1,5".
if [ "$what" = test ] && ! locale -a 2>/dev/null | grep -qi '^fr_FR\.utf-\?8$'; then
  if [ "$(id -u)" != 0 ]; then sudo=sudo; else sudo=; fi
  $sudo sed -i 's/^# *fr_FR.UTF-8 UTF-8/fr_FR.UTF-8 UTF-8/' /etc/locale.gen
  grep -q '^fr_FR.UTF-8 UTF-8' /etc/locale.gen || echo 'fr_FR.UTF-8 UTF-8' | $sudo tee -a /etc/locale.gen >/dev/null
  $sudo locale-gen >/dev/null
fi
