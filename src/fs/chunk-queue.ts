// Files closed after writing wait a short delay, then go to the ingest workers, those due
// together in one batch. A generation that no tree row references any more when its turn
// comes (deleted, rewritten) is dropped without being chunked.
import { availableParallelism } from 'node:os';
import { IngestPool } from '../chunkstore/ingest-pool.js';
import type { CommitLock } from '../chunkstore/commit-lock.js';
import type { IngestWorkerData } from '../chunkstore/ingest-worker.js';

/** What a chunking job is to the filesystem: the tag its worker's commit hook gets. */
export interface StagedGeneration {
  ino: number;
  gen: number;
}

export interface QueueHooks {
  /** Which of these generations are still wanted (referenced by a row, not being written), in order. */
  wanted(items: StagedGeneration[]): boolean[];
  path(ino: number, gen: number): string;
  /** Chunked and swapped in (or found unwanted): their staging files may go. */
  settled(items: StagedGeneration[]): void;
  failed(ino: number, gen: number, err: Error): void;
  /** A burst of writes is over and all of it is chunked: nothing waits, nothing runs. */
  drained?(): void;
}

/**
 * Files due within half a delay of the first one (at least this much) start with it: one
 * batch, one fsync and one commit for a burst of closes (an untar closes a file every
 * millisecond or two), instead of a worker taking each file alone as its timer fires. So a
 * file waits between half its delay and all of it. Larger batches cost the worker less per
 * file (fewer commits and checkpoints, pages shared by more rows): an untar of linux-prev with
 * a 500 ms delay took 55.1-56.1 s and 65.7-66.9 s of the daemon's CPU gathering 250 ms, against
 * 57.4-58.5 s and 68.6-70.6 s gathering 100 ms (alternating runs).
 */
const MIN_GATHER_MS = 100;

/**
 * The folder's thread takes a CPU of its own while files are written. On two vCPUs a second
 * worker only shared the other one: an untar of linux-prev took as long with one (61.7-70.6 s
 * against 64.3-66.5, until chunked 2.2 s later either way), and the second worker's heap and
 * database connection went.
 */
const WORKERS = Math.max(1, Math.min(2, availableParallelism() - 1));

/** A queue that empties this long after the last close it was given ends a burst of writes. */
const BURST_OVER_MS = 250;

export class ChunkQueue {
  private readonly waiting = new Map<string, { ino: number; gen: number; due: number }>();
  private readonly done: StagedGeneration[] = [];
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private readonly pool: IngestPool;
  private running = 0;
  private lastScheduled = 0;

  constructor(private readonly hooks: QueueHooks, data: IngestWorkerData, private readonly delayMs: number, commitLock: CommitLock, workers = WORKERS) {
    this.pool = new IngestPool({ workers, script: new URL('./ingest-entry.js', import.meta.url), data, commitLock });
  }

  /** Files waiting or being chunked. */
  get pending(): number {
    return this.waiting.size + this.running;
  }

  schedule(ino: number, gen: number, delayMs = this.delayMs): void {
    this.lastScheduled = Date.now();
    const due = this.lastScheduled + delayMs;
    this.waiting.set(`${ino}-${gen}`, { ino, gen, due });
    if (due < this.timerAt) this.arm(due);
  }

  /** A generation deleted before its turn: not looked at again (its file is gone). */
  forget(ino: number, gen: number): void {
    this.waiting.delete(`${ino}-${gen}`);
  }

  /** Start everything waiting now and resolve when all of it is chunked. */
  async flush(): Promise<void> {
    this.startDue(Infinity);
    await this.pool.whenIdle();
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    await this.pool.close();
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.startDue(Date.now() + Math.max(MIN_GATHER_MS, this.delayMs / 2));
    }, Math.max(0, at - Date.now()));
  }

  /** Start what is due by `by`; the timer then waits for the next one. */
  private startDue(by: number): void {
    let next = Infinity;
    const due: StagedGeneration[] = [];
    for (const [key, item] of this.waiting) {
      if (item.due <= by) {
        this.waiting.delete(key);
        due.push({ ino: item.ino, gen: item.gen });
      } else next = Math.min(next, item.due);
    }
    if (due.length > 0) {
      // Asked together: one read of the tree for the batch. Asked file by file, each was a
      // transaction of its own, its locks taken and released (three fcntl calls a file).
      const wanted = this.hooks.wanted(due);
      due.forEach(({ ino, gen }, i) => this.start(ino, gen, wanted[i]!));
    }
    if (next < this.timerAt) this.arm(next);
  }

  /**
   * Generations done in this turn (a worker's batch resolves all of its files at once) are
   * settled together, in one read of the tree instead of a transaction each.
   */
  private settle(g: StagedGeneration): void {
    if (this.done.push(g) === 1) queueMicrotask(() => this.hooks.settled(this.done.splice(0)));
  }

  private start(ino: number, gen: number, wanted: boolean): void {
    if (!wanted) {
      this.settle({ ino, gen });
      return;
    }
    this.running++;
    this.pool.ingest(this.hooks.path(ino, gen), 0, { ino, gen } satisfies StagedGeneration).then(
      () => this.settle({ ino, gen }),
      (err: Error) => this.hooks.failed(ino, gen, err),
    ).finally(() => {
      if (--this.running === 0 && this.waiting.size === 0 && Date.now() - this.lastScheduled >= BURST_OVER_MS) this.hooks.drained?.();
    });
  }
}
