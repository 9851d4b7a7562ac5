// Staging files: the bytes of files written through the mount before they are chunked,
// sealed at rest (chunkstore/staged-file.ts). One file per (inode, generation); a generation is
// never modified once published to the tree, so snapshots can share it.
//
// Where the file system makes creating a file slow, chunked generations' files are kept as
// spares and reused rather than deleted. ext4 without a journal skips every inode freed in the
// last minute or more on each allocation (`recently_deleted`), one buffer lookup each: with a
// file created and one deleted per file written through the mount, an untar's creates cost
// 100-290 µs of system time here, against ~16 µs on a journalled ext4. Reusing a spare (two
// renames, a truncate) costs ~40 µs on either, so spares are kept only where creates are slow.
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, readdirSync, renameSync, statSync, statfsSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { StagedFile } from '../chunkstore/staged-file.js';

import { join } from 'node:path';

const RESERVE_BYTES = 8 << 20;
/** Staged files may wait to be chunked while their disk has this much free (and a tenth of it). */
const ROOM_TO_WAIT_BYTES = 2 ** 31;
/** Above this (moving average of fresh creates), spares are kept. */
export const SLOW_CREATE_US = 60;
/** Spares kept at most: a block of disk each. */
const MAX_SPARES = 4096;
const SPARE = /^spare-\d+$/;

export class Staging {
  private nextGen: number;
  private readonly spares: string[] = [];
  private spareSeq = 0;
  /** Moving average of a fresh create's time, in µs. */
  private createUs = 0;

  constructor(readonly dir: string, minGen: number, readonly key: Uint8Array, private readonly slowCreateUs = SLOW_CREATE_US) {
    mkdirSync(dir, { recursive: true });
    let max = minGen;
    for (const { gen } of this.list()) max = Math.max(max, gen);
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

  /**
   * Whether staged files may wait for their chunking: chunked, they take less room (compressed,
   * deduplicated), so on a disk running out they go at once.
   */
  roomToWait(): boolean {
    try {
      const s = statfsSync(this.dir);
      const free = s.bavail * s.bsize;
      return free >= ROOM_TO_WAIT_BYTES && free * 10 >= s.blocks * s.bsize;
    } catch {
      return false;
    }
  }

  private get reservePath(): string {
    return join(this.dir, 'reserve');
  }

  path(ino: number, gen: number): string {
    return join(this.dir, `${ino}-${gen}`);
  }

  /** Every staging file present: after a crash, some wait to be chunked, others are garbage. */
  list(): { ino: number; gen: number }[] {
    const out: { ino: number; gen: number }[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = /^(\d+)-(\d+)$/.exec(name);
      if (m) out.push({ ino: Number(m[1]), gen: Number(m[2]) });
    }
    return out;
  }

  /** A new empty generation, open for reading and writing. */
  create(ino: number): { gen: number; file: StagedFile } {
    const gen = this.nextGen++;
    const path = this.path(ino, gen);
    const spare = this.spares.pop();
    const fd = spare ? openSync(spare, 'r+') : this.createFresh(path);
    try {
      // The header goes in before a spare takes the generation's name: a crash in between
      // leaves a spare, or a sealed empty file, never one that looks left in the clear.
      const file = StagedFile.create(fd, this.key);
      if (spare) renameSync(spare, path);
      return { gen, file };
    } catch (err) {
      closeSync(fd);
      if (spare) this.unlinkQuietly(spare);
      throw err;
    }
  }

  private createFresh(path: string): number {
    const t0 = performance.now();
    const fd = openSync(path, 'wx+', 0o600);
    this.createUs += ((performance.now() - t0) * 1000 - this.createUs) / 16;
    return fd;
  }

  /**
   * A chunked generation nobody has open any more: its file becomes a spare where creates are
   * slow, else it is deleted. Renamed first, so a reader in another process (`safe restore`)
   * that finds the name still there after reading knows it read the generation whole.
   */
  retire(ino: number, gen: number): void {
    if (this.createUs <= this.slowCreateUs || this.spares.length >= MAX_SPARES) return this.remove(ino, gen);
    const spare = join(this.dir, `spare-${this.spareSeq++}`);
    try {
      renameSync(this.path(ino, gen), spare);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // One byte, not zero: ext4 writes out a file truncated to zero as soon as it is next closed
    // (auto_da_alloc), which would cost the spare's next user a disk write at every close.
    truncateSync(spare, 1);
    this.spares.push(spare);
  }

  /** Spares go back to the disk (at unmount, and those a crash left at mount). */
  dropSpares(): void {
    for (const spare of this.spares.splice(0)) this.unlinkQuietly(spare);
    for (const name of readdirSync(this.dir)) if (SPARE.test(name)) this.unlinkQuietly(join(this.dir, name));
  }

  private unlinkQuietly(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      // gone already
    }
  }

  /** Reads of a generation through its open descriptor. */
  reader(fd: number): StagedFile {
    return StagedFile.open(fd, this.key);
  }

  /**
   * Staged files release 0.1.0 left in the clear (a crash before they were chunked) are sealed
   * in place: a sealed copy, made durable, replaces each. Returns how many held content.
   */
  sealPlaintext(): number {
    let n = 0;
    const block = Buffer.allocUnsafe(1 << 20);
    for (const { ino, gen } of this.list()) {
      const path = this.path(ino, gen);
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
        // An empty one is most likely this release's, killed before it wrote the header.
        if (fstatSync(src).size > 0) n++;
      } finally {
        closeSync(src);
      }
    }
    return n;
  }

  remove(ino: number, gen: number): void {
    try {
      unlinkSync(this.path(ino, gen));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
