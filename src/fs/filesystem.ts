// The filesystem behind the mount: FUSE low-level operations on node ids, mapped onto the
// versioned tree (live, or a snapshot's epoch under .snapshots), staging files and the
// chunkstore. Calls run on the JS thread: each is a few short SQLite statements or async I/O;
// chunking happens in worker threads (ChunkQueue).
import { statfs as statfsAsync } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import type { BoxPlace, ChunkStore } from '../chunkstore/store.js';
import {
  ROOT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, type ChunkSpan, type Inode, type Tree,
} from '../snapshot/tree.js';
import { FdCache } from '../chunkstore/fd-cache.js';
import { ContentReader } from './content-reader.js';
import type { ChunkQueue, StagedGeneration } from './chunk-queue.js';
import { FsError } from './errors.js';
import type { Staging } from './staging.js';
import { A, RENAME_EXCHANGE, RENAME_NOREPLACE, SA, SET } from './binding.js';
import { inodeNow } from './clock.js';
import { attrOf, deviceTarget, fillAttr } from './attrs.js';
import { SNAPDIR, nodeId, where, type Where } from './nodes.js';
import { SnapshotDir, SNAPSHOTS } from './snapshot-dir.js';
import { Writers, type Working } from './writers.js';
import { Listings } from './listings.js';
import { getXattr, listXattrs, removeXattr, setXattr } from './xattrs.js';

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
/**
 * The mode once a write, a truncation or a chown has cleared the privilege bits (the kernel
 * leaves that to us: FUSE_HANDLE_KILLPRIV_V2, native/fuse/killpriv.c). As Linux does: setuid
 * goes, setgid only with group execute (without it, setgid marks mandatory locking).
 */
const killPrivileges = (mode: number): number => mode & ~S_ISUID & ~(mode & S_IXGRP ? S_ISGID : 0);
/** A setattr's values when none is set (`valid` names what applies). */
const NO_VALUES = new Float64Array(SA.CTIME + 1);
/** The bits of a setattr that change something (ctime follows any change). */
const CHANGES = SET.MODE | SET.UID | SET.GID | SET.SIZE | SET.ATIME | SET.MTIME;
/** A setattr that changes only mtime and ctime. */
const TIMES_ONLY = (valid: number): boolean => (valid & ~(SET.MTIME | SET.MTIME_NOW | SET.CTIME)) === 0;
const FALLOC_FL_KEEP_SIZE = 1;
const SNAPSHOTS_NAME = Buffer.from(SNAPSHOTS);
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

interface Handle {
  w: Where;
  write: Working | null;
  /** The row at open: what an unlinked file still open is read and stat'ed from. */
  node: Inode;
}

/** A directory's entries as one READDIR stream reads them (listings.ts). */
export interface DirListing {
  names: Buffer[];
  /** A.LEN attributes per entry. */
  attrs: Float64Array;
}

export interface Created {
  attr: Float64Array;
  fh: number;
}

export class Filesystem {
  private readonly handles = new Map<number, Handle>();
  private readonly listings = new Listings<DirListing>();
  private readonly stagedFds: FdCache<string>;
  private readonly reader: ContentReader;
  private readonly writers: Writers;
  readonly snapshots: SnapshotDir;
  private nextFh = 1;
  private queue!: ChunkQueue;

  constructor(
    private readonly tree: Tree,
    store: ChunkStore,
    private readonly staging: Staging,
    private readonly homeForStatfs: string,
  ) {
    this.reader = new ContentReader(tree, store);
    this.stagedFds = new FdCache((key) => staging.dir + '/' + key, 128);
    // A generation published at fsync may be in a snapshot by the time its writer lets go of it.
    this.writers = new Writers(tree, staging, this.reader, (ino, gen) => this.settled([{ ino, gen }]));
    this.snapshots = new SnapshotDir(tree);
    tree.onStagedReleased = (ino, gen) => this.dropStaged(ino, gen);
  }

  attachQueue(queue: ChunkQueue): void {
    this.writers.attachQueue(queue);
    this.queue = queue;
  }

  /** Which of these generations the chunker should still take: asked when their delay is over. */
  wanted(items: StagedGeneration[]): boolean[] {
    return this.tree.reading(() => items.map(({ ino, gen }) => this.tree.stagedUsers(ino, gen) > 0 && !this.writers.isWorking(ino, gen)));
  }

  /** Generations finished (chunked or dropped): remove their files if nothing needs them. */
  settled(items: StagedGeneration[]): void {
    this.tree.reading(() => {
      for (const { ino, gen } of items) {
        // A worker may have swapped the row's content to chunks on its own connection.
        this.tree.uncache(ino);
        if (this.tree.stagedUsers(ino, gen) === 0 && !this.writers.isWorking(ino, gen)) this.dropStaged(ino, gen, true);
      }
    });
  }

  /** Crash recovery: chunk what the tree references, delete the rest. */
  recoverStaging(): { queued: number; removed: number } {
    this.staging.dropSpares();
    let queued = 0;
    let removed = 0;
    for (const { ino, gen } of this.staging.list()) {
      if (this.tree.stagedUsers(ino, gen) > 0) {
        this.queue.schedule(ino, gen, 0);
        queued++;
      } else {
        this.staging.remove(ino, gen);
        removed++;
      }
    }
    return { queued, removed };
  }

  get writersOpen(): number {
    return this.writers.count;
  }

  // ---- nodes ----

  /** The row a node id names, or ENOENT. */
  private node(w: Where): Inode {
    const n = this.tree.inode(w.ino, w.epoch ?? this.tree.epoch);
    if (!n) throw new FsError('ENOENT');
    return n;
  }

  /** A live node to change: snapshot views and .snapshots are read-only. */
  private live(id: number): Inode {
    const w = where(id);
    if (w.epoch !== null || id === SNAPDIR) throw new FsError('EROFS');
    return this.node(w);
  }

  private liveDir(id: number): Inode {
    const n = this.live(id);
    if (n.kind !== S_IFDIR) throw new FsError('ENOTDIR');
    return n;
  }

  /** The root shows .snapshots as one more subdirectory. */
  private extraLinks(id: number): number {
    return id === ROOT ? 1 : 0;
  }

  /** A live file open for writing knows its size and times better than its row. */
  private overlay(id: number, n: Inode): Working | undefined {
    return where(id).epoch === null ? this.writers.get(n.ino) : undefined;
  }

  private attr(id: number, n: Inode): Float64Array {
    return attrOf(id, n, this.extraLinks(id), this.overlay(id, n));
  }

  private snapdirAttr(): Float64Array {
    return this.snapshots.attr(this.node({ ino: ROOT, epoch: null }));
  }

  private attrOfLive(n: Inode): Float64Array {
    return this.attr(n.ino, n);
  }

  // ---- lookups and attributes ----

  /** The entry's attributes; A.INO = 0 answers "no such name" (cached by the kernel). */
  lookup(parent: number, name: Buffer): Float64Array {
    if (parent === SNAPDIR) {
      const epoch = this.snapshots.epochOf(name);
      if (epoch === undefined) return new Float64Array(A.LEN);
      const id = nodeId(ROOT, epoch);
      return this.attr(id, this.node({ ino: ROOT, epoch }));
    }
    const w = where(parent);
    if (w.epoch === null && parent === ROOT && name.equals(SNAPSHOTS_NAME)) return this.snapdirAttr();
    const ino = this.tree.lookup(w.ino, name, w.epoch ?? this.tree.epoch);
    if (ino === undefined) return new Float64Array(A.LEN);
    const id = nodeId(ino, w.epoch);
    return this.attr(id, this.node({ ino, epoch: w.epoch }));
  }

  getattr(id: number): Float64Array {
    if (id === SNAPDIR) return this.snapdirAttr();
    const w = where(id);
    const n = this.tree.inode(w.ino, w.epoch ?? this.tree.epoch);
    if (n) return this.attr(id, n);
    const orphan = this.orphan(w);
    if (orphan) return attrOf(id, { ...orphan.node, nlink: 0 }, 0, orphan.write ?? undefined);
    throw new FsError('ENOENT');
  }

  /**
   * An open file whose last name is gone: it lives on in its handles until closed (fstat
   * still works, with no links). The kernel asks without a file handle, so any handle will do.
   */
  private orphan(w: Where): Handle | undefined {
    if (w.epoch !== null) return undefined;
    for (const h of this.handles.values()) if (h.w.ino === w.ino && h.w.epoch === null) return h;
    return undefined;
  }

  /** Only a size change may have to wait (for a working copy of the content): the rest answers at once. */
  setattr(id: number, valid: number, fh: number, sa: Float64Array): Float64Array | Promise<Float64Array> {
    const w = where(id);
    if (w.epoch !== null || id === SNAPDIR) throw new FsError('EROFS');
    const now = inodeNow();
    const changes: Partial<Inode> = {};
    if (valid & SET.MODE) changes.mode = sa[SA.MODE]! & 0o7777;
    if (valid & SET.UID) changes.uid = sa[SA.UID]!;
    if (valid & SET.GID) changes.gid = sa[SA.GID]!;
    if (valid & SET.ATIME) changes.atime = valid & SET.ATIME_NOW ? now : sa[SA.ATIME]!;
    if (valid & SET.MTIME) changes.mtime = valid & SET.MTIME_NOW ? now : sa[SA.MTIME]!;
    changes.ctime = valid & SET.CTIME ? sa[SA.CTIME]! : now;
    const n = this.tree.inode(w.ino);
    const orphan = n ? undefined : this.orphan(w);
    if (!n && !orphan) throw new FsError('ENOENT');
    // Before a write by a caller without CAP_FSETID to a file with setuid or setgid (and at a
    // chown that changes neither owner), the kernel asks to remove privileges with a setattr
    // that sets nothing: its answer carries the mode without them, so the kernel's copy is
    // right before the write. Directories keep theirs, as on Linux.
    const node = n ?? orphan!.node;
    if (node.kind === S_IFREG && (valid & SET.KILL_SUIDGID || (valid & CHANGES) === 0)) {
      const mode = changes.mode ?? node.mode;
      if (killPrivileges(mode) !== mode) changes.mode = killPrivileges(mode);
    }
    const apply = (): Float64Array => {
      const working = this.writers.get(w.ino);
      if (working) {
        if (changes.mtime !== undefined) working.mtime = changes.mtime;
        working.ctime = changes.ctime!;
        // The writeback cache's time stamps before each close: the content they date is
        // published with them, so the row needs no change of its own now.
        if (working.dirty && !orphan && TIMES_ONLY(valid) && changes.mode === undefined) return this.attrOfLive(n!);
      }
      if (!orphan) return this.attrOfLive(this.tree.update(w.ino, changes));
      // No row to change: the handle's copy carries the change until the last close.
      orphan.node = { ...orphan.node, ...changes };
      return attrOf(id, { ...orphan.node, nlink: 0 }, 0, working);
    };
    return valid & SET.SIZE ? this.truncate(n ?? orphan!.node, sa[SA.SIZE]!, fh, now).then(apply) : apply();
  }

  private async truncate(n: Inode, size: number, fh: number, now: number): Promise<void> {
    if (n.kind === S_IFDIR) throw new FsError('EISDIR');
    if (n.kind !== S_IFREG) throw new FsError('EINVAL');
    const own = this.handles.get(fh)?.write;
    // The common O_TRUNC case: no content to copy, nothing to chunk. Not while a writer still
    // copies the old content: its copy would outlive the truncation (acquire waits for it).
    if (!own && !this.writers.get(n.ino) && size === 0 && !this.writers.copying(n.ino) && this.tree.inode(n.ino)) {
      this.tree.update(n.ino, { staged: null, cl: null, size: 0, mtime: now, ctime: now });
      return;
    }
    // Another process's writer is held for the resize: were its last close to come while the
    // resize copies (after a snapshot), that close would free the copy's writer under it.
    const w = own ?? (await this.writers.acquire(n.ino, size === 0));
    try {
      await this.writers.resize(w, size, now);
    } finally {
      if (!own) this.writers.release(w);
    }
  }

  readlink(id: number): Buffer {
    const n = this.node(where(id));
    if (n.kind !== S_IFLNK || !n.target) throw new FsError('EINVAL');
    return n.target;
  }

  // ---- creating and removing names ----

  private checkName(parent: number, name: Buffer): void {
    if (name.length > 255) throw new FsError('ENAMETOOLONG');
    if (parent === ROOT && name.equals(SNAPSHOTS_NAME)) throw new FsError('EEXIST');
  }

  /** Owner and mode of a new inode: a setgid directory passes its group (and, to directories, the bit) on. */
  private newInode(dir: Inode, kind: number, mode: number, uid: number, gid: number): { kind: number; mode: number; uid: number; gid: number } {
    if (dir.mode & S_ISGID) return { kind, mode: kind === S_IFDIR ? mode | S_ISGID : mode, uid, gid: dir.gid };
    return { kind, mode, uid, gid };
  }

  mknod(parent: number, name: Buffer, mode: number, rdev: number, uid: number, gid: number): Float64Array {
    const dir = this.liveDir(parent);
    this.checkName(parent, name);
    const kind = mode & S_IFMT;
    if (![S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].includes(kind)) throw new FsError('EINVAL');
    const device = kind === S_IFCHR || kind === S_IFBLK;
    const n = this.tree.create(parent, name, { ...this.newInode(dir, kind, mode, uid, gid), target: device ? deviceTarget(rdev) : undefined, now: inodeNow() });
    return this.attrOfLive(n);
  }

  mkdir(parent: number, name: Buffer, mode: number, uid: number, gid: number): Float64Array {
    const dir = this.liveDir(parent);
    this.checkName(parent, name);
    return this.attrOfLive(this.tree.create(parent, name, { ...this.newInode(dir, S_IFDIR, mode, uid, gid), now: inodeNow() }));
  }

  symlink(parent: number, name: Buffer, target: Buffer, uid: number, gid: number): Float64Array {
    const dir = this.liveDir(parent);
    this.checkName(parent, name);
    return this.attrOfLive(this.tree.create(parent, name, { ...this.newInode(dir, S_IFLNK, 0o777, uid, gid), target, now: inodeNow() }));
  }

  link(id: number, parent: number, name: Buffer): Float64Array {
    const n = this.live(id);
    this.liveDir(parent);
    this.checkName(parent, name);
    return this.attrOfLive(this.tree.link(n.ino, parent, name, inodeNow()));
  }

  unlink(parent: number, name: Buffer): void {
    this.liveDir(parent);
    if (parent === ROOT && name.equals(SNAPSHOTS_NAME)) throw new FsError('EROFS');
    this.tree.unlink(parent, name, inodeNow());
  }

  rmdir(parent: number, name: Buffer): void {
    this.liveDir(parent);
    if (parent === ROOT && name.equals(SNAPSHOTS_NAME)) throw new FsError('EROFS');
    this.tree.rmdir(parent, name, inodeNow());
  }

  rename(parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): void {
    this.liveDir(parent);
    this.liveDir(newParent);
    if ((parent === ROOT && name.equals(SNAPSHOTS_NAME)) || (newParent === ROOT && newName.equals(SNAPSHOTS_NAME))) throw new FsError('EROFS');
    if (newName.length > 255) throw new FsError('ENAMETOOLONG');
    const now = inodeNow();
    if (flags & RENAME_EXCHANGE) {
      this.tree.exchange(parent, name, newParent, newName, now);
      return;
    }
    if (flags & ~RENAME_NOREPLACE) throw new FsError('EINVAL');
    if (flags & RENAME_NOREPLACE && this.tree.lookup(newParent, newName) !== undefined) throw new FsError('EEXIST');
    this.tree.rename(parent, name, newParent, newName, now);
  }

  // ---- files ----

  async open(id: number, flags: number): Promise<number> {
    if (id === SNAPDIR) throw new FsError('EISDIR');
    const w = where(id);
    const n = this.node(w);
    if (n.kind === S_IFDIR) throw new FsError('EISDIR');
    const write = (flags & 3) !== fsc.O_RDONLY;
    if (!write) return this.newHandle({ w, write: null, node: n });
    if (w.epoch !== null) throw new FsError('EROFS');
    if (n.kind !== S_IFREG) return this.newHandle({ w, write: null, node: n });
    const working = await this.writers.acquire(n.ino, (flags & fsc.O_TRUNC) !== 0);
    return this.newHandle({ w, write: working, node: n });
  }

  /**
   * A write or a truncating open by a caller without CAP_FSETID clears setuid and setgid
   * (killPrivileges). True if the mode changed: the kernel still has the old one cached.
   */
  dropPrivileges(id: number): boolean {
    const w = where(id);
    if (w.epoch !== null) return false;
    const mode = (this.tree.inode(w.ino) ?? this.orphan(w)?.node)?.mode;
    if (mode === undefined || killPrivileges(mode) === mode) return false;
    // The kernel's own setattr for it, as at a truncation: same change, same path.
    this.setattr(id, SET.KILL_SUIDGID, -1, NO_VALUES);
    return true;
  }

  async create(parent: number, name: Buffer, mode: number, flags: number, uid: number, gid: number): Promise<Created> {
    const dir = this.liveDir(parent);
    this.checkName(parent, name);
    const n = this.tree.create(parent, name, { ...this.newInode(dir, S_IFREG, mode, uid, gid), now: inodeNow() });
    const working = await this.writers.acquire(n.ino, (flags & fsc.O_TRUNC) !== 0);
    const fh = this.newHandle({ w: { ino: n.ino, epoch: null }, write: working, node: n });
    return { attr: this.attrOfLive(n), fh };
  }

  /** A directory holding node `id` (one of them, for a file with several names). */
  parentOf(id: number): number | undefined {
    if (id === SNAPDIR) return undefined;
    const w = where(id);
    const dir = this.tree.parentOf(w.ino, w.epoch ?? this.tree.epoch);
    return dir === undefined ? undefined : nodeId(dir, w.epoch);
  }

  private newHandle(h: Handle): number {
    const fh = this.nextFh++;
    this.handles.set(fh, h);
    return fh;
  }

  private handle(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF');
    return h;
  }

  /**
   * A read whose bytes all lie in chunk boxes stored here goes to `send` (the chunks, where
   * their boxes are, and the bytes the reply takes from `pos`), which says whether it took it.
   * False when the read must go through `read`: a file being written, staged content, a box
   * to fetch or a gap in the list, a hole.
   */
  sendBoxes(fh: number, size: number, pos: number, send: (spans: ChunkSpan[], places: BoxPlace[], eof: number) => boolean): boolean {
    const h = this.handle(fh);
    if (h.w.epoch === null && this.writers.get(h.w.ino)) return false;
    const n = this.tree.inode(h.w.ino, h.w.epoch ?? this.tree.epoch) ?? h.node;
    if (n.kind === S_IFDIR || n.staged !== null || n.cl === null) return false;
    const want = Math.min(size, Math.max(0, n.size - pos));
    if (want === 0) return false;
    return this.reader.boxes(n.cl, n.size, pos, want, (spans, places) => send(spans, places, n.size)) ?? false;
  }

  /** Up to `buf.length` bytes at `pos`, into `buf`: how many are the answer. */
  read(fh: number, buf: Buffer, pos: number): number | Promise<number> {
    const h = this.handle(fh);
    const size = buf.length;
    const working = h.w.epoch === null ? this.writers.get(h.w.ino) : undefined;
    if (working) return this.writers.read(working, buf, size, pos);
    // A live handle follows the tree across snapshots; a snapshot handle stays at its epoch.
    const n = this.tree.inode(h.w.ino, h.w.epoch ?? this.tree.epoch) ?? h.node;
    if (n.kind === S_IFDIR) throw new FsError('EISDIR');
    const want = Math.min(size, Math.max(0, n.size - pos));
    if (want === 0) return 0;
    if (n.staged !== null) {
      const key = `${n.ino}-${n.staged}`;
      return this.stagedFds.withSync(key, (fd) => this.staging.reader(fd).read(buf, want, pos, n.size));
    }
    if (n.cl !== null) {
      return this.reader.read(n.cl, n.size, buf, want, pos).then((got) => {
        if (got < want) buf.fill(0, got, want);
        return want;
      });
    }
    buf.fill(0, 0, want);
    return want;
  }

  write(fh: number, data: Buffer, pos: number): number | Promise<number> {
    const h = this.handle(fh);
    if (!h.write) throw new FsError('EBADF');
    return this.writers.write(h.write, data, pos);
  }

  async fsync(fh: number): Promise<void> {
    const w = this.handle(fh).write;
    if (w) await this.writers.fsync(w);
  }

  flush(fh: number): void {
    const w = this.handles.get(fh)?.write;
    if (w) this.writers.publish(w);
  }

  release(fh: number): void {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    if (h.write) this.writers.release(h.write);
  }

  fallocate(fh: number, mode: number, off: number, len: number): void | Promise<void> {
    const w = this.handle(fh).write;
    if (!w) throw new FsError('EBADF');
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw new FsError('EOPNOTSUPP');
    // Space is not reserved (staging is chunked away anyway); the size grows as POSIX says.
    if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > w.size) return this.writers.resize(w, off + len, inodeNow());
  }

  statfs(): Promise<Float64Array> {
    return statfsAsync(this.homeForStatfs).then((s) => Float64Array.of(s.bsize, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.ffree, 255));
  }

  /** Unmount: every writer is closed, its content published and queued. */
  closeAll(): void {
    this.writers.closeAll();
    this.handles.clear();
    this.listings.clear();
    this.stagedFds.closeAll();
  }

  // ---- directories ----

  /**
   * What a READDIR of directory `id` at `offset` reads: the listing its stream started, or a
   * fresh one at offset 0; from position `start`, its offsets counted from `base`.
   */
  readdir(id: number, offset: number): { listing: DirListing; start: number; base: number } {
    return this.listings.at(id, offset, () => this.list(id));
  }

  /** A READDIR found nothing more in the listing whose offsets count from `base`. */
  readdirEnded(base: number): void {
    this.listings.ended(base);
  }

  private list(id: number): DirListing {
    const rows = this.listing(id);
    const attrs = new Float64Array(rows.length * A.LEN);
    rows.forEach((r, i) => {
      if (r.id === SNAPDIR) attrs.set(this.snapdirAttr(), i * A.LEN);
      else fillAttr(attrs, i * A.LEN, r.id, r.node, this.extraLinks(r.id), this.overlay(r.id, r.node));
    });
    return { names: rows.map((r) => r.name), attrs };
  }

  /** A directory's entries with their node ids and rows, "." and ".." first. */
  private listing(id: number): { name: Buffer; id: number; node: Inode }[] {
    if (id === SNAPDIR) {
      const root = this.node({ ino: ROOT, epoch: null });
      const snaps = this.snapshots.list().map((s) => ({ name: Buffer.from(s.name), id: nodeId(ROOT, s.epoch), node: this.node({ ino: ROOT, epoch: s.epoch }) }));
      return [{ name: DOT, id, node: root }, { name: DOTDOT, id, node: root }, ...snaps];
    }
    const w = where(id);
    const dir = this.node(w);
    if (dir.kind !== S_IFDIR) throw new FsError('ENOTDIR');
    const rows: { name: Buffer; id: number; node: Inode }[] = [{ name: DOT, id, node: dir }, { name: DOTDOT, id, node: dir }];
    if (w.epoch === null && w.ino === ROOT) rows.push({ name: SNAPSHOTS_NAME, id: SNAPDIR, node: dir });
    for (const e of this.tree.listFull(w.ino, w.epoch ?? this.tree.epoch)) rows.push({ name: e.name, id: nodeId(e.ino, w.epoch), node: e });
    return rows;
  }

  // ---- extended attributes ----

  setxattr(id: number, name: string, value: Buffer, flags: number): void {
    setXattr(this.tree, this.live(id), name, value, flags);
  }

  getxattr(id: number, name: string): Buffer {
    if (id === SNAPDIR) throw new FsError('ENODATA');
    return getXattr(this.node(where(id)), name);
  }

  listxattr(id: number): Buffer {
    if (id === SNAPDIR) return Buffer.alloc(0);
    return listXattrs(this.node(where(id)));
  }

  removexattr(id: number, name: string): void {
    removeXattr(this.tree, this.live(id), name);
  }

  /**
   * `reuse`: its file may become a spare (Staging.retire) if nothing here still reads it. A
   * generation dropped unchunked may be in a worker's hands; a deleted file keeps its bytes for it.
   */
  private dropStaged(ino: number, gen: number, reuse = false): void {
    if (this.writers.isWorking(ino, gen)) return;
    // A file deleted within its chunk delay: its turn would only find it unwanted and try
    // to remove it again (a rename and a query per file in a create-and-delete loop).
    this.queue.forget(ino, gen);
    const unread = this.stagedFds.drop(`${ino}-${gen}`);
    if (reuse && unread && !this.writers.copying(ino)) this.staging.retire(ino, gen);
    else this.staging.remove(ino, gen);
  }
}
