// FastCDC throughput, TS vs native, beside same-run baselines (SHA-256 and
// memcpy over the same bytes) because this machine's speed drifts ±30%.
//
//   node dist/scripts/bench-chunker.js [--json] [--mib 256] [--reps 3]

import { createHash, randomFillSync } from 'node:crypto';
import os from 'node:os';
import { cdcParams, cutsTs } from '../src/chunkstore/fastcdc.js';
import { type CutFn, cutsNative, nativeLoadError, StreamChunker } from '../src/chunkstore/chunker.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const MIB = 1024 * 1024;
const sizeMiB = opt('--mib', 256);
const reps = opt('--reps', 3);
const avgs = [8192, 16384, 32768, 65536];

const data = Buffer.allocUnsafe(sizeMiB * MIB);
for (let o = 0; o < data.length; o += 64 * MIB) randomFillSync(data, o, Math.min(64 * MIB, data.length - o));
const seed = randomFillSync(new Uint8Array(32));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Median MiB/s of fn over `reps` runs (after one warm-up run). */
function rate(fn: () => void): number {
  fn();
  const r: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = process.hrtime.bigint();
    fn();
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    r.push(sizeMiB / s);
  }
  return Math.round(median(r));
}

const SLICE = MIB;
const baseline = {
  sha256: rate(() => {
    for (let o = 0; o < data.length; o += SLICE) createHash('sha256').update(data.subarray(o, o + SLICE)).digest();
  }),
  memcpy: rate(() => {
    const dst = Buffer.allocUnsafe(SLICE);
    for (let o = 0; o < data.length; o += SLICE) data.copy(dst, 0, o, o + SLICE);
  }),
};

interface Row {
  avg: number; min: number; max: number; chunks: number; meanChunk: number;
  ts: number; native: number | null; streamTs: number; streamNative: number | null;
}

function oneShot(f: CutFn, avg: number): () => void {
  const p = cdcParams(avg, seed);
  return () => { f(p, data, 0, data.length, true); };
}

// 1 MiB pushes, roughly what a writer or a FUSE write-back layer hands over.
function streamed(f: CutFn, avg: number): () => void {
  const p = cdcParams(avg, seed);
  return () => {
    const sc = new StreamChunker(p, f);
    for (let o = 0; o < data.length; o += SLICE) sc.push(data.subarray(o, o + SLICE));
    sc.finish();
  };
}

const rows: Row[] = [];
for (const avg of avgs) {
  const p = cdcParams(avg, seed);
  const lens = cutsTs(p, data, 0, data.length, true);
  if (cutsNative) {
    const n = cutsNative(p, data, 0, data.length, true);
    if (n.length !== lens.length || n.some((x, i) => x !== lens[i])) throw new Error(`native/TS mismatch at avg ${avg}`);
  }
  rows.push({
    avg, min: p.min, max: p.max, chunks: lens.length, meanChunk: Math.round(data.length / lens.length),
    ts: rate(oneShot(cutsTs, avg)),
    native: cutsNative ? rate(oneShot(cutsNative, avg)) : null,
    streamTs: rate(streamed(cutsTs, avg)),
    streamNative: cutsNative ? rate(streamed(cutsNative, avg)) : null,
  });
}

const report = {
  node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.cpus().length,
  sizeMiB, reps, nativeLoaded: cutsNative !== null, nativeLoadError,
  unit: 'MiB/s (median)', baseline, rows,
};

if (json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  console.log(`${report.node} on ${report.cpu} x${report.cpus}; ${sizeMiB} MiB random data, median of ${reps}`);
  console.log(`baseline: sha256 ${baseline.sha256} MiB/s, memcpy ${baseline.memcpy} MiB/s (1 MiB slices)`);
  if (!cutsNative) console.log(`native addon absent: ${nativeLoadError}`);
  const fmt = (x: number | null) => (x === null ? '-' : String(x)).padStart(9);
  console.log('    avg      min      max   chunks  meanLen       ts   native  strm-ts strm-nat');
  for (const r of rows) {
    console.log([r.avg, r.min, r.max, r.chunks, r.meanChunk, r.ts, r.native, r.streamTs, r.streamNative]
      .map(fmt).join(''));
  }
}
