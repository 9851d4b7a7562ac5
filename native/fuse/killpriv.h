// Who clears setuid and setgid bits on a write, a truncation and a chown: the kernel, or us
// (FUSE_HANDLE_KILLPRIV_V2; killpriv.c).
#ifndef SAFE_KILLPRIV_H
#define SAFE_KILLPRIV_H
#include <fuse_lowlevel.h>
#include <stdint.h>

typedef struct {
  uint64_t init_unique;  // the INIT request whose reply takes the flag; 0 once sent
  int kill;              // the request being decoded asks for the bits to go
} killpriv_t;

/** Looks at a request before libfuse decodes it: INIT's offer, WRITE's and OPEN's kill flags. */
void killpriv_peek(killpriv_t *k, const struct fuse_buf *buf);
/** Sends a reply; INIT's reply takes FUSE_HANDLE_KILLPRIV_V2 when the kernel offered it. */
ssize_t killpriv_writev(killpriv_t *k, int fd, struct iovec *iov, int count);

#endif
