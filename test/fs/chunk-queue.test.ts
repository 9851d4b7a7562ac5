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
import { ChunkQueue } from '../../src/fs/chunk-queue.js';
import { Staging } from '../../src/fs/staging.js';
import { secret32, seededBytes, tempDir } from '../helpers.js';

test('drained: once, after the last file of a burst is chunked, not between its files', { timeout: 60_000 }, async () => {
  const dir = tempDir();
  const storeKey = secret32();
  const convergence = secret32();
  const stagingKey = secret32();
  ChunkStore.open(join(dir, 'store'), convergence, { create: true, recover: true, schema: HOST_SCHEMA, key: storeKey }).close();
  const staging = new Staging(join(dir, 'staging'), 0, stagingKey);
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
      wanted: () => true,
      path: (ino, gen) => staging.path(ino, gen),
      settled: (ino) => events.push(`settled ${ino}`),
      failed: (ino, _gen, err) => events.push(`failed ${ino}: ${err.message}`),
      drained: () => {
        events.push('drained');
        done();
      },
    },
    { storeDir: join(dir, 'store'), storeKey, stagingKey, convergence, avgChunk: DEFAULT_AVG_CHUNK },
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
