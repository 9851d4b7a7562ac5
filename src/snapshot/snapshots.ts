// Snapshots as users see them: names, listing, taking one, forgetting some.
import { prepared, type Db } from '../chunkstore/index-db.js';
import type { ChunkStore } from '../chunkstore/store.js';
import { releaseChunkList } from './content.js';

export interface SnapshotInfo {
  name: string;
  epoch: number;
  time: number;
  label: string | null;
}

/** `2026-11-22T100000Z[-label]`: sorts by time; a clash within one second gets -2, -3... */
export function snapshotName(time: number, label: string | null, taken: (name: string) => boolean): string {
  const iso = new Date(time).toISOString();
  const base = `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z${label ? `-${label}` : ''}`;
  if (!taken(base)) return base;
  for (let n = 2; ; n++) if (!taken(`${base}-${n}`)) return `${base}-${n}`;
}

export function validLabel(label: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(label);
}

// Cached statements: the filesystem resolves every path under .snapshots/ through these.
export function listSnapshots(db: Db): SnapshotInfo[] {
  return prepared<[], SnapshotInfo>(db, 'SELECT name, epoch, time, label FROM snapshots ORDER BY epoch').all();
}

export function countSnapshots(db: Db): number {
  return prepared<[], number>(db, 'SELECT count(*) FROM snapshots').pluck().get()!;
}

/** Each snapshot with the bytes of the files written since the one before it. */
export function snapshotHistory(db: Db): (SnapshotInfo & { changedBytes: number })[] {
  const born = prepared<[], { born: number; bytes: number }>(db, 'SELECT born, sum(size) AS bytes FROM inodes WHERE kind = 32768 GROUP BY born ORDER BY born').all();
  let i = 0;
  return listSnapshots(db).map((s) => {
    let changedBytes = 0;
    for (; i < born.length && born[i]!.born <= s.epoch; i++) changedBytes += born[i]!.bytes;
    return { ...s, changedBytes };
  });
}

/** `latest` or an exact name. */
export function findSnapshot(db: Db, name: string): SnapshotInfo | undefined {
  if (name === 'latest') return prepared<[], SnapshotInfo>(db, 'SELECT name, epoch, time, label FROM snapshots ORDER BY epoch DESC LIMIT 1').get();
  return prepared<[string], SnapshotInfo>(db, 'SELECT name, epoch, time, label FROM snapshots WHERE name = ?').get(name);
}

/** What a person may type for a snapshot: its name, `latest`, or a label (the newest snapshot with it). */
export function resolveSnapshot(db: Db, spec: string): SnapshotInfo | undefined {
  return findSnapshot(db, spec) ?? prepared<[string], SnapshotInfo>(db, 'SELECT name, epoch, time, label FROM snapshots WHERE label = ? ORDER BY epoch DESC LIMIT 1').get(spec);
}

/**
 * Forget snapshots: drop their records, then every row that only they could see. The rows
 * looked at are those alive at a forgotten epoch and dead since: the work grows with what
 * changed, not with the tree. Returns the staging generations nothing references any more.
 */
export function forgetSnapshots(db: Db, store: ChunkStore, names: string[]): { forgotten: number; rows: number; staged: [number, number][] } {
  const staged: [number, number][] = [];
  let rows = 0;
  const epochs: number[] = [];
  db.transaction(() => {
    for (const name of names) {
      const s = findSnapshot(db, name);
      if (!s) continue;
      db.prepare('DELETE FROM snapshots WHERE epoch = ?').run(s.epoch);
      epochs.push(s.epoch);
    }
    const seen = db.prepare<[number, number], number>('SELECT 1 FROM snapshots WHERE epoch >= ? AND epoch < ? LIMIT 1').pluck();
    const deadInodes = db.prepare<[number, number], { ino: number; born: number; died: number; cl: number | null; staged: number | null }>(
      'SELECT ino, born, died, cl, staged FROM inodes WHERE died IS NOT NULL AND born <= ? AND died > ?',
    );
    const deadEntries = db.prepare<[number, number], { parent: number; name: Buffer; born: number; died: number }>(
      'SELECT parent, name, born, died FROM entries WHERE died IS NOT NULL AND born <= ? AND died > ?',
    );
    const delInode = db.prepare('DELETE FROM inodes WHERE ino = ? AND born = ?');
    const delEntry = db.prepare('DELETE FROM entries WHERE parent = ? AND name = ? AND born = ?');
    const stagedUsers = db.prepare<[number, number], number>('SELECT count(*) FROM inodes WHERE ino = ? AND staged = ?').pluck();
    for (const e of epochs) {
      for (const r of deadInodes.all(e, e)) {
        if (seen.get(r.born, r.died)) continue;
        delInode.run(r.ino, r.born);
        rows++;
        if (r.cl !== null) releaseChunkList(db, store, r.cl);
        if (r.staged !== null && stagedUsers.get(r.ino, r.staged) === 0) staged.push([r.ino, r.staged]);
      }
      for (const r of deadEntries.all(e, e)) {
        if (seen.get(r.born, r.died)) continue;
        delEntry.run(r.parent, r.name, r.born);
        rows++;
      }
    }
  }).immediate();
  return { forgotten: epochs.length, rows, staged };
}
