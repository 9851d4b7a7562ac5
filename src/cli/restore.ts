// Copy a snapshot (or a path in it) out to a plain directory: content, modes, owners, times,
// symlinks, hard links, fifos, sockets and device nodes, sparse files (all-zero chunks become
// holes) and xattrs.
import { chmodSync, closeSync, fstatSync, ftruncateSync, lchownSync, linkSync, lutimesSync, mkdirSync, openSync, statSync, symlinkSync, writeSync, utimesSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { ChunkStore } from '../chunkstore/store.js';
import { S_IFDIR, S_IFLNK, S_IFREG, type Inode, type Tree } from '../snapshot/tree.js';
import { loadAddon } from '../fs/binding.js';
import { deviceNumber } from '../fs/attrs.js';
import type { Staging } from '../fs/staging.js';

const SLASH = Buffer.from('/');

export interface RestoreStats {
  files: number;
  dirs: number;
  links: number;
  bytes: number;
}

export class Restorer {
  readonly stats: RestoreStats = { files: 0, dirs: 0, links: 0, bytes: 0 };
  private readonly seen = new Map<number, Buffer>();
  private readonly buf = Buffer.allocUnsafe(1 << 20);

  constructor(
    private readonly tree: Tree,
    private readonly store: ChunkStore,
    private readonly staging: Staging,
    private readonly epoch: number,
    private readonly onProgress: (s: RestoreStats) => void = () => {},
  ) {}

  /** Restore inode `ino` (as seen at the epoch) to `dest`. */
  /** Paths are Buffers: names are bytes, not necessarily UTF-8. */
  restore(ino: number, dest: Buffer): void {
    const n = this.tree.inode(ino, this.epoch);
    if (!n) throw new Error(`inode ${ino} is not in the snapshot`);
    if (n.kind === S_IFDIR) {
      mkdirSync(dest, { recursive: true });
      for (const e of this.tree.list(ino, this.epoch)) this.restore(e.ino, Buffer.concat([dest, SLASH, e.name]));
      this.stats.dirs++;
    } else if (n.kind === S_IFLNK) {
      symlinkSync(n.target!, dest);
      this.stats.links++;
    } else {
      const first = n.nlink > 1 ? this.seen.get(ino) : undefined;
      if (first) {
        linkSync(first, dest);
        return;
      }
      if (n.kind === S_IFREG) this.writeFile(n, dest);
      else loadAddon().mknod(dest, n.kind | (n.mode & 0o777), deviceNumber(n));
      if (n.nlink > 1) this.seen.set(ino, dest);
      this.stats.files++;
    }
    this.attributes(n, dest);
    this.onProgress(this.stats);
  }

  private writeFile(n: Inode, dest: Buffer): void {
    const fd = openSync(dest, 'wx', 0o600);
    try {
      if (!this.copyStaged(n, fd)) {
        // Not staged, or chunked (and its staging file removed) since the row was read.
        const row = n.staged !== null ? this.tree.inode(n.ino, this.epoch)! : n;
        if (row.cl !== null) {
          for (let pos = 0; pos < row.size; ) {
            const span = this.tree.chunkAt(row.cl, pos);
            if (!span) break;
            const plain = this.store.read(span);
            this.put(fd, plain, span.off);
            pos = span.off + plain.length;
          }
        }
      }
      ftruncateSync(fd, n.size);
      this.stats.bytes += n.size;
    } finally {
      closeSync(fd);
    }
  }

  private copyStaged(n: Inode, fd: number): boolean {
    if (n.staged === null) return false;
    const path = this.staging.path(n.ino, n.staged);
    let src: number;
    try {
      src = openSync(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    try {
      const staged = this.staging.reader(src);
      for (let pos = 0; pos < n.size; ) {
        const got = staged.read(this.buf, this.buf.length, pos, n.size);
        if (got === 0) break;
        this.put(fd, this.buf.subarray(0, got), pos);
        pos += got;
      }
      // The daemon may have chunked this generation meanwhile and reused its file for another
      // (Staging.retire renames it away first): then what was read is not to be trusted, and
      // the row has the chunks.
      if (stillNamed(path, src)) return true;
      ftruncateSync(fd, 0);
      return false;
    } finally {
      closeSync(src);
    }
  }

  /** Zero runs are skipped, leaving holes: sparse files stay sparse. */
  private put(fd: number, data: Buffer, pos: number): void {
    const BLOCK = 4096;
    for (let at = 0; at < data.length; at += BLOCK) {
      const part = data.subarray(at, at + BLOCK);
      if (part.every((b) => b === 0)) continue;
      writeSync(fd, part, 0, part.length, pos + at);
    }
  }

  private attributes(n: Inode, dest: Buffer): void {
    try {
      lchownSync(dest, n.uid, n.gid);
    } catch {
      // not root: keep our own ownership, like tar does
    }
    if (n.kind !== S_IFLNK) chmodSync(dest, n.mode);
    if (n.xattrs) {
      for (const [name, value] of Object.entries(JSON.parse(n.xattrs) as Record<string, string>)) {
        try {
          execFileSync('setfattr', ['-h', '-n', name, '-v', '0s' + value, dest.toString()], { stdio: 'ignore' });
        } catch {
          // the target filesystem may not take this namespace (trusted., security.)
        }
      }
    }
    // Seconds as a double lose the last millisecond to rounding down (…838.9999 ms): half a
    // microsecond more lands the nanoseconds inside the right millisecond.
    const at = (n.atime + 0.0005) / 1000;
    const mt = (n.mtime + 0.0005) / 1000;
    if (n.kind === S_IFLNK) lutimesSync(dest, at, mt);
    else utimesSync(dest, at, mt);
  }
}

function stillNamed(path: string, fd: number): boolean {
  try {
    return statSync(path).ino === fstatSync(fd).ino;
  } catch {
    return false;
  }
}
