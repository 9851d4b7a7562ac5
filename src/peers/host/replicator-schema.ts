// The tables of the replicator (buddies, audits), apart from replicator.ts so that opening a
// store (every command) does not load what replicator.ts needs to reach members (libp2p's
// peer ids and multiaddrs: ~0.25 s of CPU at each start of the command line).
import type { Db } from '../../chunkstore/index-db.js';

/** Schema 3: the cursor on the drop log, which took over from release 0.2's pruned log. */
export function renameDropCursor(db: Db): void {
  db.exec('ALTER TABLE buddies RENAME COLUMN pruned_seq TO dropped_seq');
}

/** Schema 4: a buddy of a host on rs:K+M holds one shard of each stripe, named by its slot. */
export function addBuddySlots(db: Db): void {
  db.exec('ALTER TABLE buddies ADD COLUMN slot INTEGER');
}

/**
 * Schema 5: each audit's result, for safe status and its alerts (the last ones per buddy); and
 * which snapshot list each buddy's root block holds (shipper.ts BuddyCursor.snapshots).
 */
export function createAuditTable(db: Db): void {
  db.exec(`
    ALTER TABLE buddies ADD COLUMN snapshots TEXT;
    CREATE TABLE audits (
      peer     TEXT NOT NULL,
      time     INTEGER NOT NULL,
      verdict  TEXT NOT NULL,     -- passed | failed | unreachable
      sampled  INTEGER NOT NULL,
      missing  INTEGER NOT NULL,
      error    TEXT
    );
    CREATE INDEX audits_by_time ON audits (time);
  `);
}

export function createBuddyTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS buddies (
      peer         TEXT PRIMARY KEY,
      chosen       INTEGER NOT NULL,
      epoch        INTEGER NOT NULL DEFAULT 0,  -- last snapshot epoch it committed
      released_seq INTEGER NOT NULL DEFAULT 0,  -- delete-set log told up to here
      pruned_seq   INTEGER NOT NULL DEFAULT 0,  -- drop log told up to here (dropped_seq since schema 3)
      last_ok      INTEGER,
      last_try     INTEGER,
      last_error   TEXT,
      fails        INTEGER NOT NULL DEFAULT 0,
      retired      INTEGER NOT NULL DEFAULT 0,  -- 1: no longer one of ours (refused us, replaced)
      shipped      INTEGER NOT NULL DEFAULT 0   -- payload bytes sent, all shipments
    );
  `);
}
