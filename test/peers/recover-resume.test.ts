// A recovery killed while its chunks come back resumes where it stopped: the next mount fetches
// only what had not reached the disk, and the files come out whole. Real daemons on 127.0.0.1;
// the buddy serves slowly so the kill lands mid-fetch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { recoveringFromSlowBuddy, withDb, type Fetching } from './group.js';

test('a recovery killed mid-fetch resumes at the next mount and fetches only the rest', { timeout: 240_000 }, async () => {
  const { a, data, total } = await recoveringFromSlowBuddy(40 << 20, 31);
  let before = 0;
  for (const t0 = Date.now(); ; ) {
    const s = JSON.parse(a.ok('status', '--json')) as Fetching;
    before = s.daemon!.peers.backfill?.chunksFetched ?? 0;
    if (before > 0) {
      assert.ok(s.daemon!.peers.fetching && before < total, `mid-fetch: ${before} of ${total}`);
      process.kill(s.daemon!.pid, 'SIGKILL');
      break;
    }
    assert.ok(Date.now() - t0 < 30_000, 'the fetch started');
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, 500));
  spawnSync('fusermount3', ['-uz', a.mnt]);
  // What reached the disk before the kill (the progress counter lags by the batches in flight).
  const durable = withDb(a, (db) => db.prepare('SELECT count(*) FROM chunks WHERE handle IS NOT NULL').pluck().get() as number);
  assert.ok(durable >= before && durable < total, `${durable} of ${total} chunks durable at the kill`);

  a.mount();
  let after = 0;
  for (const t0 = Date.now(); ; ) {
    const s = JSON.parse(a.ok('status', '--json')) as Fetching;
    if (!s.daemon!.peers.fetching) {
      after = s.daemon!.peers.backfill!.chunksFetched;
      break;
    }
    assert.ok(Date.now() - t0 < 120_000, 'every chunk back within two minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(after, total - durable, `the resumed fetch took ${after} of ${total} chunks, ${durable} were there: nothing twice`);
  const back = spawnSync('cat', [join(a.mnt, 'data.bin')], { maxBuffer: 64 << 20 });
  assert.ok(back.stdout.equals(data), 'the file is whole');
  assert.match(a.ok('verify'), /no problems/);
});

test('a reader that opened a file before its chunks came back reads the right content', { timeout: 240_000 }, async () => {
  const { a, data, total } = await recoveringFromSlowBuddy(16 << 20, 32);
  // Two readers open the file while its chunks are still on the buddy (async reads: a hung
  // read must not stop the test's timeout).
  const now = await open(join(a.mnt, 'data.bin'), 'r');
  const later = await open(join(a.mnt, 'data.bin'), 'r');
  try {
    const here = withDb(a, (db) => db.prepare('SELECT count(*) FROM chunks WHERE handle IS NOT NULL').pluck().get() as number);
    assert.ok(here < total, `the readers opened before the chunks were back (${here} of ${total} here)`);
    const fetching = () => (JSON.parse(a.ok('status', '--json')) as Fetching).daemon!.peers.fetching;
    assert.ok(fetching(), 'the background fetch is still running');
    // One reads at once, from the middle and then all of it (what it lacks comes on demand)...
    const mid = Buffer.alloc(1 << 20);
    await now.read(mid, 0, mid.length, 9 << 20);
    assert.ok(mid.equals(data.subarray(9 << 20, 10 << 20)), 'a middle MiB read before the fetch finished');
    const all = await now.readFile();
    assert.ok(all.equals(data), 'the whole file through the reader opened before the fetch');
    // ...the other only once every chunk is back: no stale page, no hole.
    for (const t0 = Date.now(); fetching(); ) {
      assert.ok(Date.now() - t0 < 120_000, 'every chunk back within two minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
    const whole = Buffer.alloc(data.length);
    for (let at = 0; at < whole.length; ) {
      const { bytesRead } = await later.read(whole, at, whole.length - at, at);
      assert.ok(bytesRead > 0, `short file: EOF at ${at}`);
      at += bytesRead;
    }
    assert.ok(whole.equals(data), 'the reader opened before the fetch, read after it, sees the file whole');
  } finally {
    await now.close();
    await later.close();
  }
  assert.match(a.ok('verify'), /no problems/);
});
