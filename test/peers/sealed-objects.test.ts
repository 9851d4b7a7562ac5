// Metadata segments: pages of a delta go in and come back the same, a tree-wide change packs
// small, the sealing is deterministic, and an altered box, another segment's id, another key or
// a damaged frame is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encode } from '../../src/peers/wire/canonical.js';
import { MetaSealer } from '../../src/peers/metadata/sealed-objects.js';
import { SegmentBuilder, readSegment, SEGMENT_FORMAT } from '../../src/peers/metadata/meta-segments.js';
import type { DeltaPage, InodeRow } from '../../src/snapshot/deltas.js';

const inode = (ino: number, born: number, died: number | null): InodeRow => ({
  ino, born, died, kind: 0o100644 & 0o170000, mode: 0o644, uid: 1000, gid: 1000, nlink: 1, size: 1000 + ino,
  atime: 1764000000123.456 + ino, mtime: 1764000000123 + ino * 7, ctime: 1764000001000.001, target: null, cl: ino + 100, xattrs: null,
});

/** A directory of 2,000 files all rewritten once (what rsync of a new release does), as pages. */
function pages(): DeltaPage[] {
  const rows = Array.from({ length: 2000 }, (_, i) => inode(1000 + i, 3, null));
  rows.push({ ...inode(7, 2, 3), kind: 0o120000, target: Buffer.from('../t\xff'), xattrs: '{"user.a":"eA=="}', cl: null });
  return [
    { kind: 'inodes', rows: rows.slice(0, 1024) },
    { kind: 'inodes', rows: rows.slice(1024) },
    { kind: 'inodeDeaths', rows: Array.from({ length: 2000 }, (_, i) => ({ ino: 5000 + i, born: 1, died: 3 })) },
    { kind: 'entries', rows: Array.from({ length: 2000 }, (_, i) => ({ parent: 7, name: Buffer.from(`drivers-net-ethernet-${i}.c`), born: 3, died: i % 2 ? null : 3, ino: 1000 + i })) },
    { kind: 'entryDeaths', rows: [{ parent: 7, name: Buffer.from([0xff, 0x00, 0x41]), born: 1, died: 3 }] },
    {
      kind: 'clists',
      rows: [
        { cl: 3, size: 40000, spans: [{ off: 0, handle: randomBytes(32), raw: 30000, id: randomBytes(32) }, { off: 30000, handle: randomBytes(32), raw: 10000, id: randomBytes(32) }] },
        { cl: 9, size: 0, spans: [] },
      ],
    },
  ];
}

function build(seq: number, ps: DeltaPage[]): Buffer {
  const b = new SegmentBuilder(SegmentBuilder.compressor(), { format: SEGMENT_FORMAT, seq, from: 2, to: 3 });
  for (const p of ps) b.add(p);
  return b.body();
}

test('a segment gives back its pages, packs a tree-wide change small, and seals deterministically', () => {
  const ps = pages();
  const body = build(5, ps);
  const { header, pages: back } = readSegment(body);
  assert.deepEqual(header, { format: SEGMENT_FORMAT, seq: 5, from: 2, to: 3 });
  assert.deepEqual([...back], ps);
  // The inode rows alone in the canonical encoding, as plain tuples without compression.
  const tuples = encode((ps[0]!.rows as InodeRow[]).concat(ps[1]!.rows as InodeRow[]).map((r) => [r.ino, r.born, r.died, r.kind, r.mode, r.uid, r.gid, r.nlink, r.size, Math.round(r.atime * 1000), Math.round(r.mtime * 1000), Math.round(r.ctime * 1000), r.cl])).length;
  assert.ok(body.length < tuples / 2, `segment ${body.length} bytes for ${tuples} bytes of inode tuples alone`);
  const s = new MetaSealer(randomBytes(32));
  const a = s.seal(5, body);
  assert.ok(a.box.equals(s.seal(5, body).box), 'same segment, same box');
  assert.ok(a.id.equals(s.segmentId(5)));
  assert.ok(s.open(5, a.box).equals(body));
});

test('an altered box, another segment id, another key or a damaged frame is refused', () => {
  const body = build(5, pages());
  const s = new MetaSealer(randomBytes(32));
  const a = s.seal(5, body);
  const bad = Buffer.from(a.box);
  bad[bad.length >> 1]! ^= 1;
  assert.throws(() => s.open(5, bad), /does not decrypt/);
  assert.throws(() => s.open(6, a.box), /does not decrypt/);
  assert.throws(() => new MetaSealer(randomBytes(32)).open(5, a.box), /does not decrypt/);
  assert.throws(() => [...readSegment(body.subarray(0, body.length - 3)).pages], /segment ends inside a frame/);
  const flipped = Buffer.from(body);
  flipped[flipped.length - 20]! ^= 0xff;
  assert.throws(() => [...readSegment(flipped).pages], /segment frame does not decode|page field|do not match/);
  const future = new SegmentBuilder(SegmentBuilder.compressor(), { format: 9, seq: 1, from: 0, to: 1 }).body();
  assert.throws(() => readSegment(future), /segment format 9, this release reads format 2/);
});
