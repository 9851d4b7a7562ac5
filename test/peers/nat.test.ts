// Members behind home routers (scripts/nat-bed.ts: two NAT homes, one reachable member that
// relays, all in network namespaces this test makes and removes). Each home learns from a
// dial-back that it cannot be reached, takes a slot on the relay, and the two homes back up to
// each other through it; one then loses its disk and recovers from behind its NAT. The second
// home's router maps every connection to a random port (--random-fully). Then the relay dies
// in the middle of a shipment and comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { SAFE_BIN } from '../fs/mounted.js';
import { canBuildBed, makeBed, type BedOptions } from '../../scripts/nat-bed.js';
import { GROUP, heldIds, makeMember, shippedIds, remoteAudit, type Member, type SyncJson } from './group.js';
import type { Reach } from '../../src/peers/group/reachability.js';

const skip = canBuildBed() ? false : 'needs root and iproute2 to make network namespaces';

const reachOf = (m: Member): Reach => (m.status() as unknown as { daemon: { peers: { reach: Reach } } }).daemon.peers.reach;

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The bed, the relay in the open and a host in each home knowing only the relay's address;
 * every daemon unmounted and the bed removed afterwards, whatever happened.
 */
async function inBed(
  o: { bed?: BedOptions; hostArgs?: string[]; slots?: number },
  fn: (g: { relay: Member; a: Member; b: Member }) => Promise<void>,
): Promise<void> {
  const bed = makeBed(o.bed);
  const hosts: Member[] = [];
  try {
    // The relay offers no space: the homes must choose each other.
    const relay = await makeMember('relay', { offer: '0', netns: { name: bed.ns.pub, ip: bed.ip.pub }, initArgs: ['--relay', String(o.slots ?? 4)] });
    hosts.push(relay);
    relay.mount();
    const home = async (name: string, ns: string, ip: string): Promise<Member> => {
      const m = await makeMember(name, { offer: '1G', buddies: 1, peers: [relay.addr], netns: { name: ns, ip }, initArgs: o.hostArgs });
      hosts.push(m);
      m.mount();
      return m;
    };
    await fn({ relay, a: await home('home-a', bed.ns.home1, bed.ip.home1), b: await home('home-b', bed.ns.home2, bed.ip.home2) });
  } finally {
    for (const h of hosts.reverse()) h.safe('unmount');
    bed.teardown();
  }
}

test('two homes behind NAT back up to each other through a relay member; one recovers from behind its NAT', { skip, timeout: 300_000 }, () =>
  inBed({ bed: { randomFully: { router2: true } } }, async ({ relay, a, b }) => {
    await until('both homes hold a slot on the relay', () => reachOf(a).kind === 'relayed' && reachOf(b).kind === 'relayed', 60_000);
    assert.deepEqual(reachOf(a), { kind: 'relayed', via: relay.peerId() });
    await until('the relay learns it is reachable', () => reachOf(relay).kind === 'direct', 30_000);
    assert.match(a.ok('status'), new RegExp(`\\nbehind NAT: members reach this host through the relay ${relay.peerId()}\\n`));

    const data = seededBytes(3_000_000, 14);
    writeFileSync(join(a.mnt, 'photos.bin'), data);
    writeFileSync(join(a.mnt, 'notes.txt'), 'written behind a home router\n');
    await a.settle();
    a.ok('snapshot');
    // A learns of B from the relay's member list, which may not name B yet when both have just
    // taken their slots: a sync then finds no buddy (exit 1, short 1), and the next asks again.
    let r = a.safe('sync', '--wait', '--json');
    await until('a sync finds B as a buddy', () => r.status === 0 || ((r = a.safe('sync', '--wait', '--json')), r.status === 0), 60_000);
    const sync = JSON.parse(r.stdout) as SyncJson;
    assert.deepEqual(sync.buddies.map((x) => [x.peer, x.ok]), [[b.peerId(), true]], JSON.stringify(sync));
    const addrs = (JSON.parse(a.ok('peers', '--json')) as { members: { peer: string; addrs: string[] }[] }).members.find((m) => m.peer === b.peerId())!.addrs;
    assert.ok(addrs.some((x) => x.includes(`/p2p/${relay.peerId()}/p2p-circuit`)), `B is known by its relayed address: ${addrs.join(' ')}`);
    const shipped = shippedIds(a);
    const held = heldIds(b, a.peerId());
    assert.ok(shipped.size > 10 && [...shipped].every((id) => held.has(id)), `B holds every chunk of A's snapshot (${held.size}/${shipped.size})`);
    assert.equal(heldIds(relay, a.peerId()).size, 0, 'the relay holds nothing of A');
    const audit = remoteAudit(a);
    assert.equal(audit.status, 0, audit.out);
    assert.deepEqual(audit.audits.map((x) => [x.peer, x.verdict]), [[b.peerId(), 'passed']], audit.out);

    // A's disk dies. From behind its NAT, with the relay's address only, it gets it all back.
    a.unmount();
    rmSync(a.home, { recursive: true, force: true });
    const rec = JSON.parse(a.ok('recover', '--host', 'home-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', relay.addr, '--listen', a.addr, '--no-mdns', '--json')) as { missing: number };
    assert.equal(rec.missing, 0);
    assert.ok(readFileSync(join(a.mnt, 'photos.bin')).equals(data), 'photos.bin recovered byte for byte');
    assert.equal(readFileSync(join(a.mnt, 'notes.txt'), 'utf8'), 'written behind a home router\n');
  }));

// A's uplink capped so the shipment is still under way when the relay dies.
test('the relay killed mid-shipment and restarted: reservations come back and the shipment resumes without sending again what had arrived', { skip, timeout: 300_000 }, () =>
  inBed({ hostArgs: ['--max-upload', '2M'] }, async ({ relay, a, b }) => {
    await until('both homes hold a slot on the relay', () => reachOf(a).kind === 'relayed' && reachOf(b).kind === 'relayed', 60_000);
    writeFileSync(join(a.mnt, 'big.bin'), seededBytes(16_000_000, 15));
    await a.settle();
    a.ok('snapshot');
    const first = spawn(SAFE_BIN, ['sync', '--wait', '--json'], { env: a.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const firstDone = new Promise<number | null>((resolve) => first.on('exit', resolve));
    type Shipping = { done: number; total: number };
    const shipping = (): Shipping[] => (a.status() as unknown as { daemon: { peers: { shipping: Shipping[] } } }).daemon.peers.shipping;
    await until('a third of the shipment is through', () => shipping().some((s) => s.done * 3 > s.total), 60_000);
    process.kill((relay.status() as unknown as { daemon: { pid: number } }).daemon.pid, 'SIGKILL');
    assert.equal(await firstDone, 1, 'the shipment through the dead relay failed');
    await until('A sees its slot gone', () => reachOf(a).kind !== 'relayed', 30_000);
    relay.mount();
    await until('both homes hold a slot on the restarted relay again', () => reachOf(a).kind === 'relayed' && reachOf(b).kind === 'relayed', 60_000);
    const arrived = heldIds(b, a.peerId());
    assert.ok(arrived.size > 0, 'B kept what arrived before the relay died');
    const sync = JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson;
    const r = sync.buddies[0]!;
    assert.ok(r.ok && r.peer === b.peerId() && r.report && !r.report.already, JSON.stringify(sync));
    assert.ok(
      r.report.chunksSent <= r.report.chunksOffered - arrived.size,
      `sent again only what had not arrived: ${r.report.chunksSent} sent of ${r.report.chunksOffered}, ${arrived.size} had arrived`,
    );
    const shipped = shippedIds(a);
    const held = heldIds(b, a.peerId());
    assert.ok([...shipped].every((id) => held.has(id)), `B holds every chunk (${held.size}/${shipped.size})`);
    const audit = remoteAudit(a);
    assert.deepEqual(audit.audits.map((x) => [x.peer, x.verdict]), [[b.peerId(), 'passed']], audit.out);
  }));

test('a relay holds no more slots than its owner offers: the member it refuses says so, with what to do', { skip, timeout: 120_000 }, () =>
  inBed({ slots: 1 }, async ({ relay, a, b }) => {
    const kinds = (): string[] => [reachOf(a).kind, reachOf(b).kind].sort();
    await until('one home holds the only slot, the other is refused', () => kinds().join() === 'relayed,unreachable', 60_000);
    const [refused, held] = reachOf(a).kind === 'unreachable' ? [a, b] : [b, a];
    assert.deepEqual(reachOf(held), { kind: 'relayed', via: relay.peerId() });
    assert.match(
      refused.ok('status'),
      new RegExp(`\\nbehind NAT, and no relay took a reservation \\(${relay.peerId()}: [^\\n]+\\): members cannot start a connection to this host\\. Ask a member with a public address to relay \\(safe init --relay, or "relay" in its config\\.json\\), or forward TCP port 4747 to this host on the router\\n`),
    );
  }));
