// Staging files: the bytes of files written through the mount before they are chunked.
// One file per (inode, generation); a generation is never modified once published to the
// tree, so snapshots can share it.
import { closeSync, mkdirSync, openSync, readdirSync, unlinkSync, copyFileSync, constants } from 'node:fs';
import { join } from 'node:path';

export class Staging {
  private nextGen: number;

  constructor(readonly dir: string, minGen: number) {
    mkdirSync(dir, { recursive: true });
    let max = minGen;
    for (const { gen } of this.list()) max = Math.max(max, gen);
    this.nextGen = max + 1;
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

  /** A new empty generation, or a copy of an existing staged one (kernel-side copy). */
  create(ino: number, copyOf?: string): { gen: number; path: string } {
    const gen = this.nextGen++;
    const path = this.path(ino, gen);
    if (copyOf) copyFileSync(copyOf, path, constants.COPYFILE_FICLONE);
    else closeSync(openSync(path, 'wx', 0o600));
    return { gen, path };
  }

  remove(ino: number, gen: number): void {
    try {
      unlinkSync(this.path(ino, gen));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
