// Reads answered without a trip through JS. A sequential reader's reads come 128 KiB at a
// time (the mount's read-ahead), and finding their boxes in JS (the tree's chunk list, the
// store's index, the pack descriptors) took more of the JS thread than the reader threads
// took to open them. So when JS answers a read it hands over the chunks of the MiB or two
// ahead of it with their places, and the reads that fall inside go from the loop thread
// straight to the reader threads.
//
// A window describes the content the handle saw when JS made it. Every change to a live
// file's content reaches the daemon as a request (write, truncating setattr, fallocate, an
// open for writing), and each drops the node's windows as it is decoded, before anything
// after it is read; snapshot nodes never change. JS answers a batch of requests after all of
// them were decoded, so a window it makes for a read may predate a change decoded after that
// read: each read carries the node's mark as it was decoded, and a window made for a read
// whose node changed since is refused. A box moved by compaction is still read
// through the window's own descriptor of its old pack; one that fails its tag goes back to
// JS, which drops the window.
#define _GNU_SOURCE
#include "read-windows.h"
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_window(window_t *w) {
  for (uint32_t i = 0; i < w->count; i++)
    if (i == 0 || w->boxes[i].fd != w->boxes[i - 1].fd) close(w->boxes[i].fd);
  free(w->boxes);
  memset(w, 0, sizeof *w);
}

static window_t *find(windows_t *ws, uint64_t fh) {
  for (int i = 0; i < WINDOWS; i++)
    if (ws->slot[i].count && ws->slot[i].fh == fh) return &ws->slot[i];
  return NULL;
}

uint64_t windows_mark(const windows_t *ws, uint64_t ino) { return ws->dropped[ino % DROP_SLOTS]; }

int windows_put(windows_t *ws, uint64_t fh, uint64_t ino, uint64_t mark, uint64_t eof, const unsigned char *wire, uint32_t count) {
  if (windows_mark(ws, ino) != mark) return 0;
  window_t *w = find(ws, fh);
  if (!w) {
    w = &ws->slot[0];
    for (int i = 0; i < WINDOWS && w->count; i++)
      if (!ws->slot[i].count || ws->slot[i].used < w->used) w = &ws->slot[i];
  }
  if (w->count) free_window(w);
  if (count == 0) return 0;
  wbox_t *boxes = malloc((size_t)count * sizeof(wbox_t));
  if (!boxes) return 0;
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *p = wire + (size_t)i * WINDOW_WIRE;
    wbox_t *b = &boxes[i];
    double off, at;
    memcpy(&b->len, p + 4, 4); memcpy(&off, p + 8, 8);
    memcpy(&at, p + 16, 8); memcpy(&b->raw, p + 24, 4); memcpy(b->handle, p + 32, 32);
    b->off = (uint64_t)off;
    b->at = (uint64_t)at;
    // Chunks out of order: no window (the read goes to JS).
    if (i > 0 && b->at != boxes[i - 1].at + boxes[i - 1].raw) {
      free(boxes);
      return 0;
    }
  }
  // A descriptor of the window's own per run of chunks in one pack.
  int32_t given = -1;
  for (uint32_t i = 0; i < count; i++) {
    int32_t fd;
    memcpy(&fd, wire + (size_t)i * WINDOW_WIRE, 4);
    boxes[i].fd = i > 0 && fd == given ? boxes[i - 1].fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
    given = fd;
    if (boxes[i].fd < 0) {
      window_t partial = { .count = i, .boxes = boxes };
      free_window(&partial);
      return 0;
    }
  }
  w->fh = fh;
  w->ino = ino;
  w->eof = eof;
  w->count = count;
  w->boxes = boxes;
  w->used = ++ws->tick;
  return 1;
}

read_job_t *windows_job(windows_t *ws, fuse_req_t req, uint64_t fh, size_t size, uint64_t pos) {
  window_t *w = find(ws, fh);
  if (!w) return NULL;
  uint64_t end = pos + size < w->eof ? pos + size : w->eof;
  const wbox_t *first = &w->boxes[0], *last = &w->boxes[w->count - 1];
  if (end <= pos || pos < first->at || end > last->at + last->raw) return NULL;
  // The first chunk holding pos: the last one starting at or before it.
  uint32_t lo = 0, hi = w->count - 1;
  while (lo < hi) {
    uint32_t mid = (lo + hi + 1) / 2;
    if (w->boxes[mid].at <= pos) lo = mid; else hi = mid - 1;
  }
  uint32_t n = 0;
  while (lo + n < w->count && w->boxes[lo + n].at < end) n++;
  read_job_t *job = malloc(sizeof(read_job_t) + (size_t)n * sizeof(box_t));
  if (!job) return NULL;
  job->req = req;
  job->fh = (double)fh;
  job->size = (double)size;
  job->pos = (double)pos;
  job->total = (uint32_t)(end - pos);
  job->count = n;
  // The reader threads close what they are given: each job gets descriptors of its own.
  int last_in = -1, last_out = -1;
  for (uint32_t k = 0; k < n; k++) {
    const wbox_t *src = &w->boxes[lo + k];
    box_t *b = &job->boxes[k];
    if (src->fd != last_in) {
      last_in = src->fd;
      last_out = fcntl(src->fd, F_DUPFD_CLOEXEC, 0);
      if (last_out < 0) {
        job->count = k;
        read_job_close_fds(job);
        free(job);
        return NULL;
      }
    }
    uint64_t from = pos > src->at ? pos - src->at : 0;
    uint64_t stop = src->at + src->raw < end ? src->raw : end - src->at;
    b->fd = last_out;
    b->len = src->len;
    b->off = src->off;
    b->raw = src->raw;
    b->from = (uint32_t)from;
    b->take = (uint32_t)(stop - from);
    memcpy(b->handle, src->handle, 32);
  }
  w->used = ++ws->tick;
  return job;
}

void windows_drop_fh(windows_t *ws, uint64_t fh) {
  window_t *w = find(ws, fh);
  if (w) free_window(w);
}

void windows_drop_ino(windows_t *ws, uint64_t ino) {
  ws->dropped[ino % DROP_SLOTS] = ++ws->tick;
  for (int i = 0; i < WINDOWS; i++)
    if (ws->slot[i].count && ws->slot[i].ino == ino) free_window(&ws->slot[i]);
}

void windows_clear(windows_t *ws) {
  for (int i = 0; i < WINDOWS; i++)
    if (ws->slot[i].count) free_window(&ws->slot[i]);
}
