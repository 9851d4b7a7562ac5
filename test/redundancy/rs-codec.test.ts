import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeStripe, encodeStripe, rebuildShards, shardSizeFor, StripeError } from '../../src/redundancy/rs-codec.js';

/** Every subset of `n` indexes with exactly `size` members. */
function subsets(n: number, size: number): number[][] {
  const out: number[][] = [];
  const walk = (from: number, acc: number[]): void => {
    if (acc.length === size) return void out.push([...acc]);
    for (let i = from; i < n; i++) walk(i + 1, [...acc, i]);
  };
  walk(0, []);
  return out;
}

test('rs 4+2: every choice of 4 shards gives the stripe back, and every lost pair is rebuilt exactly', async () => {
  const bytes = randomBytes(100_003); // not a multiple of k or of 8: the last shard is padded
  const shards = await encodeStripe(bytes, 4, 2);
  assert.equal(shards.length, 6);
  assert.ok(shards.every((s) => s.length === shardSizeFor(bytes.length, 4) && s.length % 8 === 0));
  for (const keep of subsets(6, 4)) {
    const partial = shards.map((s, i) => (keep.includes(i) ? s : null));
    assert.deepEqual(await decodeStripe(partial, 4, 2, bytes.length), bytes, `from shards ${keep}`);
    const lost = [0, 1, 2, 3, 4, 5].filter((i) => !keep.includes(i));
    const rebuilt = await rebuildShards(partial, 4, 2, lost);
    lost.forEach((l, j) => assert.deepEqual(rebuilt[j], shards[l], `shard ${l} from ${keep}`));
  }
});

test('property: any k of k+m shards decode, for random shapes and lengths', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.integer(),
      async (k, m, length, seed) => {
        const bytes = Buffer.alloc(length, seed & 0xff);
        for (let i = 0; i < length; i++) bytes[i] = (seed * 31 + i * 7) & 0xff;
        const shards = await encodeStripe(bytes, k, m);
        // Drop m shards chosen by the seed.
        const order = shards.map((_, i) => i).sort((a, b) => ((a * 2654435761 + seed) >>> 0) % 97 - ((b * 2654435761 + seed) >>> 0) % 97);
        const dropped = new Set(order.slice(0, m));
        const partial = shards.map((s, i) => (dropped.has(i) ? null : s));
        assert.deepEqual(await decodeStripe(partial, k, m, length), bytes);
      },
    ),
    { numRuns: 200 },
  );
});

test('known answer: the shards of a fixed stripe never drift (buddies hold them across releases)', async () => {
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37 + 11) & 0xff));
  const shards = await encodeStripe(bytes, 4, 2);
  // Systematic: the data shards are the stripe itself, zero-padded to 4 x 256 bytes.
  assert.deepEqual(Buffer.concat(shards.slice(0, 4)), Buffer.concat([bytes, Buffer.alloc(24)]));
  const digest = createHash('sha256');
  for (const s of shards) digest.update(s);
  // Pinned from release 0.3's coder (@ronomon/reed-solomon 6.0.0).
  assert.equal(digest.digest('hex'), '235d3d42f14134cd01a209e5fdce7a4ed85a3824c2000191a1b0db007cb1ac17');
});

test('too few shards, mixed sizes, or a code out of range: a StripeError, not a wrong answer', async () => {
  const shards = await encodeStripe(randomBytes(4096), 4, 2);
  await assert.rejects(decodeStripe([shards[0]!, null, null, shards[3]!, shards[4]!, null], 4, 2, 4096), /3 of 6 shards present; 4 are needed/);
  await assert.rejects(decodeStripe([shards[0]!, shards[1]!.subarray(8), shards[2]!, shards[3]!, null, null], 4, 2, 4096), StripeError);
  await assert.rejects(encodeStripe(randomBytes(64), 25, 2), /no Reed-Solomon code 25\+2/);
  await assert.rejects(decodeStripe(shards, 4, 2, 1 << 20), /cannot hold/);
});
