// The chunk lists under an inode at an epoch, depth first with an explicit stack (trees can be
// deeper than a call stack likes): what a restore of that path will read.
import { S_IFDIR, type Tree } from './tree.js';

export function* chunkListsUnder(tree: Tree, ino: number, epoch: number): Generator<{ cl: number; size: number }> {
  const stack = [ino];
  const seen = new Set<number>();
  while (stack.length > 0) {
    const n = tree.inode(stack.pop()!, epoch);
    if (!n) continue;
    if (n.kind === S_IFDIR) {
      for (const e of tree.list(n.ino, epoch)) stack.push(e.ino);
    } else if (n.cl !== null && !seen.has(n.cl)) {
      // Hard links name one list: once is enough.
      seen.add(n.cl);
      yield { cl: n.cl, size: n.size };
    }
  }
}
