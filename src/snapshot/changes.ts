// What a snapshot b adds to a (the last one shipped): the input of replication. Each answer
// comes from rows born or killed between the two epochs, so it costs what changed.
import type { Db } from '../chunkstore/index-db.js';

export interface AddSet {
  /** Public ids of chunks b references and a does not. */
  ids: Buffer[];
  /** Files of b still waiting to be chunked: b cannot be shipped whole before they are. */
  pending: number;
}

/**
 * Chunk ids named by rows born in (a, b] and not referenced at epoch a (a = 0: nothing shipped
 * yet). Rows that died again before b count too: a snapshot between a and b still sees them.
 */
export function addSet(db: Db, a: number, b: number): AddSet {
  const rows = db
    .prepare<[number, number], { cl: number | null; staged: number | null }>(
      'SELECT cl, staged FROM inodes WHERE born > ? AND born <= ? AND (cl IS NOT NULL OR staged IS NOT NULL)',
    )
    .all(a, b);
  const ids = db.prepare<[number], Buffer>('SELECT id FROM crefs WHERE cl = ?').pluck();
  const seenAtA = db
    .prepare<[Buffer, number, number], number>(
      `SELECT 1 FROM crefs c JOIN inodes i ON i.cl = c.cl
        WHERE c.id = ? AND i.born <= ? AND (i.died IS NULL OR i.died > ?) LIMIT 1`,
    )
    .pluck();
  const out = new Map<string, Buffer>();
  const cls = new Set<number>();
  let pending = 0;
  for (const r of rows) {
    if (r.cl === null) pending++;
    else cls.add(r.cl);
  }
  for (const cl of cls) {
    for (const id of ids.all(cl)) {
      const key = id.toString('latin1');
      if (out.has(key)) continue;
      if (a > 0 && seenAtA.get(id, a, a)) continue;
      out.set(key, id);
    }
  }
  return { ids: [...out.values()], pending };
}
