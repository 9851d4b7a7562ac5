#!/usr/bin/env bash
# All benchmarks, each printing its figures beside a same-run baseline. Pass --json for JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
node dist/scripts/bench-chunker.js "$@"
node dist/scripts/bench-ingest.js "$@"
node dist/scripts/bench-fs.js "$@"
node dist/scripts/bench-p2p.js "$@"
node dist/scripts/bench-ship.js "$@"
node dist/scripts/bench-recover.js "$@"
