# native/fuse: our N-API binding to libfuse 3's low-level API (Debian libfuse3-dev), and the
# threads that answer reads from chunk boxes: OpenSSL from Node itself (its headers and
# exported symbols), zstd from Debian's libzstd-dev.
{
  "targets": [{
    "target_name": "fuse3",
    "sources": ["lowlevel.c", "box-reader.c", "killpriv.c", "read-windows.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config fuse3 --cflags)"],
    "link_settings": { "libraries": ["<!@(pkg-config fuse3 --libs)", "-lzstd"] }
  }]
}
