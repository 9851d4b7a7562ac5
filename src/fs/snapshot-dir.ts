// The read-only .snapshots directory at the root of the mount: one subdirectory per snapshot,
// each the tree as it was at that snapshot's epoch.
import { findSnapshot, listSnapshots, type SnapshotInfo } from '../snapshot/snapshots.js';
import { S_IFDIR, type Inode, type Tree } from '../snapshot/tree.js';
import { A } from './binding.js';
import { SNAPDIR } from './nodes.js';

export const SNAPSHOTS = '.snapshots';

export class SnapshotDir {
  constructor(private readonly tree: Tree) {}

  list(): SnapshotInfo[] {
    return listSnapshots(this.tree.db);
  }

  /** The epoch a name under .snapshots shows; `latest` is not a name there (it would move). */
  epochOf(name: Buffer): number | undefined {
    const s = name.toString('latin1');
    if (s === 'latest') return undefined;
    return findSnapshot(this.tree.db, s)?.epoch;
  }

  /** Attributes of .snapshots: the live root's owner and times, read-only. */
  attr(root: Inode): Float64Array {
    const out = new Float64Array(A.LEN);
    out[A.INO] = SNAPDIR;
    out[A.MODE] = S_IFDIR | 0o555;
    out[A.NLINK] = 2;
    out[A.UID] = root.uid;
    out[A.GID] = root.gid;
    out[A.ATIME] = root.atime;
    out[A.MTIME] = root.mtime;
    out[A.CTIME] = root.ctime;
    return out;
  }
}
