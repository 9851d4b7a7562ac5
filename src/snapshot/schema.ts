// The versioned tree's tables. Every row of inodes and entries carries an epoch range
// [born, died): a snapshot records the current epoch and bumps it, and a row changed after
// that is copied, not updated. died IS NULL means "still live".
import { prepared, type Db } from '../chunkstore/index-db.js';
import { aliasOf } from '../chunkstore/box-ids.js';
import { handleDigest } from '../chunkstore/sealer.js';

export function createTreeTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS inodes (
      ino    INTEGER NOT NULL,
      born   INTEGER NOT NULL,
      died   INTEGER,
      kind   INTEGER NOT NULL,          -- S_IFMT bits: file, dir, symlink
      mode   INTEGER NOT NULL,          -- permission bits
      uid    INTEGER NOT NULL,
      gid    INTEGER NOT NULL,
      nlink  INTEGER NOT NULL,
      size   INTEGER NOT NULL,
      atime  REAL NOT NULL,             -- ms since the epoch (fuse-native passes Dates)
      mtime  REAL NOT NULL,
      ctime  REAL NOT NULL,
      target BLOB,                      -- symlink target
      cl     INTEGER,                   -- chunk list, once the content is chunked
      staged INTEGER,                   -- staging generation while it is not
      xattrs BLOB,                      -- JSON {name: base64}
      PRIMARY KEY (ino, born)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS inodes_died ON inodes(died) WHERE died IS NOT NULL;
    CREATE INDEX IF NOT EXISTS inodes_staged ON inodes(ino, staged) WHERE staged IS NOT NULL;
    CREATE TABLE IF NOT EXISTS entries (
      parent INTEGER NOT NULL,
      name   BLOB NOT NULL,
      born   INTEGER NOT NULL,
      died   INTEGER,
      ino    INTEGER NOT NULL,
      PRIMARY KEY (parent, name, born)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS entries_died ON entries(died) WHERE died IS NOT NULL;
    -- Walking up from an inode (paths in diffs, rename loops) without scanning every entry.
    CREATE INDEX IF NOT EXISTS entries_by_ino ON entries(ino);
    -- Chunk lists are immutable; inode rows share them (users counts the rows).
    CREATE TABLE IF NOT EXISTS clists (
      cl    INTEGER PRIMARY KEY AUTOINCREMENT,
      users INTEGER NOT NULL,
      size  INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS crefs (
      cl     INTEGER NOT NULL,
      off    INTEGER NOT NULL,          -- offset of the chunk in the file
      handle BLOB NOT NULL,
      raw    INTEGER NOT NULL,
      PRIMARY KEY (cl, off)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS snapshots (
      epoch INTEGER PRIMARY KEY,
      name  TEXT NOT NULL UNIQUE,
      time  INTEGER NOT NULL,
      label TEXT
    );
    CREATE TABLE IF NOT EXISTS tree_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
    -- Release 0.2: what forget removed, which epoch ranges cannot tell: metadata objects (kind 0,
    -- by inode) that lost rows and chunk lists (kind 1) that are gone. Schema 3 moves it into
    -- the drop log of the metadata chain (peers/metadata/meta-log.ts).
    CREATE TABLE IF NOT EXISTS pruned (
      seq  INTEGER PRIMARY KEY AUTOINCREMENT,
      kind INTEGER NOT NULL,
      key  INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS crefs_by_handle ON crefs(handle);
    CREATE INDEX IF NOT EXISTS inodes_by_cl ON inodes(cl) WHERE cl IS NOT NULL;
    CREATE INDEX IF NOT EXISTS inodes_by_born ON inodes(born);
  `);
}

/**
 * Schema 2: a chunk reference names the chunk's id (the hash of its box, after the chunkstore
 * renamed its chunks) beside the handle that opens it. A chunk not stored here (a recovery
 * still fetching) keeps its release-0.1.0 id, under which buddies still serve it.
 */
export function addChunkIdsToRefs(db: Db): void {
  db.exec('ALTER TABLE crefs ADD COLUMN id BLOB');
  const page = prepared<[Buffer, number], Buffer>(db, 'SELECT DISTINCT handle FROM crefs WHERE handle > ? ORDER BY handle LIMIT ?').pluck();
  const set = prepared(db, 'UPDATE crefs SET id = ? WHERE handle = ?');
  for (let hs = page.all(Buffer.alloc(0), 10_000); hs.length > 0; hs = page.all(hs.at(-1)!, 10_000)) {
    for (const h of hs) {
      const old = handleDigest(h);
      set.run(aliasOf(db, old) ?? old, h);
    }
  }
  db.exec('CREATE INDEX crefs_by_id ON crefs(id); DROP INDEX IF EXISTS crefs_by_handle');
}
