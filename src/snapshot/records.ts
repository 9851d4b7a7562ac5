// The tree as metadata objects for buddies: one record per inode (all its row versions a kept
// snapshot or the shipped state can see, and for a directory its entries) and one per chunk
// list (immutable). Records are plain data; sealing them is the peers layer's job, and
// recovery writes them back with importRecords.
import { prepared, type Db } from '../chunkstore/index-db.js';
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
  const spans = prepared<[number], ChunkSpan>(db, 'SELECT off, handle, raw FROM crefs WHERE cl = ? ORDER BY off').all(cl);
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

/** Handles of chunks any row born by `s` names, after `after` in byte order: a full add set. */
export function handlesUpTo(db: Db, s: number, after: Buffer, limit: number): Buffer[] {
  return prepared<[Buffer, number, number], Buffer>(
    db,
    `SELECT DISTINCT handle FROM crefs c WHERE handle > ?
       AND EXISTS (SELECT 1 FROM inodes i WHERE i.cl = c.cl AND i.born <= ?)
     ORDER BY handle LIMIT ?`,
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
