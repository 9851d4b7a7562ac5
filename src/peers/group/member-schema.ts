// The members table, apart from members.ts so that opening a store (every command) does not
// load the multiaddr parser members.ts needs at each start of the command line.
import type { Db } from '../../chunkstore/index-db.js';

export function createMemberTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS members (
      peer      TEXT PRIMARY KEY,
      addrs     TEXT NOT NULL DEFAULT '[]',
      offer     INTEGER,
      free      INTEGER,
      coverage  REAL,
      rtt       REAL,
      last_seen INTEGER,
      network   TEXT
    );
  `);
}
