// A recovered host is the host it was: the recovery, given only hostname, passphrase, group and
// one member's address, sets up its listen address, mDNS, offer, mount point and schedules as
// they were, and the short-lived node that did the recovery leaves no address of its own in
// the other members' lists (a member joining later was told of it as the host's). Real daemons on 127.0.0.1, in a group of this test's own (the
// recovery looks by mDNS too, as a user's would: only this group's members could answer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountedMember, makeMember } from './group.js';

interface PeersReply {
  members: { peer: string; addrs: string[] }[];
}

test('a recovered host keeps its settings, and the recovery leaves no trace in the member lists', { timeout: 300_000 }, async () => {
  const group = `keep-${randomBytes(4).toString('hex')}`;
  const c = await mountedMember('buddy-c', { offer: '1G', group });
  await mountedMember('buddy-d', { offer: '1G', group, peers: [c.addr] });
  const a = await makeMember('host-a', { offer: '200M', group, peers: [c.addr] });
  const settings = { schedule: '7 3 * * *', retention: { last: 3, daily: 9 }, auditSchedule: '5 5 * * 1', buddySilence: '5d', ownerSilence: '90d' };
  const file = join(a.home, 'config.json');
  const before = { ...JSON.parse(readFileSync(file, 'utf8')), ...settings } as Record<string, unknown>;
  writeFileSync(file, JSON.stringify(before));
  a.mount();
  writeFileSync(join(a.mnt, 'notes.txt'), 'kept\n');
  await a.settle();
  a.ok('snapshot');
  const sync = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { ok: boolean }[] };
  assert.equal(sync.buddies.filter((b) => b.ok).length, 2, JSON.stringify(sync));
  const aId = a.peerId();
  a.unmount();
  rmSync(a.home, { recursive: true, force: true });

  // No --mount, --listen or --no-mdns: those come from the root block.
  a.ok('recover', '--host', 'host-a', '--group', group, '--peer', c.addr, '--no-mount');
  const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const k of ['mount', 'listen', 'mdns', 'offer', 'buddies', 'peers', 'schedule', 'retention', 'auditSchedule', 'buddySilence', 'ownerSilence', 'avgChunk']) {
    assert.deepEqual(after[k], before[k], `${k} as it was`);
  }
  assert.deepEqual(after.listen, [a.addr]);
  assert.equal(after.mdns, false);

  // A member joining now hears of the host from C, which the recovery's node dialed: whatever
  // address it is told for the host is the host's own, not the recovery node's.
  const e = await mountedMember('member-e', { offer: '1G', group, peers: [c.addr] });
  const listed = (JSON.parse(e.ok('peers', '--json')) as PeersReply).members.find((m) => m.peer === aId);
  for (const addr of listed?.addrs ?? []) assert.ok(addr.startsWith(a.addr), `E lists the host at ${addr}, not at ${a.addr}`);

  a.mount();
  const status = a.status() as unknown as { daemon: { peers: { addrs: string[] } } };
  assert.ok(status.daemon.peers.addrs.every((x) => x.startsWith(a.addr)), `listening on ${status.daemon.peers.addrs.join(' ')}`);
  for (const t0 = Date.now(); (a.status() as unknown as { daemon: { peers: { fetching: boolean } } }).daemon.peers.fetching; ) {
    assert.ok(Date.now() - t0 < 120_000, 'every chunk back within two minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(readFileSync(join(a.mnt, 'notes.txt'), 'utf8'), 'kept\n');
});
