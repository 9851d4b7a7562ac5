// Main-thread side of ingest: a few worker threads, each taking whatever is queued when it
// becomes idle as one batch (one fsync and one transaction per batch), so a burst of small
// files costs few commits and a big file does not wait behind a long queue on one worker.
import { Worker } from 'node:worker_threads';
import type { BatchReply, BatchRequest, IngestJob, IngestWorkerData } from './ingest-worker.js';
import type { IngestedFile } from './ingest.js';
import { CommitLock } from './commit-lock.js';

export interface PoolOptions {
  workers: number;
  /** Worker script: chunkstore's ingest-entry.js or a layer's own serveIngest() entry. */
  script: URL;
  data: IngestWorkerData;
  /** Stop adding files to a batch past this many bytes (as known when queued). */
  batchBytes?: number;
  batchFiles?: number;
  /** Shared with the other writers of the database (the main thread's), if any. */
  commitLock?: CommitLock;
}

interface Queued {
  job: IngestJob;
  size: number;
  resolve: (f: IngestedFile) => void;
  reject: (e: Error) => void;
}

export class IngestError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'IngestError';
  }
}

export class IngestPool {
  private readonly queue: Queued[] = [];
  private readonly idle: Worker[] = [];
  private readonly inflight = new Map<Worker, Map<number, Queued>>();
  private readonly workers: Worker[] = [];
  private nextKey = 1;
  private dispatching = false;
  private nextBatch = 1;
  private drained: (() => void)[] = [];

  constructor(private readonly opts: PoolOptions) {
    const commitLock = (opts.commitLock ?? new CommitLock()).buffer;
    for (let i = 0; i < opts.workers; i++) {
      const w = new Worker(opts.script, { workerData: { ...opts.data, commitLock } });
      w.on('message', (reply: BatchReply) => this.finish(w, reply));
      w.on('error', (err) => this.fail(w, err));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  /**
   * Ingest one file; resolves once its chunks are durable and committed. `tag` is plain data
   * handed to the worker's commit hook with the file (what the file is to the layer above).
   */
  ingest(path: string, size = 0, tag?: unknown): Promise<IngestedFile> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { key: this.nextKey++, path, tag }, size, resolve, reject });
      // Files queued in one go (a caller's loop) share batches: dispatch once they all are.
      if (!this.dispatching) {
        this.dispatching = true;
        queueMicrotask(() => {
          this.dispatching = false;
          this.dispatch();
        });
      }
    });
  }

  get pending(): number {
    let n = this.queue.length;
    for (const m of this.inflight.values()) n += m.size;
    return n;
  }

  /** Resolves when nothing is queued or running. */
  whenIdle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((r) => this.drained.push(r));
  }

  async close(): Promise<void> {
    await this.whenIdle();
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.postMessage('close');
          }),
      ),
    );
  }

  private dispatch(): void {
    const maxBytes = this.opts.batchBytes ?? 64 << 20;
    const maxFiles = this.opts.batchFiles ?? 512;
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const batch = new Map<number, Queued>();
      let bytes = 0;
      // Leave work for the other idle workers: split the queue between them.
      const share = Math.max(1, Math.ceil(this.queue.length / (this.idle.length + 1)));
      while (this.queue.length > 0 && batch.size < Math.min(maxFiles, share) && (batch.size === 0 || bytes < maxBytes)) {
        const q = this.queue.shift()!;
        bytes += q.size;
        batch.set(q.job.key, q);
      }
      this.inflight.set(w, batch);
      const req: BatchRequest = { batch: this.nextBatch++, jobs: [...batch.values()].map((q) => q.job) };
      w.postMessage(req);
    }
  }

  private finish(w: Worker, reply: BatchReply): void {
    const batch = this.inflight.get(w)!;
    this.inflight.delete(w);
    this.idle.push(w);
    if (reply.error) {
      for (const q of batch.values()) q.reject(new IngestError(reply.error, reply.code));
    } else {
      for (const o of reply.outcomes) {
        const q = batch.get(o.key)!;
        if ('error' in o) q.reject(new IngestError(o.error, o.code));
        else q.resolve(o.file);
      }
    }
    this.dispatch();
    if (this.pending === 0) for (const r of this.drained.splice(0)) r();
  }

  private fail(w: Worker, err: Error): void {
    const batch = this.inflight.get(w);
    this.inflight.delete(w);
    for (const q of batch?.values() ?? []) q.reject(new IngestError(`ingest worker died: ${err.message}`));
    for (const q of this.queue.splice(0)) q.reject(new IngestError(`ingest worker died: ${err.message}`));
    if (this.pending === 0) for (const r of this.drained.splice(0)) r();
  }
}
