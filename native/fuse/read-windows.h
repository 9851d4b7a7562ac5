// The boxes ahead of each sequential reader, as JS last handed them over (read-windows.c).
#ifndef SAFE_READ_WINDOWS_H
#define SAFE_READ_WINDOWS_H
#include "box-reader.h"

/** File handles followed at once; more, and the least recently read loses its window. */
#define WINDOWS 64
/** Slots of the table of when each node's windows were last dropped (nodes share slots). */
#define DROP_SLOTS 256

/** Bytes per chunk as JS hands them over: i32 fd, u32 box len, f64 pack off, f64 file off, u32 raw, u32 0, handle[32]. */
#define WINDOW_WIRE 64

/** One chunk of a window: where its box lies and which bytes of the file it holds. */
typedef struct {
  int fd;            // the pack, a descriptor of the window's own (dup'd)
  uint32_t len;      // box bytes
  uint64_t off;      // the box's offset in its pack
  uint64_t at;       // the chunk's offset in the file
  uint32_t raw;      // plaintext bytes of the chunk
  unsigned char handle[32];
} wbox_t;

typedef struct {
  uint64_t fh, ino;  // the handle reading and the node it reads (writes to it drop the window)
  uint64_t used;     // when it last answered a read, for the choice of which to drop
  uint64_t eof;      // the file's size when JS handed the window over
  uint32_t count;    // 0: the slot is free
  wbox_t *boxes;     // contiguous chunks in file order
} window_t;

typedef struct {
  window_t slot[WINDOWS];
  uint64_t tick;
  /** When a node's content last changed (its windows dropped), by ino modulo DROP_SLOTS. */
  uint64_t dropped[DROP_SLOTS];
} windows_t;

/**
 * A mark of the node's content as it is now, taken as a request is decoded: windows_put
 * refuses a window made for that request if the content changed since.
 */
uint64_t windows_mark(const windows_t *ws, uint64_t ino);
/**
 * Keeps the window JS handed over for `fh` (`count` chunks in the WINDOW_WIRE layout of
 * src/fs/read-windows.ts), replacing the handle's last one. 0 if it could not be kept, or if
 * node `ino`'s windows were dropped after `mark` was taken: JS made it from what the tree held
 * before a write (or truncation, or open for writing) that was decoded meanwhile.
 */
int windows_put(windows_t *ws, uint64_t fh, uint64_t ino, uint64_t mark, uint64_t eof, const unsigned char *wire, uint32_t count);
/** The job answering [pos, pos + size) of `fh` from its window, or NULL when the window does not hold all of it. */
read_job_t *windows_job(windows_t *ws, fuse_req_t req, uint64_t fh, size_t size, uint64_t pos);
void windows_drop_fh(windows_t *ws, uint64_t fh);
/** The node's content changes (a write, a truncation, an open for writing): its windows go. */
void windows_drop_ino(windows_t *ws, uint64_t ino);
void windows_clear(windows_t *ws);

#endif
