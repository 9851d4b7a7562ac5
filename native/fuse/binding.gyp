# native/fuse: our N-API binding to libfuse 3's low-level API (Debian libfuse3-dev).
{
  "targets": [{
    "target_name": "fuse3",
    "sources": ["lowlevel.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config fuse3 --cflags)"],
    "link_settings": { "libraries": ["<!@(pkg-config fuse3 --libs)"] }
  }]
}
