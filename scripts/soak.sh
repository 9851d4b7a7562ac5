#!/usr/bin/env bash
# The soak outside the suite (issue 16): build, then three hosts under twenty minutes of random
# work and every host recovered on a blank one. SAFE_SOAK_SEED replays a run, SAFE_SOAK_SECONDS
# lengthens or shortens it.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
exec node --test dist/test/soak/run.js "$@"
