// Extended attributes, stored with the inode row (so snapshots keep them). POSIX ACLs are
// refused with EOPNOTSUPP rather than stored: stored as plain xattrs they were never applied
// (cp -a then left files at 0600), while EOPNOTSUPP makes cp, rsync and tar fall back to chmod.
// The security.* namespace never gets here: native/fuse refuses it.
import type { Inode, Tree } from '../snapshot/tree.js';
import { inodeNow } from './clock.js';
import { FsError } from './errors.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

function isAcl(name: string): boolean {
  return name === 'system.posix_acl_access' || name === 'system.posix_acl_default';
}

function parse(n: Inode): Record<string, string> {
  return n.xattrs ? (JSON.parse(n.xattrs) as Record<string, string>) : {};
}

export function setXattr(tree: Tree, n: Inode, name: string, value: Buffer, flags: number): void {
  if (isAcl(name)) throw new FsError('EOPNOTSUPP');
  const x = parse(n);
  if (flags & XATTR_CREATE && name in x) throw new FsError('EEXIST');
  if (flags & XATTR_REPLACE && !(name in x)) throw new FsError('ENODATA');
  x[name] = value.toString('base64');
  tree.update(n.ino, { xattrs: JSON.stringify(x), ctime: inodeNow() });
}

export function getXattr(n: Inode, name: string): Buffer {
  if (isAcl(name)) throw new FsError('EOPNOTSUPP');
  const v = parse(n)[name];
  if (v === undefined) throw new FsError('ENODATA');
  return Buffer.from(v, 'base64');
}

/** Names as listxattr(2) returns them: each followed by a NUL. */
export function listXattrs(n: Inode): Buffer {
  return Buffer.from(Object.keys(parse(n)).map((k) => k + '\0').join(''), 'utf8');
}

export function removeXattr(tree: Tree, n: Inode, name: string): void {
  if (isAcl(name)) throw new FsError('EOPNOTSUPP');
  const x = parse(n);
  if (!(name in x)) throw new FsError('ENODATA');
  delete x[name];
  tree.update(n.ino, { xattrs: Object.keys(x).length ? JSON.stringify(x) : null, ctime: inodeNow() });
}
