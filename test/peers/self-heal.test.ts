// Self-healing: a chunk damaged on the local disk is fetched from a buddy and put in place, on a
// read through the mount and by `safe verify --repair`; with no buddy to ask, a read fails with
// EIO (never wrong bytes) and the repair names what it could not do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { mountedMember, withDb, type Member } from './group.js';

/** Overwrites the middle of every box of `file`'s chunks in A's packs: a disk that rotted. */
function rot(h: Member, file: string): number {
  const places = withDb(h, (db) =>
    db.prepare(
      `SELECT DISTINCT k.pack, k.off, k.len FROM chunks k JOIN crefs c ON c.id = k.id
        JOIN inodes i ON i.cl = c.cl JOIN entries e ON e.ino = i.ino
        WHERE e.name = ? AND e.died IS NULL AND i.died IS NULL`,
    ).all(Buffer.from(file)) as { pack: number; off: number; len: number }[],
  );
  const packs = join(h.home, 'store', 'packs');
  const pathOf = (pack: number): string => join(packs, (pack & 0xff).toString(16).padStart(2, '0'), `${pack}.pack`);
  for (const p of places) {
    const fd = openSync(pathOf(p.pack), 'r+');
    writeSync(fd, seededBytes(8, p.off), 0, 8, p.off + (p.len >> 1));
    closeSync(fd);
  }
  return places.length;
}

const cat = (path: string): { status: number | null; out: Buffer; err: string } => {
  const r = spawnSync('cat', [path], { maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout, err: r.stderr.toString() };
};

test('damaged chunks heal from a buddy on read and by verify --repair; without one, EIO and a named failure', { timeout: 300_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 1, peers: [c.addr] });
  const one = seededBytes(2 << 20, 1);
  const two = seededBytes(1 << 20, 2);
  const three = seededBytes(1 << 20, 3);
  writeFileSync(join(a.mnt, 'one.bin'), one);
  writeFileSync(join(a.mnt, 'two.bin'), two);
  writeFileSync(join(a.mnt, 'three.bin'), three);
  await a.settle();
  a.ok('snapshot');
  const s = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { ok: boolean }[] };
  assert.ok(s.buddies.length === 1 && s.buddies[0]!.ok, JSON.stringify(s));

  // A read of a rotten file gives the right bytes, fetched from C, and leaves the store whole.
  a.unmount();
  assert.ok(rot(a, 'one.bin') > 50);
  a.mount();
  const r1 = cat(join(a.mnt, 'one.bin'));
  assert.equal(r1.status, 0, r1.err);
  assert.ok(r1.out.equals(one), 'the read returns the right bytes');
  const v1 = JSON.parse(a.ok('verify', '--json')) as { ok: boolean; problems: unknown[] };
  assert.ok(v1.ok, `healed in place: ${JSON.stringify(v1.problems.slice(0, 3))}`);

  // verify finds rot and --repair mends it.
  a.unmount();
  const rotten = rot(a, 'two.bin');
  a.mount();
  const before = a.safe('verify', '--json');
  assert.equal(before.status, 1);
  assert.equal((JSON.parse(before.stdout) as { problems: { kind: string }[] }).problems.filter((p) => p.kind === 'bad-chunk').length, rotten);
  const repaired = JSON.parse(a.ok('verify', '--repair', '--json')) as { ok: boolean; repaired: number };
  assert.equal(repaired.repaired, rotten);
  assert.ok(repaired.ok);
  assert.ok(readFileSync(join(a.mnt, 'two.bin')).equals(two));

  // No buddy: the read fails with EIO rather than give wrong bytes; the repair says what it could not do.
  c.unmount();
  a.unmount();
  rot(a, 'three.bin');
  a.mount();
  const r3 = cat(join(a.mnt, 'three.bin'));
  assert.notEqual(r3.status, 0);
  assert.match(r3.err, /Input\/output error/);
  const failed = a.safe('verify', '--repair');
  assert.equal(failed.status, 1);
  assert.match(failed.stdout, /repaired 0 of \d+ damaged chunks/);
  assert.match(failed.stdout, /bad-chunk: chunk [0-9a-f]{64} does not match its id/);
  assert.ok(readdirSync(a.mnt).includes('three.bin') && statSync(join(a.mnt, 'three.bin')).size === three.length);
});
