// The WAL file at rest: SQLite reuses it from the start once every frame is back in the database,
// but keeps the file at the size of its longest run (96 MB after chunking an untar of the linux
// tree, for as long as the daemon ran). shrinkWal gives that space back when nothing reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb, shrinkWal, WAL_KEEP_BYTES } from '../../src/chunkstore/index-db.js';

const KEY = new Uint8Array(32).fill(7);

test('a WAL grown past the cap is truncated when no reader holds it, and never waits for one', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'safe-walsize-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'index.db');
  const db = openDb(path, { key: KEY });
  const reader = openDb(path, { key: KEY });
  t.after(() => {
    reader.close();
    db.close();
  });
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE a (k INTEGER PRIMARY KEY, v BLOB)');
  const insert = db.prepare('INSERT INTO a (v) VALUES (?)');
  const fill = db.transaction((rows: number) => {
    for (let i = 0; i < rows; i++) insert.run(randomBytes(3000));
  });
  const wal = (): number => statSync(`${path}-wal`).size;
  fill(8000);
  const grown = wal();
  assert.ok(grown > 1.5 * WAL_KEEP_BYTES, `the WAL grew to ${grown} bytes`);

  // Another connection in a read transaction: nothing is truncated, and at once (the store's
  // connections otherwise wait up to 30 s for a lock).
  reader.prepare('BEGIN').run();
  reader.prepare('SELECT count(*) FROM a').pluck().get();
  const t0 = performance.now();
  assert.equal(shrinkWal(db), false);
  assert.ok(performance.now() - t0 < 5_000, 'shrinkWal waited for the reader');
  assert.equal(wal(), grown);
  assert.equal(db.pragma('busy_timeout', { simple: true }), 30_000, 'the connection keeps its own wait');
  reader.prepare('COMMIT').run();

  assert.equal(shrinkWal(db), true);
  assert.equal(wal(), 0);
  assert.equal(reader.prepare('SELECT count(*) FROM a').pluck().get(), 8000, 'every row is in the database');
  // Below the cap, nothing to do.
  fill(10);
  assert.equal(shrinkWal(db), false);
});
