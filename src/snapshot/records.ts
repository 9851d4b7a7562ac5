// Questions replication, audits and recovery ask of the tree about the chunks it names: add
// sets of a first shipment, samples for audits, what a buddy should hold, what a recovery still
// has to fetch back. (The rows themselves travel as deltas: deltas.ts.)
import { prepared, type Db } from '../chunkstore/index-db.js';
import type { ChunkRef } from '../chunkstore/store.js';

/** Ids of chunks any row born by `s` names, after `after` in byte order: a full add set. */
export function idsUpTo(db: Db, s: number, after: Buffer, limit: number): Buffer[] {
  return prepared<[Buffer, number, number], Buffer>(
    db,
    `SELECT DISTINCT id FROM crefs c WHERE id > ?
       AND EXISTS (SELECT 1 FROM inodes i WHERE i.cl = c.cl AND i.born <= ?)
     ORDER BY id LIMIT ?`,
  ).pluck().all(after, s, limit);
}

/** How many ids idsUpTo pages through: what a full shipment offers. */
export function countUpTo(db: Db, s: number): number {
  return prepared<[number], number>(db, 'SELECT count(DISTINCT id) FROM crefs c WHERE EXISTS (SELECT 1 FROM inodes i WHERE i.cl = c.cl AND i.born <= ?)').pluck().get(s) ?? 0;
}

/**
 * The chunk lists named by inode rows born in (a, b], in order, a page after `after`: files
 * written in those epochs (an index range on born, then the lists' own order).
 */
export function listsBornIn(db: Db, a: number, b: number, after: number, limit: number): number[] {
  return prepared<[number, number, number, number], number>(
    db,
    'SELECT DISTINCT cl FROM inodes WHERE born > ? AND born <= ? AND cl > ? ORDER BY cl LIMIT ?',
  ).pluck().all(a, b, after, limit);
}

/** The box ids of one chunk list, in file order. */
export function listIds(db: Db, cl: number): Buffer[] {
  return prepared<[number], Buffer>(db, 'SELECT id FROM crefs WHERE cl = ? ORDER BY off').pluck().all(cl);
}

/** Files named by rows born by `s` that are not chunked yet: such a state cannot ship whole. */
export function unchunkedUpTo(db: Db, s: number): number {
  return prepared<[number], number>(db, 'SELECT count(*) FROM inodes WHERE born <= ? AND staged IS NOT NULL AND cl IS NULL').pluck().get(s) ?? 0;
}

/** Chunk references each stored chunk carries: one per chunk-list entry naming it. */
export function countReferences(db: Db): void {
  db.exec('UPDATE chunks SET refs = (SELECT count(*) FROM crefs c WHERE c.id = chunks.id) WHERE handle IS NOT NULL');
}

/** What a chunk about to be stored carries: its references, and its plaintext length from the lists naming it. */
export function referencesOf(db: Db, id: Buffer): { refs: number; raw: number } {
  return prepared<[Buffer], { refs: number; raw: number }>(db, 'SELECT count(*) AS refs, coalesce(max(raw), 0) AS raw FROM crefs WHERE id = ?').get(id)!;
}

/** References to a chunk under its release-0.1.0 id move to its box id, once its box is here. */
export function renameChunk(db: Db, old: Buffer, id: Buffer): void {
  prepared(db, 'UPDATE crefs SET id = ? WHERE id = ?').run(id, old);
}

/** Distinct chunks rows born by `s` name: how many chunks a buddy at `s` holds for us. */
export function countIdsUpTo(db: Db, s: number): number {
  return prepared<[number], number>(db, 'SELECT count(DISTINCT c.id) FROM crefs c JOIN inodes i ON i.cl = c.cl WHERE i.born <= ?').pluck().get(s) ?? 0;
}

/**
 * Up to `n` distinct chunk ids chosen at random among those rows born by `s` name: random start
 * points in id order (ids are uniform hashes, so this is close to a uniform sample) without
 * reading the whole set.
 */
export function sampleIdsUpTo(db: Db, s: number, n: number, random: () => Buffer): Buffer[] {
  const pick = prepared<[Buffer, number], Buffer>(
    db,
    `SELECT id FROM crefs c WHERE id >= ?
       AND EXISTS (SELECT 1 FROM inodes i WHERE i.cl = c.cl AND i.born <= ?)
     ORDER BY id LIMIT 1`,
  ).pluck();
  const out = new Map<string, Buffer>();
  for (let tries = 0; out.size < n && tries < 8 * n; tries++) {
    const h = pick.get(random(), s) ?? pick.get(Buffer.alloc(0), s);
    if (h) out.set(h.toString('latin1'), h);
  }
  return [...out.values()];
}

/** Ids of stored chunks rows born by `s` name, after `after` in id order: what a buddy should list. */
export function storedIdsUpTo(db: Db, s: number, after: Buffer, limit: number): Buffer[] {
  return prepared<[Buffer, number, number], Buffer>(
    db,
    `SELECT k.id FROM chunks k WHERE k.id > ? AND k.handle IS NOT NULL
       AND EXISTS (SELECT 1 FROM crefs c JOIN inodes i ON i.cl = c.cl WHERE c.id = k.id AND i.born <= ?)
     ORDER BY k.id LIMIT ?`,
  ).pluck().all(after, s, limit);
}

/** Chunk lists after `cl` in order, with their sizes: the recovery's background fetch walks these. */
export function chunkListsAfter(db: Db, cl: number, limit: number): { cl: number; size: number }[] {
  return prepared<[number, number], { cl: number; size: number }>(db, 'SELECT cl, size FROM clists WHERE cl > ? ORDER BY cl LIMIT ?').all(cl, limit);
}

export function chunkListTotals(db: Db): { lists: number; bytes: number } {
  return prepared<[], { lists: number; bytes: number }>(db, 'SELECT count(*) AS lists, coalesce(sum(size), 0) AS bytes FROM clists').get()!;
}

/** The chunks of one chunk list, in file order. */
export function chunkListRefs(db: Db, cl: number): ChunkRef[] {
  return prepared<[number], ChunkRef>(db, 'SELECT handle, id, raw FROM crefs WHERE cl = ? ORDER BY off').all(cl);
}

/** How the tree names a box, if any row does: its handle opens it. */
export function refOfId(db: Db, id: Uint8Array): ChunkRef | undefined {
  return prepared<[Uint8Array], ChunkRef>(db, 'SELECT handle, id, raw FROM crefs WHERE id = ? LIMIT 1').get(id);
}

/** Tree state a recovery left to finish: chunks still to fetch back (tree_meta 'backfill'). */
export function backfillPending(db: Db): boolean {
  return (prepared(db, "SELECT v FROM tree_meta WHERE k = 'backfill'").pluck().get() as number | undefined) === 1;
}

export function setBackfillPending(db: Db, pending: boolean): void {
  prepared(db, "INSERT INTO tree_meta (k, v) VALUES ('backfill', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(pending ? 1 : 0);
}
