// The DHT rendezvous, with real nodes in separate processes on 127.0.0.1: members that only
// know one common peer find each other, which no other mechanism here does (the fixture has no
// peer exchange and there is no mDNS), and a node of another group is never found.
import '../../src/peers/net/polyfill.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Command, MemberConfig } from './fixtures/peer.js';
import { FixtureProcess } from './fixture-process.js';

const seed = (label: string): string => createHash('sha256').update(label).digest('hex');
const GROUP = { pnet: seed('group key'), rendezvous: seed('group rendezvous') };
const OTHER = { pnet: seed('other group key'), rendezvous: seed('other group rendezvous') };

type Line = Record<string, unknown> & { ready?: boolean; peerId?: string; addrs?: string[]; event?: string; name?: string; reply?: Reply };
interface Reply {
  cmd?: string;
  error?: { name: string; message: string };
  found?: string[];
  peers?: string[];
  discovered?: string[];
  remotePeer?: string;
  echoed?: { type: string; from?: string };
}

/** A serve-mode fixture process: its JSON lines, and commands on its stdin. */
class Member extends FixtureProcess<Line> {
  peerId = '';
  addr = '';

  static async start(cfg: Omit<MemberConfig, 'mode'>): Promise<Member> {
    const m = new Member({ mode: 'serve', ...cfg });
    const ready = await m.next((l) => l.ready === true, 10_000, 'ready');
    m.peerId = ready.peerId!;
    m.addr = ready.addrs!.find((a) => a.startsWith('/ip4/127.0.0.1/tcp/'))!;
    return m;
  }

  async send(c: Command): Promise<Reply> {
    const from = this.lines.length;
    this.child.stdin!.write(JSON.stringify(c) + '\n');
    const { reply } = await this.next((l) => l.reply !== undefined, 10_000, c.cmd, from);
    assert.equal(reply!.error, undefined, `${c.cmd}: ${JSON.stringify(reply!.error)}`);
    return reply!;
  }

  /** Rendezvous rounds until `pred` holds of one, or `ms` have passed: the last round's reply. */
  async until(pred: (r: Reply) => boolean, ms: number): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await this.send({ cmd: 'rendezvous' });
      if (pred(r) || Date.now() > deadline) return r;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  events(name: string): Line[] {
    return this.lines.filter((l) => l.event === name);
  }

}

/** B, and A and C that know only B: the shape where only a rendezvous can introduce A to C. */
async function trio(prefix: string, rendezvous?: string): Promise<{ a: Member; b: Member; c: Member }> {
  const b = await Member.start({ seed: seed(`${prefix} b`), pnet: GROUP.pnet, rendezvous });
  const [a, c] = await Promise.all(
    ['a', 'c'].map((x) => Member.start({ seed: seed(`${prefix} ${x}`), pnet: GROUP.pnet, bootstrap: [b.addr], rendezvous })),
  );
  return { a: a!, b, c: c! };
}

test('without the rendezvous, members that share only a bootstrap peer never learn of each other', async () => {
  const { a, b, c } = await trio('control');
  const atB = await b.until((r) => [a.peerId, c.peerId].every((p) => r.peers!.includes(p)), 5000);
  assert.deepEqual(new Set(atB.peers), new Set([a.peerId, c.peerId]), 'both reached B');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const r = await a.send({ cmd: 'rendezvous' });
  assert.deepEqual(r.found, [], 'no DHT, no rendezvous');
  assert.deepEqual(r.peers, [b.peerId]);
  assert.ok(!r.discovered!.includes(c.peerId), `A heard of C: ${r.discovered}`);
  assert.deepEqual(await Promise.all([a.stop(), b.stop(), c.stop()]), [0, 0, 0]);
});

test('members find each other through the DHT rendezvous record; another group is never found', async () => {
  // Another group on the same machine, one of its nodes also told of our B: it cannot get in,
  // and its own rendezvous finds its own member only.
  const o1 = await Member.start({ seed: seed('outsider 1'), pnet: OTHER.pnet, rendezvous: OTHER.rendezvous });
  const { a, b, c } = await trio('dht', GROUP.rendezvous);
  // Without /p2p/, so the node reports the failed bootstrap and we know it really tried.
  const bBare = b.addr.replace(/\/p2p\/.*$/, '');
  const o2 = await Member.start({ seed: seed('outsider 2'), pnet: OTHER.pnet, rendezvous: OTHER.rendezvous, bootstrap: [bBare, o1.addr] });
  const rejected = await o2.next((l) => l.event === 'bootstrap-error', 5000, 'outsider rejected by B');
  assert.equal(rejected.name, 'GroupMismatchError');

  const t0 = performance.now();
  const r = await a.until((x) => x.found!.includes(c.peerId), 10_000);
  const ms = performance.now() - t0;
  assert.ok(r.found!.includes(c.peerId), `A found C by the rendezvous: ${JSON.stringify(r)}`);
  assert.deepEqual(new Set(r.found), new Set([b.peerId, c.peerId]), 'every member, and members only');
  assert.ok(r.discovered!.includes(c.peerId), 'C was handed to the discovery listeners');
  assert.ok(r.peers!.includes(c.peerId), 'and dialed');
  const echo = await a.send({ cmd: 'echo', peer: c.peerId });
  assert.equal(echo.remotePeer, c.peerId, 'a stream to C by PeerId alone, authenticated by Noise');
  assert.equal(echo.echoed?.from, a.peerId);
  const fromC = await c.until((x) => x.found!.includes(a.peerId), 5000);
  assert.deepEqual(new Set(fromC.found), new Set([a.peerId, b.peerId]), 'and C found A');

  const other = await o1.until((x) => x.found!.includes(o2.peerId), 5000);
  assert.deepEqual(other.found, [o2.peerId], "the other group's rendezvous works, within that group");
  const outsiders = [o1.peerId, o2.peerId];
  for (const m of [a, b, c]) {
    const seen = await m.send({ cmd: 'rendezvous' });
    for (const list of [seen.found!, seen.peers!, seen.discovered!]) {
      assert.ok(!list.some((p) => outsiders.includes(p)), `a member knows of an outsider: ${JSON.stringify(seen)}`);
    }
  }
  for (const m of [o1, o2]) {
    const seen = await m.send({ cmd: 'rendezvous' });
    assert.ok(![a, b, c].some((x) => [...seen.found!, ...seen.peers!].includes(x.peerId)), `an outsider reached a member: ${JSON.stringify(seen)}`);
  }
  for (const m of [a, b, c, o1, o2]) assert.deepEqual(m.events('rendezvous-error'), [], 'no failed rounds');
  assert.deepEqual(await Promise.all([a, b, c, o1, o2].map((m) => m.stop())), [0, 0, 0, 0, 0], 'all stop cleanly');
  console.log(`# rendezvous: A found C ${Math.round(ms)} ms after asking`);
});
