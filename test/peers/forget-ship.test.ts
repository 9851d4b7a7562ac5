// A forget with no snapshot after it still reaches the buddies: the next sync ships the same
// epoch again with what the forget pruned (or, if it pruned nothing, the shorter snapshot list), so the buddy drops it, a reconcile finds nothing to
// fix, and a recovery fetches only what the kept snapshots need. Real daemons, loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { makeHost } from '../fs/mounted.js';
import { freePort, GROUP, heldIds, mountedMember, shippedIds, type SyncJson } from './group.js';

test('forget, then sync: the buddy drops what only the forgotten snapshot named, and a recovery after an audit gets every chunk', { timeout: 300_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 1, peers: [c.addr] });
  const sync = (): SyncJson => JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson;

  writeFileSync(join(a.mnt, 'f'), seededBytes(1 << 20, 1));
  a.ok('snapshot');
  assert.ok(sync().buddies[0]?.ok);
  const kept = seededBytes(1 << 20, 2);
  writeFileSync(join(a.mnt, 'f'), kept);
  const name = a.ok('snapshot').trim();
  assert.ok(sync().buddies[0]?.ok);

  // The first version is in no kept snapshot any more; the latest epoch has not changed.
  a.ok('forget', '--keep-last', '1');
  const r = sync();
  assert.ok(r.buddies[0]?.ok && !r.buddies[0].report!.already && r.buddies[0].report!.deletes > 0, `the forget's deletions were shipped: ${JSON.stringify(r)}`);
  assert.deepEqual([...heldIds(c, a.peerId())].sort(), [...shippedIds(a)].sort(), 'the buddy holds exactly what the kept snapshot names');

  // A forget that releases nothing (the kept snapshot names the same chunks and rows) changes
  // only the root block's snapshot list: that still ships, or a recovery brings back the
  // forgotten snapshot.
  const same = a.ok('snapshot').trim();
  assert.ok(sync().buddies[0]?.ok);
  a.ok('forget', '--keep-last', '1');
  const listOnly = sync();
  assert.ok(listOnly.buddies[0]?.ok && !listOnly.buddies[0].report!.already, `the shorter snapshot list was shipped: ${JSON.stringify(listOnly)}`);
  assert.ok(sync().buddies[0]!.report!.already, 'and once is enough');

  // The audit's reconcile drops chunks the host no longer names: nothing may name them still.
  a.ok('verify', '--remote');
  a.unmount();
  const blank = makeHost({ init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
  const rec = JSON.parse(blank.ok('recover', '--host', 'host-a', '--mount', blank.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`, '--no-mdns', '--json')) as { missing: number };
  assert.equal(rec.missing, 0);
  assert.deepEqual(readdirSync(join(blank.mnt, '.snapshots')), [same], `${name} was forgotten`);
  assert.ok(readFileSync(join(blank.mnt, '.snapshots', same, 'f')).equals(kept));
});
