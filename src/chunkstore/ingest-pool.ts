// Main-thread side of ingest: a few worker threads, each taking whatever is queued when it
// becomes idle as one batch (one fsync and one transaction per batch), so a burst of small
// files costs few commits and a big file does not wait behind a long queue on one worker.
// Workers start when work comes and leave after a quiet spell: each holds a V8 heap, a
// database connection and its page cache (20-40 MB), and a daemon is idle most of the day.
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
  /** A worker idle this long exits; the next work starts one again. */
  idleMs?: number;
}

/** Long enough that an untar or a build keeps its workers, short enough to give memory back soon. */
const DEFAULT_IDLE_MS = 10_000;

/**
 * A worker's young generation: 1 MiB semi-spaces, whatever the process's flags. A 16 MiB one
 * chunked linux-prev's backlog no faster (35.8 and 35.8 s against 32.7 and 35.9, alternating)
 * and only raised the daemon's RSS while a burst lasts.
 */
const YOUNG_GENERATION_MB = 3;

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
  /** Workers started and not yet exited (idle, busy, or told to close). */
  private readonly live = new Set<Worker>();
  private readonly idleTimers = new Map<Worker, NodeJS.Timeout>();
  private readonly commitLock: SharedArrayBuffer;
  private nextKey = 1;
  private dispatching = false;
  private closing = false;
  private nextBatch = 1;
  private drained: (() => void)[] = [];

  constructor(private readonly opts: PoolOptions) {
    this.commitLock = (opts.commitLock ?? new CommitLock()).buffer;
  }

  private start(): Worker {
    const w = new Worker(this.opts.script, { workerData: { ...this.opts.data, commitLock: this.commitLock }, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    w.on('message', (reply: BatchReply) => this.finish(w, reply));
    w.on('error', (err) => this.fail(w, err));
    w.once('exit', () => this.live.delete(w));
    this.live.add(w);
    return w;
  }

  /** Takes `w` out of the pool and lets it finish; resolves when its thread has exited. */
  private retire(w: Worker): Promise<void> {
    clearTimeout(this.idleTimers.get(w));
    this.idleTimers.delete(w);
    const at = this.idle.indexOf(w);
    if (at >= 0) this.idle.splice(at, 1);
    if (!this.live.has(w)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.postMessage('close');
    });
  }

  private rest(w: Worker): void {
    this.idle.push(w);
    const timer = setTimeout(() => void this.retire(w), this.opts.idleMs ?? DEFAULT_IDLE_MS);
    timer.unref();
    this.idleTimers.set(w, timer);
  }

  private takeWorker(): Worker | undefined {
    const w = this.idle.pop();
    if (w) {
      clearTimeout(this.idleTimers.get(w));
      this.idleTimers.delete(w);
      return w;
    }
    return this.live.size < this.opts.workers && !this.closing ? this.start() : undefined;
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

  /** Let the idle workers go now rather than after their quiet spell (a burst of work is over). */
  async retireIdle(): Promise<void> {
    await Promise.all([...this.idle].map((w) => this.retire(w)));
  }

  async close(): Promise<void> {
    await this.whenIdle();
    this.closing = true;
    await Promise.all([...this.live].map((w) => this.retire(w)));
  }

  private dispatch(): void {
    const maxBytes = this.opts.batchBytes ?? 64 << 20;
    const maxFiles = this.opts.batchFiles ?? 512;
    while (this.queue.length > 0) {
      const w = this.takeWorker();
      if (!w) break;
      const batch = new Map<number, Queued>();
      let bytes = 0;
      // Leave work for the other workers, idle or yet to start: split the queue between them.
      const others = this.idle.length + Math.max(0, this.opts.workers - this.live.size);
      const share = Math.max(1, Math.ceil(this.queue.length / (others + 1)));
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
    this.rest(w);
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
    void this.retire(w);
    for (const q of batch?.values() ?? []) q.reject(new IngestError(`ingest worker died: ${err.message}`));
    for (const q of this.queue.splice(0)) q.reject(new IngestError(`ingest worker died: ${err.message}`));
    if (this.pending === 0) for (const r of this.drained.splice(0)) r();
  }
}
