// The daemon lets V8's young generation grow under a burst (a shipment's frames in flight die
// young instead of being promoted) and shrinks it back afterwards (reduceV8Heap): V8 keeps a
// grown young generation for good, and a full collection from gc() leaves it as it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { loaded } from '../../src/chunkstore/native.js';

const NATIVE = new URL('../../src/chunkstore/native.js', import.meta.url).href;

// In a process of its own, with V8's default limits (the daemon's): objects that outlive a few
// scavenges make V8 grow the young generation to its limit.
const SCRIPT = `
import { reduceV8Heap } from ${JSON.stringify(NATIVE)};
import { getHeapSpaceStatistics } from 'node:v8';
const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
let keep = [];
for (let i = 0; i < 2e6; i++) {
  keep.push({ i, s: 'x' + i });
  if (keep.length > 200000) keep = keep.slice(100000);
}
keep = null;
const grown = young();
globalThis.gc();
const afterGc = young();
reduceV8Heap();
console.log(JSON.stringify({ grown, afterGc, reduced: young() }));
`;

test('reduceV8Heap shrinks a grown young generation back, which a full collection does not', { skip: loaded.addon ? false : `native addon absent (${loaded.error})` }, () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', SCRIPT], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { grown, afterGc, reduced } = JSON.parse(r.stdout) as { grown: number; afterGc: number; reduced: number };
  assert.ok(grown >= 8 << 20, `the young generation only grew to ${grown} bytes`);
  assert.equal(afterGc, grown);
  assert.ok(reduced <= 2 << 20, `still ${reduced} bytes after reduceV8Heap (from ${grown})`);
});
