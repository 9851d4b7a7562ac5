#!/usr/bin/env bash
# The whole suite: build (TypeScript + native addons), then node's test runner over dist/test.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
exec node --test --test-concurrency=2 dist/test/ "$@"
