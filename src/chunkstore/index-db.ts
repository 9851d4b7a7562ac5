// The chunk index: SQLite (better-sqlite3-multiple-ciphers, WAL). One database file per host
// holds the chunkstore's tables and the snapshot layer's, so a file's chunk-list swap and its
// refcount changes commit in one transaction. It is encrypted page by page (AEGIS-256, which
// uses AES-NI: measured here ~10% slower inserts, same lookups), so names, sizes, the tree's
// shape and chunk handles are unreadable without the passphrase.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3-multiple-ciphers';
import { walBatchExtension } from './native.js';

export type Db = Database.Database;

const PLAIN_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** The 32-byte key as SQLite3MultipleCiphers takes raw bytes, not a passphrase. */
const rawKey = (key: Uint8Array): string => `"x'${Buffer.from(key).toString('hex')}'"`;

function useKey(db: Db, key: Uint8Array): void {
  db.pragma("cipher = 'aegis'");
  db.pragma(`key = ${rawKey(key)}`);
}

/** A database file in SQLite's plain format (release 0.1.0 kept its index so). */
export function isPlaintext(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(16);
    return readSync(fd, head, 0, 16, 0) === 16 && head.equals(PLAIN_HEADER);
  } finally {
    closeSync(fd);
  }
}

/** Encrypts a plain database in place under `key` (SQLite can only rekey outside WAL mode). */
export function sealDatabase(path: string, key: Uint8Array): void {
  const db = new Database(path, { timeout: 30_000 });
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.pragma('journal_mode = DELETE');
    db.pragma("cipher = 'aegis'");
    db.pragma(`rekey = ${rawKey(key)}`);
    db.pragma('journal_mode = WAL');
  } finally {
    db.close();
  }
}

let walBatch = false;

/**
 * Connections opened after this write each transaction's WAL frames with one system call
 * instead of two per page (native/wal-batch.c). The VFS is registered for the whole process
 * by an extension loaded into a connection of no consequence; once per thread is cheap.
 */
function useWalBatch(): void {
  if (walBatch || !walBatchExtension) return;
  walBatch = true;
  const probe = new Database(':memory:');
  try {
    probe.loadExtension(walBatchExtension);
  } finally {
    probe.close();
  }
}

/**
 * Write transactions must start with BEGIN IMMEDIATE (`db.transaction(fn).immediate()`):
 * a deferred one that reads first and then writes fails at once with SQLITE_BUSY when another
 * connection (an ingest worker) committed in between; an immediate one waits its turn.
 * `key` null: a plain database (chunkstore tests); every host's store has one.
 */
export function openDb(path: string, opts: { readonly?: boolean; key?: Uint8Array | null } = {}): Db {
  useWalBatch();
  const db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false, timeout: 30_000 });
  if (opts.key) useKey(db, opts.key);
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a commit survives a process crash; only a power loss may lose the last
    // transactions, never corrupt. Pack bytes are fsynced before the rows naming them.
    db.pragma('synchronous = NORMAL');
  }
  // 16 MiB: another connection's commit empties this one's cache anyway (WAL), so more mostly
  // costs memory. Ingest workers keep less (ingest-worker.ts).
  db.pragma('cache_size = -16384');
  return db;
}

/** Bytes a WAL file may keep at rest before shrinkWal gives them back. */
export const WAL_KEEP_BYTES = 16 << 20;

/**
 * Gives back the disk space of a WAL file grown past WAL_KEEP_BYTES: SQLite reuses the file from
 * its start once every frame is in the database, but keeps its size (96 MB after chunking an
 * untar of the linux tree, for as long as the daemon runs). Copies every frame back and
 * truncates the file if no reader holds the WAL now; never waits for one. For a quiet moment:
 * capping the file at every restart (journal_size_limit) made untars 6% slower here, each
 * truncation inside a commit of the folder's. True if the file was truncated.
 */
export function shrinkWal(db: Db): boolean {
  let size: number;
  try {
    size = statSync(`${db.name}-wal`).size;
  } catch {
    return false;
  }
  if (size <= WAL_KEEP_BYTES) return false;
  const timeout = db.pragma('busy_timeout', { simple: true }) as number;
  db.pragma('busy_timeout = 0');
  try {
    const [row] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    return row?.busy === 0;
  } catch {
    return false;
  } finally {
    db.pragma(`busy_timeout = ${timeout}`);
  }
}

/** The store's disk is full: SQLite's word for it, or the file system's. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}

const cache = new WeakMap<Db, Map<string, Database.Statement>>();

/** A prepared statement cached per connection: for helpers called per file or per chunk. */
export function prepared<P extends unknown[] | {} = unknown[], R = unknown>(db: Db, sql: string): Database.Statement<P, R> {
  let m = cache.get(db);
  if (!m) cache.set(db, (m = new Map()));
  let st = m.get(sql);
  if (!st) m.set(sql, (st = db.prepare(sql)));
  return st as unknown as Database.Statement<P, R>;
}

/**
 * Run fn's reads as one read transaction (one snapshot, the WAL's read lock taken once, the
 * page cache checked once against other connections' commits), or inside the transaction
 * already open. fn must not write: a write there could meet a commit made since it began.
 */
export function inReadTransaction<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  prepared(db, 'BEGIN').run();
  try {
    return fn();
  } finally {
    if (db.inTransaction) prepared(db, 'COMMIT').run();
  }
}

export function createChunkTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS packs (
      pack   INTEGER PRIMARY KEY AUTOINCREMENT,
      size   INTEGER NOT NULL DEFAULT 0,   -- bytes in the file once sealed
      live   INTEGER NOT NULL DEFAULT 0,   -- bytes of records the index still names
      sealed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS chunks (
      id     BLOB PRIMARY KEY,             -- SHA-256 of the handle: public name
      pack   INTEGER NOT NULL,
      off    INTEGER NOT NULL,
      len    INTEGER NOT NULL,             -- box bytes (ciphertext + tag)
      raw    INTEGER NOT NULL,             -- plaintext bytes
      refs   INTEGER NOT NULL DEFAULT 0,   -- references by the local host's tree
      handle BLOB                          -- known for our own chunks: lets verify check tags
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack, off);
    CREATE INDEX IF NOT EXISTS chunks_unreferenced ON chunks(id) WHERE refs = 0;
    -- References held for other hosts of the group (buddy clients), by owner.
    CREATE TABLE IF NOT EXISTS owner_refs (
      owner  INTEGER NOT NULL,
      id     BLOB NOT NULL,
      n      INTEGER NOT NULL,
      PRIMARY KEY (id, owner)
    ) WITHOUT ROWID;
    -- Chunks whose local refcount fell to zero: what buddies may drop (the delete set), until
    -- every buddy has been told (each keeps a cursor on seq). A chunk referenced again leaves
    -- it; released again, it comes back with a new seq, so no buddy misses it.
    CREATE TABLE IF NOT EXISTS released (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id  BLOB NOT NULL UNIQUE
    );
    CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
  `);
}
