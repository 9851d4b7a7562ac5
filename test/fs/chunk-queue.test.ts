// The chunk queue on a real store and real ingest workers: it says when a burst of writes is
// over and chunked (the daemon trims its heap then), and not while closes keep coming; while
// closes keep coming, chunking waits for a pause, up to its bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../../src/chunkstore/store.js';
import { CommitLock } from '../../src/chunkstore/commit-lock.js';
import { DEFAULT_AVG_CHUNK } from '../../src/chunkstore/defaults.js';
import { HOST_SCHEMA } from '../../src/cli/host-schema.js';
import type { IngestWorkerData } from '../../src/chunkstore/ingest-worker.js';
import { ChunkQueue } from '../../src/fs/chunk-queue.js';
import { Staging } from '../../src/fs/staging.js';
import { secret32, seededBytes, tempDir } from '../helpers.js';

/** A fresh store in a temporary folder, and what the queue's workers need to open it. */
function freshStore(): { dir: string; data: IngestWorkerData } {
  const dir = tempDir();
  const data = { storeDir: join(dir, 'store'), storeKey: secret32(), stagingKey: secret32(), convergence: secret32(), avgChunk: DEFAULT_AVG_CHUNK };
  ChunkStore.open(data.storeDir, data.convergence, { create: true, recover: true, schema: HOST_SCHEMA, key: data.storeKey }).close();
  return { dir, data };
}

/** A queue over a fresh store whose staged files are real; when each file settled, in ms since `t0`. */
function timedQueue(delayMs: number, roomToWait: () => boolean) {
  const { dir, data } = freshStore();
  const staging = new Staging(join(dir, 'staging'), 0, data.stagingKey!);
  const t0 = Date.now();
  const settledAt = new Map<number, number>();
  const failures: string[] = [];
  let closed = 0;
  const queue = new ChunkQueue(
    {
      wanted: (items) => items.map(() => true),
      path: (ino, gen) => staging.path(ino, gen),
      settled: (items) => items.forEach(({ ino }) => settledAt.set(ino, Date.now() - t0)),
      failed: (ino, _gen, err) => failures.push(`${ino}: ${err.message}`),
      roomToWait,
    },
    data,
    delayMs,
    new CommitLock(),
  );
  /** Stage file `ino` and hand it to the queue, as a close does (or, given a delay, a retry). */
  const close = (ino: number, delay?: number): void => {
    const { gen, file } = staging.create(ino);
    file.write(seededBytes(20_000, ino), 0, 0);
    closeSync(file.fd);
    queue.schedule(ino, gen, delay);
    closed++;
  };
  /** Close files `from`.. one every `everyMs` until `untilMs` since t0: how many, and the time of the last close. */
  const burst = async (from: number, everyMs: number, untilMs: number): Promise<{ count: number; last: number }> => {
    let ino = from;
    let last = 0;
    while (Date.now() - t0 < untilMs) {
      close(ino++);
      last = Date.now() - t0;
      await sleep(everyMs);
    }
    return { count: ino - from, last };
  };
  return { queue, settledAt, failures, burst, close, closed: () => closed };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const first = (m: Map<number, number>): number => Math.min(...m.values());

test('hold: while files keep closing nothing is chunked; once they pause, all of them', { timeout: 60_000 }, async () => {
  // A delay of 200 ms lets chunking wait up to 6 s for a pause: the 2 s burst stays under it.
  const { queue, settledAt, failures, burst } = timedQueue(200, () => true);
  try {
    const { count, last } = await burst(1, 40, 2_000);
    assert.equal(settledAt.size, 0, 'nothing chunked while closes kept coming');
    while (queue.pending > 0) await sleep(20);
    assert.deepEqual(failures, []);
    assert.equal(settledAt.size, count, 'every file chunked once they paused');
    assert.ok(first(settledAt) >= last, `the first file settled at ${first(settledAt)} ms, before the burst ended at ${last} ms`);
  } finally {
    await queue.close();
  }
});

test('hold: a burst that does not pause waits at most thirty delays, then is chunked beside it', { timeout: 60_000 }, async () => {
  // A delay of 50 ms: chunking waits at most 1.5 s past the first file's turn, within the 4 s burst.
  const { queue, settledAt, failures, burst } = timedQueue(50, () => true);
  try {
    const { last } = await burst(1, 40, 4_000);
    assert.deepEqual(failures, []);
    assert.ok(settledAt.size > 0 && first(settledAt) < last, `nothing was chunked during the ${last} ms burst`);
    assert.ok(first(settledAt) >= 1_500, `the first file settled at ${first(settledAt)} ms, before the bound`);
  } finally {
    await queue.close();
  }
});

test('hold: a retry first in line, due 30 s on, does not stretch the bound of the files behind it', { timeout: 60_000 }, async () => {
  const { queue, settledAt, failures, burst, close } = timedQueue(50, () => true);
  try {
    // Scheduled as the failed hook schedules a retry.
    close(1, 30_000);
    const { last } = await burst(2, 40, 4_000);
    assert.deepEqual(failures, []);
    assert.ok(settledAt.size > 0 && first(settledAt) < last, `nothing was chunked during the ${last} ms burst`);
    assert.ok(!settledAt.has(1), 'the retry waited for its turn');
  } finally {
    await queue.close();
  }
});

test('hold: with no room on the disk to wait, files are chunked as they come', { timeout: 60_000 }, async () => {
  const { queue, settledAt, failures, burst } = timedQueue(200, () => false);
  try {
    const { last } = await burst(1, 40, 3_000);
    assert.deepEqual(failures, []);
    assert.ok(settledAt.size > 0 && first(settledAt) < last - 1_000, `the first file settled at ${first(settledAt)} ms of a ${last} ms burst`);
  } finally {
    await queue.close();
  }
});

test('flush: during a burst, everything closed so far is chunked at once', { timeout: 60_000 }, async () => {
  const { queue, settledAt, failures, burst, closed } = timedQueue(200, () => true);
  try {
    const closing = burst(1, 40, 3_000);
    await sleep(1_000);
    assert.equal(settledAt.size, 0, 'nothing chunked while closes kept coming');
    const before = closed();
    await queue.flush();
    for (let ino = 1; ino <= before; ino++) assert.ok(settledAt.has(ino), `file ${ino} of the ${before} closed before the flush is not chunked`);
    await closing;
    assert.deepEqual(failures, []);
  } finally {
    await queue.close();
  }
});

test('drained: once, after the last file of a burst is chunked, not between its files', { timeout: 60_000 }, async () => {
  const { dir, data } = freshStore();
  const staging = new Staging(join(dir, 'staging'), 0, data.stagingKey!);
  const stage = (ino: number, seed: number): number => {
    const { gen, file } = staging.create(ino);
    file.write(seededBytes(100_000, seed), 0, 0);
    closeSync(file.fd);
    return gen;
  };

  const events: string[] = [];
  let done: () => void;
  const drained = new Promise<void>((res) => (done = res));
  const queue = new ChunkQueue(
    {
      wanted: (items) => items.map(() => true),
      path: (ino, gen) => staging.path(ino, gen),
      settled: (items) => items.forEach(({ ino }) => events.push(`settled ${ino}`)),
      roomToWait: () => true,
      failed: (ino, _gen, err) => events.push(`failed ${ino}: ${err.message}`),
      drained: () => {
        events.push('drained');
        done();
      },
    },
    data,
    0,
    new CommitLock(),
  );
  try {
    // The first file is chunked while the second, closed a moment later, still waits its delay.
    queue.schedule(1, stage(1, 1));
    queue.schedule(2, stage(2, 2), 600);
    await drained;
    // A drained hook called twice would show up here.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(events, ['settled 1', 'settled 2', 'drained']);
  } finally {
    await queue.close();
  }
});

test('forget: a generation deleted before its turn stops counting as waiting and is never looked at', { timeout: 60_000 }, async () => {
  const { dir, data } = freshStore();
  const asked: string[] = [];
  const queue = new ChunkQueue(
    {
      wanted: (items) => items.map(({ ino }) => (asked.push(`wanted ${ino}`), true)),
      path: (ino, gen) => join(dir, `${ino}-${gen}`),
      settled: (items) => items.forEach(({ ino }) => asked.push(`settled ${ino}`)),
      roomToWait: () => true,
      failed: (ino) => asked.push(`failed ${ino}`),
    },
    data,
    100,
    new CommitLock(),
  );
  try {
    queue.schedule(7, 1);
    assert.equal(queue.pending, 1);
    queue.forget(7, 1);
    assert.equal(queue.pending, 0);
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(asked, []);
  } finally {
    await queue.close();
  }
});
