// Reader threads that answer FUSE reads from chunk boxes (box-reader.c).
#ifndef SAFE_BOX_READER_H
#define SAFE_BOX_READER_H
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>

/** Two vCPUs here: the JS thread finds the boxes, two threads open them. */
#define BOX_READER_THREADS 2

/** One box of a read: where it lies, and which of its plaintext bytes the reply takes. */
typedef struct {
  int fd;            // the pack, a descriptor of the reader's own (dup'd), closed once read
  uint32_t len;      // box bytes (ciphertext and tag)
  uint64_t off;      // the box's offset in its pack
  uint32_t raw;      // plaintext bytes of the chunk
  uint32_t from;     // first plaintext byte the reply takes
  uint32_t take;     // bytes the reply takes
  unsigned char handle[32];
} box_t;

typedef struct read_job {
  struct read_job *next;
  fuse_req_t req;
  double fh, size, pos;  // the request, for the JS path if the boxes cannot be opened here
  uint32_t total;        // reply bytes: the sum of `take`
  uint32_t count;
  box_t boxes[];
} read_job_t;

typedef struct {
  pthread_t threads[BOX_READER_THREADS];
  int nthreads;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  read_job_t *head, *tail;
  int stop;
  /** Called on a reader thread with a job it could not answer; takes ownership of it. */
  void (*fail)(void *ctx, read_job_t *job);
  void *ctx;
} box_reader_t;

/** Closes the job's descriptors (one per run of boxes in the same pack). */
void read_job_close_fds(read_job_t *job);
int box_reader_start(box_reader_t *r, void (*fail)(void *, read_job_t *), void *ctx);
void box_reader_submit(box_reader_t *r, read_job_t *job);
/** Answers what is queued, then joins the threads. */
void box_reader_stop(box_reader_t *r);

#endif
