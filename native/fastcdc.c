/*
 * FastCDC cut points, byte-identical to cutsTs() in src/chunkstore/fastcdc.ts
 * (see the cut rule there). Plain N-API so no C++ toolchain bits or
 * node-addon-api are needed.
 *
 * cuts(gear: Uint32Array(256), buf: Uint8Array, start, end,
 *      min, avg, max, maskS, maskL, eof: boolean): Uint32Array
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "safe_native: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

/* Chunk end relative to b, or -1 when [from, lim) holds no hit. */
static inline int64_t scan(const uint32_t *restrict gear, const uint8_t *restrict b, size_t from,
                           size_t center, size_t lim, uint32_t maskS, uint32_t maskL) {
  uint32_t h = 0;
  size_t j = from;
  for (; j < center; j++) {
    h = (h << 1) + gear[b[j]];
    if (!(h & maskS)) return (int64_t)j;
  }
  for (; j < lim; j++) {
    h = (h << 1) + gear[b[j]];
    if (!(h & maskL)) return (int64_t)j;
  }
  return -1;
}

/* Exact non-negative integer no larger than 2^53, or -1. */
static int64_t get_index(napi_env env, napi_value v) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return -1;
  return (int64_t)d;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  int64_t x = get_index(env, v);
  if (x < 0 || x > 0xffffffffLL) return 0;
  *out = (uint32_t)x;
  return 1;
}

static napi_value Cuts(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 10) return throw_type(env, "cuts: expected 10 arguments");

  bool is_ta;
  napi_typedarray_type ta_type;
  size_t gear_len, buf_len;
  void *gear_data, *buf_data;
  napi_value ab;
  size_t ab_off;

  CHECK(napi_is_typedarray(env, argv[0], &is_ta));
  if (!is_ta) return throw_type(env, "cuts: gear must be a Uint32Array");
  CHECK(napi_get_typedarray_info(env, argv[0], &ta_type, &gear_len, &gear_data, &ab, &ab_off));
  if (ta_type != napi_uint32_array || gear_len != 256)
    return throw_type(env, "cuts: gear must be a Uint32Array of 256 entries");

  CHECK(napi_is_typedarray(env, argv[1], &is_ta));
  if (!is_ta) return throw_type(env, "cuts: buf must be a Uint8Array");
  CHECK(napi_get_typedarray_info(env, argv[1], &ta_type, &buf_len, &buf_data, &ab, &ab_off));
  if (ta_type != napi_uint8_array) return throw_type(env, "cuts: buf must be a Uint8Array");

  int64_t start = get_index(env, argv[2]);
  int64_t end = get_index(env, argv[3]);
  if (start < 0 || end < start || (uint64_t)end > buf_len) return throw_range(env, "cuts: bad range");

  uint32_t min, avg, max, maskS, maskL;
  if (!get_u32(env, argv[4], &min) || !get_u32(env, argv[5], &avg) || !get_u32(env, argv[6], &max) ||
      !get_u32(env, argv[7], &maskS) || !get_u32(env, argv[8], &maskL))
    return throw_type(env, "cuts: min, avg, max, maskS, maskL must be u32 integers");
  if (min < 1 || min > avg || avg > max) return throw_range(env, "cuts: need 1 <= min <= avg <= max");

  bool eof;
  if (napi_get_value_bool(env, argv[9], &eof) != napi_ok) return throw_type(env, "cuts: eof must be a boolean");

  /* Local copy: the table is tiny and this keeps it in L1 next to the stack. */
  uint32_t gear[256];
  memcpy(gear, gear_data, sizeof gear);
  const uint8_t *b = (const uint8_t *)buf_data;

  /* Every chunk but the last is >= min bytes. */
  size_t cap = (size_t)((end - start) / min) + 1;
  uint32_t *lens = malloc(cap * sizeof *lens);
  if (!lens) {
    napi_throw_error(env, NULL, "cuts: out of memory");
    return NULL;
  }
  size_t count = 0;
  size_t pos = (size_t)start, e = (size_t)end;
  while (pos < e) {
    size_t n = e - pos;
    if (n <= min) {
      if (eof) lens[count++] = (uint32_t)n;
      break;
    }
    size_t lim = n < max ? n : max;
    size_t center = lim < avg ? lim : avg;
    int64_t cut = scan(gear, b, pos + min, pos + center, pos + lim, maskS, maskL);
    if (cut < 0) {
      if (lim == max || eof) cut = (int64_t)(pos + lim);
      else break;
    }
    lens[count++] = (uint32_t)((size_t)cut - pos);
    pos = (size_t)cut;
  }

  void *out_data;
  napi_value out_ab, out;
  if (napi_create_arraybuffer(env, count * sizeof *lens, &out_data, &out_ab) != napi_ok) {
    free(lens);
    napi_throw_error(env, NULL, "cuts: cannot allocate result");
    return NULL;
  }
  if (count) memcpy(out_data, lens, count * sizeof *lens);
  free(lens);
  CHECK(napi_create_typedarray(env, napi_uint32_array, count, out_ab, 0, &out));
  return out;
}

napi_value PreadCached(napi_env env, napi_callback_info info);  /* pread.c */
napi_value TrimHeap(napi_env env, napi_callback_info info);  /* memory.c */
napi_value CtrXor(napi_env env, napi_callback_info info);  /* ctr.c */
napi_value ReduceV8Heap(napi_env env, napi_callback_info info);  /* v8-heap.cc */
napi_value ChachaSeal(napi_env env, napi_callback_info info);  /* chacha.c */
napi_value ChachaOpen(napi_env env, napi_callback_info info);  /* chacha.c */

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "cuts", NAPI_AUTO_LENGTH, Cuts, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "cuts", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "preadCached", NAPI_AUTO_LENGTH, PreadCached, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "preadCached", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "trimHeap", NAPI_AUTO_LENGTH, TrimHeap, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trimHeap", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "ctrXor", NAPI_AUTO_LENGTH, CtrXor, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "ctrXor", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "reduceV8Heap", NAPI_AUTO_LENGTH, ReduceV8Heap, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "reduceV8Heap", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "chachaSeal", NAPI_AUTO_LENGTH, ChachaSeal, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "chachaSeal", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "chachaOpen", NAPI_AUTO_LENGTH, ChachaOpen, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "chachaOpen", fn) != napi_ok) return NULL;
  return exports;
}
