// N-API binding to libfuse 3's low-level API.
//
// Threads: none of libfuse's. The /dev/fuse descriptor is non-blocking and polled by the JS
// thread's own event loop (uv_poll): when it is readable, the JS thread reads every request
// waiting there (up to a bound, so timers and sockets still get their turn), libfuse decodes
// each into one of the callbacks below, which copy what they need (names, write data) out of
// the receive buffer into a queue item without replying. Then `dispatch` is called per item,
// in one callback scope, and once more with OP_BATCH_END; before the thread goes back to
// sleep, once with OP_IDLE. Replies are plain fuse_reply_* calls
// (a writev on the device) made whenever JS has the answer. So a request costs the kernel one
// wake-up of the daemon, not a hand-off between threads. Kernel notifications (cache
// invalidation) go through a thread of their own: the kernel may need a lock held by a request
// the JS thread has yet to answer, so sending them from the JS thread could deadlock.
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include "box-reader.h"
#include "killpriv.h"
#include "read-windows.h"
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum {
  OP_LOOKUP = 1, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE,
  OP_FSYNC, OP_READDIR, OP_READDIRPLUS, OP_FSYNCDIR, OP_STATFS,
  OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE, OP_FALLOCATE,
  OP_BATCH_END, OP_IDLE, OP_READ_RETRY
};

// Attribute layout shared with JS (index.cjs ATTR): one Float64Array slot each.
enum { A_INO, A_MODE, A_NLINK, A_UID, A_GID, A_RDEV, A_SIZE, A_BLOCKS, A_ATIME, A_MTIME, A_CTIME, A_LEN };
// Setattr layout passed to JS.
enum { S_MODE, S_UID, S_GID, S_SIZE, S_ATIME, S_MTIME, S_CTIME, S_LEN };

typedef struct item {
  struct item *next;
  int op;
  fuse_req_t req;
  uint64_t ino;
  double n[6];       // numeric arguments, per op
  double attr[S_LEN];
  char *s1; size_t l1;  // first name (or xattr name)
  char *s2; size_t l2;  // second name / symlink target
  char *data; size_t dlen;  // xattr value
  napi_ref wbuf;     // write data: the Buffer JS gets, made as the request is read
  char buf[];        // storage for s1, s2
} item_t;

typedef struct notice {
  struct notice *next;
  int kind;  // 0 = inval_inode, 1 = inval_entry
  uint64_t ino;
  int64_t off, len;
  size_t namelen;
  char name[];
} notice_t;

typedef struct session {
  struct fuse_session *se;
  char *mountpoint;
  pthread_t notify_thread;
  uv_poll_t poll;
  int polling;
  struct fuse_buf fbuf;
  item_t *head, *tail;
  // notifications
  pthread_mutex_t nlock;
  pthread_cond_t ncond;
  notice_t *nhead, *ntail;
  int nstop;
  // JS side
  napi_env env;
  napi_ref dispatch;
  napi_async_context actx;
  napi_ref self;
  // init settings
  unsigned max_write, max_readahead;
  int writeback;
  int no_opendir;  // the kernel opens directories without asking (FUSE_NO_OPENDIR_SUPPORT)
  volatile int unmounted;
  // reads answered from chunk boxes (box-reader.c); the ones it cannot answer come back to
  // JS through `retry` as OP_READ_RETRY
  box_reader_t reader;
  napi_threadsafe_function retry;
  int handed;  // reads handed to the reader threads since the loop thread last woke
  // what JS handed over of each sequential reader's chunks ahead (read-windows.c)
  windows_t windows;
  int dirty;  // requests went to JS since it was last told the loop went idle
  killpriv_t killpriv;  // we clear setuid and setgid bits, not the kernel (killpriv.c)
} session_t;

static char mount_error[512];

static void log_func(enum fuse_log_level level, const char *fmt, va_list ap) {
  if (level > FUSE_LOG_ERR) return;
  vsnprintf(mount_error, sizeof mount_error, fmt, ap);
  size_t n = strlen(mount_error);
  while (n > 0 && (mount_error[n - 1] == '\n')) mount_error[--n] = 0;
  fprintf(stderr, "fuse: %s\n", mount_error);
}

// ---- queueing from the loop thread ----

static session_t *S(fuse_req_t req) { return (session_t *)fuse_req_userdata(req); }

static item_t *new_item(int op, fuse_req_t req, uint64_t ino, const char *s1, size_t l1, const char *s2, size_t l2) {
  item_t *it = malloc(sizeof(item_t) + l1 + l2 + 2);
  if (!it) return NULL;
  memset(it, 0, sizeof(item_t));
  it->op = op;
  it->req = req;
  it->ino = ino;
  char *p = it->buf;
  if (s1) { memcpy(p, s1, l1); p[l1] = 0; it->s1 = p; it->l1 = l1; p += l1 + 1; }
  if (s2) { memcpy(p, s2, l2); p[l2] = 0; it->s2 = p; it->l2 = l2; }
  return it;
}

static void push(session_t *s, item_t *it) {
  if (s->tail) s->tail->next = it; else s->head = it;
  s->tail = it;
}

static void queue(fuse_req_t req, item_t *it) {
  if (!it) { fuse_reply_err(req, ENOMEM); return; }
  push(S(req), it);
}

#define Q(op, ino, s1, l1, s2, l2) new_item(op, req, ino, s1, l1, s2, l2)

static void ll_init(void *ud, struct fuse_conn_info *conn) {
  session_t *s = ud;
  unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_READDIRPLUS |
                  FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_ATOMIC_O_TRUNC;
  if (s->writeback) want |= FUSE_CAP_WRITEBACK_CACHE;
  conn->want |= want & conn->capable;
  s->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  if (s->no_opendir) conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
  // Splice would move pages through a pipe: our data is copied to JS anyway.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // libfuse derives max_pages from max_write (1 MiB = 256 pages).
  if (s->max_write) conn->max_write = s->max_write;
  if (s->max_readahead) conn->max_readahead = s->max_readahead;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  // Times are kept in whole milliseconds: the kernel truncates the times it stamps and is
  // given to the same, so what stat shows before a remount is what it shows after.
  conn->time_gran = 1000000;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  queue(req, Q(OP_LOOKUP, parent, name, strlen(name), NULL, 0));
}

// Node ids are computed from (inode, epoch) on the JS side: nothing to count or free.
static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) { fuse_reply_none(req); }

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) { fuse_reply_none(req); }

// The handle does not matter: attributes are the inode's (an unlinked file's come from any
// of its handles).
static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  queue(req, Q(OP_GETATTR, ino, NULL, 0, NULL, 0));
}

static double ms(struct timespec t) { return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6; }

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int valid, struct fuse_file_info *fi) {
  if (valid & FUSE_SET_ATTR_SIZE) windows_drop_ino(&S(req)->windows, ino);
  item_t *it = Q(OP_SETATTR, ino, NULL, 0, NULL, 0);
  if (it) {
    it->n[0] = valid;
    it->n[1] = fi ? (double)fi->fh : -1;
    it->attr[S_MODE] = a->st_mode;
    it->attr[S_UID] = a->st_uid;
    it->attr[S_GID] = a->st_gid;
    it->attr[S_SIZE] = (double)a->st_size;
    it->attr[S_ATIME] = ms(a->st_atim);
    it->attr[S_MTIME] = ms(a->st_mtim);
    it->attr[S_CTIME] = ms(a->st_ctim);
  }
  queue(req, it);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { queue(req, Q(OP_READLINK, ino, NULL, 0, NULL, 0)); }

static void ctx_ids(fuse_req_t req, item_t *it, int at) {
  const struct fuse_ctx *c = fuse_req_ctx(req);
  it->n[at] = c->uid;
  it->n[at + 1] = c->gid;
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  item_t *it = Q(OP_MKNOD, parent, name, strlen(name), NULL, 0);
  if (it) { it->n[0] = mode; it->n[1] = (double)rdev; ctx_ids(req, it, 2); }
  queue(req, it);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  item_t *it = Q(OP_MKDIR, parent, name, strlen(name), NULL, 0);
  if (it) { it->n[0] = mode; ctx_ids(req, it, 2); }
  queue(req, it);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  queue(req, Q(OP_UNLINK, parent, name, strlen(name), NULL, 0));
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  queue(req, Q(OP_RMDIR, parent, name, strlen(name), NULL, 0));
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  item_t *it = Q(OP_SYMLINK, parent, name, strlen(name), link, strlen(link));
  if (it) ctx_ids(req, it, 2);
  queue(req, it);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  item_t *it = Q(OP_RENAME, parent, name, strlen(name), newname, strlen(newname));
  if (it) { it->n[0] = (double)newparent; it->n[1] = flags; }
  queue(req, it);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  item_t *it = Q(OP_LINK, ino, newname, strlen(newname), NULL, 0);
  if (it) it->n[0] = (double)newparent;
  queue(req, it);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) windows_drop_ino(&S(req)->windows, ino);
  item_t *it = Q(OP_OPEN, ino, NULL, 0, NULL, 0);
  if (it) { it->n[0] = fi->flags; it->n[1] = S(req)->killpriv.kill; }
  queue(req, it);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  item_t *it = Q(OP_CREATE, parent, name, strlen(name), NULL, 0);
  if (it) { it->n[0] = mode; it->n[1] = fi->flags; ctx_ids(req, it, 2); }
  queue(req, it);
}

// A read inside the window JS last handed over for its handle goes to the reader threads at
// once; any other goes to JS, which hands over the next window with its answer. It carries
// the node's mark, so that a window JS makes from the tree before a write it has yet to see
// (decoded after this read, in the same batch) is refused.
static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session_t *s = S(req);
  if (s->retry) {
    read_job_t *job = windows_job(&s->windows, req, fi->fh, size, (uint64_t)off);
    if (job) {
      box_reader_submit(&s->reader, job);
      s->handed++;
      return;
    }
  }
  item_t *it = Q(OP_READ, ino, NULL, 0, NULL, 0);
  if (it) {
    it->n[0] = (double)fi->fh; it->n[1] = (double)size; it->n[2] = (double)off;
    it->n[3] = (double)windows_mark(&s->windows, ino);
  }
  queue(req, it);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  windows_drop_ino(&S(req)->windows, ino);
  item_t *it = Q(OP_WRITE, ino, NULL, 0, NULL, 0);
  if (it) {
    // The loop reuses its receive buffer for the next request: copy into the Buffer JS will
    // get, once (requests are read on the JS thread). A Buffer of its own, not an external one,
    // so that replyWrite can give its memory back at once: V8 frees an external buffer only
    // when it collects, and 29 MB of them had piled up at the peak of an untar.
    napi_env env = S(req)->env;
    napi_handle_scope hs;
    napi_value b;
    void *d;
    napi_open_handle_scope(env, &hs);
    if (napi_create_buffer(env, size, &d, &b) == napi_ok && napi_create_reference(env, b, 1, &it->wbuf) == napi_ok) {
      memcpy(d, buf, size);
      it->n[0] = (double)fi->fh;
      it->n[1] = S(req)->killpriv.kill;
      it->n[2] = (double)off;
    } else {
      free(it);
      it = NULL;
    }
    napi_close_handle_scope(env, hs);
  }
  queue(req, it);
}

static void fh_op(fuse_req_t req, int op, fuse_ino_t ino, struct fuse_file_info *fi, double extra) {
  item_t *it = Q(op, ino, NULL, 0, NULL, 0);
  if (it) { it->n[0] = fi ? (double)fi->fh : -1; it->n[1] = extra; }
  queue(req, it);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { fh_op(req, OP_FLUSH, ino, fi, 0); }
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  // JS may give the number to another handle once it has this request.
  windows_drop_fh(&S(req)->windows, fi->fh);
  fh_op(req, OP_RELEASE, ino, fi, fi->flags);
}
static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) { fh_op(req, OP_FSYNC, ino, fi, datasync); }
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) { fh_op(req, OP_FSYNCDIR, ino, fi, datasync); }

// A directory's listing is not tied to an open handle (src/fs/listings.ts), so opening and
// releasing one asks nothing of JS. A kernel that can (5.1 on) is told so once, with ENOSYS,
// and then opens and releases directories without a request: two round trips fewer per
// directory in every `find`, `ls -R` and `git status`. Its listings stay cached as here.
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (S(req)->no_opendir) { fuse_reply_err(req, ENOSYS); return; }
  fi->fh = 0;
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  fuse_reply_open(req, fi);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { fuse_reply_err(req, 0); }

static void dir_read(fuse_req_t req, int op, fuse_ino_t ino, size_t size, off_t off) {
  item_t *it = Q(op, ino, NULL, 0, NULL, 0);
  if (it) { it->n[0] = (double)size; it->n[1] = (double)off; }
  queue(req, it);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { dir_read(req, OP_READDIR, ino, size, off); }
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { dir_read(req, OP_READDIRPLUS, ino, size, off); }

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { queue(req, Q(OP_STATFS, ino, NULL, 0, NULL, 0)); }

// The security.* namespace (file capabilities, SELinux labels) is not kept: a backup folder
// runs no binaries with privileges and has no security module labels. It is refused here,
// without a trip through JS, with EOPNOTSUPP: the kernel asks for security.capability before
// the first write to each file (killpriv.c), and `ls -l` asks for security.selinux on every
// file until a filesystem tells it the namespace is unsupported (then it stops asking).
static int is_security(const char *name) { return strncmp(name, "security.", 9) == 0; }

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  if (is_security(name)) { fuse_reply_err(req, EOPNOTSUPP); return; }
  item_t *it = Q(OP_SETXATTR, ino, name, strlen(name), NULL, 0);
  if (it) {
    it->data = malloc(size ? size : 1);
    if (!it->data) { free(it); it = NULL; }
    else { memcpy(it->data, value, size); it->dlen = size; it->n[0] = flags; }
  }
  queue(req, it);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  if (is_security(name)) { fuse_reply_err(req, EOPNOTSUPP); return; }
  item_t *it = Q(OP_GETXATTR, ino, name, strlen(name), NULL, 0);
  if (it) it->n[0] = (double)size;
  queue(req, it);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  item_t *it = Q(OP_LISTXATTR, ino, NULL, 0, NULL, 0);
  if (it) it->n[0] = (double)size;
  queue(req, it);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  queue(req, Q(OP_REMOVEXATTR, ino, name, strlen(name), NULL, 0));
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  windows_drop_ino(&S(req)->windows, ino);
  item_t *it = Q(OP_FALLOCATE, ino, NULL, 0, NULL, 0);
  if (it) { it->n[0] = (double)fi->fh; it->n[1] = mode; it->n[2] = (double)offset; it->n[3] = (double)length; }
  queue(req, it);
}

static const struct fuse_lowlevel_ops ops = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .create = ll_create,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .readdirplus = ll_readdirplus,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .setxattr = ll_setxattr,
  .getxattr = ll_getxattr,
  .listxattr = ll_listxattr,
  .removexattr = ll_removexattr,
  .fallocate = ll_fallocate,
};

// ---- threads ----

static void *notify_main(void *arg) {
  session_t *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->nlock);
    while (!s->nhead && !s->nstop) pthread_cond_wait(&s->ncond, &s->nlock);
    notice_t *n = s->nhead;
    if (n) { s->nhead = n->next; if (!s->nhead) s->ntail = NULL; }
    int stop = s->nstop && !n;
    pthread_mutex_unlock(&s->nlock);
    if (stop) return NULL;
    if (!s->unmounted) {
      // ENOENT: the kernel had nothing cached; nothing to do.
      if (n->kind == 0) fuse_lowlevel_notify_inval_inode(s->se, n->ino, n->off, n->len);
      else fuse_lowlevel_notify_inval_entry(s->se, n->ino, n->name, n->namelen);
    }
    free(n);
  }
}

// ---- JS side ----

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "native/fuse: " #call " failed"); return NULL; } } while (0)

static napi_value num(napi_env env, double v) { napi_value r; napi_create_double(env, v, &r); return r; }

static napi_value buffer_of(napi_env env, const char *p, size_t n) {
  napi_value r; void *data;
  napi_create_buffer_copy(env, n, p, &data, &r);
  return r;
}

static void call_item(napi_env env, napi_value fn, napi_value recv, item_t *it) {
  napi_value argv[8];
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (int i = 0; i < 8; i++) argv[i] = undef;
  argv[0] = num(env, it->op);
  argv[1] = num(env, (double)(uintptr_t)it->req);
  argv[2] = num(env, (double)it->ino);
  switch (it->op) {
    case OP_LOOKUP: case OP_UNLINK: case OP_RMDIR:
      argv[3] = buffer_of(env, it->s1, it->l1);
      break;
    case OP_MKNOD: case OP_MKDIR: case OP_CREATE:
      argv[3] = buffer_of(env, it->s1, it->l1);
      argv[4] = num(env, it->n[0]); argv[5] = num(env, it->n[1]);
      argv[6] = num(env, it->n[2]); argv[7] = num(env, it->n[3]);
      break;
    case OP_SYMLINK:
      argv[3] = buffer_of(env, it->s1, it->l1);
      argv[4] = buffer_of(env, it->s2, it->l2);
      argv[6] = num(env, it->n[2]); argv[7] = num(env, it->n[3]);
      break;
    case OP_RENAME:
      argv[3] = buffer_of(env, it->s1, it->l1);
      argv[4] = num(env, it->n[0]);
      argv[5] = buffer_of(env, it->s2, it->l2);
      argv[6] = num(env, it->n[1]);
      break;
    case OP_LINK:
      argv[3] = num(env, it->n[0]);
      argv[4] = buffer_of(env, it->s1, it->l1);
      break;
    case OP_SETATTR: {
      napi_value ab, ta; void *d;
      napi_create_arraybuffer(env, sizeof it->attr, &d, &ab);
      memcpy(d, it->attr, sizeof it->attr);
      napi_create_typedarray(env, napi_float64_array, S_LEN, ab, 0, &ta);
      argv[3] = num(env, it->n[0]); argv[4] = num(env, it->n[1]); argv[5] = ta;
      break;
    }
    case OP_WRITE:
      argv[3] = num(env, it->n[0]);
      napi_get_reference_value(env, it->wbuf, &argv[4]);
      napi_delete_reference(env, it->wbuf);
      argv[5] = num(env, it->n[2]);
      argv[6] = num(env, it->n[1]);
      break;
    case OP_SETXATTR: {
      napi_value name, b;
      napi_create_string_utf8(env, it->s1, it->l1, &name);
      b = buffer_of(env, it->data, it->dlen);
      free(it->data);
      it->data = NULL;
      argv[3] = name; argv[4] = b; argv[5] = num(env, it->n[0]);
      break;
    }
    case OP_GETXATTR: case OP_REMOVEXATTR: {
      napi_value name;
      napi_create_string_utf8(env, it->s1, it->l1, &name);
      argv[3] = name; argv[4] = num(env, it->n[0]);
      break;
    }
    default:
      for (int i = 0; i < 4; i++) argv[3 + i] = num(env, it->n[i]);
  }
  napi_value result;
  if (napi_call_function(env, recv, fn, 8, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void call_op(napi_env env, napi_value fn, napi_value recv, int op) {
  napi_value argv[1] = { num(env, op) }, result;
  if (napi_call_function(env, recv, fn, 1, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

// Calls dispatch for every queued request, then with OP_BATCH_END; or, with nothing queued
// and `idle`, only with OP_IDLE. One callback scope: promises resolved by dispatch run their
// continuations when it closes.
static void drain(session_t *s, int idle) {
  napi_env env = s->env;
  item_t *it = s->head;
  s->head = s->tail = NULL;
  // Nothing went to JS since it last heard the loop went idle (reads answered from windows
  // only): there is nothing to commit.
  if (!it && (!idle || !s->dirty)) return;
  s->dirty = !idle;
  napi_handle_scope hs;
  napi_open_handle_scope(env, &hs);
  napi_value recv, fn;
  napi_get_reference_value(env, s->self, &recv);
  napi_get_reference_value(env, s->dispatch, &fn);
  napi_callback_scope cs;
  napi_open_callback_scope(env, recv, s->actx, &cs);
  while (it) {
    item_t *next = it->next;
    napi_handle_scope inner;
    napi_open_handle_scope(env, &inner);
    call_item(env, fn, recv, it);
    napi_close_handle_scope(env, inner);
    free(it->data);
    free(it);
    it = next;
  }
  call_op(env, fn, recv, idle ? OP_IDLE : OP_BATCH_END);
  napi_close_callback_scope(env, cs);
  napi_close_handle_scope(env, hs);
}

static void stop_polling(session_t *s);

/** Requests read per wake-up at most: then timers and sockets get their turn. */
#define BATCH_MAX 256

/** Reads and decodes what waits on the device: how many requests, or -1 once the session ended. */
static int read_requests(session_t *s) {
  int n = 0;
  while (n < BATCH_MAX && !fuse_session_exited(s->se)) {
    int res = fuse_session_receive_buf(s->se, &s->fbuf);
    if (res == -EINTR) continue;
    if (res == -EAGAIN) return n;
    if (res <= 0) return -1;  // the kernel let go of the connection (unmounted) or a read error
    killpriv_peek(&s->killpriv, &s->fbuf);
    fuse_session_process_buf(s->se, &s->fbuf);
    n++;
  }
  return fuse_session_exited(s->se) ? -1 : n;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// After answering, look at the device a little longer before going back to sleep: a caller
// that works one request at a time (tar, cp, git, make) sends its next one within
// microseconds, and catching it awake saves a sleep and a wake-up of this thread, most of
// what a round trip costs. Bounded, so timers and other I/O still get their turn.
#define SPIN_NS 50000u
#define SPIN_MAX_NS 2000000u

static void on_readable(uv_poll_t *h, int status, int events) {
  session_t *s = h->data;
  (void)events;
  s->handed = 0;
  int got = status == 0 ? read_requests(s) : -1;
  drain(s, 0);
  uint64_t start = now_ns(), last = start;
  // A reader whose reads went to the reader threads hears from them, not from this thread: its
  // next request comes after their reply, and looking for it here would only take a CPU from them.
  while (got >= 0 && !s->handed) {
    uint64_t t = now_ns();
    if (t - last > SPIN_NS || t - start > SPIN_MAX_NS) break;
    got = read_requests(s);
    if (got > 0) {
      drain(s, 0);
      last = now_ns();
    }
  }
  // Back to sleep: JS commits what the requests since the last wake-up changed.
  drain(s, 1);
  if (got < 0) stop_polling(s);
}

// A read the reader threads could not answer goes to JS as OP_READ_RETRY(req, 0, fh, size, pos).
static void hand_back(void *ctx, read_job_t *job) {
  session_t *s = ctx;
  if (napi_call_threadsafe_function(s->retry, job, napi_tsfn_nonblocking) != napi_ok) {
    fuse_reply_err(job->req, EIO);
    free(job);
  }
}

static void call_retry(napi_env env, napi_value fn, void *context, void *data) {
  read_job_t *job = data;
  session_t *s = context;
  // A box of it did not open (moved, damaged): the handle's window is not to be trusted.
  if (env) windows_drop_fh(&s->windows, (uint64_t)job->fh);
  if (env && fn) {
    napi_value argv[6], undef, result;
    napi_get_undefined(env, &undef);
    argv[0] = num(env, OP_READ_RETRY);
    argv[1] = num(env, (double)(uintptr_t)job->req);
    argv[2] = num(env, 0);
    argv[3] = num(env, job->fh);
    argv[4] = num(env, job->size);
    argv[5] = num(env, job->pos);
    if (napi_call_function(env, undef, fn, 6, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  free(job);
}

static session_t *get_session(napi_env env, napi_value v) {
  session_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "native/fuse: not a session");
    return NULL;
  }
  return s;
}

static int get_u32(napi_env env, napi_value obj, const char *key, unsigned *out) {
  napi_value v; bool has;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return 0;
  napi_get_named_property(env, obj, key, &v);
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static char *get_string(napi_env env, napi_value v) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char *p = malloc(n + 1);
  napi_get_value_string_utf8(env, v, p, n + 1, &n);
  return p;
}

// mount(mountpoint, options: string ("-o" list), settings {maxWrite, maxReadahead, writeback}, dispatch) -> session
static ssize_t device_read(int fd, void *buf, size_t len, void *ud) { return read(fd, buf, len); }
static ssize_t device_writev(int fd, struct iovec *iov, int count, void *ud) {
  return killpriv_writev(&((session_t *)ud)->killpriv, fd, iov, count);
}
static const struct fuse_custom_io device_io = { .writev = device_writev, .read = device_read };

static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], thisv;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &thisv, NULL));
  if (argc < 4) { napi_throw_type_error(env, NULL, "mount(mountpoint, options, settings, dispatch)"); return NULL; }
  session_t *s = calloc(1, sizeof(session_t));
  s->env = env;
  s->mountpoint = get_string(env, argv[0]);
  char *opts = get_string(env, argv[1]);
  if (!s->mountpoint || !opts) { free(s->mountpoint); free(opts); free(s); napi_throw_type_error(env, NULL, "mountpoint and options must be strings"); return NULL; }
  unsigned wb = 0;
  get_u32(env, argv[2], "maxWrite", &s->max_write);
  get_u32(env, argv[2], "maxReadahead", &s->max_readahead);
  get_u32(env, argv[2], "writeback", &wb);
  s->writeback = wb != 0;
  pthread_mutex_init(&s->nlock, NULL);
  pthread_cond_init(&s->ncond, NULL);

  char *args_v[] = { "safe", "-o", opts, NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  mount_error[0] = 0;
  fuse_set_log_func(log_func);
  s->se = fuse_session_new(&args, &ops, sizeof ops, s);
  free(opts);
  if (!s->se) {
    char msg[700];
    snprintf(msg, sizeof msg, "cannot start a FUSE session: %s", mount_error[0] ? mount_error : "bad options");
    free(s->mountpoint); free(s);
    napi_throw_error(env, "EINVAL", msg);
    return NULL;
  }
  if (fuse_session_mount(s->se, s->mountpoint) != 0) {
    char msg[700];
    snprintf(msg, sizeof msg, "cannot mount %s: %s", s->mountpoint, mount_error[0] ? mount_error : "fuse_session_mount failed");
    fuse_session_destroy(s->se);
    free(s->mountpoint); free(s);
    napi_throw_error(env, "EMOUNT", msg);
    return NULL;
  }
  // Children (git, editors started from the daemon's tools) must not inherit the device:
  // a server that died would then leave their callers hanging instead of seeing ENOTCONN.
  int fd = fuse_session_fd(s->se);
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  // Replies go through killpriv.c, which negotiates FUSE_HANDLE_KILLPRIV_V2. Should libfuse
  // refuse, the kernel keeps clearing the bits itself, as before.
  fuse_session_custom_io(s->se, &device_io, fd);

  napi_value resource_name, ext;
  napi_create_string_utf8(env, "safe:fuse", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &s->actx);
  napi_create_reference(env, argv[3], 1, &s->dispatch);
  napi_create_reference(env, thisv, 1, &s->self);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  s->polling = 1;
  pthread_create(&s->notify_thread, NULL, notify_main, s);
  napi_value retry_name;
  napi_create_string_utf8(env, "safe:fuse-read-retry", NAPI_AUTO_LENGTH, &retry_name);
  if (napi_create_threadsafe_function(env, argv[3], NULL, retry_name, 0, 1, NULL, NULL, s, call_retry, &s->retry) == napi_ok) {
    // Waiting retries must not keep the process alive; the mount does.
    napi_unref_threadsafe_function(env, s->retry);
    if (!box_reader_start(&s->reader, hand_back, s)) {
      napi_release_threadsafe_function(s->retry, napi_tsfn_abort);
      s->retry = NULL;
    }
  }
  napi_create_external(env, s, NULL, NULL, &ext);
  return ext;
}

static void on_poll_closed(uv_handle_t *h) { (void)h; }

static void stop_polling(session_t *s) {
  if (!s->polling) return;
  s->polling = 0;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

// unmount(session): detach the mount (lazily: open files keep working until closed) and stop
// reading requests, so the event loop can exit. Requests still pending get ENOTCONN when the
// device closes with the process.
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  session_t *s = get_session(env, argv[0]);
  if (!s || s->unmounted) return NULL;
  // Reads queued to the reader threads are answered while the device is still open.
  if (s->retry) {
    box_reader_stop(&s->reader);
    napi_release_threadsafe_function(s->retry, napi_tsfn_abort);
    s->retry = NULL;
  }
  windows_clear(&s->windows);
  s->unmounted = 1;
  fuse_session_exit(s->se);
  fuse_session_unmount(s->se);
  pthread_mutex_lock(&s->nlock);
  s->nstop = 1;
  pthread_cond_signal(&s->ncond);
  pthread_mutex_unlock(&s->nlock);
  pthread_join(s->notify_thread, NULL);
  stop_polling(s);
  return NULL;
}

static fuse_req_t req_of(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return (fuse_req_t)(uintptr_t)d;
}

static double dbl(napi_env env, napi_value v) { double d = 0; napi_get_value_double(env, v, &d); return d; }

static struct timespec ts_of(double msv) {
  struct timespec t;
  double sec = msv / 1000.0;
  t.tv_sec = (time_t)(sec < 0 ? sec - 1 : sec);
  if (sec < 0 && (double)(t.tv_sec + 1) <= sec) t.tv_sec += 1;
  double rem = msv - (double)t.tv_sec * 1000.0;
  long ns = (long)(rem * 1e6);
  if (ns >= 1000000000L) { ns -= 1000000000L; t.tv_sec += 1; }
  if (ns < 0) ns = 0;
  t.tv_nsec = ns;
  return t;
}

static void fill_stat(const double *a, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)a[A_INO];
  st->st_mode = (mode_t)a[A_MODE];
  st->st_nlink = (nlink_t)a[A_NLINK];
  st->st_uid = (uid_t)a[A_UID];
  st->st_gid = (gid_t)a[A_GID];
  st->st_rdev = (dev_t)a[A_RDEV];
  st->st_size = (off_t)a[A_SIZE];
  st->st_blocks = (blkcnt_t)a[A_BLOCKS];
  st->st_blksize = 4096;
  st->st_atim = ts_of(a[A_ATIME]);
  st->st_mtim = ts_of(a[A_MTIME]);
  st->st_ctim = ts_of(a[A_CTIME]);
}

static const double *attrs_of(napi_env env, napi_value v, size_t *count) {
  napi_typedarray_type type; size_t len; void *data; napi_value ab; size_t off;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != napi_float64_array) return NULL;
  if (count) *count = len;
  return data;
}

#define ARGS(n) size_t argc = n; napi_value argv[n]; if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) { napi_throw_type_error(env, NULL, "native/fuse: missing arguments"); return NULL; }

static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  ARGS(2);
  fuse_reply_err(req_of(env, argv[0]), (int)dbl(env, argv[1]));
  return NULL;
}

static void entry_of(napi_env env, napi_value *argv, struct fuse_entry_param *e, int *ok) {
  size_t n;
  const double *a = attrs_of(env, argv[1], &n);
  memset(e, 0, sizeof *e);
  if (!a || n < A_LEN) { *ok = 0; return; }
  *ok = 1;
  e->ino = (fuse_ino_t)a[A_INO];
  e->generation = 1;
  if (e->ino) fill_stat(a, &e->attr);
  e->entry_timeout = dbl(env, argv[2]);
  e->attr_timeout = dbl(env, argv[3]);
}

// replyEntry(req, attr, entryTimeout, attrTimeout); attr[A_INO] = 0 caches a negative entry.
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  ARGS(4);
  struct fuse_entry_param e; int ok;
  entry_of(env, argv, &e, &ok);
  if (!ok) { napi_throw_type_error(env, NULL, "attr must be a Float64Array"); return NULL; }
  fuse_reply_entry(req_of(env, argv[0]), &e);
  return NULL;
}

static void file_info(napi_env env, napi_value fhv, napi_value flagsv, struct fuse_file_info *fi) {
  memset(fi, 0, sizeof *fi);
  fi->fh = (uint64_t)dbl(env, fhv);
  unsigned flags = (unsigned)dbl(env, flagsv);
  fi->direct_io = (flags & 1) != 0;
  fi->keep_cache = (flags & 2) != 0;
}

// replyCreate(req, attr, entryTimeout, attrTimeout, fh, openFlags)
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  ARGS(6);
  struct fuse_entry_param e; int ok;
  entry_of(env, argv, &e, &ok);
  if (!ok) { napi_throw_type_error(env, NULL, "attr must be a Float64Array"); return NULL; }
  struct fuse_file_info fi;
  file_info(env, argv[4], argv[5], &fi);
  fuse_reply_create(req_of(env, argv[0]), &e, &fi);
  return NULL;
}

// replyAttr(req, attr, attrTimeout)
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  ARGS(3);
  size_t n;
  const double *a = attrs_of(env, argv[1], &n);
  if (!a || n < A_LEN) { napi_throw_type_error(env, NULL, "attr must be a Float64Array"); return NULL; }
  struct stat st;
  fill_stat(a, &st);
  fuse_reply_attr(req_of(env, argv[0]), &st, dbl(env, argv[2]));
  return NULL;
}

// replyOpen(req, fh, openFlags)
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  ARGS(3);
  struct fuse_file_info fi;
  file_info(env, argv[1], argv[2], &fi);
  fuse_reply_open(req_of(env, argv[0]), &fi);
  return NULL;
}

// (req, count, data): the write is done with its data, which goes back now (see ll_write).
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  ARGS(3);
  fuse_reply_write(req_of(env, argv[0]), (size_t)dbl(env, argv[1]));
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[2], NULL, NULL, NULL, &ab, NULL) == napi_ok) napi_detach_arraybuffer(env, ab);
  return NULL;
}

static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  ARGS(2);
  fuse_reply_xattr(req_of(env, argv[0]), (size_t)dbl(env, argv[1]));
  return NULL;
}

static napi_value js_reply_none(napi_env env, napi_callback_info info) {
  ARGS(1);
  fuse_reply_none(req_of(env, argv[0]));
  return NULL;
}

// replyBuf(req, buffer, length)
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  ARGS(3);
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) { napi_throw_type_error(env, NULL, "not a buffer"); return NULL; }
  size_t n = (size_t)dbl(env, argv[2]);
  if (n > len) n = len;
  fuse_reply_buf(req_of(env, argv[0]), data, n);
  return NULL;
}

// A Buffer's bytes as a C string (malloc'd), or NULL with a TypeError thrown.
static char *cstring_of(napi_env env, napi_value v) {
  void *data; size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) { napi_throw_type_error(env, NULL, "expected a Buffer"); return NULL; }
  char *z = malloc(len + 1);
  memcpy(z, data, len);
  z[len] = 0;
  return z;
}

// replyReadlink(req, targetBuffer)
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  ARGS(2);
  char *z = cstring_of(env, argv[1]);
  if (!z) return NULL;
  fuse_reply_readlink(req_of(env, argv[0]), z);
  free(z);
  return NULL;
}

// replyStatfs(req, Float64Array [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax])
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  ARGS(2);
  size_t n;
  const double *a = attrs_of(env, argv[1], &n);
  if (!a || n < 9) { napi_throw_type_error(env, NULL, "statfs must be a Float64Array(9)"); return NULL; }
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = (unsigned long)a[0]; st.f_frsize = (unsigned long)a[1];
  st.f_blocks = (fsblkcnt_t)a[2]; st.f_bfree = (fsblkcnt_t)a[3]; st.f_bavail = (fsblkcnt_t)a[4];
  st.f_files = (fsfilcnt_t)a[5]; st.f_ffree = (fsfilcnt_t)a[6]; st.f_favail = (fsfilcnt_t)a[7];
  st.f_namemax = (unsigned long)a[8];
  fuse_reply_statfs(req_of(env, argv[0]), &st);
  return NULL;
}

// replyDir(req, size, plus, names: Buffer[], attrs: Float64Array(n * A_LEN), start, entryTimeout, attrTimeout, base)
// Entries are added from index `start` while they fit; entry i gets the offset base + i + 1
// (where the next read goes on). Returns how many were sent.
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  ARGS(9);
  fuse_req_t req = req_of(env, argv[0]);
  size_t size = (size_t)dbl(env, argv[1]);
  bool plus = false;
  napi_get_value_bool(env, argv[2], &plus);
  uint32_t count = 0;
  napi_get_array_length(env, argv[3], &count);
  size_t alen = 0;
  const double *a = attrs_of(env, argv[4], &alen);
  if (!a || alen < (size_t)count * A_LEN) { napi_throw_type_error(env, NULL, "attrs too short"); return NULL; }
  uint32_t start = (uint32_t)dbl(env, argv[5]);
  double et = dbl(env, argv[6]), at = dbl(env, argv[7]);
  off_t base = (off_t)dbl(env, argv[8]);
  char *buf = malloc(size ? size : 1);
  size_t used = 0;
  uint32_t i;
  char name[256 + 1];
  for (i = start; i < count; i++) {
    napi_value nv;
    napi_get_element(env, argv[3], i, &nv);
    void *nd; size_t nl;
    if (napi_get_buffer_info(env, nv, &nd, &nl) != napi_ok || nl > 255) break;
    memcpy(name, nd, nl);
    name[nl] = 0;
    const double *ea = a + (size_t)i * A_LEN;
    size_t need;
    off_t next = base + (off_t)i + 1;
    if (plus) {
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      e.ino = (fuse_ino_t)ea[A_INO];
      e.generation = 1;
      fill_stat(ea, &e.attr);
      // "." and "..": no lookup is counted for them, so no attributes either.
      int dots = (nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.');
      if (dots) { e.ino = 0; e.attr.st_ino = (ino_t)ea[A_INO]; }
      e.entry_timeout = et;
      e.attr_timeout = at;
      need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
    } else {
      struct stat st;
      fill_stat(ea, &st);
      need = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return num(env, i - start);
}

// invalInode(session, ino, off, len) / invalEntry(session, parent, nameBuffer): queued to the notify thread.
static void push_notice(session_t *s, notice_t *n) {
  pthread_mutex_lock(&s->nlock);
  if (s->ntail) s->ntail->next = n; else s->nhead = n;
  s->ntail = n;
  pthread_cond_signal(&s->ncond);
  pthread_mutex_unlock(&s->nlock);
}

static napi_value js_inval_inode(napi_env env, napi_callback_info info) {
  ARGS(4);
  session_t *s = get_session(env, argv[0]);
  if (!s || s->unmounted) return NULL;
  notice_t *n = calloc(1, sizeof(notice_t));
  n->kind = 0;
  n->ino = (uint64_t)dbl(env, argv[1]);
  n->off = (int64_t)dbl(env, argv[2]);
  n->len = (int64_t)dbl(env, argv[3]);
  push_notice(s, n);
  return NULL;
}

static napi_value js_inval_entry(napi_env env, napi_callback_info info) {
  ARGS(3);
  session_t *s = get_session(env, argv[0]);
  if (!s || s->unmounted) return NULL;
  void *nd; size_t nl;
  if (napi_get_buffer_info(env, argv[2], &nd, &nl) != napi_ok) { napi_throw_type_error(env, NULL, "name must be a Buffer"); return NULL; }
  notice_t *n = calloc(1, sizeof(notice_t) + nl + 1);
  n->kind = 1;
  n->ino = (uint64_t)dbl(env, argv[1]);
  memcpy(n->name, nd, nl);
  n->namelen = nl;
  push_notice(s, n);
  return NULL;
}

// mknod(pathBuffer, mode, rdev): Node has no mknod(2), and a restore must recreate fifos,
// sockets and device nodes under names that need not be UTF-8. Throws with the errno's code.
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  ARGS(3);
  char *path = cstring_of(env, argv[0]);
  if (!path) return NULL;
  int rc = mknod(path, (mode_t)dbl(env, argv[1]), (dev_t)dbl(env, argv[2]));
  int err = errno;
  free(path);
  if (rc != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "mknod: %s", strerror(err));
    napi_value code, m, e;
    napi_create_string_utf8(env, strerrorname_np(err) ? strerrorname_np(err) : "EIO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_error(env, code, m, &e);
    napi_set_named_property(env, e, "code", code);
    napi_throw(env, e);
  }
  return NULL;
}

// replyBoxes(session, req, ino, fh, size, pos, window: Buffer, count, eof, mark): the read is
// answered by a reader thread from the window of `count` chunks JS hands over for the handle
// (layout in src/fs/read-windows.ts), which answers the handle's next reads too while they fall
// inside it (read-windows.c). `mark` came with the read (ll_read). The descriptors are dup'd
// here, so the caller may close its own once this returns. Returns false, with nothing sent,
// when the read must take the JS path.
static napi_value js_reply_boxes(napi_env env, napi_callback_info info) {
  ARGS(10);
  napi_value no;
  napi_get_boolean(env, false, &no);
  session_t *s = get_session(env, argv[0]);
  if (!s || s->unmounted || !s->retry) return no;
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[6], &data, &len) != napi_ok) { napi_throw_type_error(env, NULL, "window must be a Buffer"); return NULL; }
  uint32_t count = (uint32_t)dbl(env, argv[7]);
  if ((size_t)count * WINDOW_WIRE > len || count == 0) { napi_throw_range_error(env, NULL, "window: count out of range"); return NULL; }
  uint64_t fh = (uint64_t)dbl(env, argv[3]);
  if (!windows_put(&s->windows, fh, (uint64_t)dbl(env, argv[2]), (uint64_t)dbl(env, argv[9]), (uint64_t)dbl(env, argv[8]), data, count)) return no;
  read_job_t *job = windows_job(&s->windows, req_of(env, argv[1]), fh, (size_t)dbl(env, argv[4]), (uint64_t)dbl(env, argv[5]));
  if (!job) return no;
  box_reader_submit(&s->reader, job);
  s->handed++;
  napi_value yes;
  napi_get_boolean(env, true, &yes);
  return yes;
}

// The kernel's own clock for inode times (CLOCK_REALTIME_COARSE, read by current_time()), in
// whole milliseconds (the mount's time_gran): src/fs/clock.ts says why.
static napi_value js_coarse_now_ms(napi_env env, napi_callback_info info) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME_COARSE, &t);
  napi_value v;
  napi_create_double(env, (double)t.tv_sec * 1000.0 + (double)(t.tv_nsec / 1000000), &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL },
    { "replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL },
    { "replyNone", NULL, js_reply_none, NULL, NULL, NULL, napi_default, NULL },
    { "replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL },
    { "replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL },
    { "replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL },
    { "replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL },
    { "replyXattr", NULL, js_reply_xattr, NULL, NULL, NULL, napi_default, NULL },
    { "replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL },
    { "replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL },
    { "replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL },
    { "replyDir", NULL, js_reply_dir, NULL, NULL, NULL, napi_default, NULL },
    { "invalInode", NULL, js_inval_inode, NULL, NULL, NULL, napi_default, NULL },
    { "invalEntry", NULL, js_inval_entry, NULL, NULL, NULL, napi_default, NULL },
    { "mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL },
    { "coarseNowMs", NULL, js_coarse_now_ms, NULL, NULL, NULL, napi_default, NULL },
    { "replyBoxes", NULL, js_reply_boxes, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
