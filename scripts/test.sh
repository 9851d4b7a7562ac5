#!/usr/bin/env bash
# The whole suite: build (TypeScript + native addons), then node's test runner over the
# compiled *.test.js files (a directory argument would also run fixtures and helpers).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
shopt -s globstar
exec node --test --test-concurrency=2 dist/test/**/*.test.js "$@"
