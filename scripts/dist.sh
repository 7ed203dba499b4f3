#!/usr/bin/env bash
# A release from the tracked files of the checkout (make dist VERSION=x.y.z [DIST_DIR=.] [DIST_URL=...]):
#   DIST_DIR/cpf-x.y.z.tar.gz              the tracked files, as they are in the work tree, under
#                                          cpf-x.y.z/; sorted, dated by the last commit, owned by 0:
#                                          the same tree gives the same bytes
#   DIST_DIR/rockspec/cpf-x.y.z-1.rockspec rockspec/cpf-scm-1.rockspec at that version, its source
#                                          the tarball (DIST_URL, by default its file:// path) and
#                                          the tarball's md5
#   DIST_DIR/cpf-x.y.z-1.src.rock          luarocks pack of that rockspec: the rockspec and the
#                                          tarball, installable offline with
#                                          luarocks install ./cpf-x.y.z-1.src.rock --deps-mode=none
# Both rockspecs must pass luarocks lint, and x.y.z must be the module's cpf._VERSION.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${1:-}
dist_dir=${2:-.}
url=${3:-}
fail() { echo "make dist: $*" >&2; exit 1; }

[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "VERSION=x.y.z expected, got '$version' (make dist VERSION=0.1.0)"
module_version=$(sed -n 's/^ *_VERSION = "\([^"]*\)",.*/\1/p' lua/cpf/init.lua)
[ "$module_version" = "$version" ] ||
  fail "lua/cpf/init.lua says _VERSION = \"$module_version\": a release of $version needs the two equal"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "needs the git checkout (the release holds its tracked files)"
command -v luarocks >/dev/null || fail "needs luarocks (apt-get install luarocks)"
mkdir -p "$dist_dir/rockspec"
dist_dir=$(cd "$dist_dir" && pwd)
name=cpf-$version
tarball=$dist_dir/$name.tar.gz
rockspec=$dist_dir/rockspec/$name-1.rockspec
[ -n "$url" ] || url=file://$tarball
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "make dist: the work tree has uncommitted changes; the release holds them" >&2
fi

# the tracked files that exist (a file deleted but not yet committed stays out)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done >"$list"
tar --null -T "$list" --sort=name --mtime="@$(git log -1 --format=%ct)" --owner=0 --group=0 \
    --numeric-owner --transform "s,^,$name/," -cf - | gzip -n -9 >"$tarball"
md5=$(md5sum "$tarball" | cut -d' ' -f1)

# the release's rockspec: the development one with its version and its source replaced
awk -v version="$version" -v url="$url" -v md5="$md5" -v dir="$name" '
  NR == 1 { print "-- cpf-" version "-1.rockspec: release " version " of cpf, written by make dist from cpf-scm-1.rockspec." }
  !started && /^--/ { next }
  { started = 1 }
  /^version = / { print "version = \"" version "-1\""; next }
  /^source = \{/ { print "source = {"; print "  url = \"" url "\","; print "  md5 = \"" md5 "\","
                   print "  dir = \"" dir "\","; print "}"; skip = 1; next }
  skip && /^\}/ { skip = 0; next }
  skip { next }
  { print }' rockspec/cpf-scm-1.rockspec >"$rockspec"

luarocks lint rockspec/cpf-scm-1.rockspec || fail "luarocks lint refuses rockspec/cpf-scm-1.rockspec"
luarocks lint "$rockspec" || fail "luarocks lint refuses $rockspec"
# luarocks pack fetches the source into a temporary directory and writes the rock where it runs
(cd "$dist_dir" && luarocks pack "$rockspec" >/dev/null) || fail "luarocks pack $rockspec failed"
[ -f "$dist_dir/$name-1.src.rock" ] || fail "luarocks pack wrote no $dist_dir/$name-1.src.rock"
echo "$tarball"
echo "$rockspec"
echo "$dist_dir/$name-1.src.rock"
