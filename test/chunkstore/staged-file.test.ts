// Staged files sealed at rest: any sequence of writes (at any offset, over holes, past the end)
// and truncations reads back exactly as a plain file would, and nothing of it is in clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { StagedFile, STAGED_HEADER } from '../../src/chunkstore/staged-file.js';
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
