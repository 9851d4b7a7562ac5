// Replication faults with real daemons: a buddy killed mid-shipment, a buddy out of space.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logMessages, seededBytes } from '../helpers.js';
import { setConfig } from '../fs/mounted.js';
import { heldIds, mountedMember, shippedIds, syncWait, type SyncJson, withDb } from './group.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// A slow buddy is one with a download cap (`safe init --max-download`). It holds back the credit
// it grants, not the messages it gets: a shipment's first 16 MiB (the window it grants before
// any credit, four 4 MiB messages of chunks) reach its disk at once, the rest only as fast as
// the cap returns credit. At 1M (1 MB/s) a 24 MiB file is there whole only ~12 s after the
// shipment starts (measured: 16 MiB at once, 20 after 3 s, 24 after 11 s), time enough for
// the kills and stops below even when a loaded machine is slow to see the first chunks.
const SLOW_BUDDY = ['--max-download', '1M'];

test('a buddy killed mid-shipment: the next sync resumes and sends only what did not reach its disk', { timeout: 240_000 }, async () => {
  // The buddy is slow (SLOW_BUDDY): the kill, once it holds a quarter, lands mid-way.
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: SLOW_BUDDY });
  const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr] });
  const aPeer = a.peerId();
  // The first look at the buddy's index derives its key (scrypt): not while the shipment runs,
  // or on a loaded machine the first look comes after the last batch.
  assert.equal(heldIds(c, aPeer).size, 0);
  writeFileSync(join(a.mnt, 'big.bin'), seededBytes(24 << 20, 3));
  await a.settle();
  a.ok('snapshot');
  const total = shippedIds(a).size;
  a.ok('sync'); // in the background
  for (let i = 0; ; i++) {
    if (heldIds(c, aPeer).size > total / 4) break;
    assert.ok(i < 400, 'shipment never started');
    await sleep(50);
  }
  const pid = Number(readFileSync(join(c.home, 'daemon.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  await sleep(300);
  const durable = heldIds(c, aPeer);
  assert.ok(durable.size > 0 && durable.size < total, `killed mid-way: ${durable.size} of ${total}`);
  assert.equal(withDb(c, (db) => db.prepare('SELECT epoch FROM held_owners').pluck().get()), 0, 'nothing committed');

  setConfig(c, { maxDownload: undefined }); // the rest at full speed
  c.mount(); // stale mount cleared, restarts on the same port
  const r = JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson;
  const x = r.buddies[0]!;
  assert.ok(x.ok, JSON.stringify(r));
  assert.equal(x.report!.chunksSent, total - durable.size, 'only the chunks the buddy lacked were sent again');
  assert.deepEqual(heldIds(c, aPeer), shippedIds(a));
  assert.equal(withDb(c, (db) => db.prepare('SELECT count(*) FROM chunks').pluck().get()), total, 'each chunk stored once');
  assert.ok(withDb(c, (db) => db.prepare('SELECT epoch FROM held_owners').pluck().get() as number) > 0, 'committed');
});

test('a buddy out of space refuses; another is chosen', { timeout: 240_000 }, async () => {
  const c = await mountedMember('small-c', { offer: '1M' });
  const d = await mountedMember('roomy-d', { offer: '1G', peers: [c.addr] });
  const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr] });
  // C already holds A's shared file, so it covers A best and is asked first.
  const shared = seededBytes(1 << 20, 5);
  writeFileSync(join(c.mnt, 'shared.bin'), shared);
  await c.settle();
  writeFileSync(join(a.mnt, 'shared.bin'), shared);
  writeFileSync(join(a.mnt, 'more.bin'), seededBytes(6 << 20, 6));
  await a.settle();
  a.ok('snapshot');
  const r = JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson & { short: number };
  // The snapshot already started a shipment in the background; sync --wait reports on D.
  assert.ok(r.buddies.find((b) => b.peer === d.peerId())?.ok, `D took over: ${JSON.stringify(r)}`);
  const retired = withDb(a, (db) => db.prepare('SELECT retired, last_error FROM buddies WHERE peer = ?').get(c.peerId())) as { retired: number; last_error: string };
  assert.equal(retired.retired, 1);
  assert.match(retired.last_error, /buddy full/);
  assert.deepEqual(heldIds(d, a.peerId()), shippedIds(a));
  const status = JSON.parse(a.ok('status', '--json')) as { daemon: { peers: { buddies: { peer: string }[] } } };
  assert.deepEqual(status.daemon.peers.buddies.map((b) => b.peer), [d.peerId()], 'C is no longer a buddy');
  assert.match(logMessages(c.home).join('\n'), /refused backup from .*buddy full/);
});

test('a host killed mid-shipment: the buddy logs why the stream ended and keeps the shipment pending', { timeout: 240_000 }, async () => {
  // C is slow (SLOW_BUDDY): a loaded machine's looks at C and the kill of A come well before
  // the shipment could end.
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: SLOW_BUDDY });
  const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr] });
  writeFileSync(join(a.mnt, 'big.bin'), seededBytes(24 << 20, 7));
  await a.settle();
  a.ok('snapshot');
  const total = shippedIds(a).size;
  const aPeer = a.peerId();
  a.ok('sync'); // in the background
  for (let i = 0; ; i++) {
    if (heldIds(c, aPeer).size > 0) break;
    assert.ok(i < 400, 'shipment never started');
    await sleep(50);
  }
  process.kill(Number(readFileSync(join(a.home, 'daemon.pid'), 'utf8')), 'SIGKILL');
  const line = new RegExp(`backup stream from ${aPeer} failed: .+`);
  for (let i = 0; !logMessages(c.home).some((m) => line.test(m)); i++) {
    assert.ok(i < 400, `C logged nothing about the stream A left:\n${logMessages(c.home).join('\n')}`);
    await sleep(50);
  }
  const held = heldIds(c, aPeer).size;
  assert.ok(held > 0 && held < total, `cut off mid-way: ${held} of ${total}`);
  assert.equal(withDb(c, (db) => db.prepare('SELECT epoch FROM held_owners').pluck().get()), 0, 'nothing committed');
  assert.ok(c.status().daemon, 'C still runs');
});

test('unmount mid-sync: the sync stops with the daemon, is not held against the buddy, and resumes later', { timeout: 240_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: SLOW_BUDDY });
  // Files wait for a sync to chunk them (its flush), not for a timer.
  const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr], env: { SAFE_CHUNK_DELAY_MS: '600000' } });
  const aPeer = a.peerId();
  const log = (): string[] => logMessages(a.home);
  /** The daemon's last stop wrote nothing after 'unmounting' but its end, and left the buddy's record clean. */
  const stoppedQuietly = (when: string): void => {
    const lines = log();
    const tail = lines.slice(lines.lastIndexOf('unmounting'));
    assert.match(tail.at(-1)!, /stopped cleanly$/, `${when}: the daemon's last words:\n${tail.join('\n')}`);
    assert.deepEqual(tail.filter((l) => /fail|not open/.test(l)), [], `${when}: nothing failed on the way out:\n${tail.join('\n')}`);
    const row = withDb(a, (db) => db.prepare('SELECT fails, last_error AS lastError, retired FROM buddies').all());
    assert.deepEqual(row, [{ fails: 0, lastError: null, retired: 0 }], `${when}: our own stop is not the buddy's failure`);
  };

  // A shipment under way (the buddy is slow: SLOW_BUDDY).
  writeFileSync(join(a.mnt, 'one.bin'), seededBytes(24 << 20, 8));
  a.ok('snapshot'); // chunks, then ships, in the background
  for (let i = 0; heldIds(c, aPeer).size === 0; i++) {
    assert.ok(i < 400, 'shipment never started');
    await sleep(50);
  }
  a.unmount();
  assert.ok(heldIds(c, aPeer).size < shippedIds(a).size, 'unmounted mid-shipment');
  stoppedQuietly('mid-shipment');

  // A sync still waiting for a file to be chunked when the daemon is told to stop.
  a.mount();
  writeFileSync(join(a.mnt, 'two.bin'), seededBytes(160 << 20, 9));
  a.ok('snapshot');
  a.unmount();
  assert.equal(heldIds(c, aPeer).size < shippedIds(a).size, true, 'stopped before the shipment ended');
  stoppedQuietly('waiting for chunking');

  // What is left of both files (most of their 184 MiB) goes at full speed: C restarts uncapped.
  c.unmount();
  setConfig(c, { maxDownload: undefined });
  c.mount();
  a.mount();
  const r = JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson;
  assert.ok(r.buddies[0]?.ok, JSON.stringify(r));
  assert.deepEqual(heldIds(c, aPeer), shippedIds(a), 'the next sync shipped everything');
});

test('a buddy that is away is tried on its backoff, not after every snapshot, and shipped to once back', { timeout: 240_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 1, peers: [c.addr] });
  writeFileSync(join(a.mnt, 'first.txt'), 'first\n');
  await a.settle();
  a.ok('snapshot');
  assert.deepEqual(syncWait(a).buddies.map((b) => b.ok), [true]);
  c.unmount();
  const buddy = (): { fails: number; epoch: number } => (JSON.parse(a.ok('status', '--json')) as { daemon: { peers: { buddies: { fails: number; epoch: number }[] } } }).daemon.peers.buddies[0]!;
  // Each snapshot asks for a sync in the background; one try fails, the others wait it out.
  for (let i = 0; i < 12; i++) {
    writeFileSync(join(a.mnt, `n${i}.txt`), `note ${i}\n`);
    a.ok('snapshot');
    await sleep(200);
  }
  await sleep(2000);
  const away = buddy();
  assert.ok(away.fails >= 1 && away.fails <= 2, `tries of the buddy while it was away: ${away.fails} (12 snapshots)`);
  // Back: the retry comes on its own, 15 s after the failed try, however many snapshots came since.
  c.mount();
  const latest = (JSON.parse(a.ok('snapshots', '--json')) as { epoch: number }[]).at(-1)!.epoch;
  for (let i = 0; buddy().epoch !== latest; i++) {
    assert.ok(i < 60, `no retry within 60 s: ${JSON.stringify(buddy())}`);
    await sleep(1000);
  }
  assert.equal(buddy().fails, 0);
});
