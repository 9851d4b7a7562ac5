#!/usr/bin/env bash
# The build: TypeScript, then the native addons (FastCDC, and the libfuse 3 binding). A
# failed step stops here with one line saying which and where its output is.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ] && export npm_config_nodedir=/usr
mkdir -p build-logs
rm -rf dist
if ! npx --no-install tsc -p tsconfig.json > build-logs/tsc.log 2>&1; then
  cat build-logs/tsc.log >&2
  echo "build: TypeScript did not compile (above, and in build-logs/tsc.log)" >&2
  exit 1
fi
# libp2p and its modules, bundled into the one file the peers layer imports them from: some
# 800 modules loaded one by one cost a daemon 0.6 s of CPU at every start (src/peers/net/libp2p.ts).
if ! npx --no-install esbuild dist/src/peers/net/libp2p.js --bundle --platform=node --format=esm --target=node20 \
  --outfile=dist/src/peers/net/libp2p.js --allow-overwrite --log-level=warning \
  --banner:js="import { createRequire as __libp2pRequire } from 'node:module'; const require = __libp2pRequire(import.meta.url);" > build-logs/libp2p.log 2>&1; then
  cat build-logs/libp2p.log >&2
  echo "build: the libp2p bundle did not build (above, and in build-logs/libp2p.log)" >&2
  exit 1
fi
# The dashboard's page: type-checked against the DOM, bundled by esbuild with Preact and uPlot.
web=dist/src/ui/web
if ! { npx --no-install tsc -p src/ui/web > build-logs/web.log 2>&1 &&
  npx --no-install esbuild src/ui/web/app.ts --bundle --minify --format=iife --target=es2022 --outfile=$web/app.js --log-level=warning >> build-logs/web.log 2>&1; }; then
  cat build-logs/web.log >&2
  echo "build: the dashboard's page did not build (above, and in build-logs/web.log)" >&2
  exit 1
fi
cat node_modules/uplot/dist/uPlot.min.css src/ui/web/style.css > $web/app.css
cp src/ui/web/index.html $web/
for addon in native native/fuse; do
  log="build-logs/$(echo "$addon" | tr / -).log"
  if ! npx --no-install node-gyp rebuild --directory "$addon" --loglevel=error > "$log" 2>&1; then
    err=$(grep -m1 -E 'error|Error|not found' "$log" || tail -n1 "$log")
    echo "build: the native addon in $addon did not build: $err (full output in $log; needs build-essential, pkg-config, libfuse3-dev and libzstd-dev: bash scripts/install-deps.sh)" >&2
    exit 1
  fi
done
