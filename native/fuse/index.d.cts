// Types for native/fuse/index.cjs, written from what index.cjs and
// fuse-native.c actually pass on Linux (the package's index.d.ts is wrong in
// several places: utimens times, setxattr/getxattr arguments, read/write
// callbacks, timeout). See README.md for the calling conventions.

declare namespace Fuse {
  /** 0 for success or a negative errno (Fuse.ENOENT...). Never null/undefined/Error: that throws and kills the process. */
  type Errno = number;
  type Cb = (err: Errno) => void;

  interface Stats {
    mode: number;
    uid?: number;
    gid?: number;
    size?: number;
    dev?: number;
    nlink?: number; // 0 becomes 1
    ino?: number; // 32 bits
    rdev?: number;
    blksize?: number;
    blocks?: number;
    atime?: Date | number; // ms; missing = now
    mtime?: Date | number;
    ctime?: Date | number;
  }

  interface StatFs {
    bsize?: number; frsize?: number; blocks?: number; bfree?: number; bavail?: number;
    files?: number; ffree?: number; favail?: number; fsid?: number; flag?: number; namemax?: number;
  }

  interface Operations {
    init?(cb: Cb): void;
    error?(cb: Cb): void;
    access?(path: string, mode: number, cb: Cb): void;
    statfs?(path: string, cb: (err: Errno, st?: StatFs) => void): void;
    getattr?(path: string, cb: (err: Errno, st?: Stats) => void): void;
    /** Only switches the op on: the library then calls getattr(path, cb), never this. */
    fgetattr?(path: string, fd: number, cb: (err: Errno, st?: Stats) => void): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: number, fd: number, cb: Cb): void;
    fsyncdir?(path: string, datasync: number, fd: number, cb: Cb): void;
    readdir?(path: string, cb: (err: Errno, names?: string[], stats?: Stats[]) => void): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    /** Times in ms since the epoch. libfuse 2 calls this only when both times are set (touch -a / -m alone never reach it). */
    utimens?(path: string, atimeMs: number, mtimeMs: number, cb: Cb): void;
    readlink?(path: string, cb: (err: Errno, target?: string) => void): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    mknod?(path: string, mode: number, dev: number, cb: Cb): void;
    /** value is only valid until cb; position is always 0 on Linux. */
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
    /** Return the value, or null for ENODATA. */
    getxattr?(path: string, name: string, position: number, cb: (err: Errno, value?: Buffer | null) => void): void;
    listxattr?(path: string, cb: (err: Errno, names?: string[]) => void): void;
    removexattr?(path: string, name: string, cb: Cb): void;
    /** fd: a non-zero integer below 2^31 (0 means "keep the default 0"). */
    open?(path: string, flags: number, cb: (err: Errno, fd?: number) => void): void;
    /** The second argument is really info->fh (0), not the flags. */
    opendir?(path: string, flags: number, cb: (err: Errno, fd?: number) => void): void;
    /** buf is only valid until cb; call cb(bytesRead) or cb(-errno). */
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void;
    /** buf is only valid until cb (copy what you keep); call cb(bytesWritten) or cb(-errno). */
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    releasedir?(path: string, fd: number, cb: Cb): void;
    create?(path: string, mode: number, cb: (err: Errno, fd?: number) => void): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    /** target = the link's contents, path = the new link. */
    symlink?(target: string, path: string, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
  }

  interface Options {
    /**
     * ms per op before the kernel gets ETIMEDOUT (default 15000; 0 also means 15000);
     * false = never; or per op: { default: 15000, write: false }.
     */
    timeout?: number | false | ({ default?: number } & { [op: string]: number | false | undefined });
    /** Before mounting, fusermount -uz a dead (ENOTCONN) mount left at mnt. */
    force?: boolean;
    /** Create mnt (recursively) if missing. */
    mkdir?: boolean;
    debug?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    umask?: number;
    uid?: number;
    gid?: number;
    /** Seconds; 0 is passed through (unlike upstream). libfuse default 1. */
    entryTimeout?: number;
    attrTimeout?: number;
    acAttrTimeout?: number;
    noforget?: boolean;
    nonEmpty?: boolean;
    remember?: number;
    modules?: string;
    /** Any other libfuse 2 -o option, one per element: ['big_writes', 'negative_timeout=0']. */
    extraOptions?: string[];
  }
}

declare class Fuse {
  constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
  readonly mnt: string;
  readonly opts: Fuse.Options;
  mount(cb: (err: Error | null) => void): void;
  /** fusermount -uz (lazy), then releases the loop handle. */
  unmount(cb: (err: Error | null) => void): void;
  static unmount(mnt: string, cb: (err: Error | null) => void): void;

  static EPERM: -1; static ENOENT: -2; static EINTR: -4; static EIO: -5; static ENXIO: -6;
  static EBADF: -9; static EAGAIN: -11; static ENOMEM: -12; static EACCES: -13; static EBUSY: -16;
  static EEXIST: -17; static EXDEV: -18; static ENODEV: -19; static ENOTDIR: -20; static EISDIR: -21;
  static EINVAL: -22; static EMFILE: -24; static EFBIG: -27; static ENOSPC: -28; static ESPIPE: -29;
  static EROFS: -30; static EMLINK: -31; static ERANGE: -34; static ENAMETOOLONG: -36; static ENOSYS: -38;
  static ENOTEMPTY: -39; static ELOOP: -40; static ENODATA: -61; static EOVERFLOW: -75;
  static EOPNOTSUPP: -95; static ENOTCONN: -107; static ETIMEDOUT: -110; static ESTALE: -116; static EDQUOT: -122;
}

export = Fuse;
