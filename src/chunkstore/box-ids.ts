// Release 0.1.0 named a chunk by SHA-256 of its handle, which only the key holder can check;
// chunks are now named by SHA-256 of the box itself. The boxes did not change (their aad is
// still the old id), so moving a store over means hashing every box once, reading the packs
// in order. The old names stay as aliases: metadata shipped by 0.1.0 still names chunks so.
import { closeSync, openSync } from 'node:fs';
import { prepared, type Db } from './index-db.js';
import { packPath, readExact } from './packs.js';
import { boxId } from './sealer.js';

const PAGE = 10_000;

interface Placement {
  id: Buffer;
  pack: number;
  off: number;
  len: number;
}

export function createAliasTable(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS chunk_aliases (
      old BLOB PRIMARY KEY,                -- the release-0.1.0 id: SHA-256 of the handle
      id  BLOB NOT NULL                    -- the id now: SHA-256 of the box
    ) WITHOUT ROWID;
  `);
}

/** The id a chunk known by its release-0.1.0 id is stored under now. */
export function aliasOf(db: Db, old: Uint8Array): Buffer | undefined {
  return prepared<[Uint8Array], Buffer>(db, 'SELECT id FROM chunk_aliases WHERE old = ?').pluck().get(old);
}

/**
 * Renames every stored chunk to the hash of its box. A box that cannot be read (missing or
 * truncated pack) keeps its old name: verify reports it, and a repair fetches it by that name.
 */
export function renameChunksToBoxIds(db: Db, packsDir: string): void {
  createAliasTable(db);
  const page = db.prepare<[number, number, number], Placement>('SELECT id, pack, off, len FROM chunks WHERE (pack, off) > (?, ?) ORDER BY pack, off LIMIT ?');
  const alias = prepared(db, 'INSERT OR REPLACE INTO chunk_aliases (old, id) VALUES (?, ?)');
  let fd = -1;
  let open = -1;
  const hash = (r: Placement): void => {
    if (r.pack !== open) {
      if (fd >= 0) closeSync(fd);
      fd = -1;
      open = r.pack;
      try {
        fd = openSync(packPath(packsDir, r.pack), 'r');
      } catch {
        // a missing pack: its chunks keep their names
      }
    }
    if (fd < 0) return;
    try {
      alias.run(r.id, boxId(readExact(fd, r.off, r.len, `chunk in pack ${r.pack}`)));
    } catch {
      // a truncated pack: this chunk keeps its name
    }
  };
  try {
    for (let rows = page.all(-1, -1, PAGE); rows.length > 0; rows = page.all(rows.at(-1)!.pack, rows.at(-1)!.off, PAGE)) rows.forEach(hash);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  db.exec(`
    UPDATE chunks SET id = (SELECT a.id FROM chunk_aliases a WHERE a.old = chunks.id)
      WHERE id IN (SELECT old FROM chunk_aliases);
    UPDATE owner_refs SET id = (SELECT a.id FROM chunk_aliases a WHERE a.old = owner_refs.id)
      WHERE id IN (SELECT old FROM chunk_aliases);
    UPDATE released SET id = (SELECT a.id FROM chunk_aliases a WHERE a.old = released.id)
      WHERE id IN (SELECT old FROM chunk_aliases);
    CREATE INDEX IF NOT EXISTS chunks_by_handle ON chunks(handle) WHERE handle IS NOT NULL;
  `);
}
