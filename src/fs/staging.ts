// Staging files: the bytes of files written through the mount before they are chunked,
// sealed at rest (chunkstore/staged-file.ts). One file per generation, named by its number
// (generations are unique across inodes); a generation is never modified once published to
// the tree, so snapshots can share it.
//
// Creating and deleting a file are journal operations: on a disk busy with the chunkers'
// fsyncs each took 190-230 µs here, on the thread that serves every FUSE request. So new
// generations come from a few files made ahead on libuv's pool, and removals go there too.
import { closeSync, fsyncSync, mkdirSync, open, openSync, readSync, readdirSync, renameSync, statSync, unlink, unlinkSync, writeFileSync } from 'node:fs';
import { StagedFile } from '../chunkstore/staged-file.js';

import { join } from 'node:path';

const RESERVE_BYTES = 8 << 20;
/** Files made ahead: enough for a burst of creates between two refills. */
const READY = 16;
/** Made at once, at most: one open on a busy disk took as long as a create from tar. */
const FILLERS = 2;
/** The names release 0.2.0 gave: inode and generation. */
const OLD_NAME = /^(\d+)-(\d+)$/;
const NAME = /^\d+$/;

export class Staging {
  private nextGen: number;
  private readonly ready: { gen: number; file: StagedFile }[] = [];
  private filling = 0;
  private failing = false;
  private closed = false;
  /** Removals under way, and who waits for them to end (close). */
  private removing = 0;
  private removed: (() => void) | null = null;

  constructor(readonly dir: string, minGen: number, readonly key: Uint8Array, private readonly log: (m: string) => void = () => {}) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      const old = OLD_NAME.exec(name);
      if (old) renameSync(join(dir, name), this.path(Number(old[2])));
    }
    let max = minGen;
    for (const gen of this.list()) max = Math.max(max, gen);
    this.nextGen = max + 1;
  }

  /**
   * A few MiB set aside so that, on a full disk, deleting files still works: unlink needs
   * room in the SQLite WAL, and refusing it would leave the user no way out.
   */
  keepReserve(bytes = RESERVE_BYTES): boolean {
    try {
      if (statSync(this.reservePath).size >= bytes) return true;
    } catch {
      // none yet
    }
    try {
      writeFileSync(this.reservePath, Buffer.alloc(bytes));
      return true;
    } catch {
      // No room now: a partial reserve is better than none; try again after the next deletion.
      return false;
    }
  }

  /** Give the reserve back to the disk; true if there was one. */
  releaseReserve(): boolean {
    try {
      unlinkSync(this.reservePath);
      return true;
    } catch {
      return false;
    }
  }

  private get reservePath(): string {
    return join(this.dir, 'reserve');
  }

  path(gen: number): string {
    return join(this.dir, String(gen));
  }

  /** Every staging generation present: after a crash, some wait to be chunked, others are garbage. */
  list(): number[] {
    return readdirSync(this.dir).filter((n) => NAME.test(n)).map(Number);
  }

  /** A new empty generation, open for reading and writing: one made ahead if there is one. */
  create(): { gen: number; file: StagedFile } {
    const made = this.ready.shift();
    this.refill();
    if (made) return made;
    const gen = this.nextGen++;
    const fd = openSync(this.path(gen), 'wx+', 0o600);
    try {
      return { gen, file: StagedFile.create(fd, this.key) };
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Make files ahead on libuv's pool, FILLERS at a time, until READY wait. */
  private refill(): void {
    if (this.filling >= FILLERS || this.closed || this.ready.length + this.filling >= READY) return;
    this.filling++;
    const gen = this.nextGen++;
    this.refill();
    open(this.path(gen), 'wx+', 0o600, (err, fd) => {
      this.filling--;
      if (err) {
        // A full disk: no more files ahead until the next create, which then makes its own
        // and reports the error to its caller. Said once, not at every create.
        if (!this.failing) this.log(`staging: cannot make files ahead (${err.message})`);
        this.failing = true;
        return this.settle();
      }
      this.failing = false;
      if (this.closed) {
        closeSync(fd);
        return this.remove(gen);
      }
      try {
        this.ready.push({ gen, file: StagedFile.create(fd, this.key) });
      } catch (e) {
        closeSync(fd);
        this.log(`staging: cannot make a file ahead (${(e as Error).message})`);
        return this.remove(gen);
      }
      this.refill();
    });
  }

  /** Unmount: the files made ahead go, and the removals under way end. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { gen, file } of this.ready.splice(0)) {
      closeSync(file.fd);
      this.remove(gen);
    }
    if (this.removing > 0 || this.filling > 0) await new Promise<void>((res) => (this.removed = res));
  }

  /** Reads of a generation through its open descriptor. */
  reader(fd: number): StagedFile {
    return StagedFile.open(fd, this.key);
  }

  /**
   * Staged files release 0.1.0 left in the clear (a crash before they were chunked) are sealed
   * in place: a sealed copy, made durable, replaces each. Returns how many.
   */
  sealPlaintext(): number {
    let n = 0;
    const block = Buffer.allocUnsafe(1 << 20);
    for (const gen of this.list()) {
      const path = this.path(gen);
      const src = openSync(path, 'r');
      try {
        if (StagedFile.isSealed(src)) continue;
        const tmp = `${path}.sealing`;
        const fd = openSync(tmp, 'w+', 0o600);
        try {
          const to = StagedFile.create(fd, this.key);
          let size = 0;
          for (let pos = 0, got; (got = readSync(src, block, 0, block.length, pos)) > 0; pos += got) size = to.write(block.subarray(0, got), pos, size);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, path);
        n++;
      } finally {
        closeSync(src);
      }
    }
    return n;
  }

  /** Delete a generation's file, off this thread: nothing waits for it. */
  remove(gen: number): void {
    this.removing++;
    unlink(this.path(gen), (err) => {
      // Left behind, it is removed as garbage at the next mount.
      if (err && err.code !== 'ENOENT') this.log(`staging: cannot remove ${gen} (${err.message})`);
      this.removing--;
      this.settle();
    });
  }

  private settle(): void {
    if (this.removing === 0 && this.filling === 0 && this.removed) {
      this.removed();
      this.removed = null;
    }
  }
}
