// Audits and churn with real daemons on 127.0.0.1: a buddy that silently lost 1% of our chunks
// is caught by the next audit and replaced; a buddy keeping what we no longer name is told to
// drop it; a buddy silent past the threshold is replaced; the replaced buddy reclaims our
// space once we stay silent; recovery still works with the other original buddy down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes, tempDir } from '../helpers.js';
import { setConfig } from '../fs/mounted.js';
import { GROUP, heldIds, makeMember, mountedMember, remoteAudit, shippedIds, tamper, withDb, type Member } from './group.js';


test('audits catch a buddy that lost 1% of our chunks; surplus dropped; silent buddy replaced; space reclaimed; recovery with a buddy down', { timeout: 400_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const others = [c];
  for (const name of ['buddy-d', 'buddy-e', 'buddy-f']) {
    const m = await makeMember(name, { offer: '1G', peers: [c.addr] });
    m.mount();
    others.push(m);
  }
  const a = await makeMember('host-a', { offer: '200M', peers: [c.addr] });
  // Silence is judged from the last contact: the lost-chunk phase below takes longer than 8 s
  // on a loaded machine, and X must be caught by its audit, not replaced for its silence first.
  setConfig(a, { buddySilence: '10m' });
  a.mount();
  mkdirSync(join(a.mnt, 'docs'));
  for (let i = 0; i < 40; i++) writeFileSync(join(a.mnt, 'docs', `n${i}.txt`), `note ${i}\n`.repeat(100 + i * 40));
  writeFileSync(join(a.mnt, 'photo.raw'), seededBytes(3 << 20, 5));
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');
  const byPeer = (p: string): Member => others.find((m) => m.peerId() === p)!;

  // Everyone honest: both pass, every chunk challenged (fewer than the sample size), lists agree.
  const first = remoteAudit(a);
  assert.equal(first.status, 0, first.out);
  assert.equal(first.audits.length, 2);
  const total = shippedIds(a).size;
  assert.ok(total > 150 && total < 459, `${total} chunks`);
  for (const x of first.audits) {
    assert.equal(x.verdict, 'passed');
    assert.equal(x.sampled, total);
    assert.deepEqual(x.reconciled, { held: total, lacking: 0, surplus: 0 });
  }
  const [x, y] = first.audits.map((b) => byPeer(b.peer)) as [Member, Member];
  const spare = others.filter((m) => m !== x && m !== y);

  // X silently loses 1% of our chunks (their index rows: the bytes are gone for good), and will
  // reclaim our space if we stay silent for 20 s.
  x.unmount();
  const lost = Math.ceil(total / 100);
  tamper(x, (db) => {
    const n = db.prepare(`DELETE FROM chunks WHERE id IN (SELECT r.id FROM owner_refs r JOIN held_owners o ON o.owner = r.owner WHERE o.peer = ? ORDER BY random() LIMIT ?)`).run(a.peerId(), lost).changes;
    assert.equal(n, lost);
  });
  setConfig(x, { ownerSilence: '20s' });
  x.mount();
  // Y keeps a chunk for us we never named (its own file's): reconciliation tells it to drop it.
  writeFileSync(join(y.mnt, 'own.bin'), seededBytes(64 << 10, 9));
  await y.settle();
  y.unmount();
  tamper(y, (db) => {
    const owner = db.prepare('SELECT owner FROM held_owners WHERE peer = ?').pluck().get(a.peerId());
    const own = db.prepare('SELECT id FROM chunks WHERE refs > 0 LIMIT 1').pluck().get();
    db.prepare('INSERT INTO owner_refs (owner, id, n) VALUES (?, ?, 1)').run(owner, own);
  });
  y.mount();

  const second = remoteAudit(a);
  assert.equal(second.status, 1, second.out);
  const ax = second.audits.find((b) => b.peer === x.peerId())!;
  const ay = second.audits.find((b) => b.peer === y.peerId())!;
  assert.equal(ax.verdict, 'failed', second.out);
  assert.equal(ax.missing, lost);
  assert.equal(ax.action, 'replaced');
  assert.equal(ay.verdict, 'passed', second.out);
  assert.deepEqual(ay.reconciled, { held: total, lacking: 0, surplus: 1 });
  assert.equal(ay.action, 'reshipped');
  // Until a week has passed, status says so.
  assert.match(a.ok('status'), new RegExp(`\nATTENTION: buddy ${x.peerId()} failed its audit at \\S+Z \\(${lost} of ${total} chunks missing[^\n]*\\); it was replaced\n`));
  assert.deepEqual(heldIds(y, a.peerId()), shippedIds(a), 'Y dropped the surplus');
  // The replacement already holds everything: the audit shipped to it.
  const status = JSON.parse(a.ok('status', '--json')) as { daemon: { peers: { buddies: { peer: string }[] } } };
  const now = status.daemon.peers.buddies.map((b) => b.peer);
  assert.equal(now.length, 2);
  assert.ok(now.includes(y.peerId()) && !now.includes(x.peerId()), JSON.stringify(now));
  const z = byPeer(now.find((p) => p !== y.peerId())!);
  assert.ok(spare.includes(z));
  assert.deepEqual(heldIds(z, a.peerId()), shippedIds(a), `${z.name} holds all of A`);
  // From here an 8 s threshold (Y's silence below): the audit right after is the last contact.
  a.unmount();
  setConfig(a, { buddySilence: '8s' });
  a.mount();
  const third = remoteAudit(a);
  assert.equal(third.status, 0, third.out);

  // Y goes away for good: one failed sync, then past the 8 s threshold it is replaced by W.
  y.unmount();
  writeFileSync(join(a.mnt, 'later.txt'), 'written after Y left\n');
  await a.settle();
  a.ok('snapshot');
  assert.equal(a.safe('sync', '--wait').status, 1);
  await new Promise((r) => setTimeout(r, 8500));
  const resync = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { peer: string; ok: boolean; report?: { full: boolean } }[] };
  const w = spare.find((m) => m !== z)!;
  assert.deepEqual(resync.buddies.map((b) => b.peer).sort(), [z.peerId(), w.peerId()].sort(), JSON.stringify(resync));
  assert.ok(resync.buddies.find((b) => b.peer === w.peerId())!.report!.full);
  assert.deepEqual(heldIds(w, a.peerId()), shippedIds(a));

  // X, no longer contacted, takes A as gone and reclaims the space.
  const t0 = Date.now();
  while (heldIds(x, a.peerId()).size > 0 || withDb(x, (db) => db.prepare('SELECT count(*) FROM root_blocks').pluck().get()) !== 0) {
    assert.ok(Date.now() - t0 < 60_000, 'X reclaimed A\'s space within a minute');
    await new Promise((r) => setTimeout(r, 1000));
  }

  // Disaster, with Y still down: Z and W have it all.
  const ref = tempDir('safe-ref-');
  assert.equal(spawnSync('cp', ['-a', `${a.mnt}/.`, ref]).status, 0);
  a.unmount();
  spawnSync('rm', ['-rf', a.home]);
  // Through a member that is up (C may be Y).
  a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', z.addr, '--listen', a.addr, '--no-mdns', '--json');
  const d = spawnSync('diff', ['-r', '-x', '.snapshots', ref, a.mnt], { encoding: 'utf8' });
  assert.equal(d.status, 0, d.stdout + d.stderr);
});
