// The channel's receive queue: bytes come out exactly as they went in, however the peer cut them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ByteQueue } from '../../src/peers/wire/byte-queue.js';

test('property: takes and peeks return the pushed bytes in order, whatever the piece sizes', () => {
  const pieces = fc.array(fc.oneof(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ minLength: 4000, maxLength: 9000 })), { maxLength: 60 });
  fc.assert(
    fc.property(pieces, fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 40 }), (ps, takes) => {
      const all = Buffer.concat(ps);
      const q = new ByteQueue();
      let pushed = 0;
      let taken = 0;
      for (const [i, p] of ps.entries()) {
        q.push(p);
        pushed += p.length;
        // Take in between pushes too: slabs are extended while their front is being consumed.
        const n = Math.min(takes[i % takes.length]!, q.length);
        if (i % 3 === 0 && n > 0) {
          if (n >= 4) assert.equal(q.peekUint32(), all.readUInt32BE(taken));
          assert.equal(q.peek(n - 1), all[taken + n - 1]);
          assert.deepEqual(Buffer.from(q.take(n)), all.subarray(taken, taken + n));
          taken += n;
        }
        assert.equal(q.length, pushed - taken);
      }
      assert.deepEqual(Buffer.from(q.take(q.length)), all.subarray(taken));
      assert.throws(() => q.peek(0), RangeError);
    }),
  );
});

test('pieces handed in are copied or kept, never changed; taken bytes are copies', () => {
  const q = new ByteQueue();
  const small = Uint8Array.of(1, 2, 3);
  const big = new Uint8Array(5000).fill(7);
  q.push(small);
  q.push(big);
  small[0] = 9; // the caller (libp2p) may reuse its buffer once push returns
  const out = q.take(5003);
  assert.deepEqual([...out.subarray(0, 3)], [1, 2, 3]);
  out[4] = 0;
  assert.equal(big[1], 7);
});

test('a megabyte in 2-byte pieces is cut out in linear time', { timeout: 20_000 }, () => {
  // A peer's tiny yamux frames each arrive as a chunk. Cutting one frame out of 524,288 chunks
  // with Array.shift took minutes (V8 moves a long array to shift it) and a buddy's event loop
  // hung on it (fuzz seed 861835500); here it takes milliseconds, and the 20 s bound is far.
  const q = new ByteQueue();
  for (let i = 0; i < 1 << 19; i++) q.push(Uint8Array.of(i & 0xff, (i >> 8) & 0xff));
  const out = q.take(1 << 20);
  for (let i = 0; i < 1 << 19; i += 4099) assert.deepEqual([out[2 * i], out[2 * i + 1]], [i & 0xff, (i >> 8) & 0xff]);
  assert.equal(q.length, 0);
});
