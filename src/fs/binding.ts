// The N-API addon in native/fuse (libfuse 3 low-level API): its functions, op codes and the
// attribute layout both sides share. Nothing here knows about the tree.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Request codes, as native/fuse/lowlevel.c numbers them. */
export const enum Op {
  LOOKUP = 1, GETATTR, SETATTR, READLINK, MKNOD, MKDIR, UNLINK, RMDIR, SYMLINK, RENAME, LINK,
  OPEN, READ, WRITE, FLUSH, RELEASE, FSYNC, READDIR, READDIRPLUS, FSYNCDIR,
  STATFS, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, CREATE, FALLOCATE, BATCH_END, IDLE,
  /** A read the reader threads handed back (a box did not open there): (req, 0, fh, size, pos). */
  READ_RETRY,
}

/** Slots of the Float64Array that carries a struct stat each way. */
export const enum A { INO, MODE, NLINK, UID, GID, RDEV, SIZE, BLOCKS, ATIME, MTIME, CTIME, LEN }
/** Slots of the setattr values (which of them apply is in `valid`). */
export const enum SA { MODE, UID, GID, SIZE, ATIME, MTIME, CTIME }

/** FUSE_SET_ATTR_* bits of setattr's `valid`. */
export const SET = { MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11 } as const;

/** Open reply flags: bit 0 direct_io, bit 1 keep_cache (directories are opened in the addon). */
export const OPEN = { DIRECT_IO: 1, KEEP_CACHE: 2 } as const;

/** rename(2) flags the kernel passes through. */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

export type Session = { readonly __session: unique symbol };
export type Req = number;
export type Dispatch = (op: Op, req: Req, ino: number, a?: unknown, b?: unknown, c?: unknown, d?: unknown, e?: unknown) => void;

export interface Addon {
  mount(mountpoint: string, options: string, settings: { maxWrite: number; maxReadahead: number; writeback: number }, dispatch: Dispatch): Session;
  unmount(s: Session): void;
  replyErr(req: Req, errno: number): void;
  replyNone(req: Req): void;
  replyEntry(req: Req, attr: Float64Array, entryTimeout: number, attrTimeout: number): void;
  replyCreate(req: Req, attr: Float64Array, entryTimeout: number, attrTimeout: number, fh: number, openFlags: number): void;
  replyAttr(req: Req, attr: Float64Array, attrTimeout: number): void;
  replyOpen(req: Req, fh: number, openFlags: number): void;
  /** Also gives back the write's data: `data` is empty from then on. */
  replyWrite(req: Req, count: number, data: Buffer): void;
  replyXattr(req: Req, size: number): void;
  replyBuf(req: Req, buf: Buffer, len: number): void;
  replyReadlink(req: Req, target: Buffer): void;
  /** [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax] */
  replyStatfs(req: Req, st: Float64Array): void;
  /** Adds entries from index `start` while they fit in `size`; entry i gets offset base + i + 1. Returns how many went. */
  replyDir(req: Req, size: number, plus: boolean, names: Buffer[], attrs: Float64Array, start: number, entryTimeout: number, attrTimeout: number, base: number): number;
  invalInode(s: Session, ino: number, off: number, len: number): void;
  invalEntry(s: Session, parent: number, name: Buffer): void;
  /**
   * The read is answered by the addon's reader threads from `window`: `count` contiguous
   * chunks of node `ino` from the one holding `pos` on (read-windows.ts layout; descriptors
   * dup'd before it returns), of a file `eof` bytes long. The addon keeps it and answers the
   * handle's next reads inside it too, until a write, truncation or open for writing of the
   * node, or the handle's release. `mark` came with the read: if the node changed since it
   * was decoded, the window is refused. False, nothing sent, when the read must take the JS path.
   */
  replyBoxes(s: Session, req: Req, ino: number, fh: number, size: number, pos: number, window: Buffer, count: number, eof: number, mark: number): boolean;
  /** mknod(2), which Node lacks: fifos, sockets and device nodes for restores. */
  mknod(path: Buffer, mode: number, rdev: number): void;
  /** CLOCK_REALTIME_COARSE in whole milliseconds. */
  coarseNowMs(): number;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the fs module');
    dir = up;
  }
  return dir;
}

let addon: Addon | undefined;

export function loadAddon(): Addon {
  if (addon) return addon;
  const file = join(repoRoot(), 'native', 'fuse', 'build', 'Release', 'fuse3.node');
  if (!existsSync(file)) throw new Error(`the FUSE addon is not built (${file} is missing): run npm run build`);
  addon = createRequire(import.meta.url)(file) as Addon;
  return addon;
}
