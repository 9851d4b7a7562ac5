#!/usr/bin/env bash
# The one command for a newcomer: install everything, put `safe` on the PATH, and, if there is
# no host yet, create one with embedded defaults in a demo backup group: two buddy daemons on
# this machine (loopback only) that hold its snapshots, so shipping, audits and recovery can be
# tried at once. Then mount ~/safe, take a first snapshot and ship it.
#   bash scripts/setup.sh            host + demo group
#   bash scripts/setup.sh --alone    host only: a local versioned store, no group
# The passphrase is asked once at the terminal (or taken from SAFE_PASSPHRASE); the demo
# buddies use it too, so `SAFE_HOME=~/.local/share/safe-demo/buddy-1 safe mount` remounts one.
set -euo pipefail
cd "$(dirname "$0")/.."
alone=0; [ "${1:-}" = "--alone" ] && alone=1
bash scripts/install-deps.sh
bindir=/usr/local/bin; [ -w "$bindir" ] || { bindir="$HOME/.local/bin"; mkdir -p "$bindir"; }
ln -sf "$PWD/bin/safe" "$bindir/safe"
echo "safe is at $bindir/safe" >&2

if safe status >/dev/null 2>&1; then
  safe status | grep -q 'not mounted' && safe mount
  safe status
  exit 0
fi

if [ "$alone" = 1 ]; then
  safe init
  safe mount
  safe status
  exit 0
fi

if [ -z "${SAFE_PASSPHRASE:-}" ]; then
  read -rsp "Passphrase for this host (and its demo buddies): " SAFE_PASSPHRASE </dev/tty; echo >&2
fi
export SAFE_PASSPHRASE
# A random group password keeps strangers out of the demo group; a recovery needs it, so it
# goes on the recovery sheet with the rest (a file only you can read, shown at the end).
export SAFE_GROUP_PASSWORD="$(head -c 24 /dev/urandom | base64)"
group="demo-$(hostname)-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
demo="${XDG_DATA_HOME:-$HOME/.local/share}/safe-demo"
sheet="$demo/recovery-sheet.txt"
peers=()
for n in 1 2; do
  port=$((4747 + n))
  dir="$demo/buddy-$n"
  mkdir -p "$dir/mnt"
  SAFE_HOME="$dir/home" safe init --host "$(hostname)-buddy-$n" --mount "$dir/mnt" --group "$group" --offer 5G \
    --listen "/ip4/127.0.0.1/tcp/$port" --no-mdns "${peers[@]/#/--peer=}" >/dev/null
  SAFE_HOME="$dir/home" safe mount >/dev/null
  peers+=("/ip4/127.0.0.1/tcp/$port")
  echo "demo buddy $n: SAFE_HOME=$dir/home, listening on 127.0.0.1:$port" >&2
done
safe init --host "$(hostname)" --mount "$HOME/safe" --group "$group" --offer 1G --listen /ip4/127.0.0.1/tcp/4747 \
  --no-mdns "${peers[@]/#/--peer=}" --recovery-sheet "$sheet"
safe mount
safe snapshot --label first >/dev/null
safe sync --wait || true
safe status
echo >&2
echo "Keep a copy of $sheet off this machine: with it and your passphrase, safe recover brings this host back." >&2
