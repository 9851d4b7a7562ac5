// Randomized operation tester: the same random create/write/truncate/rename/unlink/mkdir/
// rmdir/read/link/mkfifo operations (and directories renamed over directories) on the mount and
// on a plain reference directory, compared every few steps: content, modes, link counts, and
// which names share an inode. Reproduce a failure with SAFE_FUZZ_SEED=<seed>.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
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

/** Ops that succeeded on both trees, by kind (the first word of the label). */
const succeeded: Record<string, number> = {};

/** Runs op on both trees; both must succeed with equal results or fail with the same code. */
function both<T>(label: string, a: () => T, b: () => T): void {
  let ra: T | undefined, rb: T | undefined, ea: string | undefined, eb: string | undefined;
  try { ra = a(); } catch (e) { ea = (e as NodeJS.ErrnoException).code ?? String(e); }
  try { rb = b(); } catch (e) { eb = (e as NodeJS.ErrnoException).code ?? String(e); }
  assert.equal(ea, eb, `${label}: error differs (mount ${ea}, reference ${eb})`);
  if (Buffer.isBuffer(ra)) assert.ok(ra.equals(rb as Buffer), `${label}: data differs`);
  else assert.deepEqual(ra, rb, `${label}: result differs`);
  if (ea === undefined) {
    const kind = label.startsWith('rename dir') ? 'rename-dir' : label.split(' ')[0]!;
    succeeded[kind] = (succeeded[kind] ?? 0) + 1;
  }
}

/**
 * Every name with its type, mode, link count and content; `#k` numbers inodes in walk order,
 * so names that share an inode on one tree must share it on the other (and only those).
 */
function snapshotTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const classes = new Map<number, number>();
  const cls = (ino: number): string => {
    if (!classes.has(ino)) classes.set(ino, classes.size);
    return `#${classes.get(ino)}`;
  };
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      if (rel === '' && name === '.snapshots') continue;
      const p = join(rel, name);
      const st = fs.lstatSync(join(root, p));
      if (st.isDirectory()) {
        out[p] = `dir ${st.mode & 0o777} nlink ${st.nlink} ${cls(st.ino)}`;
        walk(p);
      } else if (st.isFIFO()) {
        out[p] = `fifo ${st.mode & 0o777} nlink ${st.nlink} ${cls(st.ino)}`;
      } else {
        const data = fs.readFileSync(join(root, p));
        out[p] = `file ${st.mode & 0o777} ${st.size} nlink ${st.nlink} ${cls(st.ino)} ${data.toString('base64').slice(0, 64)} ${require_hash(data)}`;
      }
    }
  };
  walk('');
  return out;
}

/** Paths under root (relative) of the entries `keep` accepts, sorted. */
function entries(root: string, keep: (st: fs.Stats) => boolean): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(join(root, p));
      if (keep(st)) out.push(p);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return out.sort();
}

/** mkfifo(1) with the path relative to root, so both trees give the same message on failure. */
function mkfifo(root: string, p: string): void {
  const r = spawnSync('mkfifo', [p], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw Object.assign(new Error(r.stderr), { code: r.stderr.replace(/^.*: /s, '').trim() || `exit ${r.status}` });
}

const isFifo = (p: string): boolean => {
  try {
    return fs.lstatSync(p).isFIFO();
  } catch {
    return false;
  }
};

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
  const sharesInode = (t: Record<string, string>): boolean => Object.values(t).some((e) => / nlink [2-9] #/.test(e) && !e.startsWith('dir'));
  let linksCompared = false;
  try {
    for (; step < steps; step++) {
      const p = randPath();
      const q = randPath();
      const M = join(h.mnt, p), R = join(ref, p);
      let op = rand();
      // Opening a fifo blocks (for a writer, or a reader): a content operation on a fifo
      // becomes a chmod.
      if (isFifo(R) && (op < 0.37 || (op >= 0.71 && op < 0.76) || op >= 0.89)) op = 0.69;
      if (op < 0.22) {
        const buf = data(pick(sizes));
        both(`write ${p}`, () => fs.writeFileSync(M, buf), () => fs.writeFileSync(R, buf));
      } else if (op < 0.31) {
        const buf = data(pick([1, 10, 5000, 200_000]));
        const at = pick([0, 7, 4096, 65_536, 1_000_000]);
        const w = (f: string): number => { const fd = fs.openSync(f, 'r+'); try { return fs.writeSync(fd, buf, 0, buf.length, at); } finally { fs.closeSync(fd); } };
        both(`pwrite ${p}@${at}`, () => w(M), () => w(R));
      } else if (op < 0.37) {
        const size = pick(sizes);
        both(`truncate ${p} ${size}`, () => fs.truncateSync(M, size), () => fs.truncateSync(R, size));
      } else if (op < 0.46) {
        both(`rename ${p} ${q}`, () => fs.renameSync(M, join(h.mnt, q)), () => fs.renameSync(R, join(ref, q)));
      } else if (op < 0.53) {
        both(`unlink ${p}`, () => fs.unlinkSync(M), () => fs.unlinkSync(R));
      } else if (op < 0.62) {
        both(`mkdir ${p}`, () => fs.mkdirSync(M), () => fs.mkdirSync(R));
      } else if (op < 0.67) {
        both(`rmdir ${p}`, () => fs.rmdirSync(M), () => fs.rmdirSync(R));
      } else if (op < 0.71) {
        const mode = pick([0o600, 0o644, 0o755]);
        both(`chmod ${p}`, () => fs.chmodSync(M, mode), () => fs.chmodSync(R, mode));
      } else if (op < 0.76) {
        const buf = data(pick([1, 999, 70_000]));
        both(`append ${p}`, () => fs.appendFileSync(M, buf), () => fs.appendFileSync(R, buf));
      } else if (op < 0.82) {
        // A hard link to an existing file (or fifo), under a random name.
        const files = entries(ref, (st) => st.isFile() || st.isFIFO());
        const src = files.length ? pick(files) : p;
        both(`link ${src} ${q}`, () => fs.linkSync(join(h.mnt, src), join(h.mnt, q)), () => fs.linkSync(join(ref, src), join(ref, q)));
      } else if (op < 0.85) {
        both(`mkfifo ${p}`, () => mkfifo(h.mnt, p), () => mkfifo(ref, p));
      } else if (op < 0.89) {
        // A directory renamed over another existing one (empty or not, or its own ancestor).
        const dirs = entries(ref, (st) => st.isDirectory());
        if (dirs.length < 2) {
          both(`mkdir ${p}`, () => fs.mkdirSync(M), () => fs.mkdirSync(R));
        } else {
          const [a, b] = [pick(dirs), pick(dirs)];
          both(`rename dir ${a} over dir ${b}`, () => fs.renameSync(join(h.mnt, a), join(h.mnt, b)), () => fs.renameSync(join(ref, a), join(ref, b)));
        }
      } else {
        both(`read ${p}`, () => fs.readFileSync(M), () => fs.readFileSync(R));
      }
      if (step % 50 === 49) {
        const want = snapshotTree(ref);
        assert.deepEqual(snapshotTree(h.mnt), want, `trees differ after step ${step}`);
        linksCompared ||= sharesInode(want);
      }
      if (step % 400 === 399) await h.settle();
    }
    await h.settle();
    assert.deepEqual(snapshotTree(h.mnt), snapshotTree(ref));
    h.unmount();
    h.mount();
    assert.deepEqual(snapshotTree(h.mnt), snapshotTree(ref), 'after remount');
    assert.match(h.ok('verify'), /no problems/);
    // The run did what it is for: links, fifos and directories over directories happened.
    if (steps >= 1000) for (const k of ['link', 'mkfifo', 'rename-dir']) assert.ok((succeeded[k] ?? 0) > 0, `no ${k} succeeded in ${steps} steps: ${JSON.stringify(succeeded)}`);
    // A run may end with every link gone again (seed 41125 did); the trees it compared on the way had some.
    if (steps >= 1000) assert.ok(linksCompared, 'some names shared an inode when the trees were compared');
  } catch (err) {
    (err as Error).message += ` (seed ${seed}, step ${step}; rerun with SAFE_FUZZ_SEED=${seed})`;
    throw err;
  }
});
