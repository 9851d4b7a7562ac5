// The store over time, for the dashboard: after each snapshot the daemon notes the store's size,
// what the files name (the two give the deduplication and compression ratio) and what the
// buddies were sent. The table is the host's own: it does not ship, and a recovered host starts
// it again.
import { prepared, type Db } from '../chunkstore/index-db.js';

export interface StorageSample {
  epoch: number;
  time: number;
  /** Bytes of boxes the store holds. */
  liveBytes: number;
  /** Plaintext bytes the files name, each reference counted. */
  referencedRaw: number;
  /** Bytes of pack files on disk. */
  packBytes: number;
  /** Payload bytes sent to buddies, all shipments. */
  shipped: number;
}

export function createStorageSamples(db: Db): void {
  db.exec(`
    CREATE TABLE storage_samples (
      epoch      INTEGER PRIMARY KEY,
      time       INTEGER NOT NULL,
      live       INTEGER NOT NULL,
      referenced INTEGER NOT NULL,
      packs      INTEGER NOT NULL,
      shipped    INTEGER NOT NULL
    );
  `);
}

export function recordSample(db: Db, s: StorageSample): void {
  prepared(db, 'INSERT OR REPLACE INTO storage_samples (epoch, time, live, referenced, packs, shipped) VALUES (?, ?, ?, ?, ?, ?)').run(
    s.epoch, s.time, s.liveBytes, s.referencedRaw, s.packBytes, s.shipped,
  );
}

/** Oldest first; the newest `limit` of them. */
export function listSamples(db: Db, limit = 2000): StorageSample[] {
  return prepared<[number], StorageSample>(
    db,
    `SELECT * FROM (SELECT epoch, time, live AS liveBytes, referenced AS referencedRaw, packs AS packBytes, shipped
       FROM storage_samples ORDER BY epoch DESC LIMIT ?) ORDER BY epoch`,
  ).all(limit);
}
