// Files open for writing. Each gets a private working generation: a staging file holding a
// copy of the current content (none if truncated), published to the tree at fsync and at the
// last writer's close, then chunked. Snapshots keep what was last closed or fsynced, never a
// half write.
// Reads and writes of a working file are synchronous: they hit the page cache in tens of
// microseconds, less than a hop through libuv's thread pool costs.
import { copyFile } from 'node:fs/promises';
import { closeSync, copyFileSync, fdatasync, ftruncateSync, readSync, write as writeCb, writeSync } from 'node:fs';
import { S_IFREG, type Inode, type Tree } from '../snapshot/tree.js';
import type { ContentReader } from './content-reader.js';
import type { ChunkQueue } from './chunk-queue.js';
import { FsError } from './errors.js';
import type { Staging } from './staging.js';

export interface Working {
  ino: number;
  gen: number;
  fd: number;
  writers: number;
  size: number;
  dirty: boolean;
  /** The tree names this generation already (published at close or fsync, before release). */
  published: boolean;
  /** The epoch it was published at: a snapshot taken since may name it too. */
  publishedEpoch: number;
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

  isWorking(ino: number, gen: number): boolean {
    return this.open.get(ino)?.gen === gen;
  }

  /** One more writer of `ino`: the first one makes the working copy. */
  async acquire(ino: number, trunc: boolean): Promise<Working> {
    const ready = this.open.get(ino);
    if (ready) {
      ready.writers++;
      if (trunc) this.resize(ready, 0, Date.now());
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
    return readSync(w.fd, buf, 0, Math.min(len, Math.max(0, w.size - pos)), pos);
  }

  write(w: Working, buf: Buffer, pos: number): number {
    this.ownCopy(w);
    const n = writeSync(w.fd, buf, 0, buf.length, pos);
    w.size = Math.max(w.size, pos + n);
    w.dirty = true;
    w.mtime = w.ctime = Date.now();
    return n;
  }

  resize(w: Working, size: number, now: number): void {
    this.ownCopy(w);
    ftruncateSync(w.fd, size);
    w.size = size;
    w.dirty = true;
    w.mtime = w.ctime = now;
  }

  /**
   * fsync: what was written so far becomes the file's content in the tree (committed before
   * the reply, so a crash keeps it, as it keeps a closed file), and reaches the disk. The
   * writer stays open: SQLite and other databases fsync files they never close.
   */
  fsync(w: Working): Promise<void> {
    this.commitContent(w);
    return new Promise<void>((res, rej) => fdatasync(w.fd, (err) => (err ? rej(err) : res())));
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
    w.publishedEpoch = this.tree.epoch;
  }

  /**
   * A published generation a snapshot has taken since must not change under it: the writer
   * goes on in a copy, and the snapshot's generation is chunked like a closed file.
   */
  private ownCopy(w: Working): void {
    if (!w.published || w.publishedEpoch === this.tree.epoch) return;
    const { gen, path, fd } = this.staging.create(w.ino);
    // copyFileSync rewrites the same inode in place: fd stays valid.
    copyFileSync(this.staging.path(w.ino, w.gen), path);
    closeSync(w.fd);
    const frozen = w.gen;
    w.gen = gen;
    w.fd = fd;
    w.published = false;
    this.queue.schedule(w.ino, frozen);
  }

  /** One writer fewer; the last one publishes what is not yet and queues it for chunking. */
  release(w: Working): void {
    if (--w.writers > 0) return;
    this.open.delete(w.ino);
    closeSync(w.fd);
    const live = this.tree.inode(w.ino);
    if (!w.dirty || !live) {
      if (w.published && live) this.queue.schedule(w.ino, w.gen);
      else if (!w.published) this.staging.remove(w.ino, w.gen);
      else this.dropStaged(w.ino, w.gen);
      return;
    }
    try {
      this.tree.update(w.ino, { staged: w.gen, cl: null, size: w.size, mtime: w.mtime, ctime: w.ctime });
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
      const { gen, path, fd } = this.staging.create(ino);
      try {
        // copyFile rewrites the same inode in place: fd stays valid.
        if (!empty && n.staged !== null) await copyFile(this.staging.path(ino, n.staged), path);
        if (!empty && n.cl !== null) await this.materialize(n, fd);
        if (!empty && n.size > 0) ftruncateSync(fd, n.size);
        return { ino, gen, fd, writers: 1, size: empty ? 0 : n.size, dirty: trunc && n.size > 0, published: false, publishedEpoch: 0, mtime: n.mtime, ctime: n.ctime };
      } catch (err) {
        closeSync(fd);
        this.staging.remove(ino, gen);
        // The staged copy was chunked and removed while we copied it: its chunks are in the row now.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && (err as NodeJS.ErrnoException).syscall === 'copyfile' && attempt < 3) continue;
        throw err;
      }
    }
  }

  private async materialize(n: Inode, fd: number): Promise<void> {
    const block = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < n.size; ) {
      const got = await this.reader.read(n.cl!, n.size, block, Math.min(block.length, n.size - pos), pos);
      if (got === 0) break;
      await new Promise<void>((res, rej) => writeCb(fd, block, 0, got, pos, (err) => (err ? rej(err) : res())));
      pos += got;
    }
  }
}
