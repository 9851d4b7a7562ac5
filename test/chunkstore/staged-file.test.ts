// Staged files sealed at rest: any sequence of writes (at any offset, over holes, past the end)
// and truncations reads back exactly as a plain file would, and nothing of it is in clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ctrXorTs, StagedFile, STAGED_HEADER } from '../../src/chunkstore/staged-file.js';
import { ctrXor } from '../../src/chunkstore/native.js';
import { secret32, tempDir } from '../helpers.js';

type Op = { write: { pos: number; data: Uint8Array } } | { truncate: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ write: fc.record({ pos: fc.nat(400), data: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 70 }), fc.nat(70).map((n) => new Uint8Array(n + 1))) }) }) },
  { weight: 1, arbitrary: fc.record({ truncate: fc.nat(420) }) },
);

test('writes and truncations read back as a plain file does; the file holds no plaintext', () => {
  const dir = tempDir();
  const key = secret32();
  let round = 0;
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const path = join(dir, `f${round++}`);
      const fd = openSync(path, 'w+');
      try {
        const f = StagedFile.create(fd, key);
        let model = Buffer.alloc(0);
        let size = 0;
        for (const o of ops) {
          if ('write' in o) {
            const { pos, data } = o.write;
            size = f.write(Buffer.from(data), pos, size);
            if (model.length < pos + data.length) model = Buffer.concat([model, Buffer.alloc(pos + data.length - model.length)]);
            model.set(data, pos);
          } else {
            f.truncate(o.truncate, size);
            size = o.truncate;
            model = model.length >= size ? model.subarray(0, size) : Buffer.concat([model, Buffer.alloc(size - model.length)]);
          }
          assert.equal(f.size(), size);
          const again = StagedFile.open(fd, key);
          const out = Buffer.alloc(size);
          assert.equal(again.read(out, size, 0, size), size);
          assert.deepEqual(out, model);
          for (let p = 0; p < size; p += 37) {
            const part = Buffer.alloc(23);
            const n = again.read(part, 23, p, size);
            assert.deepEqual(part.subarray(0, n), model.subarray(p, p + n));
          }
        }
      } finally {
        closeSync(fd);
      }
    }),
    { numRuns: 300 },
  );
});

test('content is not in clear on disk, and another key reads something else', () => {
  const dir = tempDir();
  const key = secret32();
  const path = join(dir, 'f');
  const fd = openSync(path, 'w+');
  const text = Buffer.from('A PLAINTEXT LINE THAT MUST NOT BE ON DISK\n'.repeat(100));
  const f = StagedFile.create(fd, key);
  f.write(text, 0, 0);
  const disk = readFileSync(path);
  assert.equal(disk.length, STAGED_HEADER + text.length);
  assert.ok(!disk.includes(Buffer.from('PLAINTEXT LINE')));
  const other = StagedFile.open(fd, secret32());
  const out = Buffer.alloc(text.length);
  other.read(out, text.length, 0, text.length);
  assert.ok(!out.equals(text));
  closeSync(fd);
});

/** The AES-256-CTR keystream of a staged file on `fd` (its key and nonce as the header names them), from byte 0 of the content. */
function keystream(fd: number, stagingKey: Buffer, length: number): Buffer {
  const head = Buffer.alloc(STAGED_HEADER);
  readSync(fd, head, 0, STAGED_HEADER, 0);
  const key = createHmac('sha256', stagingKey).update(head.subarray(8, 24)).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

test('bytes whose ciphertext happens to be all zeros read back: a partial last block (or a read ending inside a block) is not taken for a hole', () => {
  const dir = tempDir();
  const key = secret32();
  // Content of 32 + tail bytes whose last, partial block encrypts to zeros on disk: a random
  // last block does with probability 256^-tail (1 file in ~4,000 of random sizes).
  for (const tail of [1, 2, 5, 15]) {
    const fd = openSync(join(dir, `tail${tail}`), 'w+');
    try {
      const f = StagedFile.create(fd, key);
      const data = randomBytes(32 + tail);
      keystream(fd, key, 32 + tail).copy(data, 32, 32);
      let size = f.write(data, 0, 0);
      assert.ok(readFileSync(join(dir, `tail${tail}`)).subarray(STAGED_HEADER + 32).equals(Buffer.alloc(tail)), 'the last block is zeros on disk');
      const out = Buffer.alloc(size);
      StagedFile.open(fd, key).read(out, size, 0, size);
      assert.deepEqual(out, data, `a last block of ${tail} bytes`);
      // Written on past it, the block keeps its bytes.
      const more = randomBytes(40);
      size = f.write(more, size + 3, size);
      const all = Buffer.alloc(size);
      StagedFile.open(fd, key).read(all, size, 0, size);
      assert.deepEqual(all, Buffer.concat([data, Buffer.alloc(3), more]), `a last block of ${tail} bytes, written past`);
    } finally {
      closeSync(fd);
    }
  }
  // A read that ends inside a block whose first bytes encrypt to zeros.
  const fd = openSync(join(dir, 'cut'), 'w+');
  try {
    const f = StagedFile.create(fd, key);
    const data = randomBytes(64);
    keystream(fd, key, 21).copy(data, 16, 16, 21);
    f.write(data, 0, 0);
    const part = Buffer.alloc(5);
    assert.equal(StagedFile.open(fd, key).read(part, 5, 16, 64), 5);
    assert.deepEqual(part, data.subarray(16, 21));
  } finally {
    closeSync(fd);
  }
});

test('a staged file of release 0.2.0 (version 1) still reads its zero last block as a hole', () => {
  const dir = tempDir();
  const key = secret32();
  const fd = openSync(join(dir, 'v1'), 'w+');
  try {
    StagedFile.create(fd, key);
    writeSync(fd, Buffer.from('safestg\x01', 'latin1'), 0, 8, 0);
    // What a truncation that grew an empty file left there: nothing but a hole.
    ftruncateSync(fd, STAGED_HEADER + 1001);
    const out = Buffer.alloc(1001, 1);
    assert.equal(StagedFile.open(fd, key).read(out, 1001, 0, 1001), 1001);
    assert.deepEqual(out, Buffer.alloc(1001));
  } finally {
    closeSync(fd);
  }
});

test("the addon's AES-CTR matches its TS twin at any offset and length, in place too", () => {
  assert.ok(ctrXor, 'the native addon is built');
  const key = Buffer.from(secret32());
  fc.assert(
    fc.property(fc.nat(1 << 20), fc.uint8Array({ maxLength: 3000 }), (pos, data) => {
      const want = Buffer.alloc(data.length);
      ctrXorTs(key, pos, data, want);
      const got = Buffer.alloc(data.length);
      ctrXor!(key, pos, data, got);
      assert.deepEqual(got, want);
      const inPlace = Buffer.from(data);
      ctrXor!(key, pos, inPlace, inPlace);
      assert.deepEqual(inPlace, want);
    }),
    { numRuns: 500 },
  );
  assert.throws(() => ctrXor!(key.subarray(0, 16), 0, Buffer.alloc(4), Buffer.alloc(4)), TypeError);
  assert.throws(() => ctrXor!(key, 0, Buffer.alloc(8), Buffer.alloc(4)), TypeError);
});

test("the addon's AES-CTR from an IV is Node's aes-256-ctr stream, cut anywhere (the group network's peers may use either)", () => {
  assert.ok(ctrXor, 'the native addon is built');
  // IVs whose counter carries across bytes and across its 64-bit halves are the likely slips.
  const iv = fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(255).map((b) => Buffer.alloc(16, 0xff).fill(b, 0, 8)), fc.constant(Buffer.alloc(16, 0xff)));
  fc.assert(
    fc.property(iv, fc.uint8Array({ minLength: 1, maxLength: 5000 }), fc.array(fc.nat(400), { maxLength: 20 }), (ivBytes, data, cuts) => {
      const key = Buffer.from(secret32());
      const start = Buffer.from(ivBytes);
      const want = createCipheriv('aes-256-ctr', key, start).update(data);
      const got = Buffer.from(data);
      let pos = 0;
      for (const cut of [...cuts, data.length]) {
        const end = Math.min(data.length, pos + cut);
        ctrXor!(key, pos, got.subarray(pos, end), got.subarray(pos, end), start);
        pos = end;
      }
      assert.deepEqual(got, want);
    }),
    { numRuns: 300 },
  );
  assert.throws(() => ctrXor!(Buffer.alloc(32), 0, Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(8)), TypeError);
});
