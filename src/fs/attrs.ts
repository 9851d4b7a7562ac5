// struct stat for the kernel, from a tree row: the Float64Array layout native/fuse reads.
import { S_IFBLK, S_IFCHR, type Inode } from '../snapshot/tree.js';
import { A } from './binding.js';

/** What a file open for writing knows better than its row: size and times of unpublished writes. */
export interface Overlay {
  size: number;
  mtime: number;
  ctime: number;
}

export function deviceNumber(n: Inode): number {
  return (n.kind === S_IFCHR || n.kind === S_IFBLK) && n.target?.length === 8 ? Number(n.target.readBigUInt64LE()) : 0;
}

export function deviceTarget(rdev: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(rdev));
  return b;
}

export function fillAttr(out: Float64Array, at: number, id: number, n: Inode, extraLinks: number, over?: Overlay): void {
  const size = over ? over.size : n.size;
  out[at + A.INO] = id;
  out[at + A.MODE] = n.kind | n.mode;
  out[at + A.NLINK] = n.nlink + extraLinks;
  out[at + A.UID] = n.uid;
  out[at + A.GID] = n.gid;
  out[at + A.RDEV] = deviceNumber(n);
  out[at + A.SIZE] = size;
  out[at + A.BLOCKS] = Math.ceil(size / 512);
  out[at + A.ATIME] = n.atime;
  out[at + A.MTIME] = over ? over.mtime : n.mtime;
  out[at + A.CTIME] = over ? over.ctime : n.ctime;
}

export function attrOf(id: number, n: Inode, extraLinks = 0, over?: Overlay): Float64Array {
  const out = new Float64Array(A.LEN);
  fillAttr(out, 0, id, n, extraLinks, over);
  return out;
}
