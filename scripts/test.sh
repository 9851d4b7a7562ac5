#!/usr/bin/env bash
# The whole suite: what it needs installed (the Debian packages the tests drive: network
# namespaces, a browser, a keyring), the build (TypeScript + native addons), then node's test
# runner over the compiled *.test.js files (a directory argument would also run fixtures and
# helpers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
shopt -s globstar
exec node --test --test-concurrency=2 dist/test/**/*.test.js "$@"
