// Files closed after writing wait a short delay, then go to the ingest workers, those due
// together in one batch. A generation that no tree row references any more when its turn
// comes (deleted, rewritten) is dropped without being chunked. The folder comes first: while
// files keep closing (an untar, a checkout, a build), chunking waits for a pause, up to a bound.
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
  /** Whether staged files may wait for a pause in the folder's writes (false once the disk is tight). */
  roomToWait(): boolean;
}

/** How long after its last close a file waits to be chunked (a file written again within it is chunked once). */
export const DEFAULT_CHUNK_DELAY_MS = 2000;

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
 * database connection went. Nor does a second one pay for a backlog chunked after a burst:
 * each holds a read transaction through its batch, so with two the WAL never found a moment
 * without a reader to start over, and reached 960 MB after linux-prev (96 MB with one).
 */
const WORKERS = Math.max(1, Math.min(2, availableParallelism() - 1));

/**
 * Files closing less than this apart keep chunking waiting. On two vCPUs the ingest worker
 * chunking alongside an untar took CPU from the folder's thread, tar and the kernel, which
 * all wait on one another: linux-prev untarred in a median 36.6 s with chunking put off
 * against 54.9 s beside it, and was chunked 7 s later (alternating runs).
 */
const QUIET_MS = 300;

/**
 * No file waits for a pause more than this many delays past its turn (a minute at the default
 * delay; none where scripts want files chunked at once): then chunking runs beside the folder,
 * so a long build's backlog, and the staging space it holds, stays what a minute of writing
 * makes. Counted per file, not per burst: a burst's clock would run on through the chunking
 * of an earlier one (bench-fs's untar came right after its small-file cycles, while a GiB
 * written before them was still chunking, and found its hold used up).
 */
const HOLD_DELAYS = 30;

/** Files handed to the workers at once; the rest wait here as a map entry each, not a promise. */
const IN_FLIGHT = 2048;

/** A queue that empties this long after the last close it was given ends a burst of writes. */
const BURST_OVER_MS = 250;

export class ChunkQueue {
  /** In order of scheduling: `seq` counts schedule calls. */
  private readonly waiting = new Map<string, { ino: number; gen: number; due: number; seq: number; at: number }>();
  private seq = 0;
  private readonly done: StagedGeneration[] = [];
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private readonly pool: IngestPool;
  private running = 0;
  private lastScheduled = 0;
  /** Chunking waited for the folder since the queue was last empty. */
  private held = false;
  /** Flushes in progress: everything waiting goes now. */
  private flushing = 0;
  private readonly turns: (() => void)[] = [];
  /** Due files wait for room in flight. */
  private blocked = false;

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
    const key = `${ino}-${gen}`;
    // Scheduled again (a retry): to the back, as the flushes under way count it.
    this.waiting.delete(key);
    this.waiting.set(key, { ino, gen, due, seq: ++this.seq, at: this.lastScheduled });
    if (due < this.timerAt) this.arm(due);
  }

  /** A generation deleted before its turn: not looked at again (its file is gone). */
  forget(ino: number, gen: number): void {
    this.waiting.delete(`${ino}-${gen}`);
  }

  /**
   * Start everything waiting now and resolve when all of it is chunked. A file whose chunking
   * failed meanwhile waits for its retry like any other, not for this flush.
   */
  async flush(): Promise<void> {
    const upTo = this.seq;
    this.flushing++;
    try {
      this.pump();
      while (this.running > 0 || this.waitingFrom(upTo)) await new Promise<void>((r) => this.turns.push(r));
    } finally {
      this.flushing--;
    }
  }

  /** Whether a file scheduled by the `upTo`th call still waits. */
  private waitingFrom(upTo: number): boolean {
    const first = this.waiting.values().next();
    return !first.done && first.value.seq <= upTo;
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
      this.pump();
    }, Math.max(0, at - Date.now()));
  }

  /**
   * Whether chunking keeps waiting for the folder to pause: files still closing, the longest
   * waiting file (the first scheduled) within its bound, and room on the disk for staged files
   * to wait (chunked, they take less). The bound counts from the first file's close plus the
   * usual delay, not from its own due time: a retry, due 30 s after its failure, may be first,
   * and every file behind it was closed later.
   */
  private holding(now: number): boolean {
    if (this.flushing > 0 || now - this.lastScheduled >= QUIET_MS) return false;
    const oldest = this.waiting.values().next();
    if (oldest.done || now - (oldest.value.at + this.delayMs) >= HOLD_DELAYS * this.delayMs || !this.hooks.roomToWait()) return false;
    this.held = true;
    return true;
  }

  /** Start what is due (and what is due soon after: one batch), unless the folder comes first. */
  private pump(): void {
    const now = Date.now();
    if (this.holding(now)) {
      this.arm(this.lastScheduled + QUIET_MS);
      return;
    }
    this.startDue(this.flushing > 0 ? Infinity : now + Math.max(MIN_GATHER_MS, this.delayMs / 2));
  }

  /** Start what is due by `by`, as many as may be in flight; the timer then waits for the next one. */
  private startDue(by: number): void {
    let next = Infinity;
    const due: StagedGeneration[] = [];
    this.blocked = false;
    for (const [key, item] of this.waiting) {
      if (item.due > by) next = Math.min(next, item.due);
      else if (this.running + due.length >= IN_FLIGHT) this.blocked = true;
      else {
        this.waiting.delete(key);
        due.push({ ino: item.ino, gen: item.gen });
      }
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
    ).finally(() => this.finished());
  }

  private finished(): void {
    this.running--;
    if (this.running === 0 && this.waiting.size === 0) {
      // After a burst that made chunking wait, the workers chunked its backlog in full batches
      // and leave at once, their heaps and page caches (tens of MB each) with them, before the
      // hook hands the process's free memory back. After a trickle they stay for the next file.
      const held = this.held;
      this.held = false;
      if (Date.now() - this.lastScheduled >= BURST_OVER_MS) void (held ? this.pool.retireIdle() : Promise.resolve()).then(() => this.hooks.drained?.());
    }
    // Due files held back by the in-flight bound go as room is made.
    if (this.blocked && this.running <= IN_FLIGHT / 2) this.pump();
    for (const r of this.turns.splice(0)) r();
  }
}
