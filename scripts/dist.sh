#!/usr/bin/env bash
# A release from the tracked files of the checkout (make dist VERSION=x.y.z [DIST_DIR=.] [DIST_URL=...]
# [DIST_GIT=git+https://host/owner/cpf.git] [DIST_HOMEPAGE=https://...]):
#   DIST_DIR/cpf-x.y.z.tar.gz              the tracked files, as they are in the work tree, under
#                                          cpf-x.y.z/; sorted, dated by the last commit, owned by 0:
#                                          the same tree gives the same bytes
#   DIST_DIR/rockspec/cpf-x.y.z-1.rockspec rockspec/cpf-scm-1.rockspec at that version, its source
#                                          the tarball (DIST_URL, by default its file:// path) and
#                                          the tarball's md5
#   DIST_DIR/cpf-x.y.z-1.src.rock          luarocks pack of that rockspec: the rockspec and the
#                                          tarball, installable offline with
#                                          luarocks install ./cpf-x.y.z-1.src.rock --deps-mode=none
#   with DIST_GIT, the rockspec to publish takes its source from the repository at the tag
#   vx.y.z instead (source.url, source.tag); the offline .src.rock is still packed from the
#   tarball. DIST_HOMEPAGE (default: DIST_GIT's https address) goes in description.homepage.
# Both rockspecs must pass luarocks lint, and x.y.z must be the module's cpf._VERSION.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${1:-}
dist_dir=${2:-.}
url=${3:-}
git_url=${4:-}
homepage=${5:-}
fail() { echo "make dist: $*" >&2; exit 1; }
if [ -n "$git_url" ]; then
  [[ "$git_url" =~ ^git\+https://[^[:space:]]+$ ]] || fail "DIST_GIT=git+https://... expected, got '$git_url'"
  [ -n "$homepage" ] || homepage=$(printf '%s' "${git_url#git+}" | sed 's/\.git$//')
fi

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

# the release's rockspec: the development one with its version, its source (the tarball, or the
# repository at the tag) and its homepage
write_rockspec() { # $1: source lines, $2: the file
  awk -v version="$version" -v source="$1" -v homepage="$homepage" '
    NR == 1 { print "-- cpf-" version "-1.rockspec: release " version " of cpf, written by make dist from cpf-scm-1.rockspec." }
    !started && /^--/ { next }
    { started = 1 }
    /^version = / { print "version = \"" version "-1\""; next }
    /^source = \{/ { print "source = {"; print source; print "}"; skip = 1; next }
    skip && /^\}/ { skip = 0; next }
    skip { next }
    /^description = \{/ && homepage != "" { print; print "  homepage = \"" homepage "\","; next }
    { print }' rockspec/cpf-scm-1.rockspec >"$2"
}
tarball_source=$(printf '  url = "%s",\n  md5 = "%s",\n  dir = "%s",\n' "$url" "$md5" "$name")
packed=$rockspec
if [ -n "$git_url" ]; then
  write_rockspec "$(printf '  url = "%s",\n  tag = "v%s",\n' "$git_url" "$version")" "$rockspec"
  packed=$(mktemp -d)/$name-1.rockspec # the tarball's, for the offline rock
  write_rockspec "$tarball_source" "$packed"
else
  write_rockspec "$tarball_source" "$rockspec"
fi

luarocks lint rockspec/cpf-scm-1.rockspec || fail "luarocks lint refuses rockspec/cpf-scm-1.rockspec"
luarocks lint "$rockspec" || fail "luarocks lint refuses $rockspec"
# luarocks pack fetches the source into a temporary directory and writes the rock where it runs
(cd "$dist_dir" && luarocks pack "$packed" >/dev/null) || fail "luarocks pack $packed failed"
[ -f "$dist_dir/$name-1.src.rock" ] || fail "luarocks pack wrote no $dist_dir/$name-1.src.rock"
echo "$tarball"
echo "$rockspec"
echo "$dist_dir/$name-1.src.rock"
