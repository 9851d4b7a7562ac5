// Randomized operation tester: the same random create/write/truncate/rename/unlink/mkdir/
// rmdir/read operations on the mount and on a plain reference directory, compared every few
// steps. Reproduce a failure with SAFE_FUZZ_SEED=<seed>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { makeHost } from './mounted.js';
import { tempDir } from '../helpers.js';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Runs op on both trees; both must succeed with equal results or fail with the same code. */
function both<T>(label: string, a: () => T, b: () => T): void {
  let ra: T | undefined, rb: T | undefined, ea: string | undefined, eb: string | undefined;
  try { ra = a(); } catch (e) { ea = (e as NodeJS.ErrnoException).code ?? String(e); }
  try { rb = b(); } catch (e) { eb = (e as NodeJS.ErrnoException).code ?? String(e); }
  assert.equal(ea, eb, `${label}: error differs (mount ${ea}, reference ${eb})`);
  if (Buffer.isBuffer(ra)) assert.ok(ra.equals(rb as Buffer), `${label}: data differs`);
  else assert.deepEqual(ra, rb, `${label}: result differs`);
}

function snapshotTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      if (rel === '' && name === '.snapshots') continue;
      const p = join(rel, name);
      const st = fs.lstatSync(join(root, p));
      if (st.isDirectory()) {
        out[p] = `dir ${st.mode & 0o777}`;
        walk(p);
      } else {
        const data = fs.readFileSync(join(root, p));
        out[p] = `file ${st.mode & 0o777} ${st.size} ${data.toString('base64').slice(0, 64)} ${require_hash(data)}`;
      }
    }
  };
  walk('');
  return out;
}

import { createHash } from 'node:crypto';
const require_hash = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

test('random operations: mount equals a plain directory', { timeout: 300_000 }, async () => {
  const seed = Number(process.env.SAFE_FUZZ_SEED ?? Date.now() % 100000);
  const steps = Number(process.env.SAFE_FUZZ_STEPS ?? 3000);
  const h = makeHost({ delayMs: 5 });
  h.mount();
  const ref = tempDir('safe-ref-');
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const names = ['a', 'b', 'c', 'd', 'e'];
  const randPath = (): string => {
    const depth = Math.floor(rand() * 3);
    const parts: string[] = [];
    for (let i = 0; i <= depth; i++) parts.push(pick(names));
    return parts.join('/');
  };
  const data = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
    // repetitive content half the time: exercises compression and dedup
    return rand() < 0.5 ? b : Buffer.alloc(n, b.subarray(0, 16));
  };
  const sizes = [0, 1, 100, 4096, 70_000, 300_000, 1_500_000];
  let step = 0;
  try {
    for (; step < steps; step++) {
      const p = randPath();
      const q = randPath();
      const M = join(h.mnt, p), R = join(ref, p);
      const op = rand();
      if (op < 0.25) {
        const buf = data(pick(sizes));
        both(`write ${p}`, () => fs.writeFileSync(M, buf), () => fs.writeFileSync(R, buf));
      } else if (op < 0.35) {
        const buf = data(pick([1, 10, 5000, 200_000]));
        const at = pick([0, 7, 4096, 65_536, 1_000_000]);
        const w = (f: string): number => { const fd = fs.openSync(f, 'r+'); try { return fs.writeSync(fd, buf, 0, buf.length, at); } finally { fs.closeSync(fd); } };
        both(`pwrite ${p}@${at}`, () => w(M), () => w(R));
      } else if (op < 0.42) {
        const size = pick(sizes);
        both(`truncate ${p} ${size}`, () => fs.truncateSync(M, size), () => fs.truncateSync(R, size));
      } else if (op < 0.52) {
        both(`rename ${p} ${q}`, () => fs.renameSync(M, join(h.mnt, q)), () => fs.renameSync(R, join(ref, q)));
      } else if (op < 0.60) {
        both(`unlink ${p}`, () => fs.unlinkSync(M), () => fs.unlinkSync(R));
      } else if (op < 0.70) {
        both(`mkdir ${p}`, () => fs.mkdirSync(M), () => fs.mkdirSync(R));
      } else if (op < 0.75) {
        both(`rmdir ${p}`, () => fs.rmdirSync(M), () => fs.rmdirSync(R));
      } else if (op < 0.80) {
        const mode = pick([0o600, 0o644, 0o755]);
        both(`chmod ${p}`, () => fs.chmodSync(M, mode), () => fs.chmodSync(R, mode));
      } else if (op < 0.85) {
        const buf = data(pick([1, 999, 70_000]));
        both(`append ${p}`, () => fs.appendFileSync(M, buf), () => fs.appendFileSync(R, buf));
      } else {
        both(`read ${p}`, () => fs.readFileSync(M), () => fs.readFileSync(R));
      }
      if (step % 50 === 49) assert.deepEqual(snapshotTree(h.mnt), snapshotTree(ref), `trees differ after step ${step}`);
      if (step % 400 === 399) await h.settle();
    }
    await h.settle();
    assert.deepEqual(snapshotTree(h.mnt), snapshotTree(ref));
    h.unmount();
    h.mount();
    assert.deepEqual(snapshotTree(h.mnt), snapshotTree(ref), 'after remount');
    assert.match(h.ok('verify'), /no problems/);
  } catch (err) {
    (err as Error).message += ` (seed ${seed}, step ${step}; rerun with SAFE_FUZZ_SEED=${seed})`;
    throw err;
  }
});
