// The kernel side of the mount: decodes each request native/fuse hands over, runs it on the
// Filesystem and sends the reply. Group commit: the tree changes of every request the JS
// thread handles between two sleeps (what the kernel had queued, and what arrives while it
// keeps looking) share one SQLite transaction, committed before it sleeps again, so it never
// spans a turn of the event loop where other code runs. Replies go out at once, except for
// the requests that promise durability (close, release, fsync): they wait for the commit.
import { constants } from 'node:os';
import type { Tree } from '../snapshot/tree.js';
import { Op, OPEN, type Addon, type Dispatch, type Req, type Session } from './binding.js';
import { isDiskFull } from '../chunkstore/index-db.js';
import { BufferPool } from '../chunkstore/buffer-pool.js';
import { readWindow } from './read-windows.js';
import { errnoOf } from './errors.js';
import type { Filesystem } from './filesystem.js';
import { SNAPDIR } from './nodes.js';
import { ListingDrops } from './listing-drops.js';
import type { Staging } from './staging.js';
import type { Log } from '../log/logger.js';

/**
 * Entry, attribute and negative-entry lifetime in the kernel's caches, in seconds. Every
 * change to the live tree goes through the kernel, snapshots never change, and what the
 * daemon changes behind the kernel's back (.snapshots) it invalidates: so, long.
 */
const TTL = 86_400;
const { errno } = constants;

export class Kernel {
  private session: Session | null = null;
  /** Replies that promise durability, sent once the changes before them are committed. */
  private readonly held: { req: Req; send: () => void }[] = [];
  /**
   * Reads are answered from buffers used again (the reply copies them into the kernel): a fresh
   * 128 KiB each time cost ~10% of a cold sequential read (328-361 against 244-326 MB/s,
   * three alternating runs). Room for the reads a sequential reader keeps in flight.
   */
  private readonly readBuffers = new BufferPool(128 << 10, 32);
  /**
   * The disk was found full: until a deletion has made room again, requests are not batched
   * and a deletion that finds no room spends the staging reserve, so `rm` always works.
   */
  private lowSpace = false;
  private readonly listingDrops = new ListingDrops();

  constructor(
    private readonly addon: Addon,
    private readonly fs: Filesystem,
    private readonly tree: Tree,
    private readonly staging: Staging,
    private readonly log: Log,
  ) {}

  mount(mountpoint: string): void {
    this.session = this.addon.mount(mountpoint, 'fsname=safe,subtype=safe,default_permissions', { maxWrite: 1 << 20, maxReadahead: 1 << 20, writeback: 1 }, this.dispatch);
  }

  unmount(): void {
    if (!this.session) return;
    const s = this.session;
    this.session = null;
    this.addon.unmount(s);
  }

  /** The daemon added or removed snapshots: drop what the kernel cached of .snapshots. */
  snapshotsChanged(names: string[]): void {
    if (!this.session) return;
    for (const name of names) this.addon.invalEntry(this.session, SNAPDIR, Buffer.from(name, 'latin1'));
    this.addon.invalInode(this.session, SNAPDIR, 0, 0);
  }

  /** A reply that promises durability waits for the commit at the end of its batch. */
  private hold(req: Req, send: () => void): void {
    this.held.push({ req, send });
  }

  private errno(err: unknown): number {
    if (isDiskFull(err)) this.lowSpace = true;
    return errnoOf(err, this.log);
  }

  /**
   * Run an operation and reply with `ok` of its result, or its errno. A durable request's
   * reply waits for the commit (at the end of its batch). An asynchronous one (fsync) may
   * finish while a later batch is still open, its changes not committed when the loop is kept
   * busy: its reply then waits for that batch's commit too.
   */
  private run<T>(req: Req, fn: () => T | Promise<T>, ok: (r: T) => void, durable = false): void {
    let r: T | Promise<T>;
    try {
      r = fn();
    } catch (err) {
      const code = this.errno(err);
      if (durable) this.hold(req, () => this.addon.replyErr(req, code));
      else this.addon.replyErr(req, code);
      return;
    }
    if (r instanceof Promise) {
      r.then(
        (v) => (durable && this.tree.db.inTransaction ? this.hold(req, () => ok(v)) : ok(v)),
        (err: unknown) => this.addon.replyErr(req, this.errno(err)),
      );
    }
    else if (durable) this.hold(req, () => ok(r as T));
    else ok(r);
  }

  /** Commit the open transaction, then send the replies that waited for it. */
  private commit(): void {
    try {
      this.tree.endBatch();
    } catch (err) {
      this.tree.abortBatch();
      const code = this.errno(err);
      this.log.error(`a commit failed (${(err as Error).message}): the changes since the last one are lost, ${this.held.length} waiting requests get errno ${code}`);
      for (const h of this.held.splice(0)) this.addon.replyErr(h.req, code);
      return;
    }
    for (const h of this.held.splice(0)) h.send();
  }

  /** A deletion on a full disk: if it finds no room, spend the reserve on it, then set it aside again. */
  private withRoom<T>(fn: () => T): () => T {
    if (!this.lowSpace) return fn;
    return () => {
      try {
        const out = fn();
        this.lowSpace = !this.staging.keepReserve();
        return out;
      } catch (err) {
        if (!isDiskFull(err) || !this.staging.releaseReserve()) throw err;
        const out = fn();
        this.lowSpace = !this.staging.keepReserve();
        return out;
      }
    };
  }

  readonly dispatch: Dispatch = (op, req, ino, a, b, c, d, e) => {
    if (op === Op.BATCH_END) return void (this.held.length > 0 && this.commit());
    if (op === Op.IDLE) {
      const session = this.session;
      if (session) this.listingDrops.flush((node) => this.fs.parentOf(node), (dir) => this.addon.invalInode(session, dir, 0, 0));
      return this.commit();
    }
    if (op === Op.READ_RETRY) return this.readInJs(req, a as number, b as number, c as number);
    if (!this.lowSpace) this.tree.beginBatch();
    const fs = this.fs;
    const x = this.addon;
    switch (op) {
      case Op.LOOKUP:
        return this.run(req, () => fs.lookup(ino, a as Buffer), (attr) => x.replyEntry(req, attr, TTL, TTL));
      case Op.GETATTR:
        return this.run(req, () => fs.getattr(ino), (attr) => x.replyAttr(req, attr, TTL));
      case Op.SETATTR:
        return this.run(req, () => fs.setattr(ino, a as number, b as number, c as Float64Array), (attr) => x.replyAttr(req, attr, TTL));
      case Op.READLINK:
        return this.run(req, () => fs.readlink(ino), (t) => x.replyReadlink(req, t));
      case Op.MKNOD:
        return this.run(req, () => fs.mknod(ino, a as Buffer, b as number, c as number, d as number, e as number), (attr) => x.replyEntry(req, attr, TTL, TTL));
      case Op.MKDIR:
        return this.run(req, () => fs.mkdir(ino, a as Buffer, b as number, d as number, e as number), (attr) => x.replyEntry(req, attr, TTL, TTL));
      case Op.SYMLINK:
        return this.run(req, () => fs.symlink(ino, a as Buffer, b as Buffer, d as number, e as number), (attr) => x.replyEntry(req, attr, TTL, TTL));
      case Op.LINK:
        return this.run(req, () => fs.link(ino, a as number, b as Buffer), (attr) => x.replyEntry(req, attr, TTL, TTL));
      case Op.UNLINK:
        return this.run(req, this.withRoom(() => fs.unlink(ino, a as Buffer)), () => x.replyErr(req, 0));
      case Op.RMDIR:
        return this.run(req, this.withRoom(() => fs.rmdir(ino, a as Buffer)), () => x.replyErr(req, 0));
      case Op.RENAME:
        return this.run(req, this.withRoom(() => fs.rename(ino, a as Buffer, b as number, c as Buffer, d as number)), () => x.replyErr(req, 0));
      case Op.CREATE:
        return this.run(req, () => fs.create(ino, a as Buffer, b as number, c as number, d as number, e as number), (r) => x.replyCreate(req, r.attr, TTL, TTL, r.fh, OPEN.KEEP_CACHE));
      case Op.OPEN:
        return this.run(req, () => (this.killPrivileges(ino, b), fs.open(ino, a as number)), (fh) => x.replyOpen(req, fh, OPEN.KEEP_CACHE));
      case Op.READ:
        return this.read(req, ino, a as number, b as number, c as number, d as number);
      case Op.WRITE:
        return this.run(req, () => (this.killPrivileges(ino, d), fs.write(a as number, b as Buffer, c as number)), (n) => x.replyWrite(req, n, b as Buffer));
      case Op.FLUSH:
        return this.run(req, () => fs.flush(a as number), () => x.replyErr(req, 0), true);
      case Op.RELEASE:
        return this.run(req, () => fs.release(a as number), () => x.replyErr(req, 0), true);
      case Op.FSYNC:
        // Asynchronous (fdatasync): its reply waits for the commit of what it published.
        return this.run(req, () => fs.fsync(a as number), () => x.replyErr(req, 0), true);
      case Op.FALLOCATE:
        return this.run(req, () => fs.fallocate(a as number, b as number, c as number, d as number), () => x.replyErr(req, 0));
      case Op.READDIR:
      case Op.READDIRPLUS:
        // The kernel keeps listings cached across opens (the addon opens directories with
        // cache_readdir): every change to them goes through it, except new and forgotten
        // snapshots, which snapshotsChanged invalidates.
        if (b === 0) this.listingDrops.listed(ino);
        return this.run(req, () => fs.readdir(ino, b as number), ({ listing, start, base }) => {
          const sent = x.replyDir(req, a as number, op === Op.READDIRPLUS, listing.names, listing.attrs, start, TTL, TTL, base);
          if (sent === 0) fs.readdirEnded(base);
        });
      case Op.FSYNCDIR:
        return this.hold(req, () => x.replyErr(req, 0));
      case Op.STATFS:
        return this.run(req, () => fs.statfs(), (st) => x.replyStatfs(req, st));
      case Op.SETXATTR:
        return this.run(req, () => fs.setxattr(ino, a as string, b as Buffer, c as number), () => x.replyErr(req, 0));
      case Op.GETXATTR:
        return this.run(req, () => fs.getxattr(ino, a as string), (v) => this.sized(req, v, b as number));
      case Op.LISTXATTR:
        return this.run(req, () => fs.listxattr(ino), (v) => this.sized(req, v, a as number));
      case Op.REMOVEXATTR:
        return this.run(req, () => fs.removexattr(ino, a as string), () => x.replyErr(req, 0));
      default:
        return x.replyErr(req, errno.ENOSYS);
    }
  };

  /**
   * Chunked content goes to the addon's reader threads, which open the boxes and reply
   * themselves: a cold sequential read was the JS thread's work alone, and it was busy 90%
   * of the time at a third of gocryptfs's speed. With the read goes the window of chunks
   * ahead of it, and the addon answers the reads inside it without asking here. Anything
   * else, and what the threads hand back, is read here.
   */
  private read(req: Req, ino: number, fh: number, size: number, pos: number, mark: number): void {
    const session = this.session;
    this.listingDrops.noteRead(ino);
    try {
      const sent = session !== null && this.fs.sendBoxes(fh, size, pos, (spans, places, eof) =>
        this.addon.replyBoxes(session, req, ino, fh, size, pos, readWindow(spans, places), spans.length, eof, mark));
      if (sent) return;
    } catch {
      // The JS path meets the same fault and answers it with its errno.
    }
    this.readInJs(req, fh, size, pos);
  }

  private readInJs(req: Req, fh: number, size: number, pos: number): void {
    // A read that fails leaves its buffer to the garbage collector.
    const buf = this.readBuffers.take(size);
    this.run(req, () => this.fs.read(fh, buf.subarray(0, size), pos), (n) => {
      this.addon.replyBuf(req, buf, n);
      this.readBuffers.give(buf);
    });
  }

  /**
   * A write or truncating open whose caller lacks CAP_FSETID comes with `kill` set (we clear
   * setuid and setgid, not the kernel: native/fuse/killpriv.c). A truncating open says so
   * whatever the mode, and its reply carries no attributes: if the mode changed, the kernel
   * is told to forget the one it has.
   */
  private killPrivileges(id: number, kill: unknown): void {
    if (kill === 1 && this.fs.dropPrivileges(id) && this.session) this.addon.invalInode(this.session, id, -1, 0);
  }

  /** getxattr/listxattr: size 0 asks for the length; a smaller buffer gets ERANGE. */
  private sized(req: Req, v: Buffer, size: number): void {
    if (size === 0) this.addon.replyXattr(req, v.length);
    else if (v.length > size) this.addon.replyErr(req, errno.ERANGE);
    else this.addon.replyBuf(req, v, v.length);
  }
}
