// A dishonest group member against a real buddy daemon: forged hellos, delete sets and root
// blocks, malformed and out-of-order messages on /safe/backup/1, and /safe/restore/1 asked for
// another host's data. The buddy refuses or resets each, keeps serving, and the honest host's
// data, root block and audits are untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { logMessages, seededBytes } from '../helpers.js';
import { hostKeys, hostMaster } from '../../src/keys/derive.js';
import { publicKeyFromPeerId } from '../../src/peers/wire/signing.js';
import { freePort, GROUP, heldIds, type Member, mountedMember, shippedIds, syncWait, withDb } from './group.js';
import { makeHost } from '../fs/mounted.js';
import type { Outcome, RogueConfig } from './fixtures/rogue.js';

const ROGUE = new URL('./fixtures/rogue.js', import.meta.url).pathname;

interface RootRow {
  pubkey: string;
  epoch: number;
  box: string;
  sig: string;
}
/** The root block `owner` (a PeerId) filed under `locator`. */
const rootRow = (h: Member, locator: string, owner: string): RootRow | undefined =>
  withDb(h, (db) =>
    db
      .prepare('SELECT hex(pubkey) AS pubkey, epoch, hex(box) AS box, hex(sig) AS sig FROM root_blocks WHERE locator = ? AND pubkey = ?')
      .get(locator, publicKeyFromPeerId(owner)) as RootRow | undefined,
  );
const ownerRows = (h: Member): { peer: string; pubkey: string; offer: number; epoch: number; charged: number }[] =>
  withDb(h, (db) => db.prepare('SELECT peer, hex(pubkey) AS pubkey, offer, epoch, charged FROM held_owners ORDER BY peer').all() as never);
const chunkCount = (h: Member): number => withDb(h, (db) => db.prepare('SELECT count(*) FROM chunks').pluck().get() as number);

type Line = { ready?: boolean; peerId?: string; pause?: string; results?: Record<string, Outcome>; error?: string };

/** The rogue process and the JSON lines it printed. */
function startRogue(cfg: RogueConfig): { lines: Line[]; next: (pred: (l: Line) => boolean, ms: number) => Promise<Line>; go: () => void; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [ROGUE, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Line[] = [];
  let wake: (() => void) | null = null;
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Line);
    wake?.();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let code: number | null | undefined;
  void exited.then((c) => {
    code = c;
    wake?.();
  });
  return {
    lines,
    exited,
    go: () => child.stdin!.write('go\n'),
    async next(pred, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = lines.find(pred);
        if (hit) return hit;
        const err = lines.find((l) => l.error);
        if (err) throw new Error(`rogue failed: ${err.error}`);
        if (code !== undefined) throw new Error(`rogue exited ${code} (${JSON.stringify(lines)})`);
        if (Date.now() > deadline) {
          child.kill();
          throw new Error(`rogue timed out (${JSON.stringify(lines)})`);
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 250);
        });
        wake = null;
      }
    },
  };
}

const isReset = (o: Outcome | undefined): boolean => !!o && o.end !== 'timeout' && o.end.reset;
const show = (o: unknown): string => JSON.stringify(o);

test('a buddy daemon refuses forged and malformed backup messages and keeps the honest host whole', { timeout: 120_000 }, async (t) => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 1, peers: [c.addr] });
  mkdirSync(join(a.mnt, 'docs'));
  for (let i = 0; i < 10; i++) writeFileSync(join(a.mnt, 'docs', `n${i}.txt`), `note ${i}\n`.repeat(200 + i * 50));
  writeFileSync(join(a.mnt, 'photo.raw'), seededBytes(1 << 20, 3));
  await a.settle();
  a.ok('snapshot');
  const first = syncWait(a);
  assert.deepEqual(first.buddies.map((b) => [b.peer, b.ok]), [[c.peerId(), true]], show(first));
  const idsA = shippedIds(a);
  assert.ok(idsA.size > 10, `${idsA.size} chunks`);
  assert.deepEqual(heldIds(c, a.peerId()), idsA, 'C holds A\'s add set');

  // What a dishonest member can know of A: its PeerId (its public key) and, as one of its
  // buddies, its locator and chunk ids. Never its seed.
  const locatorA = hostKeys(await hostMaster('host-a', 'test passphrase')).locator;
  const objectIdsA = withDb(c, (db) => (db.prepare('SELECT h.id FROM held_objects h JOIN held_owners o ON o.owner = h.owner WHERE o.peer = ?').pluck().all(a.peerId()) as Buffer[]).map((x) => x.toString('hex')));
  const rootBefore = rootRow(c, locatorA, a.peerId());
  assert.ok(rootBefore, 'C holds A\'s root block');
  const ownersBefore = ownerRows(c);
  assert.deepEqual(ownersBefore.map((o) => o.peer), [a.peerId()]);
  const chunksBefore = chunkCount(c);

  const rogue = startRogue({
    target: `${c.addr}/p2p/${c.peerId()}`,
    group: GROUP,
    victim: { peer: a.peerId(), locator: locatorA, chunks: [...idsA], objects: objectIdsA },
  });
  const roguePeer = (await rogue.next((l) => !!l.ready, 20_000)).peerId!;

  // 1. The forged hello is refused and leaves no trace: not even an owner row for the rogue.
  const paused = await rogue.next((l) => l.pause === 'forgedHello', 20_000);
  const forged = paused.results!.forgedHello!;
  assert.equal(forged.replies.length, 1, show(forged));
  assert.equal(forged.replies[0]!.type, 'refused', show(forged));
  assert.match(String(forged.replies[0]!.reason), /forged/, show(forged));
  assert.deepEqual(forged.end, { reset: false }, show(forged));
  assert.deepEqual(ownerRows(c), ownersBefore, 'a forged hello changes no owner record');
  assert.deepEqual(rootRow(c, locatorA, a.peerId()), rootBefore);
  rogue.go();

  const done = await rogue.next((l) => !!l.results && !l.pause, 30_000);
  assert.equal(await rogue.exited, 0);
  const r = done.results!;
  for (const [k, v] of Object.entries(r)) t.diagnostic(`${k}: ${show(v)}`);

  // 2. Delete sets: without a valid signature the stream is reset; signed by the rogue (even
  // naming A as owner in what it signs) they can only ever touch the rogue's own references.
  assert.deepEqual(r.deletesGarbageSig!.replies.map((m) => m.type), ['welcome'], show(r.deletesGarbageSig));
  assert.ok(isReset(r.deletesGarbageSig), show(r.deletesGarbageSig));
  assert.deepEqual(r.deletesSignedForVictim!.replies.map((m) => m.type), ['welcome'], show(r.deletesSignedForVictim));
  assert.ok(isReset(r.deletesSignedForVictim), show(r.deletesSignedForVictim));
  assert.deepEqual(r.deletesSelfSigned!.replies.map((m) => m.type), ['welcome', 'stored', 'committed'], show(r.deletesSelfSigned));
  assert.deepEqual(r.deletesSelfSigned!.end, { reset: false });

  // 3. A root block of the rogue's under A's locator: filed under the rogue's own key, beside
  // A's (checked below: A's is unchanged and A's next commit is taken); A's signature replayed in
  // the rogue's session: reset.
  assert.deepEqual(r.commitUnderVictimLocator!.replies.map((m) => m.type), ['welcome', 'committed'], show(r.commitUnderVictimLocator));
  assert.deepEqual(r.commitUnderVictimLocator!.end, { reset: false });
  assert.deepEqual(r.commitReplayedVictimSig!.replies.map((m) => m.type), ['welcome'], show(r.commitReplayedVictimSig));
  assert.ok(isReset(r.commitReplayedVictimSig), show(r.commitReplayedVictimSig));

  // 4. Malformed and out of order: each stream reset, and C answers the next one.
  for (const k of ['unknownType', 'unknownField', 'shortOwnerKey', 'shortChunkId', 'oversizedBox', 'oversizedFrame', 'msgBeforeHelloFrame', 'commitBeforeHello', 'helloTwice']) {
    assert.ok(isReset(r[k]), `${k}: ${show(r[k])}`);
  }
  assert.deepEqual(r.commitBeforeHello!.replies, [], show(r.commitBeforeHello));
  assert.deepEqual(r.helloTwice!.replies.map((m) => m.type), ['welcome'], show(r.helloTwice));
  assert.deepEqual(r.stillServing!.replies.map((m) => m.type), ['welcome'], show(r.stillServing));
  assert.deepEqual(r.stillServing!.end, { reset: false });

  // 5. Restore: nothing of A's for the rogue; A's root block is served (sealed) but does not open.
  const rs = r.restore!;
  assert.equal(rs.error, undefined, show(rs));
  assert.deepEqual(rs.listChunks, [], show(rs));
  assert.equal(rs.getChunks, 0, show(rs));
  assert.equal(rs.listObjects, 0, show(rs));
  assert.ok(objectIdsA.length > 0);
  assert.equal(rs.getObjects, 0, `the rogue, naming A's metadata segments, gets none: ${show(rs)}`);
  assert.deepEqual(rs.audit, { asked: Math.min(idsA.size, 1024), missing: Math.min(idsA.size, 1024) }, show(rs));
  const rb = rs.rootBlock as { epoch: number; pubkeyIsVictim: boolean; signedByVictim: boolean; open: { opened: boolean; error?: string } };
  assert.equal(rb.epoch, rootBefore.epoch);
  assert.ok(rb.pubkeyIsVictim && rb.signedByVictim, show(rb));
  assert.equal(rb.open.opened, false, show(rb));
  assert.match(rb.open.error!, /does not decrypt/);

  // 6. Claiming A's chunks by id (by design: a stored chunk costs a new owner one reference) gets
  // the rogue references charged to itself and boxes it cannot open; A's holdings are untouched.
  assert.deepEqual(r.claimByIds!.replies.map((m) => m.type), ['welcome', 'missing'], show(r.claimByIds));
  assert.deepEqual(r.claimByIds!.replies[1]!.indexes, [], 'C stores all of them already');
  t.diagnostic(`rogue, naming A's ids, got ${String(r.claimByIdsRestore!.getChunks)} chunk boxes back`);

  // Afterwards: C runs, holds exactly A's chunks and A's root block as it was.
  assert.ok(c.status().daemon, 'C\'s daemon still runs');
  assert.deepEqual(heldIds(c, a.peerId()), idsA, 'C still holds exactly A\'s chunks');
  assert.deepEqual(heldIds(c, a.peerId()), shippedIds(a));
  assert.equal(chunkCount(c), chunksBefore, 'C dropped no chunk');
  assert.deepEqual(rootRow(c, locatorA, a.peerId()), rootBefore, 'A\'s root block unchanged');
  const ownerA = ownerRows(c).find((o) => o.peer === a.peerId());
  assert.deepEqual(ownerA, ownersBefore[0], 'A\'s owner record unchanged');
  const rogueRow = ownerRows(c).find((o) => o.peer === roguePeer);
  assert.ok(rogueRow && rogueRow.charged > 0, `the rogue pays for what it claimed: ${show(rogueRow)}`);
  // C's log names each refusal, in the order the rogue tried them.
  const log = logMessages(c.home)
    .filter((l) => l.includes(`from ${roguePeer}`))
    .map((l) => l.slice(l.indexOf(roguePeer) + roguePeer.length));
  const expected = [
    /^: forged hello: the owner key is not the key of this connection$/,
    /^ reset: forged delete set/,
    /^ reset: forged delete set/,
    /^$/, // committed epoch 1: the rogue's own shipment
    /^$/, // committed: the rogue's root block under A's locator, filed under the rogue's key
    /^ reset: forged commit/,
    /^ reset: bad message: \$\.type: unknown message type "gimme"$/,
    /^ reset: bad message: \$<hello>: unknown field "admin"$/,
    /^ reset: bad message: \$<hello>\.owner: 31 bytes, expected exactly 32$/,
    /^ reset: bad message: \$<has>\.ids\[0\]: 31 bytes, expected exactly 32$/,
    /^ reset: bad message: \$<chunks>\.items\[0\]\.box: 1048577 bytes, more than 1048576$/,
    /^ reset: frame of \d+ bytes, more than the limit of \d+$/,
    /^ reset: first frame is not HELLO$/,
    /^ reset: expected hello, got commit$/,
    /^ reset: hello sent twice$/,
  ];
  assert.equal(log.length, expected.length, `C's log about the rogue:\n${log.join('\n')}`);
  log.forEach((l, i) => assert.match(l, expected[i]!, `C's log line ${i} about the rogue`));

  // A still audits C, and ships a new snapshot to it.
  const audit = a.safe('verify', '--remote', '--json');
  assert.equal(audit.status, 0, audit.stdout + audit.stderr);
  writeFileSync(join(a.mnt, 'later.txt'), 'after the rogue\n'.repeat(1000));
  await a.settle();
  a.ok('snapshot');
  const again = syncWait(a);
  assert.deepEqual(again.buddies.map((b) => [b.peer, b.ok]), [[c.peerId(), true]], show(again));
  assert.deepEqual(heldIds(c, a.peerId()), shippedIds(a), 'C holds A\'s new add set');
  const rootAfter = rootRow(c, locatorA, a.peerId())!;
  assert.equal(rootAfter.pubkey, rootBefore.pubkey);
  assert.ok(rootAfter.epoch > rootBefore.epoch, `A's root block advanced: ${rootBefore.epoch} -> ${rootAfter.epoch}`);
});

test('chunk poisoning: garbage a member uploads first under a victim\'s chunk ids is refused, and the victim\'s data stays whole and recovers', { timeout: 240_000 }, async () => {
  const c = await mountedMember('buddy-p', { offer: '1G' });
  const a = await mountedMember('host-v', { offer: '200M', buddies: 1, peers: [c.addr] });
  const content = seededBytes(1 << 20, 17);
  writeFileSync(join(a.mnt, 'victim.bin'), content);
  await a.settle();
  // The ids the victim is about to ship, known to the rogue first (it has the same file, or it
  // was the victim's buddy before).
  const future = withDb(a, (db) => db.prepare('SELECT id FROM chunks WHERE refs > 0').pluck().all() as Buffer[]).map((x) => x.toString('hex'));
  assert.ok(future.length > 20, `${future.length} chunks`);
  const locator = hostKeys(await hostMaster('host-v', 'test passphrase')).locator;
  const rogue = startRogue({ target: `${c.addr}/p2p/${c.peerId()}`, group: GROUP, victim: { peer: a.peerId(), locator, chunks: [] }, poison: future });
  const done = await rogue.next((l) => !!l.results, 30_000);
  assert.equal(await rogue.exited, 0);
  const poison = done.results!.poison!;
  assert.deepEqual(poison.replies.map((m) => m.type), ['welcome', 'missing'], show(poison));
  assert.ok(isReset(poison), `garbage under another's ids is refused: ${show(poison)}`);
  const parked = withDb(c, (db) => future.filter((id) => db.prepare('SELECT 1 FROM chunks WHERE id = ?').get(Buffer.from(id, 'hex'))).length);
  assert.equal(parked, 0, 'nothing of the garbage is stored');

  a.ok('snapshot');
  const s = syncWait(a);
  assert.ok(s.buddies.length === 1 && s.buddies[0]!.ok, show(s));
  assert.deepEqual(heldIds(c, a.peerId()), shippedIds(a));
  assert.match(c.ok('verify'), /no problems/);
  const audit = a.safe('verify', '--remote', '--json');
  assert.equal(audit.status, 0, audit.stdout + audit.stderr);

  const blank = makeHost({ init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
  blank.ok('recover', '--host', 'host-v', '--mount', blank.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`, '--no-mdns', '--json');
  assert.ok(readFileSync(join(blank.mnt, 'victim.bin')).equals(content), 'the victim recovers its own bytes');
  blank.unmount();
});
