import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  type CdcParams, cdcMasks, cdcParams, cutsTs, cutsTsBytewise, gearTable, MAX_AVG, MIN_AVG,
} from '../../src/chunkstore/fastcdc.js';
import { ChunkBuffers, type CutFn, cuts, cutsNative, nativeLoadError, StreamChunker } from '../../src/chunkstore/chunker.js';

const NO_NATIVE = cutsNative
  ? false
  : `native addon absent (${nativeLoadError}); build it with npx node-gyp rebuild --directory native`;

// Deterministic from the fast-check seed so failures replay and shrink.
function xorshiftBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed | 0) || 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

type Kind = 'random' | 'zeros' | 'pattern' | 'sparse' | 'text';

// Low-entropy inputs matter: they drive the gear hash into fixed points or
// cycles, where min/max clamping decides everything.
function makeData(kind: Kind, n: number, seed: number): Uint8Array {
  const r = xorshiftBytes(n, seed);
  switch (kind) {
    case 'random': return r;
    case 'zeros': return new Uint8Array(n);
    case 'pattern': {
      const period = 1 + (r[0] ?? 0) % 64;
      return r.map((_, i) => r[i % period]!);
    }
    case 'sparse': return r.map((v, i) => (i % 97 === 0 ? v : 0));
    case 'text': return r.map((v) => 97 + (v % 16));
  }
}

const arbKind = fc.constantFrom<Kind>('random', 'random', 'zeros', 'pattern', 'sparse', 'text');
const arbSeed = fc.uint8Array({ minLength: 32, maxLength: 32 });
const arbAvg = fc.constantFrom(256, 512, 1024, 2048, 4096, 8192);
const paramCache = new Map<string, CdcParams>();
function params(avg: number, seed: Uint8Array): CdcParams {
  const k = `${avg}:${Buffer.from(seed).toString('hex')}`;
  let p = paramCache.get(k);
  if (!p) paramCache.set(k, (p = cdcParams(avg, seed)));
  return p;
}

// A buffer plus a sub-range, sized relative to max so that all branches
// (<= min, between, >= max, many chunks) come up.
const arbCase = fc
  .record({
    avg: arbAvg,
    seed: arbSeed,
    kind: arbKind,
    dataSeed: fc.integer(),
    // Integers, not fc.double: its doubles crowd around 0.
    sizeMille: fc.integer({ min: 0, max: 6000 }),
    a: fc.integer({ min: 0, max: 1000 }),
    b: fc.integer({ min: 0, max: 1000 }),
    eof: fc.boolean(),
  })
  .map((c) => {
    const p = params(c.avg, c.seed);
    const n = Math.floor((c.sizeMille * p.max) / 1000);
    const buf = makeData(c.kind, n, c.dataSeed);
    const lo = Math.floor((Math.min(c.a, c.b) * n) / 1000);
    const hi = Math.floor((Math.max(c.a, c.b) * n) / 1000);
    return { p, buf, start: lo, end: hi, eof: c.eof, kind: c.kind };
  });

const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);
const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('gearTable is deterministic, seed-dependent, full-width', () => {
  const s1 = new Uint8Array(32).fill(1);
  const s2 = new Uint8Array(32).fill(2);
  const g1 = gearTable(s1);
  assert.equal(g1.length, 256);
  assert.deepEqual(gearTable(s1), g1);
  assert.notDeepEqual(gearTable(s2), g1);
  assert.equal(new Set(g1).size, 256);
  assert.ok(g1.some((v) => v >= 0x80000000));
  assert.throws(() => gearTable(new Uint8Array(16)), TypeError);
});

test('cdcParams: min = avg/4, max = avg*8, validated', () => {
  const s = new Uint8Array(32);
  const p = cdcParams(8192, s);
  assert.equal(p.min, 2048);
  assert.equal(p.avg, 8192);
  assert.equal(p.max, 65536);
  assert.ok(cdcParams(MIN_AVG, s));
  assert.ok(cdcParams(MAX_AVG, s));
  for (const bad of [0, 128, MIN_AVG - 1, 3000, 8193, MAX_AVG * 2, 1.5 * 4096, NaN]) {
    assert.throws(() => cdcParams(bad, s), RangeError, String(bad));
  }
  assert.deepEqual(cdcMasks(8192), { maskS: 0xfffe0000 >>> 0, maskL: 0xffe00000 >>> 0 });
  assert.throws(() => cutsTs({ ...p, max: p.max + 1 }, new Uint8Array(10), 0, 10, true), RangeError);
});

// Pins the cut points: they decide dedup across versions and between peers,
// so an accidental change to the rule must fail loudly.
test('golden vector', () => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  const p = cdcParams(4096, seed);
  const data = xorshiftBytes(256 * 1024, 12345);
  const got = cutsTs(p, data, 0, data.length, true);
  assert.equal(sum(got), data.length);
  assert.deepEqual(got.slice(0, 12), GOLDEN_4096);
  assert.deepEqual(cuts(p, data, 0, data.length, true), got);
  assert.deepEqual(cutsTsBytewise(p, data, 0, data.length, true), got);
});
const GOLDEN_4096 = [4097, 4468, 4183, 7059, 4996, 1077, 4657, 4870, 1214, 4385, 5805, 5182];

test('empty input gives no chunks', () => {
  const p = params(1024, new Uint8Array(32));
  const impls: [string, CutFn][] = [['ts', cutsTs], ['auto', cuts]];
  if (cutsNative) impls.push(['native', cutsNative]);
  for (const [name, f] of impls) {
    for (const eof of [true, false]) {
      assert.deepEqual(f(p, new Uint8Array(0), 0, 0, eof), [], name);
      assert.deepEqual(f(p, new Uint8Array(100), 37, 37, eof), [], name);
    }
  }
  const sc = new StreamChunker(p);
  assert.deepEqual(sc.push(new Uint8Array(0)), []);
  assert.deepEqual(sc.finish(), []);
});

test('bad ranges throw in both implementations', (t) => {
  const p = params(1024, new Uint8Array(32));
  const b = new Uint8Array(100);
  const impls: CutFn[] = [cutsTs];
  if (cutsNative) impls.push(cutsNative);
  else t.diagnostic(`native part skipped: ${NO_NATIVE}`);
  for (const f of impls) {
    for (const [s, e] of [[-1, 10], [10, 5], [0, 101], [0.5, 10], [0, NaN]] as const) {
      assert.throws(() => f(p, b, s, e, true), RangeError);
    }
    assert.throws(() => f({ ...p, gear: new Uint32Array(255) }, b, 0, 10, true), TypeError);
  }
});

test('chunk lengths: within [min, max] except the last; sum covers the range on eof', () => {
  fc.assert(
    fc.property(arbCase, ({ p, buf, start, end, eof }) => {
      const lens = cutsTs(p, buf, start, end, eof);
      const total = sum(lens);
      const n = end - start;
      for (let i = 0; i < lens.length; i++) {
        const last = eof && i === lens.length - 1;
        assert.ok(lens[i]! <= p.max, `len ${lens[i]} > max`);
        if (last) assert.ok(lens[i]! > 0);
        else assert.ok(lens[i]! >= p.min, `len ${lens[i]} < min at ${i}/${lens.length}`);
      }
      if (eof) {
        assert.equal(total, n);
      } else {
        assert.ok(total <= n);
        assert.ok(n - total < p.max, 'undecided remainder must be < max');
        // Decided cuts never change once more data arrives.
        assert.deepEqual(lens, cutsTs(p, buf, start, end, true).slice(0, lens.length));
      }
    }),
    { numRuns: 300 },
  );
});

test('word-at-a-time TS equals the bytewise TS', () => {
  fc.assert(
    fc.property(arbCase, ({ p, buf, start, end, eof }) => {
      assert.deepEqual(cutsTs(p, buf, start, end, eof), cutsTsBytewise(p, buf, start, end, eof));
    }),
    { numRuns: 300 },
  );
});

// The word reads depend on the alignment of buf.byteOffset + index.
test('cuts do not depend on where the range sits in the buffer', () => {
  fc.assert(
    fc.property(arbCase, fc.integer({ min: 0, max: 100 }), ({ p, buf, start, end, eof }, pad) => {
      const want = cutsTs(p, buf, start, end, eof);
      const shifted = new Uint8Array(pad + buf.length);
      shifted.set(buf, pad);
      assert.deepEqual(cutsTs(p, shifted, start + pad, end + pad, eof), want);
      assert.deepEqual(cutsTs(p, shifted.subarray(pad), start, end, eof), want);
      if (cutsNative) assert.deepEqual(cutsNative(p, shifted.subarray(pad), start, end, eof), want);
      // A Buffer (other hidden class, pooled offset) must cut the same.
      const asBuffer = Buffer.from(buf.subarray(start, end));
      assert.deepEqual(cutsTs(p, asBuffer, 0, asBuffer.length, eof), want);
    }),
    { numRuns: 100 },
  );
});

test('native and TS produce identical cuts', { skip: NO_NATIVE }, () => {
  const nat = cutsNative!;
  fc.assert(
    fc.property(arbCase, ({ p, buf, start, end, eof }) => {
      assert.deepEqual(nat(p, buf, start, end, eof), cutsTs(p, buf, start, end, eof));
    }),
    { numRuns: 500 },
  );
});

test('native and TS agree at large averages and on Buffers', { skip: NO_NATIVE }, () => {
  const nat = cutsNative!;
  const seed = new Uint8Array(32).fill(7);
  const data = Buffer.from(xorshiftBytes(24 * 1024 * 1024, 99));
  for (const avg of [65536, 1 << 20, MAX_AVG]) {
    const p = cdcParams(avg, seed);
    for (const eof of [true, false]) {
      const a = nat(p, data, 3, data.length, eof);
      assert.deepEqual(a, cutsTs(p, data, 3, data.length, eof), `avg ${avg} eof ${eof}`);
      assert.deepEqual(a, cutsTsBytewise(p, data, 3, data.length, eof), `avg ${avg} eof ${eof}`);
    }
  }
});

for (const [name, impl] of [['ts', cutsTs], ['native', cutsNative]] as const) {
  test(`StreamChunker (${name}) with random push sizes equals one-shot cutting`,
    { skip: impl ? false : NO_NATIVE }, () => {
      const f = impl!;
      fc.assert(
        fc.property(
          arbAvg, arbSeed, arbKind, fc.integer(), fc.integer({ min: 0, max: 300_000 }),
          fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 40 }),
          (avg, seed, kind, dataSeed, n, sizes) => {
            const p = params(avg, seed);
            const data = makeData(kind, n, dataSeed);
            const want = f(p, data, 0, n, true);
            const sc = new StreamChunker(p, f);
            const got: Uint8Array[] = [];
            let off = 0;
            for (let i = 0; off < n; i++) {
              const k = Math.min(sizes[i % sizes.length]! + (i >= sizes.length ? 1 : 0), n - off);
              // A fresh array per push, so views of it may be kept; any view
              // of the chunker's own buffer would be overwritten by later pushes.
              got.push(...sc.push(data.slice(off, off + k)));
              off += k;
              assert.ok(sc.pending < p.max, `pending ${sc.pending} >= max`);
            }
            got.push(...sc.finish());
            assert.equal(sc.pending, 0);
            assert.deepEqual(got.map((c) => c.length), want);
            let o = 0;
            for (const c of got) {
              assert.ok(Buffer.from(c).equals(data.subarray(o, o + c.length)), `chunk at ${o} differs`);
              o += c.length;
            }
          },
        ),
        { numRuns: 150 },
      );
    });
}

test('chunkers sharing ChunkBuffers, the chunks of each call copied before the next, equal one-shot cutting', () => {
  fc.assert(
    fc.property(
      arbAvg, arbSeed, fc.array(fc.tuple(fc.integer(), fc.integer({ min: 0, max: 200_000 })), { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }),
      (avg, seed, files, sizes) => {
        const p = params(avg, seed);
        const buffers = new ChunkBuffers(p.max);
        // One scratch block for every push, overwritten each time, as ingest reads files.
        const block = new Uint8Array(70_000);
        for (const [dataSeed, n] of files) {
          const data = makeData('random', n, dataSeed);
          const sc = new StreamChunker(p, cuts, buffers);
          const got: Buffer[] = [];
          let i = 0;
          for (let off = 0; off < n; i++) {
            const k = Math.min(sizes[i % sizes.length]!, n - off);
            block.set(data.subarray(off, off + k));
            for (const c of sc.push(block.subarray(0, k))) got.push(Buffer.from(c));
            off += k;
          }
          for (const c of sc.finish()) got.push(Buffer.from(c));
          assert.deepEqual(got.map((c) => c.length), cuts(p, data, 0, n, true));
          assert.ok(Buffer.concat(got).equals(data));
        }
      },
    ),
    { numRuns: 100 },
  );
});

test('small files chunked one after another use the same buffer', () => {
  const p = params(512, new Uint8Array(32).fill(3));
  const buffers = new ChunkBuffers(p.max);
  const seen = new Set<ArrayBufferLike>();
  for (let f = 0; f < 5; f++) {
    const sc = new StreamChunker(p, cuts, buffers);
    assert.deepEqual(sc.push(xorshiftBytes(300, f + 1)), []);
    const [only] = sc.finish();
    assert.equal(only!.length, 300);
    seen.add(only!.buffer);
  }
  assert.equal(seen.size, 1);
});

test('StreamChunker is reusable after finish()', () => {
  const p = params(512, new Uint8Array(32).fill(3));
  const sc = new StreamChunker(p);
  const a = xorshiftBytes(20_000, 1);
  const first = [...sc.push(a), ...sc.finish()];
  const second = [...sc.push(a), ...sc.finish()];
  assert.deepEqual(first.map(digest), second.map(digest));
  assert.equal(sum(first.map((c) => c.length)), a.length);
});

// Resync is statistical: an insert that kills a cut point within the hash
// window (32 bytes) of it shifts the next chunks' starts, and with min-skipping
// that can cascade a few chunks (1000 random trials here: 92% changed 1
// chunk, mean 1.16, worst 13). So check the mean over a fixed sample (fixed
// seed: no flaky tail) and bound the worst case loosely.
test('content-shift resilience: an insert near the start leaves later chunks intact', () => {
  const seed = new Uint8Array(32).fill(9);
  const p = cdcParams(8192, seed);
  const cases = fc.sample(
    fc.tuple(fc.integer(), fc.integer({ min: 0, max: 20_000 }), fc.uint8Array({ minLength: 1, maxLength: 300 })),
    { seed: 20161, numRuns: 40 },
  );
  const chunksOf = (b: Uint8Array) => {
    const out: string[] = [];
    let o = 0;
    for (const n of cuts(p, b, 0, b.length, true)) out.push(digest(b.subarray(o, (o += n))));
    return out;
  };
  let total = 0;
  for (const [dataSeed, at, ins] of cases) {
    const orig = xorshiftBytes(1 << 20, dataSeed);
    const edited = new Uint8Array(orig.length + ins.length);
    edited.set(orig.subarray(0, at), 0);
    edited.set(ins, at);
    edited.set(orig.subarray(at), at + ins.length);
    const before = new Set(chunksOf(orig));
    const after = chunksOf(edited);
    const fresh = after.filter((h) => !before.has(h)).length;
    assert.ok(after.length > 64);
    assert.ok(fresh >= 1 && fresh <= 24, `${fresh} of ${after.length} chunks changed`);
    total += fresh;
  }
  assert.ok(total / cases.length <= 2.5, `mean ${total / cases.length} changed chunks per edit`);
});
