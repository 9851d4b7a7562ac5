import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ChunkStore, MissingChunkError, StoreLockedError } from '../../src/chunkstore/store.js';
import { Ingester, type IngestedFile } from '../../src/chunkstore/ingest.js';
import { cdcParams } from '../../src/chunkstore/fastcdc.js';
import { ChunkError, Sealer } from '../../src/chunkstore/sealer.js';
import { collectGarbage, type GcProgress } from '../../src/chunkstore/gc.js';
import { verifyStore } from '../../src/chunkstore/verify.js';
import { packPath } from '../../src/chunkstore/packs.js';
import { seededBytes, secret32, smallDisk, tempDir } from '../helpers.js';
import { HOST_SCHEMA } from '../../src/cli/host-schema.js';

const AVG = 16384;
/** Every store's index is sealed under a key, as a host's is. */
const KEY = secret32();

function fresh(): { store: ChunkStore; ing: Ingester; dir: string; conv: Buffer } {
  const dir = tempDir();
  const conv = secret32();
  const store = ChunkStore.open(dir, conv, { create: true, recover: true, schema: HOST_SCHEMA, key: KEY });
  return { store, ing: new Ingester(store, cdcParams(AVG, conv)), dir, conv };
}

function readBack(store: ChunkStore, f: IngestedFile): Buffer {
  return Buffer.concat(f.chunks.map((c) => store.read(c)));
}

const ids = (f: IngestedFile): Buffer[] => f.chunks.map((c) => c.id);

test('sealer: round trip, determinism, tamper detection', () => {
  const s = new Sealer(secret32());
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 70000 }), fc.boolean(), (data, compressible) => {
      const plain = compressible ? Buffer.from(Buffer.from(data).toString('hex').repeat(3)) : Buffer.from(data);
      const a = s.seal(plain);
      const b = s.seal(plain);
      assert.deepEqual(a.box, b.box, 'convergent: same plaintext, same ciphertext');
      assert.deepEqual(s.open(a.handle, a.box), plain);
      if (a.box.length > 0) {
        const bad = Buffer.from(a.box);
        bad[bad.length >> 1]! ^= 1;
        assert.throws(() => s.open(a.handle, bad), ChunkError);
      }
    }),
    { numRuns: 60 },
  );
  const other = new Sealer(secret32());
  const text = Buffer.from('same content, another group');
  assert.notDeepEqual(s.seal(text).id, other.seal(text).id, 'ids depend on the convergence secret');
  const compressible = Buffer.alloc(65536, 'a');
  assert.ok(s.seal(compressible).box.length < 1000, 'compressible chunks are compressed');
  const random = seededBytes(65536, 7);
  assert.equal(s.seal(random).box.length, 65536 + 1 + 16, 'incompressible chunks are stored raw (+codec byte +tag)');
});

test('ingest: round trip, dedup within and across files, refcounts', () => {
  const { store, ing } = fresh();
  const data = seededBytes(1_000_000, 1);
  const a = ing.ingestBuffer(data);
  const b = ing.ingestBuffer(data);
  assert.equal(b.fresh, 0, 'the second copy adds nothing');
  ing.commit();
  assert.deepEqual(readBack(store, a), data);
  assert.equal(a.size, data.length);
  for (const id of ids(a)) assert.equal(store.refs(id), 2);
  const c = ing.ingestBuffer(data);
  assert.equal(c.fresh, 0);
  ing.commit();
  for (const id of ids(a)) assert.equal(store.refs(id), 3);
  assert.equal(verifyStore(store).problems.length, 0);
  store.close();
});

test('new chunks go in with their references counted: stored meanwhile by another ingester, or released, collected and stored again', () => {
  const { store, ing, conv } = fresh();
  const data = seededBytes(500_000, 21);
  // Two ingesters find the same chunks new; the second to commit finds them stored.
  const other = new Ingester(store, cdcParams(AVG, conv));
  const a = ing.ingestBuffer(data);
  ing.ingestBuffer(data);
  const b = other.ingestBuffer(data);
  assert.equal(b.fresh, b.chunks.length, 'the other ingester found them new too');
  other.commit();
  ing.commit();
  for (const id of ids(a)) assert.equal(store.refs(id), 3, 'one reference per copy, whichever committed first');
  assert.equal(verifyStore(store).problems.length, 0);

  // Released and collected: the ids stay in the delete set for the buddies. Stored again,
  // they leave it, or the buddies would be told to drop chunks the tree names.
  store.db.transaction(() => store.decref([...ids(a), ...ids(a), ...ids(b)]))();
  collectGarbage(store, { threshold: 1 });
  assert.equal(store.refs(ids(a)[0]!), undefined, 'collected');
  const released = (): Set<string> => new Set(store.released().map((id) => id.toString('hex')));
  assert.ok(ids(a).every((id) => released().has(id.toString('hex'))));
  const again = ing.ingestBuffer(data);
  assert.equal(again.fresh, again.chunks.length);
  ing.commit();
  for (const id of ids(again)) assert.equal(store.refs(id), 1);
  assert.ok(ids(again).every((id) => !released().has(id.toString('hex'))), 'stored again, they left the delete set');
  assert.deepEqual(readBack(store, again), data);
  assert.equal(verifyStore(store).problems.length, 0);
  store.close();
});

test('zero-length input has no chunks; unknown ids are a clear error', () => {
  const { store, ing } = fresh();
  const e = ing.ingestBuffer(Buffer.alloc(0));
  ing.commit();
  assert.equal(e.size, 0);
  assert.equal(e.chunks.length, 0);
  assert.throws(() => store.read({ id: secret32(), handle: secret32() }), MissingChunkError);
  assert.throws(() => store.readBox(secret32()), /not in the store/);
  assert.throws(() => store.incref([secret32()]), MissingChunkError);
  store.close();
});

test('locations: by position, for any count, with repeats and unknown ids among them', () => {
  const { store, ing } = fresh();
  const f = ing.ingestBuffer(seededBytes(3_000_000, 4));
  ing.commit();
  const known = ids(f);
  assert.ok(known.length > 130, 'more chunks than two statements take');
  for (const n of [1, 2, 9, 64, 65, 130]) {
    const asked: Uint8Array[] = [];
    for (let i = 0; i < n; i++) asked.push(i % 3 === 1 ? secret32() : known[(i * 7) % known.length]!);
    if (n > 2) asked[n - 1] = asked[0]!;
    const got = store.locations(asked);
    assert.equal(got.length, n);
    let visited = 0;
    got.forEach((loc, i) => {
      visited++;
      assert.deepEqual(loc, store.location(asked[i]!), `${n} ids: position ${i}`);
    });
    assert.equal(visited, n, `${n} ids: every position is there to walk, unknown ones as undefined`);
  }
  store.close();
});

test('refcounts follow a model; GC keeps exactly the referenced chunks', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(5), fc.boolean()), { minLength: 1, maxLength: 25 }), (ops) => {
      const { store, ing } = fresh();
      const files = new Map<number, IngestedFile[]>();
      const model = new Map<string, number>();
      for (const [which, add] of ops) {
        const held = files.get(which) ?? [];
        if (add || held.length === 0) {
          const f = ing.ingestBuffer(seededBytes(60_000 + which * 9000, which + 1));
          ing.commit();
          held.push(f);
          for (const id of ids(f)) model.set(id.toString('hex'), (model.get(id.toString('hex')) ?? 0) + 1);
        } else {
          const f = held.pop()!;
          store.db.transaction(() => store.decref(ids(f)))();
          for (const id of ids(f)) model.set(id.toString('hex'), model.get(id.toString('hex'))! - 1);
        }
        files.set(which, held);
      }
      collectGarbage(store, { threshold: 1 });
      for (const [hex, n] of model) assert.equal(store.refs(Buffer.from(hex, 'hex')) ?? 0, n, `refcount of ${hex}`);
      for (const held of files.values()) for (const f of held) readBack(store, f);
      const live = store.db.prepare('SELECT count(*) FROM chunks').pluck().get();
      assert.equal(live, [...model.values()].filter((n) => n > 0).length);
      assert.equal(verifyStore(store).problems.length, 0);
      store.close();
    }),
    { numRuns: 15 },
  );
});

test('GC compacts packs and frees space while keeping live chunks readable', () => {
  const { store, ing, dir } = fresh();
  const keep = ing.ingestBuffer(seededBytes(3_000_000, 11));
  const drop = ing.ingestBuffer(seededBytes(9_000_000, 12));
  ing.commit();
  ing.close();
  const before = store.stats().packBytes;
  store.db.transaction(() => store.decref(ids(drop)))();
  const seen: GcProgress[] = [];
  const r = collectGarbage(store, {}, (p) => seen.push(p));
  assert.ok(r.collected > 0);
  assert.ok(r.bytesFreed >= 8_000_000, `freed ${r.bytesFreed}`);
  // Progress, as status and the dashboard show it: the drop, then pack after pack, to the end.
  assert.equal(seen[0]!.phase, 'dropping');
  const last = seen.at(-1)!;
  assert.deepEqual({ ...last }, { ...r, phase: 'compacting', packsDone: last.packsTotal, packsTotal: last.packsTotal });
  assert.ok(last.packsTotal > 0 && seen.some((p) => p.phase === 'compacting' && p.packsDone === 0));
  const after = store.stats();
  assert.ok(after.packBytes < before - 8_000_000);
  assert.deepEqual(readBack(store, keep), seededBytes(3_000_000, 11));
  assert.equal(verifyStore(store).problems.length, 0);
  const onDisk = readdirSync(join(dir, 'packs'), { recursive: true }).filter((f) => String(f).endsWith('.pack'));
  assert.equal(onDisk.length, after.packs, 'no pack file left behind');
  store.close();
});

test('boxes read into a buffer used again; a location from before compaction moved a box fails, a fresh one reads it', () => {
  const { store, ing } = fresh();
  const keep = ing.ingestBuffer(seededBytes(3_000_000, 21));
  const drop = ing.ingestBuffer(seededBytes(9_000_000, 22));
  ing.commit();
  ing.close();
  const kept = ids(keep);
  const boxes = kept.map((id) => store.readBox(id));
  // As a shipment reads them: one after another into its message's buffer.
  const buf = Buffer.alloc(4 << 20, 0xee);
  const locs = store.locations(kept);
  let at = 0;
  for (const [i, id] of kept.entries()) {
    const box = store.readBoxAt(id, locs[i]!, buf.subarray(at));
    assert.equal(box.buffer, buf.buffer, 'read in place');
    assert.deepEqual(box, boxes[i]);
    at += box.length;
  }
  assert.deepEqual(buf.subarray(0, at), Buffer.concat(boxes));
  assert.throws(() => store.readBoxAt(kept[0]!, locs[0]!, buf.subarray(0, locs[0]!.len - 1)), /do not fit/);
  store.db.transaction(() => store.decref(ids(drop)))();
  collectGarbage(store);
  const moved = kept.findIndex((id, i) => store.location(id)!.pack !== locs[i]!.pack);
  assert.ok(moved >= 0, 'compaction moved the kept boxes');
  assert.throws(() => store.readBoxAt(kept[moved]!, locs[moved]!), /missing or unreadable/);
  assert.deepEqual(store.readBoxAt(kept[moved]!, store.location(kept[moved]!)!), boxes[moved]);
  store.close();
});

test('verify names a flipped byte, a truncated pack and a missing pack', () => {
  const { store, ing } = fresh();
  const f = ing.ingestBuffer(seededBytes(500_000, 3));
  ing.commit();
  ing.close();
  const victim = f.chunks[2]!.id;
  const loc = store.location(victim)!;
  const path = packPath(store.packsDir, loc.pack);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([readFileSync(path)[loc.off + 5]! ^ 0x40]), 0, 1, loc.off + 5);
  closeSync(fd);
  let r = verifyStore(store);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]!.kind, 'bad-chunk');
  assert.equal(r.problems[0]!.id, victim.toString('hex'));
  assert.throws(() => store.read(f.chunks[2]!), /failed authentication/);

  const last = f.chunks[f.chunks.length - 1]!.id;
  truncateSync(path, store.location(last)!.off + 3);
  r = verifyStore(store);
  assert.ok(r.problems.some((p) => p.kind === 'missing-chunk' && p.id === last.toString('hex')));
  store.dropPack(loc.pack);
  assert.throws(() => store.read(f.chunks[f.chunks.length - 1]!), /truncated/);

  unlinkSync(path);
  store.dropPack(loc.pack);
  r = verifyStore(store);
  assert.ok(r.problems.some((p) => p.kind === 'missing-pack'));
  assert.throws(() => store.read(f.chunks[0]!), /missing or unreadable/);
  store.close();
});

test('verify while the daemon compacts: moved chunks are checked in their new pack, a deleted pack is no problem', () => {
  const { store, ing, dir, conv } = fresh();
  const first = ing.ingestBuffer(seededBytes(400_000, 31));
  ing.commit();
  ing.close();
  const ing2 = new Ingester(store, cdcParams(AVG, conv));
  const keep = ing2.ingestBuffer(seededBytes(1_000_000, 32));
  const drop = ing2.ingestBuffer(seededBytes(3_000_000, 33));
  ing2.commit();
  ing2.close();
  const packsBefore = new Set(ids(keep).map((id) => store.location(id)!.pack));
  assert.ok(!packsBefore.has(store.location(ids(first)[0]!)!.pack), 'the first file has a pack of its own');
  store.db.transaction(() => store.decref(ids(drop)))();

  // The daemon's connection collects right after verify's first pack, then a moved box rots.
  const daemon = ChunkStore.open(dir, conv, { schema: HOST_SCHEMA, key: KEY });
  const victim = ids(keep)[5]!;
  let rotted: { pack: number; off: number } | null = null;
  const r = verifyStore(store, () => {
    if (rotted) return;
    collectGarbage(daemon, { threshold: 0.5 });
    const loc = daemon.location(victim)!;
    assert.ok(!packsBefore.has(loc.pack), 'compaction moved the kept chunks to a new pack');
    const path = packPath(daemon.packsDir, loc.pack);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([readFileSync(path)[loc.off + 9]! ^ 0x10]), 0, 1, loc.off + 9);
    closeSync(fd);
    rotted = loc;
  });
  assert.ok(rotted, 'the collection ran mid-verify');
  assert.deepEqual(r.problems.map((p) => [p.kind, p.id]), [['bad-chunk', victim.toString('hex')]], JSON.stringify(r.problems));
  assert.equal(r.chunks, ids(first).length + new Set(ids(keep).map((id) => id.toString('hex'))).size, 'every live chunk checked once');
  daemon.close();
  store.close();
});

test('a damaged index is a clear error at open', () => {
  const { store, dir } = fresh();
  store.close();
  const db = join(dir, 'index.db');
  writeFileSync(db, Buffer.alloc(4096, 7));
  for (const f of ['index.db-wal', 'index.db-shm']) try { unlinkSync(join(dir, f)); } catch { /* absent */ }
  assert.throws(() => ChunkStore.open(dir, secret32(), { schema: HOST_SCHEMA, key: KEY }), /does not open with this passphrase/);
});

test('the index is sealed at rest: no chunk handle in its bytes, and another key does not open it', () => {
  const { store, ing, dir } = fresh();
  const f = ing.ingestBuffer(seededBytes(200_000, 5));
  ing.commit();
  ing.close();
  store.db.pragma('wal_checkpoint(TRUNCATE)');
  store.close();
  const bytes = readFileSync(join(dir, 'index.db'));
  for (const c of f.chunks) assert.ok(!bytes.includes(c.handle), 'a handle (the key of its chunk) is readable in index.db');
  assert.ok(!bytes.includes(Buffer.from('SQLite format 3')));
  assert.throws(() => ChunkStore.open(dir, null, { schema: HOST_SCHEMA, key: secret32() }), StoreLockedError);
  ChunkStore.open(dir, null, { schema: HOST_SCHEMA, key: KEY }).close();
});

test('files over 4 GiB (sparse) ingest with correct size and content', { timeout: 120_000 }, () => {
  const { store, ing, dir } = fresh();
  const path = join(dir, 'huge');
  const size = 4 * 1024 ** 3 + 12345;
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  writeSync(fd, Buffer.from('tail marker'), 0, 11, size - 11);
  writeSync(fd, Buffer.from('head marker'), 0, 11, 0);
  closeSync(fd);
  const f = ing.ingestFile(path);
  ing.commit();
  assert.equal(f.size, size);
  assert.equal(f.chunks.reduce((s, c) => s + c.raw, 0), size);
  assert.ok(f.fresh < 10, `a sparse file dedups to a few chunks (${f.fresh})`);
  assert.deepEqual(store.read(f.chunks[0]!).subarray(0, 11), Buffer.from('head marker'));
  const tail = store.read(f.chunks[f.chunks.length - 1]!);
  assert.deepEqual(tail.subarray(tail.length - 11), Buffer.from('tail marker'));
  assert.ok(statSync(join(dir, 'index.db')).size < 10 << 20);
  store.close();
});

test('kill -9 mid-ingest: reopen, verify clean, every committed file readable', { timeout: 60_000 }, async () => {
  for (let round = 0; round < 3; round++) {
    const dir = tempDir();
    const conv = secret32();
    const child = spawn(process.execPath, [new URL('../fixtures/ingest-loop.js', import.meta.url).pathname, dir, conv.toString('hex'), KEY.toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    const killAfter = 5 + round * 7;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (text.split('\n').length > killAfter) {
          clearInterval(check);
          setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, round * 3);
        }
      }, 2);
    });
    await new Promise((r) => child.once('exit', r));
    const committed = text.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l) as { seed: number; size: number; chunks: [string, string][] });
    assert.ok(committed.length >= killAfter);
    const store = ChunkStore.open(dir, conv, { recover: true, schema: HOST_SCHEMA, key: KEY });
    assert.deepEqual(verifyStore(store).problems, []);
    for (const c of committed) {
      const data = Buffer.concat(c.chunks.map(([id, h]) => store.read({ id: Buffer.from(id, 'hex'), handle: Buffer.from(h, 'hex') })));
      assert.equal(data.length, c.size);
      assert.deepEqual(data, seededBytes(c.size, c.seed));
    }
    collectGarbage(store, { threshold: 1 });
    assert.deepEqual(verifyStore(store).problems, []);
    store.close();
  }
});

test('disk full: the writer gets ENOSPC, the store stays consistent', { timeout: 60_000 }, (t) => {
  const mnt = smallDisk(t, '3m');
  if (!mnt) return;
  const conv = secret32();
  const dir = join(mnt, 'store');
  mkdirSync(dir);
  const store = ChunkStore.open(dir, conv, { create: true, recover: true, schema: HOST_SCHEMA, key: KEY });
  const ing = new Ingester(store, cdcParams(AVG, conv));
  const kept: { f: IngestedFile; seed: number }[] = [];
  let err: NodeJS.ErrnoException | undefined;
  for (let seed = 1; seed < 100 && !err; seed++) {
    try {
      const f = ing.ingestBuffer(seededBytes(300_000, seed));
      ing.commit();
      kept.push({ f, seed });
    } catch (e) {
      err = e as NodeJS.ErrnoException;
      ing.abandon();
    }
  }
  assert.ok(err, 'the disk filled up');
  assert.match(String(err.code ?? err.message), /ENOSPC|SQLITE_FULL/);
  assert.ok(kept.length > 0);
  for (const { f, seed } of kept) assert.deepEqual(readBack(store, f), seededBytes(300_000, seed));
  store.close();
  const again = ChunkStore.open(dir, conv, { recover: true, schema: HOST_SCHEMA, key: KEY });
  assert.deepEqual(verifyStore(again).problems, []);
  for (const { f, seed } of kept) assert.deepEqual(readBack(again, f), seededBytes(300_000, seed));
  again.close();
});
