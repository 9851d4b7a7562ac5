// After a recovery the tree is back before its chunks: this fetches every chunk it names that
// the store lacks, file by file (chunk list order), from all holders at once, in the
// background of a mounted daemon. Resumable by construction: what is stored is never asked
// for again. When every chunk is back, reference counts are set from the tree once, exactly.
import type { ChunkRef, ChunkStore } from '../chunkstore/store.js';
import { chunkListRefs, chunkListsAfter, chunkListTotals, countReferences, setBackfillPending } from '../snapshot/records.js';
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
const REFS_PER_FETCH = 512;

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
 * Batches of the chunks of `lists` the store lacks, in file order, each naming how many files
 * (and their bytes) it completes: callers fetch batches, not files, so one large file is
 * fetched by several workers at once.
 */
export function* missingBatches(store: ChunkStore, lists: Iterable<{ cl: number; size: number }>): Generator<{ refs: ChunkRef[]; files: number; bytes: number }> {
  let refs: ChunkRef[] = [];
  let files = 0;
  let bytes = 0;
  for (const l of lists) {
    for (const r of chunkListRefs(store.db, l.cl)) {
      if (store.has(r.id)) continue;
      refs.push(r);
      if (refs.length === REFS_PER_FETCH) {
        yield { refs, files, bytes };
        refs = [];
        files = 0;
        bytes = 0;
      }
    }
    files++;
    bytes += l.size;
  }
  if (refs.length > 0 || files > 0) yield { refs, files, bytes };
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
        const { refs, files, bytes } = b.value;
        if (refs.length > 0) {
          const r = await this.fetcher.fetchAll(refs, n);
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
