// After a recovery the tree is back before its chunks: this fetches every chunk it names that
// the store lacks, file by file (chunk list order), from all holders at once, in the
// background of a mounted daemon. Resumable by construction: what is stored is never asked
// for again. When every chunk is back, reference counts are set from the tree once, exactly.
import { chunkId } from '../chunkstore/sealer.js';
import type { ChunkStore } from '../chunkstore/store.js';
import { chunkListHandles, chunkListsAfter, chunkListTotals, countReferences, setBackfillPending } from '../snapshot/records.js';
import type { ChunkFetcher } from './fetcher.js';

export interface BackfillProgress {
  /** Chunk lists (file contents) done, of total. */
  files: number;
  totalFiles: number;
  /** Plaintext bytes of the files done, of total. */
  bytes: number;
  totalBytes: number;
  /** Box bytes received, and chunks stored, by this daemon's runs so far. */
  received: number;
  chunksFetched: number;
  /** Chunks nobody could give back (so far). */
  missing: number;
  done: boolean;
  /** Why the last run stopped short, if it did. */
  error: string | null;
  startedAt: number;
  finishedAt: number | null;
}

const LISTS_PER_PAGE = 64;
const HANDLES_PER_FETCH = 512;

/** Every chunk list of the tree, in order, a page at a time. */
function* allChunkLists(db: ChunkStore['db']): Generator<{ cl: number; size: number }> {
  for (let after = 0; ; ) {
    const page = chunkListsAfter(db, after, LISTS_PER_PAGE);
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1]!.cl;
  }
}

/**
 * Batches of the handles of `lists` the store lacks, in file order, each naming how many files
 * (and their bytes) it completes: callers fetch batches, not files, so one large file is
 * fetched by several workers at once.
 */
export function* missingBatches(store: ChunkStore, lists: Iterable<{ cl: number; size: number }>): Generator<{ handles: Buffer[]; files: number; bytes: number }> {
  let handles: Buffer[] = [];
  let files = 0;
  let bytes = 0;
  for (const l of lists) {
    for (const h of chunkListHandles(store.db, l.cl)) {
      if (store.has(chunkId(h))) continue;
      handles.push(h);
      if (handles.length === HANDLES_PER_FETCH) {
        yield { handles, files, bytes };
        handles = [];
        files = 0;
        bytes = 0;
      }
    }
    files++;
    bytes += l.size;
  }
  if (handles.length > 0 || files > 0) yield { handles, files, bytes };
}

export class Backfill {
  readonly progress: BackfillProgress;
  private stopped = false;

  /** `earlier`: the last run of this daemon, whose chunk and byte counts this one continues. */
  constructor(private readonly store: ChunkStore, private readonly fetcher: ChunkFetcher, private readonly workers: () => number, earlier?: BackfillProgress) {
    const t = chunkListTotals(store.db);
    this.progress = {
      files: 0, totalFiles: t.lists, bytes: 0, totalBytes: t.bytes, received: earlier?.received ?? 0, chunksFetched: earlier?.chunksFetched ?? 0,
      missing: 0, done: false, error: null, startedAt: earlier?.startedAt ?? Date.now(), finishedAt: null,
    };
  }

  stop(): void {
    this.stopped = true;
  }

  /** Runs to the end; true when every chunk is back (else run again when holders are online). */
  async run(): Promise<boolean> {
    try {
      return await this.pass();
    } catch (err) {
      this.progress.error = (err as Error).message;
      throw err;
    } finally {
      this.progress.finishedAt = Date.now();
    }
  }

  private async pass(): Promise<boolean> {
    const db = this.store.db;
    const work = missingBatches(this.store, allChunkLists(db));
    const worker = async (n: number): Promise<void> => {
      for (let b = work.next(); !b.done && !this.stopped; b = work.next()) {
        const { handles, files, bytes } = b.value;
        if (handles.length > 0) {
          const r = await this.fetcher.fetchAll(handles, n);
          this.progress.received += r.bytes;
          this.progress.chunksFetched += r.fetched;
          this.progress.missing += r.missing.length;
        }
        this.progress.files += files;
        this.progress.bytes += bytes;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.workers()) }, (_, n) => worker(n)));
    if (this.stopped) return false;
    const complete = this.progress.missing === 0;
    if (complete) {
      db.transaction(() => {
        countReferences(db);
        setBackfillPending(db, false);
      }).immediate();
    }
    this.progress.done = complete;
    if (!complete) this.progress.error = `${this.progress.missing} chunks could not be fetched from any reachable buddy`;
    return complete;
  }
}
