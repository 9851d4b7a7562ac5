// The index database checked before a command trusts it: a damaged page stops the command
// with one line that says what to do.
import type { ChunkStore } from '../chunkstore/store.js';
import { checkIndex } from '../chunkstore/verify.js';
import { damagedIndex } from './errors.js';

/** Throws `damagedIndex` when SQLite's check of the index finds a problem. */
export function requireSoundIndex(store: ChunkStore, quick: boolean): void {
  let problems: string[];
  try {
    problems = checkIndex(store.db, quick);
  } catch (err) {
    // Pages too damaged for the check itself to walk.
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') throw damagedIndex(`${code}: ${(err as Error).message}`, err);
    throw err;
  }
  if (problems.length > 0) throw damagedIndex(problems.join('; ').replace(/\s+/g, ' '));
}
