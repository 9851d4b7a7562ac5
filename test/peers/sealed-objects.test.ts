// Metadata objects: sealed deterministically, opened back to the same records, compressed
// when that helps, and refused when altered or opened with another key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encode } from '../../src/peers/canonical.js';
import { ObjectSealer } from '../../src/peers/sealed-objects.js';
import type { InodeRecord } from '../../src/snapshot/records.js';

const version = (born: number, died: number | null) => ({
  born, died, kind: 0o040000, mode: 0o755, uid: 1000, gid: 1000, nlink: 2, size: 0,
  atime: 1764000000123.456, mtime: 1764000000123, ctime: 1764000001000, target: null, cl: null, xattrs: null,
});

/** A directory whose 400 children were all replaced once (what rsync of a new release does). */
const dir: InodeRecord = {
  ino: 7,
  versions: [version(1, 3), version(3, null)],
  entries: Array.from({ length: 400 }, (_, i) => [
    { name: Buffer.from(`drivers-net-ethernet-${i}.c`), born: 1, died: 3, ino: 1000 + i },
    { name: Buffer.from(`drivers-net-ethernet-${i}.c`), born: 3, died: null, ino: 5000 + i },
  ]).flat(),
};

test('objects round-trip, seal deterministically, and a large directory compresses', () => {
  const s = new ObjectSealer(randomBytes(32));
  const a = s.sealInode(dir);
  assert.ok(a.box.equals(s.sealInode(dir).box), 'same version, same box');
  const back = s.open(a.id, a.box);
  assert.equal(back.kind, 'inode');
  assert.deepEqual(back.record, dir);
  // What the entries alone take in the canonical encoding, uncompressed and without names of fields.
  const encoded = encode(dir.entries.map((e) => [e.name, e.born, e.died, e.ino])).length;
  assert.ok(a.box.length < encoded / 2, `box ${a.box.length} bytes for ${encoded} encoded`);
  const link: InodeRecord = { ino: 9, versions: [{ ...version(2, null), kind: 0o120000, target: Buffer.from('../t\xff'), xattrs: '{"user.a":"eA=="}' }], entries: [] };
  const file: InodeRecord = { ino: 10, versions: [{ ...version(1, 2), kind: 0o100000, size: 40000, cl: 3 }, { ...version(2, null), kind: 0o100000, size: 0, cl: null }], entries: [] };
  for (const r of [link, file]) {
    const o = s.sealInode(r);
    assert.deepEqual(s.open(o.id, o.box).record, r);
  }
  const list = { cl: 3, size: 40000, spans: [{ off: 0, handle: randomBytes(32), raw: 40000, id: randomBytes(32) }] };
  const l = s.sealChunkList(list);
  assert.deepEqual(s.open(l.id, l.box).record, list, 'an incompressible object is stored raw and opens too');
});

test('an altered box, another object id or another key is refused', () => {
  const s = new ObjectSealer(randomBytes(32));
  const a = s.sealInode(dir);
  const bad = Buffer.from(a.box);
  bad[bad.length >> 1]! ^= 1;
  assert.throws(() => s.open(a.id, bad), /does not decrypt/);
  assert.throws(() => s.open(s.inodeId(8), a.box), /does not decrypt/);
  assert.throws(() => new ObjectSealer(randomBytes(32)).open(a.id, a.box), /does not decrypt/);
});
