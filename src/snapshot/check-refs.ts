// The tree and the chunk index must agree: every chunk a chunk list names is stored, and each
// chunk's local refcount equals the number of chunk-list entries naming it. A refcount too low
// would let GC delete live data; too high leaks space.
import { inReadTransaction, type Db } from '../chunkstore/index-db.js';
import { hexId } from '../chunkstore/sealer.js';

export interface RefProblem {
  kind: 'missing-chunk' | 'refcount';
  id: string;
  detail: string;
}

/**
 * In one read transaction: the daemon may be chunking meanwhile, and a commit between reading
 * the lists and reading the chunks showed a chunk it had just stored as named by no list.
 */
export function checkReferences(db: Db, limit = 100): { checked: number; problems: RefProblem[] } {
  return inReadTransaction(db, () => checkConsistent(db, limit));
}

function checkConsistent(db: Db, limit: number): { checked: number; problems: RefProblem[] } {
  // A host never mounted has no tree yet.
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'crefs'").get()) return { checked: 0, problems: [] };
  const expected = new Map<string, number>();
  for (const id of db.prepare<[], Buffer>('SELECT id FROM crefs').pluck().iterate()) {
    const key = id.toString('latin1');
    expected.set(key, (expected.get(key) ?? 0) + 1);
  }
  const problems: RefProblem[] = [];
  const refsOf = db.prepare<[Buffer], number>('SELECT refs FROM chunks WHERE id = ?').pluck();
  for (const [key, n] of expected) {
    if (problems.length >= limit) break;
    const id = Buffer.from(key, 'latin1');
    const refs = refsOf.get(id);
    if (refs === undefined) problems.push({ kind: 'missing-chunk', id: hexId(id), detail: `chunk ${hexId(id)} is named by ${n} chunk-list entries but is not stored` });
    else if (refs !== n) problems.push({ kind: 'refcount', id: hexId(id), detail: `chunk ${hexId(id)} has refcount ${refs}, the tree names it ${n} times` });
  }
  for (const row of db.prepare<[], { id: Buffer; refs: number }>('SELECT id, refs FROM chunks WHERE refs > 0').iterate()) {
    if (problems.length >= limit) break;
    if (!expected.has(row.id.toString('latin1'))) problems.push({ kind: 'refcount', id: hexId(row.id), detail: `chunk ${hexId(row.id)} has refcount ${row.refs}, the tree does not name it` });
  }
  return { checked: expected.size, problems };
}
