#!/usr/bin/env bash
# The benchmark corpus: real trees from Debian packages, not written by us.
#   linux-prev/  the Linux 6.1 source of Debian's linux-source-6.1 6.1.190-1 (~78.6k files, 1.3 GB)
#   linux/       the next Debian release of it, 6.1.192-2 (~1,860 files differ)
# Usage: bash scripts/corpus.sh [DIR]   (default $SAFE_CORPUS or /var/tmp/safe-corpus). Idempotent;
# prints DIR. Each tree is marked complete (.complete) only once fully extracted.
set -euo pipefail
dir=${1:-${SAFE_CORPUS:-/var/tmp/safe-corpus}}
mkdir -p "$dir/dl"
tree() { # $1 = package version, $2 = folder
  [ -f "$dir/$2/.complete" ] && return 0
  local deb="$dir/dl/linux-source-6.1_${1}_all.deb"
  if [ ! -f "$deb" ]; then
    (cd "$dir/dl" && { apt-get download "linux-source-6.1=$1" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1; apt-get download "linux-source-6.1=$1" >/dev/null; }; })
  fi
  local x="$dir/dl/extract-$2"
  rm -rf "$x" "$dir/$2"
  mkdir -p "$x" "$dir/$2"
  dpkg-deb -x "$deb" "$x"
  tar -xJf "$x/usr/src/linux-source-6.1.tar.xz" -C "$dir/$2"
  rm -rf "$x"
  touch "$dir/$2/.complete"
}
tree 6.1.190-1 linux-prev
tree 6.1.192-2 linux
echo "$dir"
