// The local chunkstore: packs on disk, the SQLite index, per-owner refcounts.
// One ChunkStore per thread; the daemon's main thread opens it with `recover`, worker
// threads open their own connection to the same files.
import { existsSync, mkdirSync, read as readCb, statSync } from 'node:fs';
import { FdCache } from './fd-cache.js';
import { join } from 'node:path';
import type Database from 'better-sqlite3-multiple-ciphers';
import { isPlaintext, openDb, prepared, sealDatabase, type Db } from './index-db.js';
import { migrate, SchemaError, type Migration } from './migrations.js';
import { PackWriter, RECORD_HEAD, packPath, readExact, type Placed } from './packs.js';
import { ChunkError, Sealer, hexId } from './sealer.js';
import { preadCached } from './native.js';
import { BufferPool } from './buffer-pool.js';

/** How the tree names a chunk: its public id finds the box, its handle opens it. */
export interface ChunkRef {
  id: Buffer;
  handle: Buffer;
  raw: number;
}

export interface ChunkRow extends Placed {
  id: Buffer;
  raw: number;
  handle: Buffer | null;
  /** References it is stored with (default 0: the caller counts them in). */
  refs?: number;
}

/** Where a stored box lies: its pack's open descriptor, and its bytes there. */
export interface BoxPlace {
  fd: number;
  off: number;
  len: number;
}

export interface Location {
  pack: number;
  off: number;
  len: number;
  raw: number;
}

export interface StoreStats {
  chunks: number;
  packs: number;
  /** Bytes of pack files on disk. */
  packBytes: number;
  /** Bytes of boxes the index names. */
  liveBytes: number;
  /** Plaintext bytes of the stored chunks (each once). */
  uniqueRaw: number;
  /** Plaintext bytes referenced by the tree, counting every reference. */
  referencedRaw: number;
}

export class MissingChunkError extends ChunkError {}

/** A run read at once: at most this long, with gaps (other files' chunks) of at most this. */
const RUN_BYTES = 4 << 20;
const LOCATE_WIDTHS = [8, 16, 32, 64];
const LOCATE_MAX = 64;
const RUN_GAP = 64 << 10;


/** The index does not open with this key: another passphrase's, or not a database at all. */
export class StoreLockedError extends Error {
  constructor(path: string, cause: unknown) {
    super(`the store index ${path} does not open with this passphrase (a wrong passphrase, or a damaged database)`, { cause });
    this.name = 'StoreLockedError';
  }
}

/** Where chunks the store lacks can be fetched from (buddies, after a recovery or a loss). */
export interface RemoteChunks {
  /** Fetches, checks and stores those of these chunks not stored yet; returns how many arrived. */
  fetch(refs: ChunkRef[]): Promise<number>;
  /** Fetches good copies of chunks stored here damaged, and puts them in their place; how many. */
  repair(refs: ChunkRef[]): Promise<number>;
}

export class ChunkStore {
  readonly db: Db;
  readonly packsDir: string;
  readonly sealer: Sealer;
  private readonly fds: FdCache<number>;

  private readonly q;
  private remote: RemoteChunks | null = null;
  /** Runs are read into buffers used again: a sequential reader's window (a MiB and its edges) fits. */
  private readonly runBuffers = new BufferPool(2 << 20, 4);
  private readonly locators = new Map<number, Database.Statement<Uint8Array[], [number, number, number, number, number]>>();

  private constructor(readonly dir: string, convergence: Uint8Array | null, db: Db) {
    this.db = db;
    this.packsDir = join(dir, 'packs');
    this.sealer = new Sealer(convergence);
    this.fds = new FdCache((pack) => packPath(this.packsDir, pack));
    this.q = {
      loc: db.prepare<[Uint8Array], Location>('SELECT pack, off, len, raw FROM chunks WHERE id = ?'),
      has: db.prepare<[Uint8Array], { one: number }>('SELECT 1 AS one FROM chunks WHERE id = ?').pluck(),
      idOf: db.prepare<[Uint8Array], Buffer>('SELECT id FROM chunks WHERE handle = ?').pluck(),
      refOf: db.prepare<[Uint8Array], ChunkRef>('SELECT id, handle, raw FROM chunks WHERE id = ? AND handle IS NOT NULL'),
      adopt: db.prepare('UPDATE chunks SET handle = ? WHERE id = ? AND handle IS NULL'),
      alias: db.prepare<[Uint8Array], Buffer>('SELECT id FROM chunk_aliases WHERE old = ?').pluck(),
      relocate: db.prepare('UPDATE chunks SET pack = ?, off = ?, len = ? WHERE id = ?'),
      insert: db.prepare('INSERT OR IGNORE INTO chunks (id, pack, off, len, raw, refs, handle) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      live: db.prepare('UPDATE packs SET live = live + ? WHERE pack = ?'),
      incref: db.prepare('UPDATE chunks SET refs = refs + 1 WHERE id = ?'),
      decref: db.prepare('UPDATE chunks SET refs = refs - 1 WHERE id = ? AND refs > 0 RETURNING refs'),
      release: db.prepare('INSERT OR IGNORE INTO released (id) VALUES (?)'),
      unrelease: db.prepare('DELETE FROM released WHERE id = ?'),
      ownerHold: db.prepare('INSERT OR IGNORE INTO owner_refs (owner, id, n) VALUES (?, ?, 1)'),
      ownerDrop: db.prepare('DELETE FROM owner_refs WHERE owner = ? AND id = ?'),
      allocPack: db.prepare('INSERT INTO packs (size, live, sealed) VALUES (0, 0, 0)'),
      sealPack: db.prepare('UPDATE packs SET size = ?, sealed = 1 WHERE pack = ?'),
      refs: db.prepare<[Uint8Array], number>('SELECT refs FROM chunks WHERE id = ?').pluck(),
    };
  }

  /**
   * Opens (creating if needed) the store in `dir`. `recover` is for the single owner
   * process at start: packs left open by a crashed writer are sealed at their real size,
   * their unindexed tails being dead bytes for compaction. The opener that owns the database
   * passes its `schema`, which brings it up to date; other connections (workers) find it so.
   */
  static open(dir: string, convergence: Uint8Array | null, opts: { recover?: boolean; create?: boolean; schema?: readonly Migration[]; key?: Uint8Array | null } = {}): ChunkStore {
    const dbPath = join(dir, 'index.db');
    if (!opts.create && !existsSync(dbPath)) throw new Error(`no chunkstore at ${dir} (index.db missing)`);
    mkdirSync(join(dir, 'packs'), { recursive: true });
    if (opts.key && opts.schema && isPlaintext(dbPath)) sealDatabase(dbPath, opts.key);
    let db: Db;
    try {
      db = openDb(dbPath, { key: opts.key });
    } catch (cause) {
      if ((cause as { code?: string }).code === 'SQLITE_NOTADB') throw new StoreLockedError(dbPath, cause);
      throw cause;
    }
    try {
      if (opts.schema) migrate({ db, packsDir: join(dir, 'packs') }, opts.schema);
    } catch (cause) {
      db.close();
      if (cause instanceof SchemaError) throw cause;
      if ((cause as { code?: string }).code === 'SQLITE_NOTADB') throw new StoreLockedError(dbPath, cause);
      throw new Error(`chunk index ${dbPath} is unreadable: ${(cause as Error).message}`, { cause });
    }
    const store = new ChunkStore(dir, convergence, db);
    try {
      if (opts.recover) store.sealOrphanPacks();
    } catch (err) {
      // Disk full: still usable for reading; the packs get sealed at a later open.
      if ((err as { code?: string }).code !== 'SQLITE_FULL') throw err;
    }
    return store;
  }

  private sealOrphanPacks(): void {
    const open = this.db.prepare('SELECT pack FROM packs WHERE sealed = 0').pluck().all() as number[];
    for (const pack of open) {
      const path = packPath(this.packsDir, pack);
      const size = existsSync(path) ? statSync(path).size : 0;
      this.q.sealPack.run(size, pack);
    }
  }

  newWriter(target?: number): PackWriter {
    return new PackWriter(
      this.packsDir,
      () => Number(this.q.allocPack.run().lastInsertRowid),
      (pack, size) => this.q.sealPack.run(size, pack),
      target,
    );
  }

  has(id: Uint8Array): boolean {
    return this.q.has.get(id) !== undefined;
  }

  /** How to read our own stored chunk `id` (undefined for a chunk held only for another host). */
  refOf(id: Uint8Array): ChunkRef | undefined {
    return this.q.refOf.get(id);
  }

  /** The id of our own chunk with this handle, if stored. */
  idOf(handle: Uint8Array): Buffer | undefined {
    return this.q.idOf.get(handle) as Buffer | undefined;
  }

  /**
   * The id a chunk is stored under, asked for by its id or by its release-0.1.0 id (a host whose
   * metadata was shipped by that release names its chunks so in a recovery).
   */
  currentId(id: Uint8Array): Buffer | undefined {
    if (this.has(id)) return Buffer.from(id);
    return this.q.alias.get(id) as Buffer | undefined;
  }

  /** A chunk stored for a buddy client turns out to be ours too: remember how to open it. */
  adopt(id: Uint8Array, handle: Uint8Array): void {
    this.q.adopt.run(handle, id);
  }

  location(id: Uint8Array): Location | undefined {
    return this.q.loc.get(id);
  }

  /**
   * Locations of `ids`, by position: one statement per up to 64 (a sequential read's window
   * is ~64 chunks; a statement each cost more than the pack read they lead to).
   */
  locations(ids: Uint8Array[]): (Location | undefined)[] {
    if (ids.length === 1) return [this.location(ids[0]!)];
    // Filled, not holes: callers walk it with forEach, which skips holes.
    const out: (Location | undefined)[] = new Array<undefined>(ids.length).fill(undefined);
    for (let i = 0; i < ids.length; i += LOCATE_MAX) {
      const part = ids.slice(i, i + LOCATE_MAX);
      const width = LOCATE_WIDTHS.find((w) => w >= part.length)!;
      // Padded with the last id again, so a handful of statements serve every count.
      while (part.length < width) part.push(part[part.length - 1]!);
      for (const [at, pack, off, len, raw] of this.locate(width).all(...part)) if (i + at < ids.length) out[i + at] = { pack, off, len, raw };
    }
    return out;
  }

  /**
   * Rows come back by the id's position in the list, as numbers: a Buffer of each id to match
   * them by made half of what a cold read's lookups cost (2.5 -> 1.25 µs a chunk).
   */
  private locate(width: number): Database.Statement<Uint8Array[], [number, number, number, number, number]> {
    let st = this.locators.get(width);
    if (!st) {
      const list = Array.from({ length: width }, (_, i) => `(${i}, ?)`).join(',');
      st = this.db.prepare<Uint8Array[], [number, number, number, number, number]>(`WITH wanted(at, id) AS (VALUES ${list}) SELECT wanted.at, pack, off, len, raw FROM wanted JOIN chunks USING (id)`).raw(true);
      this.locators.set(width, st);
    }
    return st;
  }

  refs(id: Uint8Array): number | undefined {
    return this.q.refs.get(id) as number | undefined;
  }

  /**
   * Index rows for boxes already durable in packs. Call inside a transaction. Returns the rows
   * not inserted because their chunk is stored already. A row inserted with references leaves
   * the delete set if it was there (released, collected, now stored again).
   */
  insert<R extends ChunkRow>(rows: Iterable<R>): R[] {
    // One update of each pack's live bytes per call, not one per chunk: a batch of a shipment
    // or an ingest is hundreds of chunks in one or two packs.
    const live = new Map<number, number>();
    const there: R[] = [];
    for (const r of rows) {
      if (this.q.insert.run(r.id, r.pack, r.off, r.len, r.raw, r.refs ?? 0, r.handle).changes === 0) {
        there.push(r);
        continue;
      }
      live.set(r.pack, (live.get(r.pack) ?? 0) + r.len + RECORD_HEAD);
      if ((r.refs ?? 0) > 0) this.q.unrelease.run(r.id);
    }
    for (const [pack, bytes] of live) this.q.live.run(bytes, pack);
    return there;
  }

  /**
   * Good copies of damaged chunks, durable in packs, take their rows' places (references and
   * owners unchanged); the damaged bytes become dead space. Call inside a transaction.
   */
  relocate(rows: Iterable<ChunkRow>): void {
    for (const r of rows) {
      const old = this.location(r.id);
      if (!old) continue;
      this.q.relocate.run(r.pack, r.off, r.len, r.id);
      this.q.live.run(-(old.len + RECORD_HEAD), old.pack);
      this.q.live.run(r.len + RECORD_HEAD, r.pack);
    }
  }

  incref(ids: Iterable<Uint8Array>): void {
    for (const id of ids) {
      if (this.q.incref.run(id).changes === 0) throw new MissingChunkError(`chunk ${hexId(id)} is not in the store`);
      this.q.unrelease.run(id);
    }
  }

  decref(ids: Iterable<Uint8Array>): void {
    for (const id of ids) {
      const left = this.q.decref.get(id) as { refs: number } | undefined;
      if (!left) throw new ChunkError(`refcount of chunk ${hexId(id)} would go below zero`);
      if (left.refs === 0) this.q.release.run(id);
    }
  }

  /**
   * A reference held for another host (a buddy client, `owner` > 0). Idempotent: a chunk
   * offered twice (a resumed shipment) is held once. Returns the box bytes newly charged to
   * the owner (0 if it already held it), or null when the chunk is not stored.
   */
  holdFor(owner: number, id: Uint8Array): number | null {
    const loc = this.location(id);
    return loc ? this.holdAt(owner, id, loc) : null;
  }

  /** holdFor, for a chunk just found at `loc` in the same transaction. */
  holdAt(owner: number, id: Uint8Array, loc: Location): number {
    return this.q.ownerHold.run(owner, id).changes > 0 ? loc.len : 0;
  }

  /** Drops `owner`'s reference (GC reclaims the chunk once nobody holds it); bytes uncharged. */
  dropFor(owner: number, id: Uint8Array): number {
    if (this.q.ownerDrop.run(owner, id).changes === 0) return 0;
    return this.location(id)?.len ?? 0;
  }

  /** Ids whose last local reference went away since the log was last drained: the delete set. */
  released(): Buffer[] {
    return this.db.prepare<[], Buffer>('SELECT id FROM released ORDER BY seq').pluck().all();
  }

  /** The delete-set log after `seq`, oldest first: what a buddy at cursor `seq` was not told. */
  releasedAfter(seq: number, limit: number): { seq: number; id: Buffer }[] {
    return this.db.prepare<[number, number], { seq: number; id: Buffer }>('SELECT seq, id FROM released WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit);
  }

  /** The newest seq of the delete-set log (0 when it was never written). */
  releasedHead(): number {
    return (this.db.prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'released'), 0)").pluck().get() as number) ?? 0;
  }

  /** Every buddy has been told up to `seq`: forget those entries. */
  drainReleased(upTo: number): void {
    this.db.prepare('DELETE FROM released WHERE seq <= ?').run(upTo);
  }

  /** The stored box (ciphertext + tag) of a chunk: what buddies receive. */
  readBox(id: Uint8Array): Buffer {
    const loc = this.location(id);
    if (!loc) throw new MissingChunkError(`chunk ${hexId(id)} is not in the store`);
    return this.readBoxAt(id, loc);
  }

  /** The box of `id` at `loc` (from locations()), read into the start of `into` when given. */
  readBoxAt(id: Uint8Array, loc: Location, into?: Buffer): Buffer {
    return this.withPack(loc.pack, (fd) => readExact(fd, loc.off, loc.len, `chunk ${hexId(id)} in pack ${loc.pack}`, into));
  }

  /** Plaintext of a chunk, authenticated. Synchronous: for worker threads and tools. */
  read(ref: Pick<ChunkRef, 'id' | 'handle'>): Buffer {
    return this.sealer.open(ref.handle, this.readBox(ref.id), ref.id);
  }

  /** Reads of chunks missing here fetch them from `remote` first. */
  setRemote(remote: RemoteChunks | null): void {
    this.remote = remote;
  }

  /**
   * Plaintext of a chunk without blocking the thread on disk I/O (FUSE reads). When it has to
   * come from the remote, the chunks `ahead()` names come along in the same round trip.
   */
  async readAsync(ref: ChunkRef, ahead?: () => ChunkRef[]): Promise<Buffer> {
    const { id } = ref;
    let loc = this.location(id);
    if (!loc && this.remote) {
      // The remote skips what is stored already.
      await this.remote.fetch([ref, ...(ahead?.() ?? [])]);
      loc = this.location(id);
    }
    if (!loc) throw new MissingChunkError(`chunk ${hexId(id)} is not in the store${this.remote ? ' and no buddy could give it back' : ''}`);
    try {
      return await this.readStored(ref, loc);
    } catch (err) {
      // Damaged here: a buddy's good copy takes its place, or the read fails (EIO), never wrong bytes.
      if (!(err instanceof ChunkError) || !this.remote || (await this.remote.repair([ref])) === 0) throw err;
      return this.readStored(ref, this.location(id)!);
    }
  }

  /**
   * Plaintexts of several chunks (the ones a FUSE read spans, 64 to a MiB at the default
   * size), one promise each. Neighbours in a pack, as a file's chunks are when it was written
   * in one go, come in one read instead of a trip through the thread pool each. A chunk that
   * fails to open this way is read again alone, through readAsync's repair.
   */
  readRun(refs: ChunkRef[], ahead?: () => ChunkRef[]): Promise<Buffer>[] {
    const locs = this.locations(refs.map((r) => r.id));
    if (locs.some((l) => !l)) {
      // After a recovery: the first fetch brings the read-ahead, the rest find their chunks here.
      const first = this.readAsync(refs[0]!, ahead);
      const after = (r: ChunkRef): Promise<Buffer> => first.then(() => this.readAsync(r, ahead), () => this.readAsync(r, ahead));
      return [first, ...refs.slice(1).map(after)];
    }
    const out: Promise<Buffer>[] = [];
    const end = (l: Location): number => l.off + l.len;
    for (let i = 0; i < refs.length; ) {
      const head = locs[i]!;
      let j = i + 1;
      for (; j < refs.length; j++) {
        const prev = locs[j - 1]!;
        const next = locs[j]!;
        if (next.pack !== head.pack || next.off < end(prev) || next.off - end(prev) > RUN_GAP || end(next) - head.off > RUN_BYTES) break;
      }
      const len = end(locs[j - 1]!) - head.off;
      const buf = this.runBuffers.take(len);
      const run = this.withPackAsync(head.pack, (fd) => readAt(fd, head.off, len, buf));
      const opened: Promise<Buffer>[] = [];
      for (let k = i; k < j; k++) {
        const ref = refs[k]!;
        const loc = locs[k]!;
        opened.push(run.then((bytes) => this.openIn(ref, loc, bytes, head.off)));
        out.push(opened.at(-1)!.catch(() => this.readAsync(ref)));
      }
      // Opening a chunk copies it out of the run: once all are opened, the buffer is free.
      void Promise.allSettled(opened).then(() => this.runBuffers.give(buf));
      i = j;
    }
    return out;
  }

  /**
   * The boxes at `locs` (from `locations`), their packs held open while `fn` runs (a reader
   * that keeps a descriptor past it dups it): for readers that open boxes themselves
   * (native/fuse's reader threads). Null, without calling `fn`, when a pack does not open: the
   * caller then takes readRun's way, which names the fault.
   */
  withBoxes<T>(locs: Location[], fn: (places: BoxPlace[]) => T): T | null {
    let opened = false;
    try {
      return this.fds.withSyncAll(locs.map((l) => l.pack), (fd) => {
        opened = true;
        return fn(locs.map((l) => ({ fd: fd(l.pack), off: l.off, len: l.len })));
      });
    } catch (err) {
      if (!opened && (err as NodeJS.ErrnoException).syscall === 'open') return null;
      throw err;
    }
  }

  /** The chunk at `loc`, opened from `run`: bytes of its pack read from offset `base`. */
  private openIn(ref: ChunkRef, loc: Location, run: Buffer, base: number): Buffer {
    const box = run.subarray(loc.off - base, loc.off - base + loc.len);
    if (box.length !== loc.len) throw new ChunkError(`chunk ${hexId(ref.id)} in pack ${loc.pack}: pack ends before the chunk (truncated pack)`);
    return this.sealer.open(ref.handle, box, ref.id);
  }

  private async readStored(ref: ChunkRef, loc: Location): Promise<Buffer> {
    return this.openIn(ref, loc, await this.withPackAsync(loc.pack, (fd) => readAt(fd, loc.off, loc.len)), loc.off);
  }

  stats(): StoreStats {
    const steps = this.statsInSteps();
    for (let r = steps.next(); ; r = steps.next()) if (r.done) return r.value;
  }

  /**
   * The same figures, read a few thousand chunks at a time with the event loop free in between:
   * for the daemon, whose thread serves the folder (the whole table took 12 ms warm and 320 ms
   * cold for 147k chunks).
   */
  async measure(): Promise<StoreStats> {
    const steps = this.statsInSteps();
    for (let r = steps.next(); ; r = steps.next()) {
      if (r.done) return r.value;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private *statsInSteps(): Generator<void, StoreStats> {
    const step = prepared<[Buffer], { n: number; len: number; raw: number; ref: number; last: Buffer | null }>(
      this.db,
      `SELECT count(*) AS n, coalesce(sum(len),0) AS len, coalesce(sum(raw),0) AS raw, coalesce(sum(raw*refs),0) AS ref, max(id) AS last
       FROM (SELECT id, len, raw, refs FROM chunks WHERE id > ? ORDER BY id LIMIT 4096)`,
    );
    const c = { chunks: 0, liveBytes: 0, uniqueRaw: 0, referencedRaw: 0 };
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const r = step.get(after)!;
      c.chunks += r.n;
      c.liveBytes += r.len;
      c.uniqueRaw += r.raw;
      c.referencedRaw += r.ref;
      if (r.last === null) break;
      after = r.last;
      yield;
    }
    const p = this.db.prepare('SELECT count(*) AS packs, coalesce(sum(size),0) AS packBytes FROM packs').get() as { packs: number; packBytes: number };
    return { ...c, ...p };
  }

  /** Forget a cached descriptor (the pack was deleted by compaction). */
  dropPack(pack: number): void {
    this.fds.drop(pack);
  }

  close(): void {
    this.fds.closeAll();
    this.db.close();
  }

  private withPack<T>(pack: number, fn: (fd: number) => T): T {
    try {
      return this.fds.withSync(pack, fn);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).syscall === 'open') throw new ChunkError(`pack ${pack} is missing or unreadable`, { cause });
      throw cause;
    }
  }

  private async withPackAsync<T>(pack: number, fn: (fd: number) => Promise<T>): Promise<T> {
    try {
      return await this.fds.with(pack, fn);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).syscall === 'open') throw new ChunkError(`pack ${pack} is missing or unreadable`, { cause });
      throw cause;
    }
  }
}

/**
 * Bytes of a pack, from the page cache at once when they are all there (a pack read in order
 * mostly is, by the kernel's read-ahead); else on libuv's pool, not stalling the FUSE thread.
 */
function readAt(fd: number, off: number, len: number, into: Buffer = Buffer.allocUnsafe(len)): Promise<Buffer> {
  const out = into.subarray(0, len);
  const cached = preadCached(fd, out, off);
  if (cached >= 0) return Promise.resolve(out.subarray(0, cached));
  return new Promise((resolve, reject) => {
    const step = (got: number): void => {
      readCb(fd, out, got, len - got, off + got, (err, n) => {
        if (err) return reject(err);
        if (n === 0 || got + n === len) return resolve(out.subarray(0, got + n));
        step(got + n);
      });
    };
    step(0);
  });
}
