// File content as chunk lists: immutable, shared by the inode rows (live and snapshot) that
// have the same content, and the only holders of the tree's chunk references.
import { prepared, type Db } from '../chunkstore/index-db.js';
import type { ChunkRef, ChunkStore } from '../chunkstore/store.js';
import { backfillPending } from './records.js';

function addChunkList(db: Db, chunks: ChunkRef[], users: number): number {
  const size = chunks.reduce((s, c) => s + c.raw, 0);
  const cl = Number(prepared(db, 'INSERT INTO clists (users, size) VALUES (?, ?)').run(users, size).lastInsertRowid);
  const ins = prepared(db, 'INSERT INTO crefs (cl, off, handle, id, raw) VALUES (?, ?, ?, ?, ?)');
  let off = 0;
  for (const c of chunks) {
    ins.run(cl, off, c.handle, c.id, c.raw);
    off += c.raw;
  }
  return cl;
}

/** Candidates looked at for an identical list: a chunk many files start with must not cost a scan. */
const SAME_LIST_CANDIDATES = 8;

/**
 * An existing chunk list with exactly these chunks, if any. A file written again with the same
 * content (rsync's temp file and rename, an editor's save-as) then shares it: no new list, no
 * new references, no new metadata object to ship.
 */
function sameChunkList(db: Db, chunks: ChunkRef[], size: number): number | null {
  // While a recovery is fetching chunks back, counts of chunks named by old lists are not set
  // yet; giving this commit's references back could then drop a chunk to zero.
  if (chunks.length === 0 || backfillPending(db)) return null;
  const candidates = prepared<[Uint8Array, number, number], number>(
    db,
    'SELECT c.cl FROM crefs c JOIN clists l ON l.cl = c.cl WHERE c.id = ? AND c.off = 0 AND l.size = ? LIMIT ?',
  ).pluck().all(chunks[0]!.id, size, SAME_LIST_CANDIDATES);
  const spans = prepared<[number], { id: Buffer; raw: number }>(db, 'SELECT id, raw FROM crefs WHERE cl = ? ORDER BY off');
  for (const cl of candidates) {
    const have = spans.all(cl);
    if (have.length === chunks.length && have.every((h, i) => h.raw === chunks[i]!.raw && h.id.equals(chunks[i]!.id))) return cl;
  }
  return null;
}

/**
 * Inside the ingest commit: the chunks of staging generation `gen` of inode `ino` replace
 * it in every row that still has it (live and snapshots alike: same bytes). If none does
 * (deleted or rewritten meanwhile), the references the commit took are given back.
 * `allNew`: every chunk is new to the store, so no list can hold them yet (an untar's files:
 * the search for an identical list was 17% of the ingest worker's time holding the commit
 * lock, which the folder's thread then waited for). Returns whether any row took the chunks.
 */
export function swapStaged(db: Db, store: ChunkStore, ino: number, gen: number, chunks: ChunkRef[], allNew = false): boolean {
  const rows = prepared<[number, number], number>(db, 'SELECT count(*) FROM inodes WHERE ino = ? AND staged = ?').pluck().get(ino, gen)!;
  if (rows === 0) {
    store.decref(chunks.map((c) => c.id));
    return false;
  }
  const size = chunks.reduce((n, c) => n + c.raw, 0);
  const same = allNew ? null : sameChunkList(db, chunks, size);
  let cl: number;
  if (same !== null) {
    // The list already holds a reference per entry: give back the ones this commit took.
    store.decref(chunks.map((c) => c.id));
    prepared(db, 'UPDATE clists SET users = users + ? WHERE cl = ?').run(rows, same);
    cl = same;
  } else {
    cl = addChunkList(db, chunks, rows);
  }
  prepared(db, 'UPDATE inodes SET cl = ?, staged = NULL WHERE ino = ? AND staged = ?').run(cl, ino, gen);
  return true;
}

/** One row stopped using chunk list `cl`; the last one releases its chunk references. */
/** Drops one user of a chunk list; true when that was the last and the list is gone. */
export function releaseChunkList(db: Db, store: ChunkStore, cl: number): boolean {
  prepared(db, 'UPDATE clists SET users = users - 1 WHERE cl = ?').run(cl);
  if ((prepared<[number], number>(db, 'SELECT users FROM clists WHERE cl = ?').pluck().get(cl) ?? 0) > 0) return false;
  store.decref(prepared<[number], Buffer>(db, 'SELECT id FROM crefs WHERE cl = ?').pluck().all(cl));
  prepared(db, 'DELETE FROM crefs WHERE cl = ?').run(cl);
  prepared(db, 'DELETE FROM clists WHERE cl = ?').run(cl);
  return true;
}
