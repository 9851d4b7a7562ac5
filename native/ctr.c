/*
 * ctrXor(key, pos, src, dst[, iv]): dst = src xor the AES-256-CTR keystream of `key` at byte
 * `pos` of a stream whose counter starts at `iv` (16 bytes, big-endian; zero when absent, so a
 * staged file's counter is the block number pos / 16). `dst` may be `src` itself. The C twin of
 * staged-file.ts's cipher calls and of the group network's: Node's `cipher.update` returns a
 * fresh, zero-filled buffer each time, and on a 1 MiB FUSE write zeroing and copying those took
 * more of the thread than the cipher. OpenSSL is Node's own (its headers and exported symbols).
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>

static _Thread_local EVP_CIPHER_CTX *ctx;

napi_value CtrXor(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *key, *src, *dst, *base = NULL;
  size_t key_len, src_len, dst_len, base_len = 16;
  double pos;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_buffer_info(env, argv[0], &key, &key_len) != napi_ok || key_len != 32 ||
      napi_get_value_double(env, argv[1], &pos) != napi_ok || pos < 0 ||
      napi_get_buffer_info(env, argv[2], &src, &src_len) != napi_ok ||
      napi_get_buffer_info(env, argv[3], &dst, &dst_len) != napi_ok || dst_len < src_len ||
      (argc > 4 && (napi_get_buffer_info(env, argv[4], &base, &base_len) != napi_ok || base_len != 16))) {
    napi_throw_type_error(env, NULL, "ctrXor(key: 32 bytes, pos, src, dst at least as long[, iv: 16 bytes])");
    return NULL;
  }
  if (!ctx && !(ctx = EVP_CIPHER_CTX_new())) {
    napi_throw_error(env, NULL, "ctrXor: no cipher context");
    return NULL;
  }
  uint64_t at = (uint64_t)pos;
  unsigned char iv[16] = { 0 };
  // The counter at `pos`: iv + pos / 16, a 128-bit big-endian sum.
  uint64_t block = at / 16;
  unsigned carry = 0;
  for (int i = 15; i >= 0; i--) {
    unsigned sum = (base ? ((unsigned char *)base)[i] : 0u) + (unsigned)(i >= 8 ? (block >> (8 * (15 - i))) & 0xff : 0u) + carry;
    iv[i] = (unsigned char)sum;
    carry = sum >> 8;
  }
  int n = 0;
  unsigned char skip[16] = { 0 };
  int ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), NULL, key, iv) == 1 &&
           (at % 16 == 0 || EVP_EncryptUpdate(ctx, skip, &n, skip, (int)(at % 16)) == 1);
  // In steps that fit an int.
  for (size_t done = 0; ok && done < src_len;) {
    size_t step = src_len - done > (1u << 30) ? (1u << 30) : src_len - done;
    ok = EVP_EncryptUpdate(ctx, (unsigned char *)dst + done, &n, (unsigned char *)src + done, (int)step) == 1;
    done += step;
  }
  if (!ok) {
    napi_throw_error(env, NULL, "ctrXor: AES-256-CTR failed");
    return NULL;
  }
  return NULL;
}
