// The daemon gives its C heap's free pages back when it goes quiet (trimHeap): without it, the
// holes a burst of reads leaves stay in its RSS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { loaded } from '../../src/chunkstore/native.js';

const NATIVE = new URL('../../src/chunkstore/native.js', import.meta.url).href;

// In a process of its own, for a heap this test alone shaped: 64 MB of 16 KiB buffers (malloc'd,
// under glibc's mmap threshold), all freed but the last, which keeps the heap's top in use so
// glibc's own trimming of the top cannot give the rest back.
const SCRIPT = `
import { trimHeap } from ${JSON.stringify(NATIVE)};
import { readFileSync } from 'node:fs';
const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
let bufs = [];
for (let i = 0; i < 4000; i++) bufs.push(Buffer.allocUnsafeSlow(16384).fill(1));
const pin = bufs.at(-1);
bufs = null;
globalThis.gc();
globalThis.gc();
await new Promise((r) => setTimeout(r, 50));
const before = rss();
const released = trimHeap();
console.log(JSON.stringify({ released, before, after: rss(), pinned: pin.length }));
`;

test('trimHeap hands the free pages of a holed C heap back to the system', { skip: loaded.addon ? false : `native addon absent (${loaded.error})` }, () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', SCRIPT], { encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '2' } });
  assert.equal(r.status, 0, r.stderr);
  const { released, before, after } = JSON.parse(r.stdout) as { released: boolean; before: number; after: number };
  assert.equal(released, true);
  assert.ok(after < before - 32e6, `RSS ${before} before the trim, ${after} after`);
});
