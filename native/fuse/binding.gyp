# Our own build of @cocalc/fuse-native's addon (see README.md).
# Same flags as the package's binding.gyp, minus its empty "postinstall"
# target and the macOS settings. napi-macros is resolved through the package,
# which depends on it, so we don't rely on npm's hoisting.
{
  "targets": [{
    "target_name": "fuse",
    "variables": {
      "fuse__include_dirs%": "<!(pkg-config fuse --cflags-only-I | sed s/-I//g)",
      "fuse__libraries%": "<!(pkg-config --libs-only-L --libs-only-l fuse)"
    },
    "include_dirs": [
      "<!(node -p \"require('path').dirname(require.resolve('napi-macros/package.json', { paths: [require.resolve('@cocalc/fuse-native')] }))\")",
      "<@(fuse__include_dirs)"
    ],
    "link_settings": { "libraries": ["<@(fuse__libraries)"] },
    "sources": ["fuse-native.c"],
    "cflags": ["-g", "-O3", "-Wall"]
  }]
}
