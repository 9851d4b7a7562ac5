// Binds the Filesystem to the kernel through our patched fuse-native build (native/fuse),
// which passes big_writes: 128 KiB writes instead of 4 KiB (MEASURED.md: 5-10x throughput).
import { createRequire } from 'node:module';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Filesystem } from './filesystem.js';
import { toErrno } from './errors.js';

type Cb = (code: number, ...rest: unknown[]) => void;

interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
type FuseCtor = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseInstance;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the fs module');
    dir = up;
  }
  return dir;
}

function loadFuse(): FuseCtor {
  return createRequire(import.meta.url)(join(repoRoot(), 'native', 'fuse', 'index.cjs')) as FuseCtor;
}

/** Adapt a (maybe async) operation to fuse-native's callback; `shape` builds the success call. */
function op<A extends unknown[], R>(log: (m: string) => void, fn: (...a: A) => R | Promise<R>, shape: (cb: Cb, r: R) => void = (cb, r) => cb(0, r)) {
  return (...args: unknown[]): void => {
    const cb = args.pop() as Cb;
    let r: R | Promise<R>;
    try {
      r = fn(...(args as A));
    } catch (err) {
      cb(toErrno(err, log));
      return;
    }
    if (r instanceof Promise) r.then((v) => shape(cb, v), (err: unknown) => cb(toErrno(err, log)));
    else shape(cb, r);
  };
}

const none = (cb: Cb): void => cb(0);
const count = (cb: Cb, n: number): void => cb(n);

export function fuseOps(fs: Filesystem, log: (m: string) => void): Record<string, unknown> {
  const ops: Record<string, (...a: unknown[]) => void> = {
    getattr: op(log, (p: string) => fs.getattr(p)),
    fgetattr: op(log, (p: string) => fs.getattr(p)),
    access: op(log, () => 0, none),
    statfs: op(log, () => fs.statfs()),
    readdir: op(log, (p: string) => fs.readdir(p), (cb, r) => cb(0, r.names)),
    open: op(log, (p: string, flags: number) => fs.open(p, flags)),
    create: op(log, (p: string, mode: number) => fs.create(p, mode)),
    read: op(log, (_p: string, fh: number, buf: Buffer, len: number, pos: number) => fs.read(fh, buf, len, pos), count),
    write: op(log, (_p: string, fh: number, buf: Buffer, len: number, pos: number) => fs.write(fh, buf, len, pos), count),
    release: op(log, (_p: string, fh: number) => fs.release(fh), none),
    flush: op(log, (_p: string, fh: number) => fs.flush(fh), none),
    fsync: op(log, (_p: string, _datasync: number, fh: number) => fs.fsync(fh), none),
    fsyncdir: op(log, () => undefined, none),
    truncate: op(log, (p: string, size: number) => fs.truncate(p, size), none),
    ftruncate: op(log, (_p: string, fh: number, size: number) => fs.ftruncate(fh, size), none),
    unlink: op(log, (p: string) => fs.unlink(p), none),
    mkdir: op(log, (p: string, mode: number) => fs.mkdir(p, mode), none),
    rmdir: op(log, (p: string) => fs.rmdir(p), none),
    rename: op(log, (a: string, b: string) => fs.rename(a, b), none),
    link: op(log, (target: string, p: string) => fs.link(target, p), none),
    symlink: op(log, (target: string, p: string) => fs.symlink(target, p), none),
    readlink: op(log, (p: string) => fs.readlink(p)),
    chmod: op(log, (p: string, mode: number) => fs.chmod(p, mode), none),
    chown: op(log, (p: string, uid: number, gid: number) => fs.chown(p, uid, gid), none),
    utimens: op(log, (p: string, atime: number | Date, mtime: number | Date) => fs.utimens(p, +atime, +mtime), none),
    setxattr: op(log, (p: string, name: string, value: Buffer, _pos: number, flags: number) => fs.setxattr(p, name, Buffer.from(value), flags), none),
    getxattr: op(log, (p: string, name: string) => fs.getxattr(p, name)),
    listxattr: op(log, (p: string) => fs.listxattr(p)),
    removexattr: op(log, (p: string, name: string) => fs.removexattr(p, name), none),
  };
  if (process.env.SAFE_FUSE_TRACE) {
    const counts: Record<string, number> = {};
    for (const [k, f] of Object.entries(ops)) {
      ops[k] = (...a: unknown[]) => {
        counts[k] = (counts[k] ?? 0) + 1;
        const cb = a.pop() as Cb;
        f(...a, (code: number, ...rest: unknown[]) => {
          if (code < 0 && process.env.SAFE_FUSE_TRACE === 'errors') log(`${k}(${a.filter((x) => typeof x !== 'object').join(', ')}) = ${code}`);
          cb(code, ...rest);
        });
      };
    }
    setInterval(() => log(`ops: ${JSON.stringify(counts)}`), 2000).unref();
  }
  return ops;
}

export interface Mounted {
  unmount(): Promise<void>;
}

/** Refuse a mount point that is in use; clear a stale mount a crashed daemon left. */
export async function prepareMountPoint(mnt: string): Promise<void> {
  try {
    statSync(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'EIO') {
      await new Promise<void>((res) => execFile('fusermount', ['-uz', mnt], () => res()));
      return;
    }
    if (code === 'ENOENT') return;
    throw err;
  }
  if (isMountPoint(mnt)) throw new Error(`${mnt} is already a mount point`);
  if (readdirSync(mnt).length > 0) throw new Error(`mount point ${mnt} is not empty`);
}

export function isMountPoint(mnt: string): boolean {
  try {
    return statSync(mnt).dev !== statSync(dirname(mnt)).dev;
  } catch {
    return false;
  }
}

export async function mountFs(mnt: string, fs: Filesystem, log: (m: string) => void): Promise<Mounted> {
  const Fuse = loadFuse();
  const fuse = new Fuse(mnt, fuseOps(fs, log), {
    mkdir: true,
    force: false,
    timeout: false,
    fsname: 'safe',
    subtype: 'safe',
    defaultPermissions: true,
    extraOptions: ['big_writes', 'max_write=131072'],
  });
  await new Promise<void>((res, rej) => fuse.mount((err) => (err ? rej(new Error(`cannot mount ${mnt}: ${err.message}`, { cause: err })) : res())));
  return {
    unmount: () => new Promise<void>((res, rej) => fuse.unmount((err) => (err ? rej(err) : res()))),
  };
}
