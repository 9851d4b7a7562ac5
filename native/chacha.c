/*
 * chachaSeal(key, nonce, ad, parts, out) and chachaOpen(key, nonce, ad, parts, out): the
 * ChaCha20-Poly1305 of the Noise channels, one call per message, into a buffer the caller
 * allocated. Node's cipher objects cost a context per message, a zero-filled buffer per update
 * and a concatenation of text and tag. `parts` is the message in pieces (a frame read across
 * socket reads); sealed, `out` is the text and its 16-byte tag; opened, the parts end with the
 * tag and `out` gets the text (it may be the first part itself). OpenSSL is Node's own.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TAG 16
#define MAX_PARTS 64

static _Thread_local EVP_CIPHER_CTX *ctx;

typedef struct {
  unsigned char *key, *nonce, *ad, *out;
  size_t ad_len, out_len, total, count;
  unsigned char *data[MAX_PARTS];
  size_t len[MAX_PARTS];
} call_t;

/** Reads (key, nonce, ad, parts, out); false after throwing a TypeError naming `usage`. */
static bool args(napi_env env, napi_callback_info info, call_t *c, const char *usage) {
  size_t argc = 5, key_len, nonce_len;
  napi_value argv[5];
  uint32_t n = 0;
  bool ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 5 &&
            napi_get_buffer_info(env, argv[0], (void **)&c->key, &key_len) == napi_ok && key_len == 32 &&
            napi_get_buffer_info(env, argv[1], (void **)&c->nonce, &nonce_len) == napi_ok && nonce_len == 12 &&
            napi_get_buffer_info(env, argv[2], (void **)&c->ad, &c->ad_len) == napi_ok &&
            napi_get_array_length(env, argv[3], &n) == napi_ok && n <= MAX_PARTS &&
            napi_get_buffer_info(env, argv[4], (void **)&c->out, &c->out_len) == napi_ok;
  c->count = n;
  c->total = 0;
  for (uint32_t i = 0; ok && i < n; i++) {
    napi_value part;
    ok = napi_get_element(env, argv[3], i, &part) == napi_ok &&
         napi_get_buffer_info(env, part, (void **)&c->data[i], &c->len[i]) == napi_ok;
    c->total += ok ? c->len[i] : 0;
  }
  if (ok && !ctx && !(ctx = EVP_CIPHER_CTX_new())) ok = false;
  if (!ok) napi_throw_type_error(env, NULL, usage);
  return ok;
}

static napi_value boolean(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

napi_value ChachaSeal(napi_env env, napi_callback_info info) {
  call_t c;
  if (!args(env, info, &c, "chachaSeal(key: 32 bytes, nonce: 12 bytes, ad, parts: at most 64, out: their length + 16)")) return NULL;
  if (c.out_len != c.total + TAG) {
    napi_throw_type_error(env, NULL, "chachaSeal: out must be the parts' length + 16");
    return NULL;
  }
  int n = 0;
  size_t at = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, c.key, c.nonce) == 1 &&
            (c.ad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &n, c.ad, (int)c.ad_len) == 1);
  for (size_t i = 0; ok && i < c.count; i++) {
    ok = EVP_EncryptUpdate(ctx, c.out + at, &n, c.data[i], (int)c.len[i]) == 1;
    at += (size_t)n;
  }
  ok = ok && EVP_EncryptFinal_ex(ctx, c.out + at, &n) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, c.out + c.total) == 1;
  if (!ok) napi_throw_error(env, NULL, "chachaSeal: ChaCha20-Poly1305 failed");
  return NULL;
}

/** True when the tag holds; `out` then has the text. */
napi_value ChachaOpen(napi_env env, napi_callback_info info) {
  call_t c;
  if (!args(env, info, &c, "chachaOpen(key: 32 bytes, nonce: 12 bytes, ad, parts: at most 64, out: their length - 16)")) return NULL;
  if (c.total < TAG || c.out_len != c.total - TAG) {
    napi_throw_type_error(env, NULL, "chachaOpen: out must be the parts' length - 16");
    return NULL;
  }
  unsigned char tag[TAG];
  size_t text = c.total - TAG, at = 0, seen = 0;
  int n = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, c.key, c.nonce) == 1 &&
            (c.ad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &n, c.ad, (int)c.ad_len) == 1);
  for (size_t i = 0; ok && i < c.count; i++) {
    // The text part of this piece, then whatever of the tag it holds.
    size_t take = seen >= text ? 0 : (text - seen < c.len[i] ? text - seen : c.len[i]);
    if (take > 0) {
      ok = EVP_DecryptUpdate(ctx, c.out + at, &n, c.data[i], (int)take) == 1;
      at += (size_t)n;
    }
    if (take < c.len[i]) memcpy(tag + (seen + take - text), c.data[i] + take, c.len[i] - take);
    seen += c.len[i];
  }
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) == 1 &&
       EVP_DecryptFinal_ex(ctx, c.out + at, &n) == 1;
  return boolean(env, ok);
}
