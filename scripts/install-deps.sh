#!/usr/bin/env bash
# Everything safe needs on a Debian machine: FUSE 3 (kernel interface, libfuse 3 and its
# headers for our binding), build tools for the native addons, then the npm packages and our
# own build; with --tests, also what the test suite drives (scripts/test.sh passes it). Nothing
# the user has installed is ever removed: apt runs with --no-remove and its summary is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
missing() { for pkg in "$@"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"; done; }
# apt-get install, never removing a package, its summary shown; $1: extra apt options.
apt_install() {
  local opts=$1; shift
  [ $# -gt 0 ] || return 0
  echo "installing Debian packages: $*" >&2
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-remove $opts -o Dpkg::Progress-Fancy=0 "$@" ||
    { echo "setup: apt-get could not install $* without removing other packages (see above)" >&2; exit 1; }
}
# What safe runs on; libzstd-dev: the FUSE binding opens compressed chunks in C;
# libsecret-tools: secret-tool, for a mount that takes the passphrase from
# the desktop keyring.
mapfile -t need < <(missing fuse3 libfuse3-dev libzstd-dev pkg-config build-essential python3 rsync sqlite3 git attr tar libsecret-tools)
apt_install "" "${need[@]}"
# What the tests use, without what those packages merely recommend (gnome-keyring would bring
# PAM changes): iproute2 and iptables for network namespaces and NAT routers, chromium for the
# dashboard's browser test (Playwright drives Debian's build; npm downloads no browser),
# gnome-keyring and a session bus for the keyring test.
if [ "${1:-}" = --tests ]; then
  mapfile -t need < <(missing iproute2 iptables chromium gnome-keyring dbus-daemon)
  apt_install "--no-install-recommends" "${need[@]}"
fi
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing: this machine cannot mount FUSE filesystems" >&2; exit 1; }
# Build the addons against Debian's Node headers when they are there: no download needed.
[ -f /usr/include/node/node_api.h ] && export npm_config_nodedir=/usr
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
