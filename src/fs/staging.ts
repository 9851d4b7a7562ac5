// Staging files: the bytes of files written through the mount before they are chunked.
// One file per (inode, generation); a generation is never modified once published to the
// tree, so snapshots can share it.
import { mkdirSync, openSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';

import { join } from 'node:path';

const RESERVE_BYTES = 8 << 20;

export class Staging {
  private nextGen: number;

  constructor(readonly dir: string, minGen: number) {
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
  create(ino: number): { gen: number; path: string; fd: number } {
    const gen = this.nextGen++;
    const path = this.path(ino, gen);
    return { gen, path, fd: openSync(path, 'wx+', 0o600) };
  }

  remove(ino: number, gen: number): void {
    try {
      unlinkSync(this.path(ino, gen));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
