// FUSE_HANDLE_KILLPRIV_V2: the daemon clears setuid and setgid bits itself, so the kernel
// stops asking for security.capability before every write(2): the superblock gets SB_NOSEC,
// and each inode S_NOSEC after its first check. Without it each write call of a caller cost
// a GETXATTR round trip, whatever the writeback cache held.
//
// libfuse 3.14 neither offers the flag in its INIT reply nor passes on the write and open
// flags that come with it, so both are handled here: the reply goes out through the session's
// custom I/O, which adds the flag; requests are looked at before libfuse decodes them.
// FATTR_KILL_SUIDGID (truncate, chown) reaches the setattr callback as FUSE_SET_ATTR_KILL_SUID,
// which has the same bit.
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include "killpriv.h"
#include <linux/fuse.h>
#include <sys/uio.h>

void killpriv_peek(killpriv_t *k, const struct fuse_buf *buf) {
  k->kill = 0;
  if ((buf->flags & FUSE_BUF_IS_FD) || buf->size < sizeof(struct fuse_in_header)) return;
  const struct fuse_in_header *h = buf->mem;
  const void *arg = h + 1;
  size_t room = buf->size - sizeof *h;
  switch (h->opcode) {
    case FUSE_INIT:
      if (room >= 8 && (((const struct fuse_init_in *)arg)->flags & FUSE_HANDLE_KILLPRIV_V2))
        __atomic_store_n(&k->init_unique, h->unique, __ATOMIC_RELEASE);
      break;
    case FUSE_WRITE:
      if (room >= sizeof(struct fuse_write_in))
        k->kill = (((const struct fuse_write_in *)arg)->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
      break;
    case FUSE_OPEN:
      if (room >= sizeof(struct fuse_open_in))
        k->kill = (((const struct fuse_open_in *)arg)->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      break;
  }
}

ssize_t killpriv_writev(killpriv_t *k, int fd, struct iovec *iov, int count) {
  uint64_t init = __atomic_load_n(&k->init_unique, __ATOMIC_ACQUIRE);
  if (init && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) && iov[1].iov_len >= 16) {
    const struct fuse_out_header *out = iov[0].iov_base;
    if (out->unique == init) {
      if (out->error == 0) ((struct fuse_init_out *)iov[1].iov_base)->flags |= FUSE_HANDLE_KILLPRIV_V2;
      __atomic_store_n(&k->init_unique, 0, __ATOMIC_RELEASE);
    }
  }
  return writev(fd, iov, count);
}
