// Ingest throughput beside a same-run baseline (the same bytes written to a plain file with fsync).
//   node dist/scripts/bench-ingest.js [--json] [--corpus DIR] [--mib N] [--avg BYTES]
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptArgs } from './script-args.js';
import { ChunkStore } from '../src/chunkstore/store.js';
import { IngestPool } from '../src/chunkstore/ingest-pool.js';
import { DEFAULT_AVG_CHUNK } from '../src/chunkstore/defaults.js';
import { walkFiles } from './walk.js';
import { HOST_SCHEMA } from '../src/cli/host-schema.js';

/** The index is sealed at rest as a host's is, so its cost is in the figures. */
const STORE_KEY = randomBytes(32);

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, corpus: { type: 'string' }, mib: { type: 'string' }, avg: { type: 'string' }, workers: { type: 'string' } } });
const MiB = 1 << 20;
const total = Number(values.mib ?? 1024) * MiB;
const avg = Number(values.avg ?? DEFAULT_AVG_CHUNK);
const workers = Number(values.workers ?? 2);
const corpus = values.corpus ?? (process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus');
const results: Record<string, unknown> = { avgChunk: avg, workers };
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));

const work = mkdtempSync(join(tmpdir(), 'safe-bench-'));
const conv = randomBytes(32);

async function ingestAll(store: string, paths: AsyncIterable<string> | string[]): Promise<{ bytes: number; files: number; secs: number; fresh: number }> {
  const pool = new IngestPool({ workers, script: new URL('../src/chunkstore/ingest-entry.js', import.meta.url), data: { storeDir: store, storeKey: STORE_KEY, convergence: conv, avgChunk: avg } });
  const t0 = performance.now();
  let bytes = 0, files = 0, fresh = 0;
  // Bounded queue: wait for room rather than racing thousands of promises.
  let queued = 0;
  let room: (() => void) | null = null;
  for await (const p of paths) {
    queued++;
    void pool.ingest(p).then((f) => {
      bytes += f.size; files++; fresh += f.fresh;
      if (--queued < 2048 && room) { room(); room = null; }
    });
    if (queued >= 4096) await new Promise<void>((r) => (room = r));
  }
  await pool.close();
  return { bytes, files, fresh, secs: (performance.now() - t0) / 1000 };
}

// Incompressible data: 8 files of total/8 random bytes, already in the page cache.
const src = join(work, 'src');
mkdirSync(src);
const block = randomBytes(4 * MiB);
const files: string[] = [];
for (let i = 0; i < 8; i++) {
  const p = join(src, `r${i}`);
  const fd = openSync(p, 'w');
  for (let w = 0; w < total / 8; w += block.length) {
    block[0] = i; block[1] = w / block.length; // keep blocks distinct: no dedup across them
    randomBytes(64).copy(block, 2);
    writeSync(fd, block);
  }
  closeSync(fd);
  files.push(p);
}

// Baseline: the same number of bytes to a plain file with fsync.
{
  const fd = openSync(join(work, 'baseline'), 'w');
  const t0 = performance.now();
  for (let w = 0; w < total; w += block.length) writeSync(fd, block);
  fsyncSync(fd);
  closeSync(fd);
  const secs = (performance.now() - t0) / 1000;
  results.baselineWriteMiBs = total / MiB / secs;
  log(`baseline: plain file write+fsync   ${(total / MiB / secs).toFixed(0)} MiB/s`);
  rmSync(join(work, 'baseline'));
}

{
  const store = join(work, 'store-random');
  ChunkStore.open(store, conv, { create: true, schema: HOST_SCHEMA, key: STORE_KEY }).close();
  const r = await ingestAll(store, files);
  const mibs = r.bytes / MiB / r.secs;
  results.randomMiBs = mibs;
  log(`ingest random (${workers} workers)     ${mibs.toFixed(0)} MiB/s  (${(r.bytes / MiB).toFixed(0)} MiB in ${r.secs.toFixed(2)} s; ${(mibs / (results.baselineWriteMiBs as number)).toFixed(2)}x baseline)`);
  rmSync(store, { recursive: true });
}
rmSync(src, { recursive: true });

for (const tree of ['linux-prev', 'linux']) {
  const dir = join(corpus, tree);
  try { statSync(join(dir, '.complete')); } catch { log(`(no corpus at ${dir}: run bash scripts/corpus.sh)`); continue; }
  const store = join(work, 'store-linux');
  if (tree === 'linux-prev') ChunkStore.open(store, conv, { create: true, schema: HOST_SCHEMA, key: STORE_KEY }).close();
  const r = await ingestAll(store, walkFiles(dir));
  const s = ChunkStore.open(store, null, { key: STORE_KEY });
  const st = s.stats();
  const indexBytes = statSync(join(store, 'index.db')).size;
  s.close();
  const entry = { files: r.files, bytes: r.bytes, secs: r.secs, MBs: r.bytes / 1e6 / r.secs, freshChunks: r.fresh, storeChunks: st.chunks, packBytes: st.packBytes, indexBytesPerChunk: indexBytes / st.chunks };
  results[tree] = entry;
  log(`ingest ${tree.padEnd(10)} ${r.files} files ${(r.bytes / 1e6).toFixed(0)} MB in ${r.secs.toFixed(1)} s = ${entry.MBs.toFixed(0)} MB/s; store now ${(st.packBytes / 1e6).toFixed(0)} MB in ${st.chunks} chunks, index ${entry.indexBytesPerChunk.toFixed(0)} B/chunk`);
}
rmSync(work, { recursive: true, force: true });
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
