/*
 * preadCached(fd, buf, offset): fills buf from fd at offset only if every byte is in the page
 * cache (preadv2 with RWF_NOWAIT), and returns how many bytes it read (fewer at the end of the
 * file); -1 when reading would have to wait for the disk, or failed. The caller then reads on
 * libuv's thread pool: a trip there costs two thread hand-offs, more than a cached read of a
 * few hundred KiB, but a read from the disk must not stall the thread that serves FUSE.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>

napi_value PreadCached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  int32_t fd;
  void *data;
  size_t len;
  int64_t off;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_value_int64(env, argv[2], &off) != napi_ok) {
    napi_throw_type_error(env, NULL, "preadCached(fd, buffer, offset)");
    return NULL;
  }
  size_t got = 0;
  double result = 0;
  while (got < len) {
    struct iovec iov = { (char *)data + got, len - got };
    ssize_t n = preadv2(fd, &iov, 1, off + (int64_t)got, RWF_NOWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { result = -1; break; }
    if (n == 0) break;
    got += (size_t)n;
  }
  if (result == 0) result = (double)got;
  napi_create_double(env, result, &out);
  return out;
}
