// Files closed after writing wait a short delay, then go to the ingest workers. A generation
// that no tree row references any more when its turn comes (deleted, rewritten) is dropped
// without being chunked.
import { IngestPool } from '../chunkstore/ingest-pool.js';
import type { CommitLock } from '../chunkstore/commit-lock.js';
import type { IngestWorkerData } from '../chunkstore/ingest-worker.js';

/** What a chunking job is to the filesystem: the tag its worker's commit hook gets. */
export interface StagedGeneration {
  ino: number;
  gen: number;
}

export interface QueueHooks {
  /** Is this generation still wanted (referenced by a row, not being written)? */
  wanted(ino: number, gen: number): boolean;
  path(ino: number, gen: number): string;
  /** Chunked and swapped in (or found unwanted by the worker): the staging file may go. */
  settled(ino: number, gen: number): void;
  failed(ino: number, gen: number, err: Error): void;
}

export class ChunkQueue {
  private readonly timers = new Map<string, { ino: number; gen: number; timer: NodeJS.Timeout }>();
  private readonly pool: IngestPool;
  private running = 0;

  constructor(private readonly hooks: QueueHooks, data: IngestWorkerData, private readonly delayMs: number, commitLock: CommitLock, workers = 2) {
    this.pool = new IngestPool({ workers, script: new URL('./ingest-entry.js', import.meta.url), data, commitLock });
  }

  /** Files waiting or being chunked. */
  get pending(): number {
    return this.timers.size + this.running;
  }

  schedule(ino: number, gen: number, delayMs = this.delayMs): void {
    const key = `${ino}-${gen}`;
    const old = this.timers.get(key);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.start(key), delayMs);
    this.timers.set(key, { ino, gen, timer });
  }

  /** Start everything waiting now and resolve when all of it is chunked. */
  async flush(): Promise<void> {
    for (const key of [...this.timers.keys()]) this.start(key);
    await this.pool.whenIdle();
  }

  async close(): Promise<void> {
    await this.flush();
    await this.pool.close();
  }

  private start(key: string): void {
    const item = this.timers.get(key);
    if (!item) return;
    clearTimeout(item.timer);
    this.timers.delete(key);
    const { ino, gen } = item;
    if (!this.hooks.wanted(ino, gen)) {
      this.hooks.settled(ino, gen);
      return;
    }
    this.running++;
    this.pool.ingest(this.hooks.path(ino, gen), 0, { ino, gen } satisfies StagedGeneration).then(
      () => this.hooks.settled(ino, gen),
      (err: Error) => this.hooks.failed(ino, gen, err),
    ).finally(() => this.running--);
  }
}
