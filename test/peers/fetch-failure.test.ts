// A recovered host whose only buddy dies while reads wait for its chunks: the readers get EIO,
// the daemon lives on and still reads what it has. Real daemons on 127.0.0.1; the buddy is
// stopped (SIGSTOP) so the reads stay in flight while other reads push them out of the
// daemon's chunk cache, then killed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { errorCode, seededBytes } from '../helpers.js';
import { GROUP, mountedMember } from './group.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Fetching {
  daemon: { peers: { backfill: { chunksFetched: number } | null } } | null;
}

test('the only buddy dies while reads wait for its chunks: they get EIO, the daemon keeps serving', { timeout: 240_000 }, async () => {
  // The buddy sends at most 1.5 MB/s (--max-upload 1.5M). The recovery's background fetch takes
  // cold.bin in batches of 16 MiB, two at a time sharing the cap, and counts a batch once it is
  // all back: the buddy is stopped at the first count, ~22 s in, with ~34 MB back, in the first
  // half of cold.bin. The chunks the reads below want (48 MiB on) are in the fourth batch, which
  // starts once one of the first two is back and whose first page of answers (up to 4 MiB) takes
  // seconds more: back after ~45 s, room for fill.bin's 72 MiB to take 20 s to chunk on a loaded
  // machine (2 s idle).
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: ['--max-upload', '1.5M'] });
  const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr] });
  const cold = seededBytes(64 << 20, 41);
  writeFileSync(join(a.mnt, 'cold.bin'), cold);
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');
  a.unmount();
  spawnSync('rm', ['-rf', a.home]);
  a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--no-wait');
  // More than the daemon's 64 MiB chunk cache, chunked here after the recovery; read later
  // from a snapshot view, where the pages written are not in the kernel's cache.
  const fill = seededBytes(72 << 20, 42);
  writeFileSync(join(a.mnt, 'fill.bin'), fill);
  await a.settle();
  const snap = (JSON.parse(a.ok('snapshot', '--json')) as { name: string }).name;
  const daemonPid = a.status().daemon!.pid;
  // Stopped once chunks have come back: the streams to it are open, the next requests wait there.
  for (const t0 = Date.now(); ; ) {
    const s = JSON.parse(a.ok('status', '--json')) as Fetching;
    if ((s.daemon!.peers.backfill?.chunksFetched ?? 0) > 0) break;
    assert.ok(Date.now() - t0 < 60_000, 'the recovery fetch started');
    await sleep(100);
  }
  const buddyPid = Number(readFileSync(join(c.home, 'daemon.pid'), 'utf8'));
  process.kill(buddyPid, 'SIGSTOP');
  let killed = false;
  try {
    // Reads of cold.bin's tail wait on the stopped buddy (async: the test must not hang).
    const fh = await open(join(a.mnt, 'cold.bin'), 'r');
    const waiting = [48, 54, 60].map((mib) => fh.read(Buffer.alloc(64 << 10), 0, 64 << 10, mib << 20));
    await sleep(1000);
    // 72 MiB of local chunks through the daemon's cache while those reads are in flight.
    const r = spawnSync('cat', [join(a.mnt, '.snapshots', snap, 'fill.bin')], { maxBuffer: 80 << 20 });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.ok(r.stdout.equals(fill), 'fill.bin read back whole while other reads wait');

    process.kill(buddyPid, 'SIGKILL');
    killed = true;
    const outcomes = await Promise.race([
      Promise.allSettled(waiting),
      // Not holding the test process open once the reads are done.
      delay(60_000, undefined, { ref: false }).then(() => assert.fail('the reads waiting on the dead buddy never ended')),
    ]);
    for (const o of outcomes) {
      assert.equal(o.status, 'rejected', 'a chunk no buddy can give back is not read');
      assert.equal((o as PromiseRejectedResult).reason.code, 'EIO');
    }
    const s = a.status();
    assert.ok(s.mounted && s.daemon?.pid === daemonPid, `the daemon is still up: ${JSON.stringify(s)}`);
    await fh.close();
    assert.ok(readFileSync(join(a.mnt, '.snapshots', snap, 'fill.bin')).equals(fill), 'what is here still reads');
    assert.equal(errorCode(() => readFileSync(join(a.mnt, 'cold.bin'))), 'EIO', 'what is not here fails cleanly, again');
  } finally {
    if (!killed) process.kill(buddyPid, 'SIGKILL');
  }
});
