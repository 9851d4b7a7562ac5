// An SQLite VFS shim that writes a transaction's WAL frames with one system call.
//
// SQLite writes each WAL frame as two calls, its 24-byte header and then its page, so a commit
// of seven pages (a file created in the folder) costs fourteen pwrite(2)s, and an ingest
// worker's commit of a thousand random index pages two thousand. On this machine a system call
// costs more than the copy it makes. The shim sits between SQLite3 Multiple Ciphers (which
// encrypts the pages above it) and the "unix" VFS. It gathers the frames a connection appends
// to a WAL file and hands them down as one when a commit's last frame is complete, before SQLite
// publishes the commit in the WAL index: no other connection can look for a frame before it is
// in the file, and a crash before that loses a transaction that was never committed. What
// SQLite writes again below the end (a frame of the same transaction, the checksums of its
// headers) goes down at once. Anything else done with the WAL file (a read, its size, a sync, a
// truncation) first writes out what is gathered, so the file is always as SQLite left it when
// it looks.
//
// Loaded as an SQLite extension (index-db.ts; SQLite names the entry point after the addon's
// file): it makes "multipleciphers-walbatch" the default VFS of the connections opened after.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

// The unix VFS writes at most 128 KiB - 1 bytes a call (it masks the length with 0x1ffff).
#define GATHER_MAX (120 * 1024)
#define WAL_FRAME_HEADER 24

typedef struct {
  sqlite3_file base;
  sqlite3_file *real;
  /* WAL files only: the bytes gathered, from file offset `start`. */
  unsigned char *buf;
  int len;
  sqlite3_int64 start;
  /* The last header gathered was a commit frame's: its page ends the commit. */
  int commitPending;
  /* Where the frames this connection appended to the log's current generation end, and that
   * generation's salts (each frame header carries them; a restarted log has new ones). */
  sqlite3_int64 end;
  unsigned char salts[8];
} BatchFile;

static sqlite3_vfs *realVfs;

static int writeOut(BatchFile *f) {
  if (f->len == 0) return SQLITE_OK;
  int n = f->len;
  f->len = 0;
  return f->real->pMethods->xWrite(f->real, f->buf, n, f->start);
}

static int bClose(sqlite3_file *p) {
  BatchFile *f = (BatchFile *)p;
  int rc = writeOut(f);
  int rc2 = f->real->pMethods->xClose(f->real);
  free(f->buf);
  f->buf = NULL;
  return rc != SQLITE_OK ? rc : rc2;
}

static int bRead(sqlite3_file *p, void *z, int n, sqlite3_int64 off) {
  BatchFile *f = (BatchFile *)p;
  int rc = writeOut(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, z, n, off);
}

static int bWrite(sqlite3_file *p, const void *z, int n, sqlite3_int64 off) {
  BatchFile *f = (BatchFile *)p;
  if (!f->buf) return f->real->pMethods->xWrite(f->real, z, n, off);
  const unsigned char *h = z;
  static const unsigned char none[8];
  if (off == 0) {
    f->end = 0;  // the log's own header: this connection starts it again
  } else if (n == WAL_FRAME_HEADER && memcmp(h + 8, none, 8) != 0 && memcmp(h + 8, f->salts, 8) != 0) {
    // Another connection started it again. (A frame written while checksums are to be
    // rewritten has no salts yet: zeros, set with its checksums later.)
    f->end = 0;
    memcpy(f->salts, h + 8, 8);
  }
  // Below the end: SQLite rewriting a frame of this transaction in place, or the checksums of
  // its headers once the commit frame is written. Those go straight to the file: a rewritten
  // commit header has no page after it to send it on its way.
  if (off < f->end) {
    int rc = writeOut(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, z, n, off);
  }
  f->end = off + n;
  if (f->len > 0 && (off != f->start + f->len || f->len + n > GATHER_MAX)) {
    int rc = writeOut(f);
    if (rc != SQLITE_OK) return rc;
  }
  if (n > GATHER_MAX) return f->real->pMethods->xWrite(f->real, z, n, off);
  if (f->len == 0) f->start = off;
  memcpy(f->buf + f->len, z, (size_t)n);
  f->len += n;
  if (n == WAL_FRAME_HEADER) {
    // Bytes 4-7 of a frame header: the database's size in pages after a commit, else zero.
    f->commitPending = (h[4] | h[5] | h[6] | h[7]) != 0;
    return SQLITE_OK;
  }
  if (f->commitPending) {
    f->commitPending = 0;
    return writeOut(f);
  }
  return SQLITE_OK;
}

static int bTruncate(sqlite3_file *p, sqlite3_int64 size) {
  BatchFile *f = (BatchFile *)p;
  int rc = writeOut(f);
  if (f->end > size) f->end = size;
  return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int bSync(sqlite3_file *p, int flags) {
  BatchFile *f = (BatchFile *)p;
  int rc = writeOut(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int bFileSize(sqlite3_file *p, sqlite3_int64 *size) {
  BatchFile *f = (BatchFile *)p;
  int rc = writeOut(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

#define REAL(p) (((BatchFile *)(p))->real)
static int bLock(sqlite3_file *p, int l) { return REAL(p)->pMethods->xLock(REAL(p), l); }
static int bUnlock(sqlite3_file *p, int l) { return REAL(p)->pMethods->xUnlock(REAL(p), l); }
static int bCheckReservedLock(sqlite3_file *p, int *out) { return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out); }
static int bFileControl(sqlite3_file *p, int op, void *arg) { return REAL(p)->pMethods->xFileControl(REAL(p), op, arg); }
static int bSectorSize(sqlite3_file *p) { return REAL(p)->pMethods->xSectorSize(REAL(p)); }
static int bDeviceCharacteristics(sqlite3_file *p) { return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p)); }
static int bShmMap(sqlite3_file *p, int i, int sz, int extend, void volatile **pp) { return REAL(p)->pMethods->xShmMap(REAL(p), i, sz, extend, pp); }
static int bShmLock(sqlite3_file *p, int off, int n, int flags) { return REAL(p)->pMethods->xShmLock(REAL(p), off, n, flags); }
static void bShmBarrier(sqlite3_file *p) { REAL(p)->pMethods->xShmBarrier(REAL(p)); }
static int bShmUnmap(sqlite3_file *p, int del) { return REAL(p)->pMethods->xShmUnmap(REAL(p), del); }
static int bFetch(sqlite3_file *p, sqlite3_int64 off, int n, void **pp) { return REAL(p)->pMethods->xFetch(REAL(p), off, n, pp); }
static int bUnfetch(sqlite3_file *p, sqlite3_int64 off, void *pg) { return REAL(p)->pMethods->xUnfetch(REAL(p), off, pg); }

static const sqlite3_io_methods batchMethods = {
  3, bClose, bRead, bWrite, bTruncate, bSync, bFileSize, bLock, bUnlock, bCheckReservedLock,
  bFileControl, bSectorSize, bDeviceCharacteristics, bShmMap, bShmLock, bShmBarrier, bShmUnmap,
  bFetch, bUnfetch,
};

static int vOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *outFlags) {
  (void)vfs;
  BatchFile *f = (BatchFile *)p;
  memset(f, 0, sizeof(*f));
  f->real = (sqlite3_file *)&f[1];
  int rc = realVfs->xOpen(realVfs, name, f->real, flags, outFlags);
  if (rc != SQLITE_OK || !f->real->pMethods) {
    p->pMethods = NULL;
    return rc;
  }
  // The real file's methods must be those the shim passes on to (version 3: WAL and mmap).
  if (f->real->pMethods->iVersion < 3) {
    f->real->pMethods->xClose(f->real);
    p->pMethods = NULL;
    return SQLITE_CANTOPEN;
  }
  if (flags & SQLITE_OPEN_WAL) {
    f->buf = malloc(GATHER_MAX);
    if (!f->buf) {
      f->real->pMethods->xClose(f->real);
      p->pMethods = NULL;
      return SQLITE_NOMEM;
    }
  }
  p->pMethods = &batchMethods;
  return SQLITE_OK;
}

static int vDelete(sqlite3_vfs *v, const char *z, int sync) { (void)v; return realVfs->xDelete(realVfs, z, sync); }
static int vAccess(sqlite3_vfs *v, const char *z, int flags, int *out) { (void)v; return realVfs->xAccess(realVfs, z, flags, out); }
static int vFullPathname(sqlite3_vfs *v, const char *z, int n, char *out) { (void)v; return realVfs->xFullPathname(realVfs, z, n, out); }
static void *vDlOpen(sqlite3_vfs *v, const char *z) { (void)v; return realVfs->xDlOpen(realVfs, z); }
static void vDlError(sqlite3_vfs *v, int n, char *out) { (void)v; realVfs->xDlError(realVfs, n, out); }
static void (*vDlSym(sqlite3_vfs *v, void *h, const char *z))(void) { (void)v; return realVfs->xDlSym(realVfs, h, z); }
static void vDlClose(sqlite3_vfs *v, void *h) { (void)v; realVfs->xDlClose(realVfs, h); }
static int vRandomness(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xRandomness(realVfs, n, out); }
static int vSleep(sqlite3_vfs *v, int us) { (void)v; return realVfs->xSleep(realVfs, us); }
static int vCurrentTime(sqlite3_vfs *v, double *out) { (void)v; return realVfs->xCurrentTime(realVfs, out); }
static int vGetLastError(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xGetLastError(realVfs, n, out); }
static int vCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return realVfs->xCurrentTimeInt64(realVfs, out); }
static int vSetSystemCall(sqlite3_vfs *v, const char *z, sqlite3_syscall_ptr f) { (void)v; return realVfs->xSetSystemCall(realVfs, z, f); }
static sqlite3_syscall_ptr vGetSystemCall(sqlite3_vfs *v, const char *z) { (void)v; return realVfs->xGetSystemCall(realVfs, z); }
static const char *vNextSystemCall(sqlite3_vfs *v, const char *z) { (void)v; return realVfs->xNextSystemCall(realVfs, z); }

static sqlite3_vfs batchVfs = {
  3, 0, 0, 0, "walbatch", 0, vOpen, vDelete, vAccess, vFullPathname, vDlOpen, vDlError, vDlSym,
  vDlClose, vRandomness, vSleep, vCurrentTime, vGetLastError, vCurrentTimeInt64, vSetSystemCall,
  vGetSystemCall, vNextSystemCall,
};

static pthread_mutex_t registering = PTHREAD_MUTEX_INITIALIZER;

static int registerVfs(char **err) {
  if (!sqlite3_vfs_find("walbatch")) {
    realVfs = sqlite3_vfs_find("unix");
    if (!realVfs || realVfs->iVersion < 3) {
      *err = sqlite3_mprintf("wal-batch: no \"unix\" VFS of version 3 to sit on");
      return SQLITE_ERROR;
    }
    batchVfs.szOsFile = (int)sizeof(BatchFile) + realVfs->szOsFile;
    batchVfs.mxPathname = realVfs->mxPathname;
    int rc = sqlite3_vfs_register(&batchVfs, 0);
    if (rc != SQLITE_OK) return rc;
  }
  // Multiple Ciphers puts its encrypting layer over a VFS named after its prefix the first
  // time a connection asks for it.
  const char *mc = "multipleciphers-walbatch";
  if (!sqlite3_vfs_find(mc)) {
    sqlite3 *probe = NULL;
    int rc = sqlite3_open_v2(":memory:", &probe, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, mc);
    sqlite3_close(probe);
    if (rc != SQLITE_OK) return rc;
  }
  sqlite3_vfs *top = sqlite3_vfs_find(mc);
  if (!top) {
    *err = sqlite3_mprintf("wal-batch: SQLite3 Multiple Ciphers made no %s VFS", mc);
    return SQLITE_ERROR;
  }
  return sqlite3_vfs_find(NULL) == top ? SQLITE_OK : sqlite3_vfs_register(top, 1);
}

__attribute__((visibility("default"))) int sqlite3_safenative_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  (void)db;
  SQLITE_EXTENSION_INIT2(api);
  pthread_mutex_lock(&registering);
  int rc = registerVfs(err);
  pthread_mutex_unlock(&registering);
  return rc != SQLITE_OK ? rc : SQLITE_OK_LOAD_PERMANENTLY;
}
