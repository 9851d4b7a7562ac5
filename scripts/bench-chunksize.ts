// Chooses the average chunk size by measurement: for each candidate, ingests linux-prev and then
// linux (two consecutive releases of one source tree) into a fresh store through the real ingest
// pipeline, and reports the store after the first release, what the second one added (the dedup
// cost of an update), the index size and the ingest speed. The baseline for the added bytes is the
// total size of the files of linux that are new or differ from linux-prev.
//   node dist/scripts/bench-chunksize.js [--json] [--corpus DIR] [--avg 4096,8192,...] [--workers N]
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import { scriptArgs } from './script-args.js';
import { openDb } from '../src/chunkstore/index-db.js';
import { ChunkStore, type StoreStats } from '../src/chunkstore/store.js';
import { IngestPool } from '../src/chunkstore/ingest-pool.js';
import { nativeLoaded } from '../src/chunkstore/chunker.js';
import { walkFiles } from './walk.js';
import { HOST_SCHEMA } from '../src/cli/host-schema.js';

/** The index is sealed at rest as a host's is, so its cost is in the figures. */
const STORE_KEY = randomBytes(32);

const { values } = scriptArgs({
  options: { json: { type: 'boolean' }, corpus: { type: 'string' }, avg: { type: 'string' }, workers: { type: 'string' } },
});
const avgs = (values.avg ?? '4096,8192,16384,32768,65536').split(',').map((s) => Number(s.trim()));
const workers = Number(values.workers ?? 2);
const corpus = values.corpus ?? (process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus');
const prevDir = join(corpus, 'linux-prev');
const nextDir = join(corpus, 'linux');
const log = (s: string): void => void process.stderr.write(s + '\n'); // progress; results go to stdout

for (const a of avgs) {
  if (!Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) throw new Error(`--avg: ${a} is not a power of two`);
}
for (const d of [prevDir, nextDir]) {
  try { statSync(join(d, '.complete')); } catch { throw new Error(`no complete corpus at ${d} (run bash scripts/corpus.sh)`); }
}

// ---- Baseline: files of linux that are new or differ from linux-prev (by relative path). ----

const BLOCK = 1 << 20;
const bufA = Buffer.allocUnsafe(BLOCK);
const bufB = Buffer.allocUnsafe(BLOCK);

/** Streams both files block by block; true when the contents are equal. Sizes are already equal. */
function sameContent(a: string, b: string): boolean {
  const fa = openSync(a, 'r');
  try {
    const fb = openSync(b, 'r');
    try {
      for (;;) {
        const na = readSync(fa, bufA, 0, BLOCK, null);
        let nb = 0;
        while (nb < na) {
          const n = readSync(fb, bufB, nb, na - nb, null);
          if (n === 0) break;
          nb += n;
        }
        if (na !== nb || bufA.compare(bufB, 0, nb, 0, na) !== 0) return false;
        if (na === 0) return true;
      }
    } finally { closeSync(fb); }
  } finally { closeSync(fa); }
}

interface TreeDiff {
  prevFiles: number; prevBytes: number;
  nextFiles: number; nextBytes: number;
  newFiles: number; newBytes: number;
  changedFiles: number; changedBytes: number;
  removedFiles: number;
  /** new + changed: what a perfect file-level dedup would have to store for the update. */
  differingFiles: number; differingBytes: number;
  secs: number;
}

async function treeDiff(): Promise<TreeDiff> {
  const t0 = performance.now();
  const d: TreeDiff = { prevFiles: 0, prevBytes: 0, nextFiles: 0, nextBytes: 0, newFiles: 0, newBytes: 0, changedFiles: 0, changedBytes: 0, removedFiles: 0, differingFiles: 0, differingBytes: 0, secs: 0 };
  for await (const p of walkFiles(nextDir)) {
    const size = statSync(p).size;
    d.nextFiles++; d.nextBytes += size;
    let prevSize = -1;
    try {
      const st = statSync(join(prevDir, relative(nextDir, p)));
      if (st.isFile()) prevSize = st.size;
    } catch { /* new path */ }
    if (prevSize < 0) { d.newFiles++; d.newBytes += size; }
    else if (prevSize !== size || !sameContent(join(prevDir, relative(nextDir, p)), p)) { d.changedFiles++; d.changedBytes += size; }
  }
  for await (const p of walkFiles(prevDir)) {
    d.prevFiles++; d.prevBytes += statSync(p).size;
    try { if (!statSync(join(nextDir, relative(prevDir, p))).isFile()) d.removedFiles++; } catch { d.removedFiles++; }
  }
  d.differingFiles = d.newFiles + d.changedFiles;
  d.differingBytes = d.newBytes + d.changedBytes;
  d.secs = (performance.now() - t0) / 1000;
  return d;
}

// ---- Ingest through the real pool (bounded queue, as in bench-ingest). ----

const conv = randomBytes(32);

async function ingestTree(store: string, avg: number, dir: string): Promise<{ files: number; bytes: number; fresh: number; errors: number; secs: number }> {
  const pool = new IngestPool({ workers, script: new URL('../src/chunkstore/ingest-entry.js', import.meta.url), data: { storeDir: store, storeKey: STORE_KEY, convergence: conv, avgChunk: avg } });
  const t0 = performance.now();
  let files = 0, bytes = 0, fresh = 0, errors = 0;
  let firstError: string | null = null;
  let queued = 0;
  let room: (() => void) | null = null;
  const settle = (): void => { if (--queued < 2048 && room) { room(); room = null; } };
  for await (const p of walkFiles(dir)) {
    queued++;
    pool.ingest(p).then(
      (f) => { files++; bytes += f.size; fresh += f.fresh; settle(); },
      (e: Error) => { errors++; firstError ??= `${p}: ${e.message}`; settle(); },
    );
    if (queued >= 4096) await new Promise<void>((r) => (room = r));
  }
  await pool.close();
  const secs = (performance.now() - t0) / 1000;
  if (errors > 0) log(`  ${errors} files failed to ingest; first: ${firstError}`);
  return { files, bytes, fresh, errors, secs };
}

function stats(store: string): StoreStats {
  const s = ChunkStore.open(store, null, { key: STORE_KEY });
  try { return s.stats(); } finally { s.close(); }
}

/** index.db size with the WAL folded in (fresh connection, no other connection open). */
function indexBytes(store: string): number {
  const path = join(store, 'index.db');
  const db = openDb(path, { key: STORE_KEY });
  try { db.pragma('wal_checkpoint(TRUNCATE)'); } finally { db.close(); }
  return statSync(path).size;
}

interface Row {
  avg: number;
  prev: { files: number; bytes: number; secs: number; MBs: number; chunks: number; packBytes: number; uniqueRaw: number; meanChunk: number; indexBytes: number; errors: number };
  next: { files: number; bytes: number; secs: number; MBs: number; addedChunks: number; addedPackBytes: number; addedRaw: number; freshChunks: number; errors: number };
  final: { chunks: number; packBytes: number; indexBytes: number; indexBytesPerChunk: number };
}

const work = mkdtempSync('/var/tmp/safe-bench-chunksize-');
const rows: Row[] = [];
let diff: TreeDiff | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => { rmSync(work, { recursive: true, force: true }); process.exit(130); });
}
try {
  log(`chunker: ${nativeLoaded ? 'native' : 'ts'}; ${workers} workers; stores in ${work}`);
  log('comparing linux with linux-prev (also warms the page cache)...');
  diff = await treeDiff();
  log(`linux-prev ${diff.prevFiles} files ${(diff.prevBytes / 1e6).toFixed(1)} MB; linux ${diff.nextFiles} files ${(diff.nextBytes / 1e6).toFixed(1)} MB; ` +
    `differing ${diff.differingFiles} files ${(diff.differingBytes / 1e6).toFixed(2)} MB (${diff.newFiles} new ${(diff.newBytes / 1e6).toFixed(2)} MB, ` +
    `${diff.changedFiles} changed ${(diff.changedBytes / 1e6).toFixed(2)} MB), ${diff.removedFiles} removed; ${diff.secs.toFixed(1)} s`);

  for (const avg of avgs) {
    const store = join(work, `store-${avg}`);
    ChunkStore.open(store, conv, { create: true, schema: HOST_SCHEMA, key: STORE_KEY }).close();
    log(`avg ${avg}: ingesting linux-prev...`);
    const a = await ingestTree(store, avg, prevDir);
    const s1 = stats(store);
    const idx1 = indexBytes(store);
    log(`avg ${avg}: ${a.files} files in ${a.secs.toFixed(1)} s; ${s1.chunks} chunks, ${(s1.packBytes / 1e6).toFixed(1)} MB packs; ingesting linux...`);
    const b = await ingestTree(store, avg, nextDir);
    const s2 = stats(store);
    const idx2 = indexBytes(store);
    const row: Row = {
      avg,
      prev: { files: a.files, bytes: a.bytes, secs: a.secs, MBs: a.bytes / 1e6 / a.secs, chunks: s1.chunks, packBytes: s1.packBytes, uniqueRaw: s1.uniqueRaw, meanChunk: s1.uniqueRaw / s1.chunks, indexBytes: idx1, errors: a.errors },
      next: { files: b.files, bytes: b.bytes, secs: b.secs, MBs: b.bytes / 1e6 / b.secs, addedChunks: s2.chunks - s1.chunks, addedPackBytes: s2.packBytes - s1.packBytes, addedRaw: s2.uniqueRaw - s1.uniqueRaw, freshChunks: b.fresh, errors: b.errors },
      final: { chunks: s2.chunks, packBytes: s2.packBytes, indexBytes: idx2, indexBytesPerChunk: idx2 / s2.chunks },
    };
    rows.push(row);
    log(`avg ${avg}: linux added ${row.next.addedChunks} chunks, ${(row.next.addedPackBytes / 1e6).toFixed(2)} MB packs in ${b.secs.toFixed(1)} s; index ${(idx2 / 1e6).toFixed(1)} MB`);
    rmSync(store, { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (values.json) {
  process.stdout.write(JSON.stringify({ corpus, workers, chunker: nativeLoaded ? 'native' : 'ts', diff, results: rows }, null, 2) + '\n');
} else {
  const MB = (n: number): string => (n / 1e6).toFixed(1);
  const head = ['avg', 'mean chunk', 'chunks prev', 'packs prev MB', 'added chunks', 'added pack MB', 'packs/diff', 'added raw MB', 'raw/diff', 'index MB', 'index B/chunk', 'prev MB/s', 'linux MB/s'];
  const body = rows.map((r) => [
    String(r.avg),
    r.prev.meanChunk.toFixed(0),
    String(r.prev.chunks),
    MB(r.prev.packBytes),
    String(r.next.addedChunks),
    (r.next.addedPackBytes / 1e6).toFixed(2),
    `${(r.next.addedPackBytes / diff!.differingBytes).toFixed(2)}x`,
    (r.next.addedRaw / 1e6).toFixed(2),
    `${(r.next.addedRaw / diff!.differingBytes).toFixed(2)}x`,
    MB(r.final.indexBytes),
    r.final.indexBytesPerChunk.toFixed(0),
    r.prev.MBs.toFixed(1),
    r.next.MBs.toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  const out = [
    `corpus ${corpus}: linux-prev ${diff!.prevFiles} files ${MB(diff!.prevBytes)} MB -> linux ${diff!.nextFiles} files ${MB(diff!.nextBytes)} MB`,
    `baseline: ${diff!.differingFiles} files of linux new or differing (${diff!.newFiles} new, ${diff!.changedFiles} changed, ${diff!.removedFiles} removed) = ${(diff!.differingBytes / 1e6).toFixed(2)} MB raw`,
    `chunker ${nativeLoaded ? 'native' : 'ts'}, ${workers} workers; packs are zstd-compressed and sealed; index after wal_checkpoint(TRUNCATE), both releases`,
    'packs/diff, raw/diff: added pack bytes (compressed) and added plaintext chunk bytes over the raw size of the differing files',
    '',
    line(head),
    line(w.map((n) => '-'.repeat(n))),
    ...body.map(line),
  ];
  process.stdout.write(out.join('\n') + '\n');
}
