// The chunk queue on a real store and real ingest workers: it says when a burst of writes is
// over and chunked (the daemon trims its heap then), and not while closes keep coming.
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
