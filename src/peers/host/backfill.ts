// After a recovery the tree is back before its chunks: this fetches every chunk it names that
// the store lacks, file by file (chunk list order), from all holders at once, in the
// background of a mounted daemon. Resumable by construction: what is stored is never asked
// for again. When every chunk is back, reference counts are set from the tree once, exactly.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChunkRef, ChunkStore } from '../../chunkstore/store.js';
import { chunkListRefs, chunkListsAfter, chunkListTotals, countReferences, setBackfillPending } from '../../snapshot/records.js';
import { inReadTransaction } from '../../chunkstore/index-db.js';
import type { ChunkFetcher, FetchResult } from './fetcher.js';

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
  /** Holders that did not answer the last request that needed them (the fetch waits for them). */
  unreachable: string[];
  done: boolean;
  /** Why the last run stopped short, if it did. */
  error: string | null;
  startedAt: number;
  finishedAt: number | null;
}

const LISTS_PER_PAGE = 64;
/**
 * A batch is fetched by one worker and stored with one fsync and one commit: a twentieth of
 * the tree's file contents, between 16 and 64 MiB, or 32,768 chunks of small files. Each
 * commit rewrites much of the index's pages, chunk ids being random: linux-prev's recovery
 * (119k chunks, 11 KB of file each on average) committed 232 batches of 512 chunks, and its
 * fetch went from 18.3-20.0 s to 11.9-15.3 s with batches of 8,192 chunks or 16 MiB
 * (alternating runs), then with a twentieth (64 MiB) and the checkpoint bound below from
 * 12.0-15.0 s to 10.0-11.5 s (five rounds). Progress moves in steps of a batch: a stopped
 * fetch resumes from the last one committed.
 */
const REFS_PER_FETCH = 32_768;
const BATCH_SHARE = 20;
const BATCH_MIN_BYTES = 16 << 20;
const BATCH_MAX_BYTES = 64 << 20;
/**
 * SQLite checkpoints the WAL into the database each time it passes the daemon's bound (4,096
 * pages), and a fetch's commits spread over all of the chunk index: the same pages were
 * copied again every few batches (11% of the host's thread). While a fetch runs, 64 MiB of WAL.
 */
const FETCH_CHECKPOINT_PAGES = 16_384;
/**
 * Chunks that may be on a holder not answering (refused, dropped, restarting) are asked again
 * after a pause, doubling from the first to the second...
 */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;
/** ...until no chunk has come from any holder for this long: then the run ends short. */
export const PATIENCE_MS = 60_000;

/** Every chunk list of the tree, in order, a page at a time. */
function* allChunkLists(db: ChunkStore['db']): Generator<{ cl: number; size: number }> {
  for (let after = 0; ; ) {
    const page = chunkListsAfter(db, after, LISTS_PER_PAGE);
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1]!.cl;
  }
}

/** `items` in arrays of up to `n`. */
function* groupsOf<T>(items: Iterable<T>, n: number): Generator<T[]> {
  let group: T[] = [];
  for (const it of items) {
    group.push(it);
    if (group.length === n) {
      yield group;
      group = [];
    }
  }
  if (group.length > 0) yield group;
}

/**
 * Batches of the chunks of `lists` the store lacks, in file order, each naming how many files
 * (and their bytes) it completes: callers fetch batches, not files, so one large file is
 * fetched by several workers at once.
 */
export function* missingBatches(store: ChunkStore, lists: Iterable<{ cl: number; size: number }>, batchBytes = BATCH_MIN_BYTES): Generator<{ refs: ChunkRef[]; files: number; bytes: number }> {
  let refs: ChunkRef[] = [];
  let raw = 0;
  let files = 0;
  let bytes = 0;
  for (const group of groupsOf(lists, LISTS_PER_PAGE)) {
    // A list and a lookup a chunk: in one read transaction per group, not one each.
    const lacking = inReadTransaction(store.db, () => group.map((l) => chunkListRefs(store.db, l.cl).filter((r) => !store.has(r.id))));
    for (const [i, l] of group.entries()) {
      for (const r of lacking[i]!) {
        refs.push(r);
        raw += r.raw;
        if (refs.length === REFS_PER_FETCH || raw >= batchBytes) {
          yield { refs, files, bytes };
          refs = [];
          raw = 0;
          files = 0;
          bytes = 0;
        }
      }
      files++;
      bytes += l.size;
    }
  }
  if (refs.length > 0 || files > 0) yield { refs, files, bytes };
}

export class Backfill {
  readonly progress: BackfillProgress;
  private readonly stopping = new AbortController();

  /** `earlier`: the last run of this daemon, whose chunk and byte counts this one continues. */
  constructor(private readonly store: ChunkStore, private readonly fetcher: ChunkFetcher, private readonly workers: () => number, earlier?: BackfillProgress) {
    const t = chunkListTotals(store.db);
    this.progress = {
      files: 0, totalFiles: t.lists, bytes: 0, totalBytes: t.bytes, received: earlier?.received ?? 0, chunksFetched: earlier?.chunksFetched ?? 0,
      missing: 0, unreachable: [], done: false, error: null, startedAt: earlier?.startedAt ?? Date.now(), finishedAt: null,
    };
  }

  stop(): void {
    this.stopping.abort();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
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
    const bound = db.pragma('wal_autocheckpoint', { simple: true }) as number;
    db.pragma(`wal_autocheckpoint = ${FETCH_CHECKPOINT_PAGES}`);
    try {
      return await this.fetchMissing();
    } finally {
      db.pragma(`wal_autocheckpoint = ${bound}`);
    }
  }

  private async fetchMissing(): Promise<boolean> {
    const db = this.store.db;
    const batchBytes = Math.min(BATCH_MAX_BYTES, Math.max(BATCH_MIN_BYTES, this.progress.totalBytes / BATCH_SHARE));
    const work = missingBatches(this.store, allChunkLists(db), batchBytes);
    const started = Date.now();
    const quiet = (): number => Date.now() - Math.max(started, this.fetcher.lastDelivery ?? 0);
    /** Holders that had not answered when a batch was given up. */
    const away = new Set<string>();
    const fetch = async (refs: ChunkRef[], n: number): Promise<FetchResult> => {
      const r = await this.fetcher.fetchAll(refs, n);
      this.progress.received += r.bytes;
      this.progress.chunksFetched += r.fetched;
      this.progress.unreachable = r.unreachable;
      return r;
    };
    const worker = async (n: number): Promise<void> => {
      for (let b = work.next(); !b.done && !this.stopped; b = work.next()) {
        const { refs, files, bytes } = b.value;
        if (refs.length > 0) {
          let r = await fetch(refs, n);
          // What is missing may be on a holder that did not answer: wait for it while chunks
          // still come from anyone (a holder restarting, a connection dropped while opening).
          for (let pause = RETRY_FIRST_MS; r.missing.length > 0 && r.unreachable.length > 0 && quiet() < PATIENCE_MS; pause = Math.min(2 * pause, RETRY_MAX_MS)) {
            try {
              await sleep(pause, undefined, { signal: this.stopping.signal });
            } catch {
              return;
            }
            r = await fetch(r.missing, n);
          }
          this.progress.missing += r.missing.length;
          if (r.missing.length > 0) for (const p of r.unreachable) away.add(p);
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
      this.progress.unreachable = [];
    }
    this.progress.done = complete;
    if (!complete) {
      this.progress.error = away.size > 0
        ? `${this.progress.missing} chunks are not back: no answer from ${[...away].join(', ')} for ${PATIENCE_MS / 1000} s`
        : `${this.progress.missing} chunks are not back: no reachable member holds them`;
    }
    return complete;
  }
}
