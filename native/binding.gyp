{
  "targets": [
    {
      "target_name": "safe_native",
      "sources": ["fastcdc.c", "pread.c", "memory.c", "ctr.c", "chacha.c", "wal-batch.c", "v8-heap.cc"],
      "include_dirs": ["../node_modules/better-sqlite3-multiple-ciphers/deps/sqlite3"],
      "cflags!": ["-O2"],
      "cflags": ["-O3", "-Wall", "-Wextra"],
      "cflags_c": ["-std=c11"],
      "xcode_settings": { "GCC_OPTIMIZATION_LEVEL": "3" }
    }
  ]
}
