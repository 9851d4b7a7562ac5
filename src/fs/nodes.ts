// Kernel node ids: which tree inode, at which epoch, a FUSE node id names. The id is computed,
// not allocated, so it is the same after a remount and the kernel's hard-link detection (tar,
// rsync, find) sees one inode number per inode in every view:
//   live tree:             id = ino                      (the root is 1, as FUSE wants)
//   .snapshots:            id = SNAPDIR
//   a snapshot's inode:    id = (epoch + 1) * 2^32 + ino

const SPAN = 2 ** 32;
/** Epochs above this cannot be encoded (2^21 snapshots: hourly for 239 years). */
const MAX_EPOCH = 2 ** 21 - 1;
export const SNAPDIR = SPAN - 1;

export interface Where {
  ino: number;
  /** The epoch to read the tree at; null for the live tree (whatever the current epoch is). */
  epoch: number | null;
}

export function nodeId(ino: number, epoch: number | null): number {
  if (ino >= SNAPDIR) throw new RangeError(`inode ${ino} is beyond what a node id can carry`);
  if (epoch === null) return ino;
  if (epoch > MAX_EPOCH) throw new RangeError(`epoch ${epoch} is beyond what a node id can carry`);
  return (epoch + 1) * SPAN + ino;
}

export function where(id: number): Where {
  if (id < SPAN) return { ino: id, epoch: null };
  const epoch = Math.floor(id / SPAN) - 1;
  return { ino: id - (epoch + 1) * SPAN, epoch };
}
