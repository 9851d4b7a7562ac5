// Worker-thread side of the ingest pool: chunks, seals and commits batches of files.
// Layers above reuse serveIngest() with a hook that runs inside each commit's transaction
// (the filesystem swaps chunk lists there), so data and tree change atomically.
import { parentPort, workerData } from 'node:worker_threads';
import { cdcParams } from './fastcdc.js';
import { Ingester, type IngestedFile } from './ingest.js';
import { MissingChunkError, ChunkStore } from './store.js';
import { CommitLock } from './commit-lock.js';
import { StagedFileError } from './staged-file.js';

export interface IngestWorkerData {
  storeDir: string;
  storeKey: Uint8Array;
  /** Set when the files are staged files, sealed at rest under this key. */
  stagingKey?: Uint8Array;
  convergence: Uint8Array;
  avgChunk: number;
  /** Set by the pool: serializes the workers' commits. */
  commitLock?: SharedArrayBuffer;
}

export interface IngestJob {
  key: number;
  path: string;
  /** The caller's own data about the file, for its commit hook. */
  tag?: unknown;
}

export type IngestOutcome = { key: number; file: IngestedFile } | { key: number; error: string; code?: string };

export interface BatchRequest {
  batch: number;
  jobs: IngestJob[];
}

export interface BatchReply {
  batch: number;
  outcomes: IngestOutcome[];
  /** Set when the whole batch failed to commit (e.g. disk full): nothing of it is stored. */
  error?: string;
  code?: string;
}

export type CommitHook = (done: { job: IngestJob; file: IngestedFile }[]) => void;

/** How many times a batch is re-ingested when a deduplicated chunk was collected under it. */
const RETRIES = 3;

export function serveIngest(makeHook?: (store: ChunkStore, data: IngestWorkerData) => CommitHook): void {
  const data = workerData as IngestWorkerData;
  const store = ChunkStore.open(data.storeDir, data.convergence, { key: data.storeKey });
  const ingester = new Ingester(store, cdcParams(data.avgChunk, data.convergence), data.commitLock ? new CommitLock(data.commitLock) : undefined);
  const hook = makeHook?.(store, data);
  // Checkpoints run after a batch's commit, not inside it (below).
  store.db.pragma('wal_autocheckpoint = 0');
  // The main thread commits between batches, which empties this cache (WAL): it only needs
  // one batch's pages. At 16 MiB, the caches were 33 MB of the daemon's malloc peak in an untar.
  store.db.pragma('cache_size = -4096');
  const port = parentPort!;
  port.on('message', (msg: BatchRequest | 'close') => {
    if (msg === 'close') {
      ingester.close();
      store.close();
      port.close();
      return;
    }
    port.postMessage(runBatch(ingester, hook, msg, data.stagingKey));
    checkpoint(store);
  });
}

/**
 * The WAL goes into the database here, with the commit lock free: inside a commit it would hold
 * the lock (and the filesystem's next change) through its fsyncs. PASSIVE: it copies what no
 * reader still needs and never waits.
 */
function checkpoint(store: ChunkStore): void {
  try {
    store.db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or full: the next batch tries again, and the main thread's own threshold bounds the WAL.
  }
}

function runBatch(ingester: Ingester, hook: CommitHook | undefined, req: BatchRequest, stagingKey?: Uint8Array): BatchReply {
  for (let attempt = 0; ; attempt++) {
    const outcomes: IngestOutcome[] = [];
    const done: { job: IngestJob; file: IngestedFile }[] = [];
    try {
      ingester.inSnapshot(() => {
        for (const job of req.jobs) {
          try {
            const file = stagingKey ? ingester.ingestStaged(job.path, stagingKey) : ingester.ingestFile(job.path);
            outcomes.push({ key: job.key, file });
            done.push({ job, file });
          } catch (err) {
            const e = err as NodeJS.ErrnoException;
            // A file that vanished or cannot be read fails alone; a store error fails the batch.
            if (e.syscall === 'open' || e.syscall === 'read' || err instanceof StagedFileError) outcomes.push({ key: job.key, error: e.message, code: e.code });
            else throw err;
          }
        }
      });
      ingester.commit(hook ? () => hook(done) : undefined);
      return { batch: req.batch, outcomes };
    } catch (err) {
      ingester.abandon();
      if (err instanceof MissingChunkError && attempt < RETRIES) continue;
      const e = err as NodeJS.ErrnoException;
      return { batch: req.batch, outcomes: [], error: e.message, code: e.code };
    }
  }
}
