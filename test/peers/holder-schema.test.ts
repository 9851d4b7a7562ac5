// A buddy's root-block table from before root blocks were filed per (locator, key) is carried
// over whole, and two keys can then file under one locator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3-multiple-ciphers';
import { createHolderTables } from '../../src/peers/buddy/holder-schema.js';

test('root blocks of the old schema are kept; a second key under the same locator no longer collides', () => {
  const db = new Database(':memory:');
  db.exec(`CREATE TABLE root_blocks (locator TEXT PRIMARY KEY, pubkey BLOB NOT NULL, epoch INTEGER NOT NULL, box BLOB NOT NULL, sig BLOB NOT NULL, written INTEGER NOT NULL) WITHOUT ROWID`);
  const loc = 'ab'.repeat(32);
  db.prepare('INSERT INTO root_blocks VALUES (?, ?, 7, ?, ?, 1)').run(loc, Buffer.alloc(32, 1), Buffer.from('box'), Buffer.alloc(64, 2));
  createHolderTables(db);
  createHolderTables(db); // idempotent
  const rows = db.prepare('SELECT locator, hex(pubkey) AS k, epoch, box FROM root_blocks').all() as { locator: string; k: string; epoch: number; box: Buffer }[];
  assert.deepEqual(rows.map((r) => [r.locator, r.k, r.epoch, r.box.toString()]), [[loc, '01'.repeat(32), 7, 'box']]);
  db.prepare('INSERT INTO root_blocks VALUES (?, ?, 9, ?, ?, 2)').run(loc, Buffer.alloc(32, 3), Buffer.from('other'), Buffer.alloc(64, 4));
  assert.equal(db.prepare('SELECT count(*) FROM root_blocks WHERE locator = ?').pluck().get(loc), 2);
  assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'root_blocks_by_locator'").pluck().get(), 0);
  db.close();
});
