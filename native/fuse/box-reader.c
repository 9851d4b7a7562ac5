// Reads of chunked file content, answered on threads of their own: the C twin of the
// chunkstore's TS read path (src/chunkstore/sealer.ts `open`, store.ts `readRun`).
//
// A cold sequential read through the folder used to be one thread's work: the JS thread read
// each run of boxes from its pack, decrypted and checked every chunk, copied the slice and
// replied, and was busy 90% of the time at a third of gocryptfs's speed. Now JS only finds
// where the boxes lie (the tree's chunk list and the store's index, both in SQLite) and hands
// the request here with the boxes' places; a reader thread reads the pack, opens each box
// (key and aad from the chunk's handle, AES-256-GCM, zstd) and replies to the kernel itself.
// Nothing is sent unless every box passed its tag. A read that fails here (a damaged box, a
// short pack) goes back to JS, whose path repairs from the buddies or answers EIO.
//
// Box layout and keys, as sealer.ts writes them:
//   key = HMAC-SHA256(handle, "safe/v1/chunk-key\x01"), aad = SHA-256(handle), nonce 0,
//   box = AES-256-GCM(codec byte || body) || tag(16); codec 0 = raw, 1 = zstd frame.
// OpenSSL comes from Node itself (its exported symbols, its headers); zstd from libzstd.
#define _GNU_SOURCE
#include "box-reader.h"
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define TAG_BYTES 16
/** Bytes of one pack read at most: a FUSE read spans up to 1 MiB of plaintext. */
#define RUN_MAX (4u << 20)

static const unsigned char KEY_INFO[] = "safe/v1/chunk-key\x01";
static const unsigned char NONCE[12] = { 0 };

typedef struct { unsigned char *p; size_t cap; } grow_t;

static int grow(grow_t *g, size_t n) {
  if (n <= g->cap) return 1;
  unsigned char *p = realloc(g->p, n);
  if (!p) return 0;
  g->p = p;
  g->cap = n;
  return 1;
}

typedef struct {
  EVP_CIPHER_CTX *cipher;
  // SHA-256 fetched once: OpenSSL 3's one-shot HMAC() and SHA256() look the algorithm up
  // under a global lock on every call, eight times per 128 KiB read.
  EVP_MD *sha256;
  EVP_MD_CTX *md;
  ZSTD_DCtx *zstd;
  grow_t run, plain, unz, out;
} thread_state_t;

static int digest(thread_state_t *t, const unsigned char *a, size_t al, const unsigned char *b, size_t bl, unsigned char out[32]) {
  unsigned int n = 0;
  return EVP_DigestInit_ex(t->md, t->sha256, NULL) == 1 && EVP_DigestUpdate(t->md, a, al) == 1 &&
         (bl == 0 || EVP_DigestUpdate(t->md, b, bl) == 1) && EVP_DigestFinal_ex(t->md, out, &n) == 1;
}

// HMAC-SHA256 with a 32-byte key (RFC 2104, spelled out over the fetched digest).
static int hmac32(thread_state_t *t, const unsigned char key[32], const unsigned char *msg, size_t len, unsigned char out[32]) {
  unsigned char pad[64], inner[32];
  for (int i = 0; i < 64; i++) pad[i] = (unsigned char)((i < 32 ? key[i] : 0) ^ 0x36);
  if (!digest(t, pad, 64, msg, len, inner)) return 0;
  for (int i = 0; i < 64; i++) pad[i] = (unsigned char)((i < 32 ? key[i] : 0) ^ 0x5c);
  return digest(t, pad, 64, inner, 32, out);
}

static int read_full(int fd, unsigned char *p, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, p + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  return 1;
}

// Opens one box and copies bytes [from, from + take) of its plaintext to `dst`. 0 if the box
// fails its tag, its codec or its size: then nothing of it may reach a reader.
static int open_box(thread_state_t *t, const box_t *b, const unsigned char *box, unsigned char *dst) {
  if (b->len < TAG_BYTES + 1 || (uint64_t)b->from + b->take > b->raw) return 0;
  unsigned char key[32], aad[32];
  if (!hmac32(t, b->handle, KEY_INFO, sizeof KEY_INFO - 1, key) || !digest(t, b->handle, sizeof b->handle, NULL, 0, aad)) return 0;
  EVP_CIPHER_CTX *c = t->cipher;
  int n = 0;
  if (EVP_DecryptInit_ex(c, NULL, NULL, key, NONCE) != 1 || EVP_DecryptUpdate(c, NULL, &n, aad, sizeof aad) != 1) return 0;
  unsigned char codec;
  if (EVP_DecryptUpdate(c, &codec, &n, box, 1) != 1) return 0;
  size_t body = b->len - TAG_BYTES - 1;
  // A raw chunk read whole is decrypted straight into the reply.
  int whole = codec == 0 && b->from == 0 && b->take == b->raw && body == b->raw;
  unsigned char *plain = dst;
  if (!whole) {
    if (!grow(&t->plain, body ? body : 1)) return 0;
    plain = t->plain.p;
  }
  if (body && EVP_DecryptUpdate(c, plain, &n, box + 1, (int)body) != 1) return 0;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, (void *)(box + b->len - TAG_BYTES)) != 1) return 0;
  if (EVP_DecryptFinal_ex(c, plain + body, &n) != 1) return 0;
  if (whole) return 1;
  if (codec == 0) {
    if (body != b->raw) return 0;
    memcpy(dst, plain + b->from, b->take);
    return 1;
  }
  if (codec != 1) return 0;
  int full = b->from == 0 && b->take == b->raw;
  if (!full && !grow(&t->unz, b->raw ? b->raw : 1)) return 0;
  unsigned char *to = full ? dst : t->unz.p;
  size_t r = ZSTD_decompressDCtx(t->zstd, to, b->raw, plain, body);
  if (ZSTD_isError(r) || r != b->raw) return 0;
  if (!full) memcpy(dst, to + b->from, b->take);
  return 1;
}

// The reply's bytes in t->out: 1, or 0 if any box could not be read or opened.
static int answer(thread_state_t *t, const read_job_t *job) {
  if (!grow(&t->out, job->total ? job->total : 1)) return 0;
  size_t at = 0;
  for (uint32_t i = 0; i < job->count;) {
    const box_t *head = &job->boxes[i];
    uint32_t j = i + 1;
    size_t len = head->len;
    // Neighbours in one pack (a file written in one go) come in one read.
    while (j < job->count) {
      const box_t *prev = &job->boxes[j - 1], *next = &job->boxes[j];
      if (next->fd != head->fd || next->off != prev->off + prev->len || len + next->len > RUN_MAX) break;
      len += next->len;
      j++;
    }
    if (!grow(&t->run, len) || !read_full(head->fd, t->run.p, len, head->off)) return 0;
    for (uint32_t k = i; k < j; k++) {
      const box_t *b = &job->boxes[k];
      if (at + b->take > job->total) return 0;
      if (!open_box(t, b, t->run.p + (b->off - head->off), t->out.p + at)) return 0;
      at += b->take;
    }
    i = j;
  }
  return at == job->total;
}

void read_job_close_fds(read_job_t *job) {
  int last = -1;
  for (uint32_t i = 0; i < job->count; i++) {
    if (job->boxes[i].fd != last) close(job->boxes[i].fd);
    last = job->boxes[i].fd;
  }
}

static void *reader_main(void *arg) {
  box_reader_t *r = arg;
  thread_state_t t = { 0 };
  t.cipher = EVP_CIPHER_CTX_new();
  t.zstd = ZSTD_createDCtx();
  t.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  t.md = EVP_MD_CTX_new();
  int ready = t.cipher && t.zstd && t.sha256 && t.md && EVP_DecryptInit_ex(t.cipher, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
  for (;;) {
    pthread_mutex_lock(&r->lock);
    while (!r->head && !r->stop) pthread_cond_wait(&r->cond, &r->lock);
    read_job_t *job = r->head;
    if (job) { r->head = job->next; if (!r->head) r->tail = NULL; }
    pthread_mutex_unlock(&r->lock);
    if (!job) break;
    int ok = ready && answer(&t, job);
    read_job_close_fds(job);
    if (ok) {
      fuse_reply_buf(job->req, (const char *)t.out.p, job->total);
      free(job);
    } else {
      r->fail(r->ctx, job);
    }
  }
  EVP_CIPHER_CTX_free(t.cipher);
  EVP_MD_CTX_free(t.md);
  EVP_MD_free(t.sha256);
  ZSTD_freeDCtx(t.zstd);
  free(t.run.p); free(t.plain.p); free(t.unz.p); free(t.out.p);
  return NULL;
}

int box_reader_start(box_reader_t *r, void (*fail)(void *, read_job_t *), void *ctx) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->fail = fail;
  r->ctx = ctx;
  for (int i = 0; i < BOX_READER_THREADS; i++) {
    if (pthread_create(&r->threads[i], NULL, reader_main, r) != 0) break;
    r->nthreads++;
  }
  return r->nthreads > 0;
}

void box_reader_submit(box_reader_t *r, read_job_t *job) {
  job->next = NULL;
  pthread_mutex_lock(&r->lock);
  if (r->tail) r->tail->next = job; else r->head = job;
  r->tail = job;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

void box_reader_stop(box_reader_t *r) {
  pthread_mutex_lock(&r->lock);
  r->stop = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  for (int i = 0; i < r->nthreads; i++) pthread_join(r->threads[i], NULL);
  r->nthreads = 0;
}
