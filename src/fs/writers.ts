// Files open for writing. Each gets a private working generation: a staging file holding a
// copy of the current content (none if truncated), published to the tree at fsync and at the
// last writer's close, then chunked. Snapshots keep what was last closed or fsynced, never a
// half write: writes after a publication a snapshot has seen (a child that inherited the fd
// exited, a database fsynced) go to a fresh copy.
// Reads and writes of a working file are synchronous: they hit the page cache in tens of
// microseconds, less than a hop through libuv's thread pool costs.
import { closeSync, openSync } from 'node:fs';
import type { StagedFile } from '../chunkstore/staged-file.js';
import { S_IFREG, type Inode, type Tree } from '../snapshot/tree.js';
import type { ContentReader } from './content-reader.js';
import { inodeNow } from './clock.js';
import type { ChunkQueue } from './chunk-queue.js';
import { FsError } from './errors.js';
import type { Staging } from './staging.js';

export interface Working {
  ino: number;
  gen: number;
  file: StagedFile;
  writers: number;
  size: number;
  dirty: boolean;
  /** The tree names this generation already (published at close or fsync, before release). */
  published: boolean;
  /** The epoch it was published in: a snapshot taken since holds it too, it must not change. */
  publishedIn: number;
  /** Writes wait for this: the fresh copy a write after such a snapshot needs. */
  thawing: Promise<void> | null;
  mtime: number;
  ctime: number;
}

export class Writers {
  private readonly open = new Map<number, Working>();
  private readonly opening = new Map<number, Promise<Working>>();
  private queue!: ChunkQueue;

  constructor(
    private readonly tree: Tree,
    private readonly staging: Staging,
    private readonly reader: ContentReader,
    private readonly dropStaged: (ino: number, gen: number) => void,
  ) {}

  attachQueue(queue: ChunkQueue): void {
    this.queue = queue;
  }

  get count(): number {
    return this.open.size;
  }

  get(ino: number): Working | undefined {
    return this.open.get(ino);
  }

  /** A writer's working copy of `ino` is still being made (the old content copying). */
  copying(ino: number): boolean {
    return this.opening.has(ino);
  }

  isWorking(ino: number, gen: number): boolean {
    return this.open.get(ino)?.gen === gen;
  }

  /** One more writer of `ino`: the first one makes the working copy. */
  async acquire(ino: number, trunc: boolean): Promise<Working> {
    const ready = this.open.get(ino);
    if (ready) {
      ready.writers++;
      try {
        if (trunc) await this.resize(ready, 0, inodeNow());
      } catch (err) {
        // This open fails (a copy it had to make found the disk full): it holds nothing.
        this.release(ready);
        throw err;
      }
      return ready;
    }
    const pending = this.opening.get(ino);
    if (pending) {
      await pending;
      return this.acquire(ino, trunc);
    }
    const p = this.startWorking(ino, trunc);
    this.opening.set(ino, p);
    try {
      const w = await p;
      this.open.set(ino, w);
      return w;
    } finally {
      this.opening.delete(ino);
    }
  }

  read(w: Working, buf: Buffer, len: number, pos: number): number {
    return w.file.read(buf, len, pos, w.size);
  }

  write(w: Working, buf: Buffer, pos: number): number | Promise<number> {
    const thawing = this.thawed(w);
    if (thawing) return thawing.then(() => this.write(w, buf, pos));
    w.size = w.file.write(buf, pos, w.size);
    w.dirty = true;
    // No time stamped here: with the writeback cache the kernel stamps mtime and ctime as the
    // caller writes and sends them with a SETATTR at close and fsync, and pages written back
    // late reach us after it: our later clock overwrote what stat had shown.
    return buf.length;
  }

  resize(w: Working, size: number, now: number): void | Promise<void> {
    const thawing = this.thawed(w);
    if (thawing) return thawing.then(() => this.resize(w, size, now));
    w.file.truncate(size, w.size);
    w.size = size;
    w.dirty = true;
    w.mtime = w.ctime = now;
  }

  /**
   * fsync: what was written so far becomes the file's content in the tree (committed before
   * the reply, so a crash keeps it, as it keeps a closed file), and reaches the disk. The
   * writer stays open: SQLite and other databases fsync files they never close.
   */
  async fsync(w: Working): Promise<void> {
    await w.thawing;
    this.commitContent(w);
    return w.file.datasync();
  }

  /**
   * Null when `w` can be written at once. Else its generation was published (by a close or an
   * fsync) and a snapshot has been taken since (it shares it): the writes that follow go to a fresh copy,
   * made once, and the published one is chunked as it is.
   */
  private thawed(w: Working): Promise<void> | null {
    if (w.thawing || !w.published || w.publishedIn === this.tree.epoch) return w.thawing;
    w.thawing = this.copyOut(w).finally(() => (w.thawing = null));
    return w.thawing;
  }

  /** The copy is sealed under a key of its own: two generations never share a keystream. */
  private async copyOut(w: Working): Promise<void> {
    const { gen, file } = this.staging.create(w.ino);
    try {
      await reseal(w.file, w.size, file);
    } catch (err) {
      closeSync(file.fd);
      this.staging.remove(w.ino, gen);
      throw err;
    }
    const frozen = w.gen;
    // A datasync queued before the copy began has run by now (the thread pool is FIFO).
    closeSync(w.file.fd);
    w.gen = gen;
    w.file = file;
    w.published = false;
    this.queue.schedule(w.ino, frozen);
  }

  /**
   * close(2) waits for FLUSH, not RELEASE, which the kernel sends later: publishing only at
   * release would let a crash in between lose a file its writer saw closed (and fsynced). So
   * the last writer's close publishes; release then only queues it for chunking.
   */
  publish(w: Working): void {
    if (w.writers === 1) this.commitContent(w);
  }

  private commitContent(w: Working): void {
    if (!w.dirty || !this.tree.inode(w.ino)) return;
    this.tree.update(w.ino, { staged: w.gen, cl: null, size: w.size, mtime: w.mtime, ctime: w.ctime });
    w.dirty = false;
    w.published = true;
    w.publishedIn = this.tree.epoch;
  }

  /** One writer fewer; the last one publishes what is not yet and queues it for chunking. */
  release(w: Working): void {
    if (--w.writers > 0) return;
    this.open.delete(w.ino);
    closeSync(w.file.fd);
    const live = this.tree.inode(w.ino);
    if (!w.dirty || !live) {
      if (w.published && live) this.queue.schedule(w.ino, w.gen);
      else if (!w.published) this.staging.remove(w.ino, w.gen);
      else this.dropStaged(w.ino, w.gen);
      return;
    }
    try {
      this.commitContent(w);
    } catch (err) {
      // Not published (disk full): the writer's close fails, the last closed content stays.
      this.staging.remove(w.ino, w.gen);
      throw err;
    }
    this.queue.schedule(w.ino, w.gen);
  }

  /** Unmount: every writer is closed, its content published and queued. */
  closeAll(): void {
    for (const w of [...this.open.values()]) {
      w.writers = 1;
      this.release(w);
    }
  }

  /** A private copy of the current content, so snapshots keep what was last closed. */
  private async startWorking(ino: number, trunc: boolean): Promise<Working> {
    for (let attempt = 1; ; attempt++) {
      const n = this.tree.inode(ino);
      if (!n) throw new FsError('ENOENT');
      if (n.kind !== S_IFREG) throw new FsError('EINVAL');
      const empty = trunc || n.size === 0;
      const { gen, file } = this.staging.create(ino);
      try {
        let size = 0;
        if (!empty && n.staged !== null) size = await this.copyStaged(n, file);
        if (!empty && n.cl !== null) size = await this.materialize(n, file);
        if (!empty && n.size !== size) file.truncate(n.size, size);
        return { ino, gen, file, writers: 1, size: empty ? 0 : n.size, dirty: trunc && n.size > 0, published: false, publishedIn: 0, thawing: null, mtime: n.mtime, ctime: n.ctime };
      } catch (err) {
        closeSync(file.fd);
        this.staging.remove(ino, gen);
        // The staged copy was chunked and removed while we copied it: its chunks are in the row now.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && (err as NodeJS.ErrnoException).syscall === 'open' && attempt < 3) continue;
        throw err;
      }
    }
  }

  private async copyStaged(n: Inode, to: StagedFile): Promise<number> {
    const fd = openSync(this.staging.path(n.ino, n.staged!), 'r');
    try {
      await reseal(this.staging.reader(fd), n.size, to);
      return n.size;
    } finally {
      closeSync(fd);
    }
  }

  private async materialize(n: Inode, to: StagedFile): Promise<number> {
    const block = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (let pos = 0; pos < n.size; ) {
      const got = await this.reader.read(n.cl!, n.size, block, Math.min(block.length, n.size - pos), pos);
      if (got === 0) break;
      size = to.write(block.subarray(0, got), pos, size);
      pos += got;
    }
    return size;
  }
}

/**
 * Each generation has its own key: a copy is decrypted and sealed again, a MiB at a time with
 * a turn of the event loop between, so other requests are served meanwhile. Blocks of zeros
 * stay holes (a sparse file stays sparse). `to` ends up `size` bytes long.
 */
async function reseal(from: StagedFile, size: number, to: StagedFile): Promise<void> {
  const block = Buffer.allocUnsafe(1 << 20);
  const zeros = Buffer.alloc(block.length);
  let copied = 0;
  for (let pos = 0; pos < size; pos += block.length) {
    const got = from.read(block, block.length, pos, size);
    if (got === 0) break;
    if (block.compare(zeros, 0, got, 0, got) !== 0) copied = to.write(block.subarray(0, got), pos, copied);
    await new Promise(setImmediate);
  }
  if (copied !== size) to.truncate(size, copied);
}
