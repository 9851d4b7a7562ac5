// The versioned tree: inodes and directory entries with epoch ranges, chunk lists, snapshots.
// All calls are short synchronous SQLite statements: the filesystem calls them from FUSE
// callbacks on the JS thread. Writes happen at the current epoch; a row born before it is
// visible to a snapshot, so changing it kills it (died = epoch) and inserts a copy.
import { LRUCache } from 'lru-cache';
import { inReadTransaction, type Db } from '../chunkstore/index-db.js';
import type { CommitLock } from '../chunkstore/commit-lock.js';
import type { ChunkRef, ChunkStore } from '../chunkstore/store.js';
import { releaseChunkList } from './content.js';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const ROOT = 1;

export interface Inode {
  ino: number;
  born: number;
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
  /** A symlink's target; a device node's number (8 bytes, little-endian). */
  target: Buffer | null;
  cl: number | null;
  staged: number | null;
  xattrs: string | null;
}

export interface Entry {
  name: Buffer;
  ino: number;
}

/** A directory entry with its inode's row, as a listing with attributes wants them. */
export type EntryWithInode = Inode & { name: Buffer };

/** A chunk of a file's content, at its offset. */
export interface ChunkSpan extends ChunkRef {
  off: number;
}

/** A crefs row as the span queries return it: offset, handle and id (32 bytes each) in one blob, raw size. */
type SpanRow = [number, Buffer, number];

function spanOf(row: SpanRow): ChunkSpan {
  return { off: row[0], handle: row[1].subarray(0, 32), id: row[1].subarray(32), raw: row[2] };
}

export class TreeError extends Error {
  constructor(readonly errno: 'ENOENT' | 'EEXIST' | 'ENOTDIR' | 'EISDIR' | 'ENOTEMPTY' | 'EINVAL', message: string) {
    super(message);
  }
}

const INO_BLOCK = 1024;
/**
 * Live rows kept in memory for lookups and getattrs (~250 bytes each). A scan of more rows than
 * this (a stat storm over the tree) misses on every one, LRU being what it is: at 50,000, `find
 * -newer` after an md5sum of linux-prev (83.8k inodes) took 3.48-3.55 s against 2.52-2.93 s,
 * and left more garbage on the heap (61 MB used against 39) than the rows it would have kept.
 */
const CACHED_ROWS = 150_000;
const LIVE = '(died IS NULL OR died > @e) AND born <= @e';

export class Tree {
  private e: number;
  private nextIno: number;
  private inoReserved: number;
  private readonly q;
  private readonly runTx;
  private readonly released: [number, number][] = [];
  /**
   * Live rows as this thread last wrote or read them, for the reads the filesystem makes on
   * every request. Changes made here update it; ingest workers swap a staged row's content to
   * chunks behind it, which the filesystem reports with `uncache` once they are done, and
   * until then the staged file is still there to read. Writes never trust it: they read the
   * row again inside their transaction.
   */
  private readonly cache = new LRUCache<number, Inode>({ max: CACHED_ROWS });
  private batching = false;
  private readonly begin;
  private readonly commit;
  private readonly rollback;
  /** Called when no row references a staging generation any more: its file can go. */
  onStagedReleased: (ino: number, gen: number) => void = () => {};

  /**
   * `lock`, when given, is held while this thread has a write transaction open: the ingest
   * workers that share it then wait on it (woken the moment it is free) rather than in
   * SQLite's sleeping busy handler, and this thread likewise.
   */
  constructor(readonly db: Db, private readonly store: ChunkStore, private readonly lock?: CommitLock) {
    const get = db.prepare<[string], number>('SELECT v FROM tree_meta WHERE k = ?').pluck();
    this.runTx = db.transaction((fn: () => unknown) => fn());
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commit = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.q = {
      // Positional parameters: named ones cost 14 µs a lookup here instead of 8.5.
      inode: db.prepare<[number, number, number], Inode>('SELECT * FROM inodes WHERE ino = ? AND born <= ? AND (died IS NULL OR died > ?)'),
      lookup: db.prepare<[number, Buffer, number, number], number>('SELECT ino FROM entries WHERE parent = ? AND name = ? AND born <= ? AND (died IS NULL OR died > ?)').pluck(),
      list: db.prepare<{ parent: number; e: number }, Entry>(`SELECT name, ino FROM entries WHERE parent = @parent AND ${LIVE} ORDER BY name`),
      listFull: db.prepare<[number, number, number, number, number], EntryWithInode>(`SELECT e.name, i.* FROM entries e JOIN inodes i ON i.ino = e.ino AND i.born <= ? AND (i.died IS NULL OR i.died > ?)
        WHERE e.parent = ? AND e.born <= ? AND (e.died IS NULL OR e.died > ?) ORDER BY e.name`),
      parentOf: db.prepare<[number, number, number], number>('SELECT parent FROM entries WHERE ino = ? AND born <= ? AND (died IS NULL OR died > ?) LIMIT 1').pluck(),
      hasChild: db.prepare<{ parent: number; e: number }, number>(`SELECT 1 FROM entries WHERE parent = @parent AND ${LIVE} LIMIT 1`).pluck(),
      entryRow: db.prepare<{ parent: number; name: Buffer; e: number }, { born: number; ino: number }>(`SELECT born, ino FROM entries WHERE parent = @parent AND name = @name AND ${LIVE}`),
      insInode: db.prepare(`INSERT INTO inodes (ino, born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, staged, xattrs)
        VALUES (@ino, @born, NULL, @kind, @mode, @uid, @gid, @nlink, @size, @atime, @mtime, @ctime, @target, @cl, @staged, @xattrs)`),
      updInode: db.prepare(`UPDATE inodes SET kind=@kind, mode=@mode, uid=@uid, gid=@gid, nlink=@nlink, size=@size, atime=@atime, mtime=@mtime,
        ctime=@ctime, target=@target, cl=@cl, staged=@staged, xattrs=@xattrs WHERE ino=@ino AND born=@born`),
      delInode: db.prepare('DELETE FROM inodes WHERE ino = ? AND born = ?'),
      killInode: db.prepare('UPDATE inodes SET died = ? WHERE ino = ? AND born = ?'),
      insEntry: db.prepare('INSERT INTO entries (parent, name, born, died, ino) VALUES (?, ?, ?, NULL, ?)'),
      delEntry: db.prepare('DELETE FROM entries WHERE parent = ? AND name = ? AND born = ?'),
      killEntry: db.prepare('UPDATE entries SET died = ? WHERE parent = ? AND name = ? AND born = ?'),
      clUse: db.prepare('UPDATE clists SET users = users + ? WHERE cl = ?'),
      // Rows as arrays, handle and id in one blob: a Buffer made per column and the row's
      // object built property by property were most of a cold read's lookups (2.9 -> 1.4 µs a chunk).
      chunkAt: db.prepare<[number, number], SpanRow>('SELECT off, CAST(handle || id AS BLOB), raw FROM crefs WHERE cl = ? AND off <= ? ORDER BY off DESC LIMIT 1').raw(true),
      chunksFrom: db.prepare<[number, number, number], SpanRow>('SELECT off, CAST(handle || id AS BLOB), raw FROM crefs WHERE cl = ? AND off >= ? AND off < ? ORDER BY off').raw(true),
      refsFrom: db.prepare<[number, number, number], ChunkRef>('SELECT handle, id, raw FROM crefs WHERE cl = ? AND off >= ? ORDER BY off LIMIT ?'),
      stagedUsers: db.prepare<[number, number], number>('SELECT count(*) FROM inodes WHERE ino = ? AND staged = ?').pluck(),
      setMeta: db.prepare('INSERT INTO tree_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
    };
    this.e = get.get('epoch') ?? 1;
    this.nextIno = get.get('next_ino') ?? ROOT + 1;
    this.inoReserved = this.nextIno;
    if (!this.inode(ROOT)) {
      const now = Date.now();
      db.transaction(() => {
        this.q.setMeta.run('epoch', this.e);
        this.q.insInode.run({ ino: ROOT, born: this.e, kind: S_IFDIR, mode: 0o755, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, nlink: 2, size: 0, atime: now, mtime: now, ctime: now, target: null, cl: null, staged: null, xattrs: null });
      })();
    }
  }

  get epoch(): number {
    return this.e;
  }

  inode(ino: number, e = this.e): Inode | undefined {
    if (e !== this.e) return this.q.inode.get(ino, e, e);
    const hit = this.cache.get(ino);
    if (hit) return hit;
    const n = this.q.inode.get(ino, e, e);
    if (n) this.cache.set(ino, n);
    return n;
  }

  /** The row of `ino` changed on another connection (an ingest worker's swap). */
  uncache(ino: number): void {
    this.cache.delete(ino);
  }

  lookup(parent: number, name: Buffer, e = this.e): number | undefined {
    return this.q.lookup.get(parent, name, e, e) as number | undefined;
  }

  list(parent: number, e = this.e): Entry[] {
    return this.q.list.all({ parent, e });
  }

  /** Entries of `parent` with their inodes' rows, in one statement (a listing with attributes). */
  listFull(parent: number, e = this.e): EntryWithInode[] {
    return this.q.listFull.all(e, e, parent, e, e);
  }

  /** The chunk holding byte `off` of chunk list `cl`. */
  chunkAt(cl: number, off: number): ChunkSpan | undefined {
    const row = this.q.chunkAt.get(cl, off);
    return row && spanOf(row);
  }

  /** The chunks of list `cl` that hold bytes [from, to). */
  chunksIn(cl: number, from: number, to: number): ChunkSpan[] {
    const first = this.chunkAt(cl, from);
    if (!first) return [];
    const out = [first];
    for (const row of this.q.chunksFrom.all(cl, first.off + 1, to)) out.push(spanOf(row));
    return out;
  }

  /** The chunks of list `cl` from byte `off` on, up to `bytes`: what a sequential read wants next. */
  refsFrom(cl: number, off: number, bytes: number): ChunkRef[] {
    const out: ChunkRef[] = [];
    let sum = 0;
    for (const s of this.q.refsFrom.all(cl, off, 1024)) {
      if (out.length > 0 && sum + s.raw > bytes) break;
      out.push(s);
      sum += s.raw;
    }
    return out;
  }

  /** Number of inode rows (any epoch) whose content is staging generation `gen`. */
  stagedUsers(ino: number, gen: number): number {
    return this.q.stagedUsers.get(ino, gen)!;
  }

  /**
   * Run fn in a transaction (nested calls join the outer one as savepoints). Staging files
   * released by it are reported only once the outermost transaction committed: a rollback
   * keeps them.
   */
  tx<T>(fn: () => T): T {
    const outer = !this.db.inTransaction;
    if (outer) this.lock?.acquire();
    const mark = this.released.length;
    try {
      if (outer && this.batching) this.begin.run();
      const out = this.runTx.immediate(fn) as T;
      if (!this.db.inTransaction) this.reportReleased();
      return out;
    } catch (err) {
      this.released.length = mark;
      // Rows this thread wrote were rolled back: the cache may hold them.
      this.cache.clear();
      throw err;
    } finally {
      if (outer && !this.db.inTransaction) this.lock?.release();
    }
  }

  /**
   * Group commit: until endBatch, tree changes share one transaction, opened by the first of
   * them (the filesystem groups what it handles between two sleeps of its FUSE loop).
   */
  beginBatch(): void {
    this.batching = true;
  }

  /** Run fn's reads as one read transaction (index-db.ts inReadTransaction). fn must not write. */
  reading<T>(fn: () => T): T {
    return inReadTransaction(this.db, fn);
  }

  /** Commit the batch; if that fails, everything stays as it was for abortBatch. */
  endBatch(): void {
    this.batching = false;
    if (!this.db.inTransaction) return;
    this.commit.run();
    this.lock?.release();
    this.reportReleased();
  }

  /** After a failed endBatch: roll back what SQLite kept of the batch and forget it. */
  abortBatch(): void {
    this.batching = false;
    if (this.db.inTransaction) this.rollback.run();
    this.lock?.release();
    this.released.length = 0;
    this.cache.clear();
  }

  private reportReleased(): void {
    for (const [ino, gen] of this.released.splice(0)) this.onStagedReleased(ino, gen);
  }

  /** Create an inode and its entry in `parent`. */
  create(parent: number, name: Buffer, init: Pick<Inode, 'kind' | 'mode' | 'uid' | 'gid'> & { target?: Buffer; now: number }): Inode {
    return this.tx(() => {
      const dir = this.dirOf(parent);
      if (this.lookup(parent, name) !== undefined) throw new TreeError('EEXIST', 'exists');
      const ino = this.nextIno++;
      // Inode numbers are reserved in blocks: one write per 1024 creates, not one each.
      // After a crash the rest of a block is skipped, which costs nothing.
      if (ino >= this.inoReserved) {
        this.inoReserved = ino + INO_BLOCK;
        this.q.setMeta.run('next_ino', this.inoReserved);
      }
      const isDir = init.kind === S_IFDIR;
      const node: Inode = {
        ino, born: this.e, died: null, kind: init.kind, mode: init.mode & 0o7777, uid: init.uid, gid: init.gid,
        nlink: isDir ? 2 : 1, size: init.kind === S_IFLNK && init.target ? init.target.length : 0,
        atime: init.now, mtime: init.now, ctime: init.now, target: init.target ?? null, cl: null, staged: null, xattrs: null,
      };
      this.q.insInode.run(node);
      this.cache.set(ino, node);
      this.q.insEntry.run(parent, name, this.e, ino);
      this.put(dir, { mtime: init.now, ctime: init.now, nlink: dir.nlink + (isDir ? 1 : 0) });
      return node;
    });
  }

  link(ino: number, parent: number, name: Buffer, now: number): Inode {
    return this.tx(() => {
      const dir = this.dirOf(parent);
      const node = this.must(ino);
      if (node.kind === S_IFDIR) throw new TreeError('EINVAL', 'hard link to a directory');
      if (this.lookup(parent, name) !== undefined) throw new TreeError('EEXIST', 'exists');
      this.q.insEntry.run(parent, name, this.e, ino);
      this.put(dir, { mtime: now, ctime: now });
      return this.put(node, { nlink: node.nlink + 1, ctime: now });
    });
  }

  /** Remove a non-directory entry; returns the inode as it is afterwards (nlink may be 0). */
  unlink(parent: number, name: Buffer, now: number): Inode {
    return this.tx(() => {
      const dir = this.dirOf(parent);
      const row = this.q.entryRow.get({ parent, name, e: this.e });
      if (!row) throw new TreeError('ENOENT', 'no such entry');
      const node = this.must(row.ino);
      if (node.kind === S_IFDIR) throw new TreeError('EISDIR', 'is a directory');
      this.dropEntry(parent, name, row.born);
      this.put(dir, { mtime: now, ctime: now });
      const after = { ...node, nlink: node.nlink - 1, ctime: now };
      if (after.nlink > 0) return this.put(node, { nlink: after.nlink, ctime: now });
      this.dropInode(node);
      return after;
    });
  }

  rmdir(parent: number, name: Buffer, now: number): void {
    this.tx(() => {
      const dir = this.dirOf(parent);
      const row = this.q.entryRow.get({ parent, name, e: this.e });
      if (!row) throw new TreeError('ENOENT', 'no such entry');
      const node = this.must(row.ino);
      if (node.kind !== S_IFDIR) throw new TreeError('ENOTDIR', 'not a directory');
      if (this.q.hasChild.get({ parent: node.ino, e: this.e })) throw new TreeError('ENOTEMPTY', 'directory not empty');
      this.dropEntry(parent, name, row.born);
      this.dropInode(node);
      this.put(dir, { mtime: now, ctime: now, nlink: dir.nlink - 1 });
    });
  }

  /** rename(2): replaces a file target, or an empty directory target with a directory. */
  rename(from: number, name: Buffer, to: number, newName: Buffer, now: number): { replaced?: Inode } {
    return this.tx(() => {
      const src = this.q.entryRow.get({ parent: from, name, e: this.e });
      if (!src) throw new TreeError('ENOENT', 'no such entry');
      const node = this.must(src.ino);
      this.dirOf(to);
      if (from === to && name.equals(newName)) return {};
      if (node.kind === S_IFDIR && this.isAncestor(node.ino, to)) throw new TreeError('EINVAL', 'cannot move a directory into itself');
      let replaced: Inode | undefined;
      const dst = this.q.entryRow.get({ parent: to, name: newName, e: this.e });
      if (dst) {
        if (dst.ino === src.ino) {
          // Two names of one inode: rename(2) does nothing.
          return {};
        }
        const victim = this.must(dst.ino);
        if (victim.kind === S_IFDIR) {
          if (node.kind !== S_IFDIR) throw new TreeError('EISDIR', 'target is a directory');
          this.rmdir(to, newName, now);
        } else {
          if (node.kind === S_IFDIR) throw new TreeError('ENOTDIR', 'target is not a directory');
          replaced = this.unlink(to, newName, now);
        }
      }
      this.dropEntry(from, name, src.born);
      this.q.insEntry.run(to, newName, this.e, src.ino);
      const isDir = node.kind === S_IFDIR;
      const a = this.must(from);
      this.put(a, { mtime: now, ctime: now, nlink: a.nlink - (isDir && from !== to ? 1 : 0) });
      if (from !== to) {
        const b = this.must(to);
        this.put(b, { mtime: now, ctime: now, nlink: b.nlink + (isDir ? 1 : 0) });
      }
      this.put(this.must(src.ino), { ctime: now });
      return { replaced };
    });
  }

  /** renameat2(RENAME_EXCHANGE): the two names swap the inodes they point at. */
  exchange(from: number, name: Buffer, to: number, newName: Buffer, now: number): void {
    this.tx(() => {
      const a = this.q.entryRow.get({ parent: from, name, e: this.e });
      const b = this.q.entryRow.get({ parent: to, name: newName, e: this.e });
      if (!a || !b) throw new TreeError('ENOENT', 'no such entry');
      if (a.ino === b.ino) return;
      const na = this.must(a.ino);
      const nb = this.must(b.ino);
      if (from !== to) {
        if (na.kind === S_IFDIR && this.isAncestor(na.ino, to)) throw new TreeError('EINVAL', 'cannot move a directory into itself');
        if (nb.kind === S_IFDIR && this.isAncestor(nb.ino, from)) throw new TreeError('EINVAL', 'cannot move a directory into itself');
      }
      this.dropEntry(from, name, a.born);
      this.dropEntry(to, newName, b.born);
      this.q.insEntry.run(from, name, this.e, b.ino);
      this.q.insEntry.run(to, newName, this.e, a.ino);
      // A directory moving to another parent takes its ".." link with it.
      const shift = (na.kind === S_IFDIR ? 1 : 0) - (nb.kind === S_IFDIR ? 1 : 0);
      const pa = this.must(from);
      this.put(pa, { mtime: now, ctime: now, nlink: pa.nlink - (from !== to ? shift : 0) });
      if (from !== to) {
        const pb = this.must(to);
        this.put(pb, { mtime: now, ctime: now, nlink: pb.nlink + shift });
      }
      this.put(this.must(a.ino), { ctime: now });
      this.put(this.must(b.ino), { ctime: now });
    });
  }

  /** Change attributes (or content) of a live inode, copying the row if a snapshot sees it. */
  update(ino: number, changes: Partial<Omit<Inode, 'ino' | 'born' | 'died'>>): Inode {
    return this.tx(() => this.put(this.must(ino), changes));
  }

  /** Record a new snapshot at the current epoch and move on: O(1) in the tree's size. */
  snapshot(name: string, time: number, label: string | null): number {
    return this.tx(() => {
      const epoch = this.e;
      this.db.prepare('INSERT INTO snapshots (epoch, name, time, label) VALUES (?, ?, ?, ?)').run(epoch, name, time, label);
      this.e = epoch + 1;
      this.q.setMeta.run('epoch', this.e);
      return epoch;
    });
  }

  /** The live row, read inside the caller's transaction (not from the cache). */
  private must(ino: number): Inode {
    const node = this.q.inode.get(ino, this.e, this.e);
    if (!node) throw new TreeError('ENOENT', `no inode ${ino}`);
    return node;
  }

  private dirOf(ino: number): Inode {
    const dir = this.must(ino);
    if (dir.kind !== S_IFDIR) throw new TreeError('ENOTDIR', 'not a directory');
    return dir;
  }

  /** A directory holding `ino` (one of them, for a file with several names). */
  parentOf(ino: number, e = this.e): number | undefined {
    return this.q.parentOf.get(ino, e, e) as number | undefined;
  }

  private isAncestor(ancestor: number, ino: number): boolean {
    for (let cur: number | undefined = ino; cur !== undefined && cur !== ROOT; cur = this.parentOf(cur)) {
      if (cur === ancestor) return true;
    }
    return ancestor === ROOT;
  }

  /** Write a live row's new state: in place if born at this epoch, else kill + copy. */
  private put(node: Inode, changes: Partial<Inode>): Inode {
    const next: Inode = { ...node, ...changes, ino: node.ino, died: null };
    if (next.cl !== null && next.cl !== node.cl) this.q.clUse.run(1, next.cl);
    if (node.born === this.e) {
      this.q.updInode.run(next);
      if (node.cl !== null && node.cl !== next.cl) this.releaseChunkList(node.cl);
      if (node.staged !== null && node.staged !== next.staged) this.releaseStaged(node.ino, node.staged);
    } else {
      this.q.killInode.run(this.e, node.ino, node.born);
      next.born = this.e;
      if (next.cl !== null && next.cl === node.cl) this.q.clUse.run(1, next.cl);
      this.q.insInode.run(next);
    }
    this.cache.set(next.ino, next);
    return next;
  }

  private dropInode(node: Inode): void {
    this.cache.delete(node.ino);
    if (node.born === this.e) {
      this.q.delInode.run(node.ino, node.born);
      if (node.cl !== null) this.releaseChunkList(node.cl);
      if (node.staged !== null) this.releaseStaged(node.ino, node.staged);
    } else {
      this.q.killInode.run(this.e, node.ino, node.born);
    }
  }

  private dropEntry(parent: number, name: Buffer, born: number): void {
    if (born === this.e) this.q.delEntry.run(parent, name, born);
    else this.q.killEntry.run(this.e, parent, name, born);
  }

  private releaseChunkList(cl: number): void {
    releaseChunkList(this.db, this.store, cl);
  }

  private releaseStaged(ino: number, gen: number): void {
    if (this.stagedUsers(ino, gen) === 0) this.released.push([ino, gen]);
  }
}
