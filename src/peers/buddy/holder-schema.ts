// The tables of the buddy's holdings (owners, their objects, deletes and root blocks), apart
// from holder.ts so that opening a store (every command of the command line) does not load
// what holder.ts needs to check signatures: libp2p's peer ids, ~0.2 s of CPU at each start.
import { aliasOf } from '../../chunkstore/box-ids.js';
import type { Db } from '../../chunkstore/index-db.js';

export function createHolderTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS held_owners (
      owner     INTEGER PRIMARY KEY AUTOINCREMENT,   -- owner number in owner_refs
      peer      TEXT NOT NULL UNIQUE,
      pubkey    BLOB NOT NULL,
      offer     INTEGER NOT NULL DEFAULT 0,          -- what it offers the group (fairness)
      epoch     INTEGER NOT NULL DEFAULT 0,          -- last committed shipment
      charged   INTEGER NOT NULL DEFAULT 0,          -- bytes we hold for it
      last_seen INTEGER NOT NULL
    );
    -- pending = 0: current; otherwise the epoch of the shipment that sent it, not committed yet.
    CREATE TABLE IF NOT EXISTS held_objects (
      owner   INTEGER NOT NULL,
      id      BLOB NOT NULL,
      pending INTEGER NOT NULL,
      digest  BLOB NOT NULL,
      box     BLOB NOT NULL,
      PRIMARY KEY (owner, id, pending)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS held_deletes (
      owner   INTEGER NOT NULL,
      pending INTEGER NOT NULL,
      kind    INTEGER NOT NULL,                      -- 0 chunk, 1 object
      id      BLOB NOT NULL,
      PRIMARY KEY (owner, kind, id)
    ) WITHOUT ROWID;
  `);
  // Filed per (locator, key): whoever learned a locator (a former buddy) could otherwise file
  // first under it at a member and have the owner's own commits refused there.
  const old = db.prepare("SELECT pk FROM pragma_table_info('root_blocks') WHERE name = 'pubkey'").pluck().get() as number | undefined;
  db.transaction(() => {
    if (old === 0) db.exec('ALTER TABLE root_blocks RENAME TO root_blocks_by_locator');
    db.exec(`
      CREATE TABLE IF NOT EXISTS root_blocks (
        locator TEXT NOT NULL,
        pubkey  BLOB NOT NULL,
        epoch   INTEGER NOT NULL,
        box     BLOB NOT NULL,
        sig     BLOB NOT NULL,
        written INTEGER NOT NULL,
        PRIMARY KEY (locator, pubkey)
      ) WITHOUT ROWID;
    `);
    if (old === 0) db.exec('INSERT INTO root_blocks SELECT locator, pubkey, epoch, box, sig, written FROM root_blocks_by_locator; DROP TABLE root_blocks_by_locator');
  }).immediate();
}

/** Schema 2: deletes a host sent and did not commit yet name chunks by their box ids. */
export function renameHeldChunkDeletes(db: Db): void {
  const rows = db.prepare<[], { owner: number; id: Buffer }>('SELECT owner, id FROM held_deletes WHERE kind = 0').all();
  const set = db.prepare('UPDATE OR IGNORE held_deletes SET id = ? WHERE owner = ? AND kind = 0 AND id = ?');
  for (const r of rows) {
    const id = aliasOf(db, r.id);
    if (id) set.run(id, r.owner, r.id);
  }
}
