#!/bin/sh
# Show every difference between our vendored copies and the installed
# @cocalc/fuse-native (expected: only the "SAFE PATCH" hunks and the headers).
cd "$(dirname "$0")" || exit 1
pkg=$(dirname "$(node -p "require.resolve('@cocalc/fuse-native/package.json')")")
echo "upstream: $pkg ($(node -p "require('$pkg/package.json').version"))"
diff -u "$pkg/fuse-native.c" fuse-native.c
diff -u "$pkg/index.js" index.cjs
exit 0
