#!/usr/bin/env bash
# Everything safe needs on a Debian machine: FUSE 3 (kernel interface, libfuse 3 and its
# headers for our binding), build tools for the native addons, then the npm packages and our
# own build. Nothing the user has installed is ever removed: apt runs with --no-remove and
# its summary is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
need=()
# iproute2 and iptables: the tests' network namespaces and their NAT routers; chromium: the
# dashboard's browser test (Playwright drives Debian's build; nothing is downloaded by npm).
for pkg in fuse3 libfuse3-dev pkg-config build-essential python3 rsync sqlite3 git attr tar iproute2 iptables chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-remove -o Dpkg::Progress-Fancy=0 "${need[@]}" ||
    { echo "setup: apt-get could not install ${need[*]} without removing other packages (see above)" >&2; exit 1; }
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: this machine cannot mount FUSE filesystems" >&2; exit 1; }
# Build the addons against Debian's Node headers when they are there: no download needed.
[ -f /usr/include/node/node_api.h ] && export npm_config_nodedir=/usr
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
