// Redundancy rs:4+2 end to end: a host and six members, real daemons on loopback. The host's
// data travels as Reed-Solomon shards, one per member; any two members may be gone and a
// blank host still recovers every snapshot identical.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes, tempDir } from '../helpers.js';
import { GROUP, heldIds, mountedMember, syncWait, withDb, type Member, sameTree } from './group.js';


/**
 * Every pair of indexes below n, in an order where each pair shares one index with the one
 * before: the test stops one member and restarts one between recoveries, not two and two.
 */
function chainedPairs(n: number): [number, number][] {
  const all = Array.from({ length: n }, (_, i) => Array.from({ length: n - i - 1 }, (_, j): [number, number] => [i, i + j + 1])).flat();
  const path: [number, number][] = [];
  const used = new Set<number>();
  const walk = (): boolean => {
    if (path.length === all.length) return true;
    const last = path.at(-1);
    for (let i = 0; i < all.length; i++) {
      const p = all[i]!;
      if (used.has(i) || (last && !p.some((x) => last.includes(x)))) continue;
      used.add(i);
      path.push(p);
      if (walk()) return true;
      path.pop();
      used.delete(i);
    }
    return false;
  };
  walk();
  return path;
}

/**
 * The slots (4 data 0-3, parity 4-5) stopped two at a time: both parity shards, a parity and a
 * data shard, two data shards, chained so every slot is stopped once. The codec's own test
 * decodes every one of the 15 choices; SAFE_RS_PAIRS=all stops all 15 pairs here too.
 */
const SLOT_PAIRS: [number, number][] = process.env.SAFE_RS_PAIRS === 'all' ? chainedPairs(6) : [[4, 5], [5, 3], [3, 0], [0, 1], [1, 2]];

test('rs:4+2 over six members: each holds one shard of each stripe; with two stopped (both parity, parity and data, two data) a blank host recovers every snapshot', { timeout: 900_000 }, async () => {
  const first = await mountedMember('member-0', { offer: '1G' });
  const members: Member[] = [first];
  for (let i = 1; i < 6; i++) members.push(await mountedMember(`member-${i}`, { offer: '1G', peers: [first.addr] }));
  const a = await mountedMember('host-a', { offer: '200M', redundancy: 'rs:4+2', peers: [first.addr] });
  assert.match(a.ok('status'), /redundancy rs:4\+2: 4 data \+ 2 parity shards on 6 buddies/);

  const m = a.mnt;
  mkdirSync(join(m, 'docs'), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(join(m, 'docs', `note${i}.txt`), `note ${i}\n`.repeat(100 + i * 50));
  writeFileSync(join(m, 'big.bin'), seededBytes(9 << 20, 1));
  symlinkSync('docs/note1.txt', join(m, 'link'));
  await a.settle();
  a.ok('snapshot', '--label', 'one');
  writeFileSync(join(m, 'docs/note2.txt'), 'rewritten\n');
  rmSync(join(m, 'docs/note3.txt'));
  writeFileSync(join(m, 'more.bin'), seededBytes(2 << 20, 2));
  await a.settle();
  a.ok('snapshot', '--label', 'two');
  const r = syncWait(a);
  assert.equal(r.buddies.filter((b) => b.ok).length, 6, JSON.stringify(r));

  // Each member holds shards, not our boxes, and each a different slot's.
  const boxes = withDb(a, (db) => new Set((db.prepare('SELECT id FROM chunks').pluck().all() as Buffer[]).map((x) => x.toString('hex'))));
  const slots = withDb(a, (db) => db.prepare('SELECT peer, slot FROM buddies WHERE retired = 0').all() as { peer: string; slot: number }[]);
  assert.deepEqual(slots.map((s) => s.slot).sort(), [0, 1, 2, 3, 4, 5]);
  const stripes = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes').pluck().get() as number);
  assert.ok(stripes >= 3, `${stripes} stripes`);
  for (const b of members) {
    const held = heldIds(b, a.peerId());
    assert.equal(held.size, stripes, `${b.name} holds one shard per stripe`);
    for (const id of held) assert.ok(!boxes.has(id), `${b.name} holds a box of ours, not a shard`);
  }

  const ref = tempDir('safe-ref-');
  const names = readdirSync(join(m, '.snapshots')).sort();
  spawnSync('cp', ['-a', join(m, '.'), join(ref, 'live')]);
  for (const n of names) assert.equal(spawnSync('cp', ['-a', join(m, '.snapshots', n), join(ref, n)]).status, 0);
  rmSync(join(ref, 'live', '.snapshots'), { recursive: true, force: true });

  // Members by the slot they hold.
  const bySlot = new Map(slots.map((s) => [s.slot, members.findIndex((b) => b.peerId() === s.peer)]));
  const order = SLOT_PAIRS.map(([x, y]): [number, number] => [bySlot.get(x)!, bySlot.get(y)!]);
  assert.ok(order.flat().every((i) => i >= 0), JSON.stringify(slots));
  let down = new Set<number>();
  for (const [i, j] of order) {
    const now = new Set([i, j]);
    for (const x of down) if (!now.has(x)) members[x]!.mount();
    for (const x of now) if (!down.has(x)) members[x]!.unmount();
    down = now;
    const up = members.find((_, x) => !now.has(x))!;
    a.unmount();
    rmSync(a.home, { recursive: true, force: true });
    const rec = JSON.parse(a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', up.addr, '--listen', a.addr, '--no-mdns', '--json')) as { missing: number };
    assert.equal(rec.missing, 0, `members ${i} and ${j} down`);
    sameTree(join(ref, 'live'), a.mnt, `members ${i} and ${j} down: live tree`);
    for (const n of names) sameTree(join(ref, n), join(a.mnt, '.snapshots', n), `members ${i} and ${j} down: snapshot ${n}`);
  }
  for (const x of down) members[x]!.mount();
  assert.match(a.ok('verify'), /no problems/);

  // Three gone: no stripe can be rebuilt. One line says so, and no half-made host is left.
  for (const d of members.slice(0, 3)) d.unmount();
  a.unmount();
  rmSync(a.home, { recursive: true, force: true });
  const failed = a.safe('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', members[5]!.addr, '--listen', a.addr, '--no-mdns');
  assert.equal(failed.status, 1, failed.stderr);
  assert.match(failed.stderr, /^safe: only 3 of the 6 buddies holding this host's shards are reachable and rs:4\+2 needs 4 to rebuild any of its data; nothing was recovered/);
  assert.equal(failed.stderr.trim().split('\n').length, 1, failed.stderr);
  assert.ok(!existsSync(a.home) || readdirSync(a.home).length === 0, `nothing left in ${a.home}: ${existsSync(a.home) ? readdirSync(a.home).join(' ') : ''}`);
});
