// What changed between two epochs a < b, from the rows born or killed between them: the work
// grows with the change, not with the tree.
import type { Db } from '../chunkstore/index-db.js';
import { ROOT, S_IFDIR } from './tree.js';

export interface TreeDiff {
  added: string[];
  removed: string[];
  modified: string[];
}

/** Path of an inode at an epoch, by walking its entries up to the root. */
export function pathAt(db: Db, ino: number, epoch: number): string | undefined {
  const up = db.prepare<[number, number, number], { parent: number; name: Buffer }>(
    'SELECT parent, name FROM entries WHERE ino = ? AND born <= ? AND (died IS NULL OR died > ?) LIMIT 1',
  );
  const parts: string[] = [];
  for (let cur = ino; cur !== ROOT; ) {
    const e = up.get(cur, epoch, epoch);
    if (!e) return undefined;
    parts.push(e.name.toString('latin1'));
    cur = e.parent;
    if (parts.length > 4096) return undefined;
  }
  return '/' + parts.reverse().join('/');
}

export function diffEpochs(db: Db, a: number, b: number): TreeDiff {
  const removedRows = db
    .prepare<[number, number, number], { parent: number; name: Buffer; ino: number }>(
      'SELECT parent, name, ino FROM entries WHERE died IS NOT NULL AND died > ? AND died <= ? AND born <= ?',
    )
    .all(a, b, a);
  const addedRows = db
    .prepare<[number, number, number], { parent: number; name: Buffer; ino: number }>(
      'SELECT parent, name, ino FROM entries WHERE born > ? AND born <= ? AND (died IS NULL OR died > ?)',
    )
    .all(a, b, b);
  const named = (rows: { parent: number; name: Buffer }[], epoch: number): Set<string> => {
    const out = new Set<string>();
    for (const r of rows) {
      const dir = pathAt(db, r.parent, epoch);
      if (dir !== undefined) out.add((dir === '/' ? '' : dir) + '/' + r.name.toString('latin1'));
    }
    return out;
  };
  const removed = named(removedRows, a);
  const added = named(addedRows, b);
  const modified = new Set<string>();
  // A name removed and added again (rename over, editor save) is a modification.
  for (const p of added) if (removed.has(p)) modified.add(p);
  // A file whose row was copied between a and b with other content or attributes. Chunking
  // swaps staged -> cl in every row sharing the generation, so equal content compares equal.
  const changed = db
    .prepare<[number, number, number, number, number], { ino: number }>(
      `SELECT n.ino FROM inodes n JOIN inodes o ON o.ino = n.ino
        WHERE n.born > ? AND n.born <= ? AND (n.died IS NULL OR n.died > ?)
          AND o.born <= ? AND (o.died IS NULL OR o.died > ?) AND n.kind != ${S_IFDIR}
          AND (n.size != o.size OR n.mtime != o.mtime OR n.mode != o.mode OR n.uid != o.uid OR n.gid != o.gid
               OR n.target IS NOT o.target OR n.xattrs IS NOT o.xattrs OR n.cl IS NOT o.cl OR n.staged IS NOT o.staged)`,
    )
    .all(a, b, b, a, a);
  for (const { ino } of changed) {
    const p = pathAt(db, ino, b);
    if (p !== undefined && !added.has(p)) modified.add(p);
  }
  const sorted = (s: Set<string>): string[] => [...s].filter((p) => !modified.has(p)).sort();
  return { added: sorted(added), removed: sorted(removed), modified: [...modified].sort() };
}
