// Permission checks, made here rather than by the kernel. With `default_permissions` the
// kernel re-reads a directory's attributes (a GETATTR round trip) at the next path walk after
// every create or unlink in it: two of the ~11 requests a file costs in an untar. The checks
// are the kernel's generic ones: owner, group, other bits; root passes except for execute,
// which needs some x bit. Only the caller's primary group is known (FUSE passes uid and gid).
import { S_IFDIR, type Inode } from '../snapshot/tree.js';
import { FsError } from './errors.js';

export interface Caller {
  uid: number;
  gid: number;
}

export const MAY_EXEC = 1;
export const MAY_WRITE = 2;
export const MAY_READ = 4;

const S_ISVTX = 0o1000;

export function may(n: Inode, who: Caller, want: number): boolean {
  if (who.uid === 0) return !(want & MAY_EXEC) || n.kind === S_IFDIR || (n.mode & 0o111) !== 0;
  const bits = who.uid === n.uid ? n.mode >> 6 : who.gid === n.gid ? n.mode >> 3 : n.mode;
  return ((bits & 7) & want) === want;
}

export function check(n: Inode, who: Caller, want: number): void {
  if (!may(n, who, want)) throw new FsError('EACCES');
}

/** Removing or replacing `victim` in `dir`: write and search on the directory, and its sticky bit. */
export function checkRemove(dir: Inode, victim: Inode, who: Caller): void {
  check(dir, who, MAY_WRITE | MAY_EXEC);
  if (dir.mode & S_ISVTX && who.uid !== 0 && who.uid !== dir.uid && who.uid !== victim.uid) throw new FsError('EPERM');
}

/** chmod, chown, and explicit times need the owner (or root); chown to another user needs root. */
export function checkOwner(n: Inode, who: Caller): void {
  if (who.uid !== 0 && who.uid !== n.uid) throw new FsError('EPERM');
}
