// Staging files: the bytes of files written through the mount before they are chunked,
// sealed at rest (chunkstore/staged-file.ts). One file per (inode, generation); a generation is
// never modified once published to the tree, so snapshots can share it.
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { StagedFile } from '../chunkstore/staged-file.js';

import { join } from 'node:path';

const RESERVE_BYTES = 8 << 20;

export class Staging {
  private nextGen: number;

  constructor(readonly dir: string, minGen: number, readonly key: Uint8Array) {
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
    const fd = openSync(this.path(ino, gen), 'wx+', 0o600);
    try {
      return { gen, file: StagedFile.create(fd, this.key) };
    } catch (err) {
      closeSync(fd);
      throw err;
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
