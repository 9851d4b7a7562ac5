// The tree as metadata objects for buddies: one record per inode (all its row versions a kept
// snapshot or the shipped state can see, and for a directory its entries) and one per chunk
// list (immutable). Records are plain data; sealing them is the peers layer's job, and
// recovery writes them back with importRecords.
import { prepared, type Db } from '../chunkstore/index-db.js';
import type { ChunkRef } from '../chunkstore/store.js';
import type { ChunkSpan } from './tree.js';

export interface InodeVersion {
  born: number;
  /** null: alive in the shipped state. Deaths after it are not shipped yet. */
  died: number | null;
  kind: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  atime: number;
  mtime: number;
  ctime: number;
  target: Buffer | null;
  cl: number | null;
  xattrs: string | null;
}

export interface EntryVersion {
  name: Buffer;
  born: number;
  died: number | null;
  ino: number;
}

export interface InodeRecord {
  ino: number;
  versions: InodeVersion[];
  entries: EntryVersion[];
}

export interface ChunkListRecord {
  cl: number;
  size: number;
  spans: ChunkSpan[];
}

const clip = (died: number | null, s: number): number | null => (died !== null && died > s ? null : died);

/** Inode `ino` as of epoch `s`, or null when no row of it is born by then (it is gone). */
export function inodeRecord(db: Db, ino: number, s: number): InodeRecord | null {
  const rows = prepared<[number, number], InodeVersion & { staged: number | null }>(
    db,
    'SELECT born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, staged, xattrs FROM inodes WHERE ino = ? AND born <= ? ORDER BY born',
  ).all(ino, s);
  if (rows.length === 0) return null;
  const versions = rows.map(({ staged: _staged, ...v }) => ({ ...v, died: clip(v.died, s) }));
  const entries = prepared<[number, number], EntryVersion>(db, 'SELECT name, born, died, ino FROM entries WHERE parent = ? AND born <= ? ORDER BY name, born')
    .all(ino, s)
    .map((e) => ({ ...e, died: clip(e.died, s) }));
  return { ino, versions, entries };
}

export function chunkListRecord(db: Db, cl: number): ChunkListRecord | null {
  const size = prepared<[number], number>(db, 'SELECT size FROM clists WHERE cl = ?').pluck().get(cl);
  if (size === undefined) return null;
  const spans = prepared<[number], ChunkSpan>(db, 'SELECT off, handle, id, raw FROM crefs WHERE cl = ? ORDER BY off').all(cl);
  return { cl, size, spans };
}

/** Inodes with a row born by `s`, after `after`, in order: pages of a first (full) shipment. */
export function inodesUpTo(db: Db, s: number, after: number, limit: number): number[] {
  return prepared<[number, number, number], number>(db, 'SELECT DISTINCT ino FROM inodes WHERE born <= ? AND ino > ? ORDER BY ino LIMIT ?').pluck().all(s, after, limit);
}

/** Chunk lists named by a row born by `s`, after `after`, in order. */
export function chunkListsUpTo(db: Db, s: number, after: number, limit: number): number[] {
  return prepared<[number, number, number], number>(db, 'SELECT DISTINCT cl FROM inodes WHERE cl > ? AND born <= ? ORDER BY cl LIMIT ?').pluck().all(after, s, limit);
}

/** Chunk lists named by rows born in (a, b]: the new ones an incremental shipment carries. */
export function chunkListsBornIn(db: Db, a: number, b: number): number[] {
  return prepared<[number, number], number>(db, 'SELECT DISTINCT cl FROM inodes WHERE born > ? AND born <= ? AND cl IS NOT NULL ORDER BY cl').pluck().all(a, b);
}

/** Ids of chunks any row born by `s` names, after `after` in byte order: a full add set. */
export function idsUpTo(db: Db, s: number, after: Buffer, limit: number): Buffer[] {
  return prepared<[Buffer, number, number], Buffer>(
    db,
    `SELECT DISTINCT id FROM crefs c WHERE id > ?
       AND EXISTS (SELECT 1 FROM inodes i WHERE i.cl = c.cl AND i.born <= ?)
     ORDER BY id LIMIT ?`,
  ).pluck().all(after, s, limit);
}

/** Files named by rows born by `s` that are not chunked yet: such a state cannot ship whole. */
export function unchunkedUpTo(db: Db, s: number): number {
  return prepared<[number], number>(db, 'SELECT count(*) FROM inodes WHERE born <= ? AND staged IS NOT NULL AND cl IS NULL').pluck().get(s) ?? 0;
}

export interface PrunedEntry {
  seq: number;
  kind: number;
  key: number;
}

/** What forget removed after `seq`, oldest first. */
export function prunedAfter(db: Db, seq: number, limit: number): PrunedEntry[] {
  return prepared<[number, number], PrunedEntry>(db, 'SELECT seq, kind, key FROM pruned WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit);
}

export function prunedHead(db: Db): number {
  return (prepared(db, "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'pruned'), 0)").pluck().get() as number) ?? 0;
}

export function drainPruned(db: Db, upTo: number): void {
  prepared(db, 'DELETE FROM pruned WHERE seq <= ?').run(upTo);
}

/**
 * Recovery: writes records fetched back from buddies into an empty tree. Call inside one
 * transaction per batch; finishImport sets the counts the records do not carry.
 */
export function importInode(db: Db, r: InodeRecord): void {
  const ins = prepared(
    db,
    `INSERT OR REPLACE INTO inodes (ino, born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, staged, xattrs)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
  );
  for (const v of r.versions) ins.run(r.ino, v.born, v.died, v.kind, v.mode, v.uid, v.gid, v.nlink, v.size, v.atime, v.mtime, v.ctime, v.target, v.cl, v.xattrs);
  const ent = prepared(db, 'INSERT OR REPLACE INTO entries (parent, name, born, died, ino) VALUES (?, ?, ?, ?, ?)');
  for (const e of r.entries) ent.run(r.ino, e.name, e.born, e.died, e.ino);
}

export function importChunkList(db: Db, r: ChunkListRecord): void {
  prepared(db, 'INSERT OR REPLACE INTO clists (cl, users, size) VALUES (?, 0, ?)').run(r.cl, r.size);
  const ins = prepared(db, 'INSERT OR REPLACE INTO crefs (cl, off, handle, id, raw) VALUES (?, ?, ?, ?, ?)');
  for (const s of r.spans) ins.run(r.cl, s.off, s.handle, s.id, s.raw);
}

/** After the last record: list users, the epoch after the shipped one, the inode counter. */
export function finishImport(db: Db, epoch: number, nextIno: number, snapshots: { epoch: number; name: string; time: number; label: string | null }[]): void {
  db.exec('UPDATE clists SET users = (SELECT count(*) FROM inodes i WHERE i.cl = clists.cl)');
  const ins = prepared(db, 'INSERT OR REPLACE INTO snapshots (epoch, name, time, label) VALUES (?, ?, ?, ?)');
  for (const s of snapshots) ins.run(s.epoch, s.name, s.time, s.label);
  const meta = prepared(db, 'INSERT INTO tree_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
  meta.run('epoch', epoch + 1);
  meta.run('next_ino', nextIno);
}

/** Chunk references each stored chunk carries: one per chunk-list entry naming it. */
export function countReferences(db: Db): void {
  db.exec('UPDATE chunks SET refs = (SELECT count(*) FROM crefs c WHERE c.id = chunks.id) WHERE handle IS NOT NULL');
}

/** The same for one chunk just stored, with its plaintext length from the lists naming it. */
export function countReferencesOf(db: Db, id: Buffer): void {
  prepared<{ id: Buffer }, unknown>(
    db,
    'UPDATE chunks SET refs = (SELECT count(*) FROM crefs c WHERE c.id = @id), raw = (SELECT coalesce(max(raw), 0) FROM crefs c WHERE c.id = @id) WHERE id = @id',
  ).run({ id });
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

/** Tree state a recovery left to finish: chunks still to fetch back (tree_meta 'backfill'). */
export function backfillPending(db: Db): boolean {
  return (prepared(db, "SELECT v FROM tree_meta WHERE k = 'backfill'").pluck().get() as number | undefined) === 1;
}

export function setBackfillPending(db: Db, pending: boolean): void {
  prepared(db, "INSERT INTO tree_meta (k, v) VALUES ('backfill', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(pending ? 1 : 0);
}
