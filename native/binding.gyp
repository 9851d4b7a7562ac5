{
  "targets": [
    {
      "target_name": "safe_native",
      "sources": ["fastcdc.c", "pread.c", "memory.c", "ctr.c", "wal-batch.c"],
      "include_dirs": ["../node_modules/better-sqlite3-multiple-ciphers/deps/sqlite3"],
      "cflags!": ["-O2"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra"],
      "xcode_settings": { "GCC_OPTIMIZATION_LEVEL": "3" }
    }
  ]
}
