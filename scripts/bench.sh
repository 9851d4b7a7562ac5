#!/usr/bin/env bash
# All benchmarks, each printing its figures beside a same-run baseline. Pass --json for JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
# The baselines bench-fs measures beside the mount: another encrypted FUSE folder (gocryptfs,
# which needs fuse3 as we do) and restic. Never removes a package.
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
# socat: bench-nat's relayed TCP baseline.
for pkg in gocryptfs restic socat; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-remove "$pkg" >&2 || echo "bench: $pkg not installed; its baseline is skipped" >&2
done
node dist/scripts/bench-chunker.js "$@"
node dist/scripts/bench-ingest.js "$@"
node dist/scripts/bench-rs.js "$@"
node dist/scripts/bench-fs.js "$@"
node dist/scripts/bench-ui.js "$@"
node dist/scripts/bench-p2p.js "$@"
node dist/scripts/bench-ship.js "$@"
node dist/scripts/bench-recover.js "$@"
node dist/scripts/bench-nat.js "$@"
node dist/scripts/bench-stripes.js "$@"
