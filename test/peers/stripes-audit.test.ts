// Audits, repair and deletes under rs:2+1, real daemons on loopback: a member that silently
// lost one shard fails the next audit, a spare member takes its slot and gets that slot's shard
// of every stripe, and a second audit finds full redundancy again; dead stripes' shards are
// dropped; a shard whose box the host lost too is made from K shards at the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { makeHost } from '../fs/mounted.js';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { GROUP, heldIds, mountedMember, remoteAudit, tamper, withDb, type Member } from './group.js';

/** The shard ids (hex) host `a` expects in each slot. */
function slotShards(a: Member): Map<number, Set<string>> {
  return withDb(a, (db) => {
    const rows = db.prepare('SELECT slot, id FROM stripe_shards').all() as { slot: number; id: Buffer }[];
    const out = new Map<number, Set<string>>();
    for (const r of rows) {
      if (!out.has(r.slot)) out.set(r.slot, new Set());
      out.get(r.slot)!.add(r.id.toString('hex'));
    }
    return out;
  });
}

const slotOf = (a: Member, peer: string): number => withDb(a, (db) => db.prepare('SELECT slot FROM buddies WHERE peer = ? AND retired = 0').pluck().get(peer) as number);

test('rs:2+1: a member that lost a shard fails its audit; a spare takes its slot and every shard of it; the next audit passes', { timeout: 300_000 }, async () => {
  const first = await mountedMember('member-0', { offer: '1G' });
  const members: Member[] = [first];
  for (let i = 1; i < 4; i++) members.push(await mountedMember(`member-${i}`, { offer: '1G', peers: [first.addr] }));
  // rs:4+2 needs six members: with four reachable, init refuses in one line, or falls back to
  // whole copies when told to.
  const six = makeHost({ host: 'wants-six', init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
  const initArgs = ['init', '--host', 'wants-six', '--mount', six.mnt, '--group', GROUP.name, '--offer', '100M', '--peer', first.addr, '--no-mdns', '--redundancy', 'rs:4+2'];
  const refused = six.safe(...initArgs);
  assert.equal(refused.status, 1, refused.stderr);
  assert.equal(refused.stderr.trim(), `safe: rs:4+2 puts its shards on 6 members of group ${GROUP.name}, but 4 are reachable now: start the others first, choose a smaller code, or add --fallback copies:2`);
  assert.ok(!existsSync(six.home), 'no host was made');
  const fell = JSON.parse(six.ok(...initArgs, '--fallback', 'copies:2', '--json')) as { redundancy: string };
  assert.equal(fell.redundancy, 'copies:2');

  const a = await mountedMember('host-a', { offer: '200M', redundancy: 'rs:2+1', peers: [first.addr] });
  for (let i = 0; i < 20; i++) writeFileSync(join(a.mnt, `f${i}.bin`), seededBytes(400_000 + i * 1000, i));
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');
  const byPeer = (p: string): Member => members.find((m) => m.peerId() === p)!;
  const expected = slotShards(a);
  const stripes = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes').pluck().get() as number);
  assert.ok(stripes >= 3, `${stripes} stripes`);

  const audit1 = remoteAudit(a);
  assert.equal(audit1.status, 0, audit1.out);
  assert.equal(audit1.audits.length, 3);
  for (const x of audit1.audits) {
    assert.equal(x.verdict, 'passed', audit1.out);
    assert.equal(x.sampled, stripes, 'fewer stripes than the sample: each slot challenged on all of them');
    assert.deepEqual(x.reconciled, { held: stripes, lacking: 0, surplus: 0 });
    assert.deepEqual(heldIds(byPeer(x.peer), a.peerId()), expected.get(slotOf(a, x.peer)));
  }

  // X silently loses one shard: its index row goes, the bytes are gone for good.
  const x = byPeer(audit1.audits[0]!.peer);
  const slot = slotOf(a, x.peerId());
  x.unmount();
  tamper(x, (db) => {
    const n = db.prepare('DELETE FROM chunks WHERE id IN (SELECT r.id FROM owner_refs r JOIN held_owners o ON o.owner = r.owner WHERE o.peer = ? LIMIT 1)').run(a.peerId()).changes;
    assert.equal(n, 1);
  });
  x.mount();

  const audit2 = remoteAudit(a);
  assert.equal(audit2.status, 1, audit2.out);
  const ax = audit2.audits.find((b) => b.peer === x.peerId())!;
  assert.equal(ax.verdict, 'failed', audit2.out);
  assert.equal(ax.missing, 1);
  assert.equal(ax.action, 'replaced');
  const spare = members.find((m) => !audit1.audits.some((b) => b.peer === m.peerId()))!;
  assert.equal(slotOf(a, spare.peerId()), slot, 'the spare took the lost slot');
  assert.deepEqual(heldIds(spare, a.peerId()), expected.get(slot), 'and holds its shard of every stripe');

  const audit3 = remoteAudit(a);
  assert.equal(audit3.status, 0, audit3.out);
  assert.deepEqual(audit3.audits.map((b) => b.peer).sort(), audit1.audits.map((b) => b.peer).filter((p) => p !== x.peerId()).concat(spare.peerId()).sort());
  for (const b of audit3.audits) assert.equal(b.verdict, 'passed', audit3.out);

  // Deletes: a file written on its own fills whole stripes (boxes are striped file by file).
  // Deleted and forgotten, those stripes die; once every member has committed past their
  // death, the next sync drops their shards, and each member holds exactly its slot's shards of
  // the stripes left.
  const holders = audit3.audits.map((b) => byPeer(b.peer));
  writeFileSync(join(a.mnt, 'big.bin'), seededBytes(8 << 20, 99));
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');
  const withBig = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes').pluck().get() as number);
  assert.ok(withBig >= stripes + 4, `${withBig} stripes with big.bin, ${stripes} before`);
  // Stripes die at the shipment of a new snapshot (its metadata delta carries the deaths), and
  // their shards are dropped at the next shipment, once every member has committed it.
  const forgetAndShip = async (): Promise<void> => {
    await a.settle();
    a.ok('snapshot');
    a.ok('forget', '--keep-last', '1');
    a.ok('snapshot');
    a.ok('sync', '--wait');
    a.ok('sync', '--wait');
  };
  rmSync(join(a.mnt, 'big.bin'));
  await forgetAndShip();
  const left = slotShards(a);
  const alive = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes WHERE died IS NULL').pluck().get() as number);
  assert.ok(alive <= stripes + 1, `${alive} stripes alive after the delete (${stripes} before big.bin)`);
  for (const h of holders) assert.deepEqual(heldIds(h, a.peerId()), left.get(slotOf(a, h.peerId())), `${h.name} holds its slot's shards of the live stripes, nothing more`);
  assert.equal(remoteAudit(a).status, 0);

  // Three of every five small files go: their stripes are mostly dead, made again from the
  // live boxes, and the old ones' shards dropped. A blank host then recovers what is left.
  const gone = Array.from({ length: 20 }, (_, i) => i).filter((i) => i % 5 >= 1 && i % 5 <= 3);
  for (const i of gone) rmSync(join(a.mnt, `f${i}.bin`));
  await forgetAndShip();
  const restriped = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes WHERE died IS NOT NULL').pluck().get() as number);
  const after = slotShards(a);
  for (const h of holders) assert.deepEqual(heldIds(h, a.peerId()), after.get(slotOf(a, h.peerId())), `${h.name} holds the new stripes' shards, not the old ones'`);
  assert.equal(restriped, 0, 'dead stripes are gone from the map once every member dropped them');
  const kept = Array.from({ length: 20 }, (_, i) => i).filter((i) => !gone.includes(i));
  // Fewer than just before the deletes, not than at the start: big.bin's last stripe may hold
  // boxes of other files and live on (alive is then stripes + 1), and which files share a
  // stripe depends on the order they were chunked in.
  const restripedCount = withDb(a, (db) => db.prepare('SELECT count(*) FROM stripes').pluck().get() as number);
  assert.ok(restripedCount < alive, `fewer stripes hold what is left: ${restripedCount}, against ${alive} before the deletes (${stripes} at the start)`);
  a.unmount();
  rmSync(a.home, { recursive: true, force: true });
  const rec = JSON.parse(a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', first.addr, '--listen', a.addr, '--no-mdns', '--json')) as { missing: number };
  assert.equal(rec.missing, 0);
  for (const i of kept) assert.ok(readFileSync(join(a.mnt, `f${i}.bin`)).equals(seededBytes(400_000 + i * 1000, i)), `f${i}.bin back whole`);
  for (const i of gone) assert.ok(!existsSync(join(a.mnt, `f${i}.bin`)));

  // The host lost a box of a live stripe too, when a member must be replaced: the new member's
  // shard of that stripe is made from the stripe rebuilt out of K shards at the others.
  const fifth = await mountedMember('member-4', { offer: '1G', peers: [first.addr] });
  a.unmount();
  const lostBox = withDb(a, (db) => db.prepare('SELECT b.id FROM stripe_boxes b JOIN stripes t ON t.stripe = b.stripe WHERE t.died IS NULL LIMIT 1').pluck().get() as Buffer);
  tamper(a, (db) => assert.equal(db.prepare('DELETE FROM chunks WHERE id = ?').run(lostBox).changes, 1));
  a.mount();
  const y = holders.find((h) => h !== holders[0])!;
  const ySlot = slotOf(a, y.peerId());
  y.unmount();
  tamper(y, (db) => {
    db.prepare('DELETE FROM chunks WHERE id IN (SELECT r.id FROM owner_refs r JOIN held_owners o ON o.owner = r.owner WHERE o.peer = ? LIMIT 1)').run(a.peerId());
  });
  y.mount();
  const audit4 = remoteAudit(a);
  assert.equal(audit4.audits.find((b) => b.peer === y.peerId())?.action, 'replaced', audit4.out);
  assert.equal(slotOf(a, fifth.peerId()), ySlot);
  assert.deepEqual(heldIds(fifth, a.peerId()), slotShards(a).get(ySlot), 'the new member holds every shard of its slot');
  assert.ok(withDb(a, (db) => db.prepare('SELECT 1 FROM chunks WHERE id = ?').get(lostBox)), 'the host has its lost box back');
});
