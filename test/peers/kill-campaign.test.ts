// Kill campaigns with real daemons on 127.0.0.1: a buddy killed with SIGKILL mid-shipment,
// round after round, and a host killed mid-recovery, round after round. Everything completes,
// and nothing that had reached the other side's disk travels twice. Seeded and bounded in
// time: SAFE_KILL_SEED, SAFE_KILL_ROUNDS (default 20), SAFE_KILL_SECONDS (default 45 each).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { campaign, seededBytes } from '../helpers.js';
import type { Host } from '../fs/mounted.js';
import { type Fetching, mountedMember, recoveringFromSlowBuddy, type SyncJson } from './group.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Chunks in a host's store, from `safe status` (the daemon need not run). */
const storeChunks = (h: Host): number => (h.status() as unknown as { store: { chunks: number } }).store.chunks;
/** Mounts; returns once its peer service listens too (status waits for it), as a restart is dialled at once. */
const mountPid = (h: Host): number => {
  const pid = (JSON.parse(h.ok('mount', '--json')) as { pid: number }).pid;
  h.ok('status');
  return pid;
};

test('a buddy killed mid-shipment, round after round: each resumed shipment sends only what its disk lacks, and it ends up holding everything', { timeout: 300_000 }, async () => {
  const { seed, rounds, random, next } = campaign('SAFE_KILL', 20, 45);
  // Room for every round's file (at most 24 MiB) on both sides: a host may store no more with a
  // buddy than it offers the group, and the buddy refuses it ("unfair") past that.
  const offer = `${Math.max(500, rounds * 25)}M`;
  // The buddy receives at most 1 MB/s (--max-download 1M), which it enforces by holding back
  // the credit it grants: a shipment's first 16 MiB (its window, four 4 MiB batches) arrive at
  // once, the fifth batch ~3 s later, the sixth ~11 s later. A round's file is 17-24 MiB, five
  // or six batches, so the kill (once `safe status` sees the first chunks arrive, plus up to
  // 0.4 s) lands before the end even when `safe status` is slow on a loaded machine; a file
  // within the window would arrive whole before any kill. The resend after the kill (what is
  // left, within a fresh window) is not slowed.
  const c = await mountedMember('buddy-c', { offer: `${Math.max(1000, rounds * 25)}M`, initArgs: ['--max-download', '1M'] });
  const a = await mountedMember('host-a', { offer, buddies: 1, peers: [c.addr] });
  let cPid = (c.status().daemon as { pid: number }).pid;
  let held = 0;
  let cut = 0;
  for (let round = 0; next(round); round++) {
    const where = `SAFE_KILL_SEED=${seed} round ${round}`;
    writeFileSync(join(a.mnt, `f${round}`), seededBytes((17 + Math.floor(random() * 8)) << 20, Math.floor(random() * 2 ** 31) + 1));
    await a.settle();
    a.ok('snapshot'); // ships in the background
    // A random moment once the shipment's first chunks reached the buddy's disk.
    for (const t0 = Date.now(); storeChunks(c) === held; await sleep(50)) {
      assert.ok(Date.now() - t0 < 30_000, `${where}: the shipment started`);
    }
    await sleep(random() * 400);
    process.kill(cPid, 'SIGKILL');
    await sleep(100);
    // The buddy holds only our chunks: its store is what reached its disk.
    const durable = storeChunks(c);
    const total = storeChunks(a);
    assert.ok(durable <= total, `${where}: the buddy holds ${durable} of our ${total} chunks`);
    if (durable > held && durable < total) cut++;
    cPid = mountPid(c); // the stale mount cleared, the same port
    const r = JSON.parse(a.ok('sync', '--wait', '--json')) as SyncJson;
    const b = r.buddies.find((x) => x.peer === c.peerId());
    assert.ok(b?.ok, `${where}: ${JSON.stringify(r)}`);
    held = storeChunks(c);
    assert.equal(held, total, `${where}: the buddy holds all ${total} chunks`);
    // Committed before the kill: the report is the shipment's that did it.
    const sent = b.report!.already ? 0 : b.report!.chunksSent;
    assert.equal(sent, held - durable, `${where}: ${durable} chunks had reached the buddy's disk before the kill: none was sent again`);
  }
  assert.ok(cut > 0, `SAFE_KILL_SEED=${seed}: at least one kill landed mid-shipment`);
  const audit = JSON.parse(a.ok('verify', '--remote', '--json')) as { local: { ok: boolean }; remote: { ok: boolean } };
  assert.ok(audit.local.ok && audit.remote.ok, `SAFE_KILL_SEED=${seed}: ${JSON.stringify(audit)}`);
});

test('a host killed mid-recovery, round after round: each run fetches only what its disk lacks, and the files come out whole', { timeout: 300_000 }, async () => {
  const { seed, random, next } = campaign('SAFE_KILL', 20, 45);
  // The buddy sends at most 8 MB/s (--max-upload 8M), half a second a 4 MiB page: a run lives
  // for a page or two of the 16.
  const { a, data, total } = await recoveringFromSlowBuddy(64 << 20, 33, '8M');
  const backfill = (): { fetching: boolean; fetched: number } => {
    const p = (JSON.parse(a.ok('status', '--json')) as Fetching).daemon!.peers;
    return { fetching: p.fetching, fetched: p.backfill?.chunksFetched ?? 0 };
  };
  let pid = (a.status().daemon as { pid: number }).pid;
  let durable = 0;
  let cut = 0;
  for (let round = 0; next(round); round++) {
    const where = `SAFE_KILL_SEED=${seed} round ${round}`;
    // A random moment once this run's first chunks reached the disk.
    for (const t0 = Date.now(); storeChunks(a) === durable; await sleep(100)) {
      assert.ok(Date.now() - t0 < 30_000, `${where}: the fetch goes on after a remount`);
    }
    await sleep(random() * 500);
    process.kill(pid, 'SIGKILL');
    await sleep(100);
    const now = storeChunks(a);
    assert.ok(now >= durable, `${where}: ${now} chunks here after the kill, ${durable} before: nothing that had arrived was lost`);
    if (now > durable && now < total) cut++;
    durable = now;
    if (durable === total) break;
    pid = mountPid(a);
  }
  assert.ok(cut > 0, `SAFE_KILL_SEED=${seed}: at least one kill landed mid-fetch`);
  // The last run goes to the end: it fetches exactly what was not on disk.
  if (durable === total) pid = mountPid(a);
  let last = backfill();
  for (const t0 = Date.now(); last.fetching; last = backfill()) {
    assert.ok(Date.now() - t0 < 120_000, `SAFE_KILL_SEED=${seed}: every chunk back within two minutes`);
    await sleep(200);
  }
  assert.equal(last.fetched, total - durable, `SAFE_KILL_SEED=${seed}: ${durable} of ${total} chunks were here: the last run fetched only the rest`);
  assert.equal(storeChunks(a), total, `SAFE_KILL_SEED=${seed}: every chunk is back`);
  const back = spawnSync('cat', [join(a.mnt, 'data.bin')], { maxBuffer: 64 << 20 });
  assert.ok(back.stdout.equals(data), 'the file is whole');
  assert.match(a.ok('verify'), /no problems/);
});
