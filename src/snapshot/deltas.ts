// What the tree changed between two snapshot epochs, as plain rows: the unit of metadata a host
// ships (packed and sealed by the peers layer) and a recovery imports. The delta (a, b] holds
// - the inode and entry rows born in it (a death after b is not shipped yet: alive here),
// - the deaths in it of rows born by a (just the fact: the row itself travelled before),
// - the chunk lists its rows name that no earlier row names (lists are immutable).
// The delta (0, s] is the whole state at s: a base. Every query walks an index on born or died,
// so a delta costs what changed, not the size of the tree.
import { prepared, type Db } from '../chunkstore/index-db.js';
import type { ChunkSpan, Inode } from './tree.js';

export type InodeRow = Omit<Inode, 'staged'>;

export interface EntryRow {
  parent: number;
  name: Buffer;
  born: number;
  died: number | null;
  ino: number;
}

export interface InodeDeath {
  ino: number;
  born: number;
  died: number;
}

export interface EntryDeath {
  parent: number;
  name: Buffer;
  born: number;
  died: number;
}

export interface ChunkListRow {
  cl: number;
  size: number;
  spans: ChunkSpan[];
}

export type DeltaPage =
  | { kind: 'inodes'; rows: InodeRow[] }
  | { kind: 'inodeDeaths'; rows: InodeDeath[] }
  | { kind: 'entries'; rows: EntryRow[] }
  | { kind: 'entryDeaths'; rows: EntryDeath[] }
  | { kind: 'clists'; rows: ChunkListRow[] };

// Pages follow a key (born or died first) as a row value, which SQLite turns into an index range:
// each page starts where the last ended. Starting after (a, AFTER_ALL) skips every row of epoch a.
const AFTER_ALL = Number.MAX_SAFE_INTEGER;

const clip = (died: number | null, b: number): number | null => (died !== null && died > b ? null : died);

/** The delta (a, b] in pages of at most `size` rows (a chunk list counts its spans). */
export function* deltaPages(db: Db, a: number, b: number, size = 1024): Generator<DeltaPage> {
  const inodes = prepared<[number, number, number, number], InodeRow & { staged?: number | null }>(
    db,
    `SELECT ino, born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, xattrs FROM inodes
      WHERE (born, ino) > (?, ?) AND born <= ? ORDER BY born, ino LIMIT ?`,
  );
  for (let k = [a, AFTER_ALL]; ; ) {
    const rows = inodes.all(k[0]!, k[1]!, b, size);
    if (rows.length === 0) break;
    for (const r of rows) r.died = clip(r.died, b);
    yield { kind: 'inodes', rows };
    k = [rows.at(-1)!.born, rows.at(-1)!.ino];
  }
  if (a > 0) {
    const deaths = prepared<[number, number, number, number, number, number], InodeDeath>(
      db,
      `SELECT ino, born, died FROM inodes WHERE (died, ino, born) > (?, ?, ?) AND died <= ? AND born <= ?
        ORDER BY died, ino, born LIMIT ?`,
    );
    for (let k = [a, AFTER_ALL, AFTER_ALL]; ; ) {
      const rows = deaths.all(k[0]!, k[1]!, k[2]!, b, a, size);
      if (rows.length === 0) break;
      yield { kind: 'inodeDeaths', rows };
      const l = rows.at(-1)!;
      k = [l.died, l.ino, l.born];
    }
  }
  const entries = prepared<[number, number, Buffer, number, number], EntryRow>(
    db,
    `SELECT parent, name, born, died, ino FROM entries
      WHERE (born, parent, name) > (?, ?, ?) AND born <= ? ORDER BY born, parent, name LIMIT ?`,
  );
  for (let k: [number, number, Buffer] = [a, AFTER_ALL, Buffer.alloc(0)]; ; ) {
    const rows = entries.all(k[0], k[1], k[2], b, size);
    if (rows.length === 0) break;
    for (const r of rows) r.died = clip(r.died, b);
    yield { kind: 'entries', rows };
    const l = rows.at(-1)!;
    k = [l.born, l.parent, l.name];
  }
  if (a > 0) {
    const deaths = prepared<[number, number, Buffer, number, number, number, number], EntryDeath>(
      db,
      `SELECT parent, name, born, died FROM entries WHERE (died, parent, name, born) > (?, ?, ?, ?) AND died <= ? AND born <= ?
        ORDER BY died, parent, name, born LIMIT ?`,
    );
    for (let k: [number, number, Buffer, number] = [a, AFTER_ALL, Buffer.alloc(0), 0]; ; ) {
      const rows = deaths.all(...k, b, a, size);
      if (rows.length === 0) break;
      yield { kind: 'entryDeaths', rows };
      const l = rows.at(-1)!;
      k = [l.died, l.parent, l.name, l.born];
    }
  }
  // A list travels with the first row (in born, ino order) that names it: rows copied on a
  // change share their list, and a list an earlier delta carried is named by an earlier row.
  const lists = prepared<[number, number, number, number], { born: number; ino: number; cl: number }>(
    db,
    `SELECT born, ino, cl FROM inodes i WHERE (born, ino) > (?, ?) AND born <= ? AND cl IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM inodes j WHERE j.cl = i.cl AND (j.born < i.born OR (j.born = i.born AND j.ino < i.ino)))
      ORDER BY born, ino LIMIT ?`,
  );
  const listSize = prepared<[number], number>(db, 'SELECT size FROM clists WHERE cl = ?').pluck();
  const spans = prepared<[number], ChunkSpan>(db, 'SELECT off, handle, id, raw FROM crefs WHERE cl = ? ORDER BY off');
  let page: ChunkListRow[] = [];
  let spanCount = 0;
  for (let k = [a, AFTER_ALL]; ; ) {
    const rows = lists.all(k[0]!, k[1]!, b, size);
    if (rows.length === 0) break;
    for (const r of rows) {
      const s = listSize.get(r.cl);
      if (s === undefined) continue;
      const list = { cl: r.cl, size: s, spans: spans.all(r.cl) };
      page.push(list);
      spanCount += 1 + list.spans.length;
      if (spanCount >= size) {
        yield { kind: 'clists', rows: page };
        page = [];
        spanCount = 0;
      }
    }
    k = [rows.at(-1)!.born, rows.at(-1)!.ino];
  }
  if (page.length > 0) yield { kind: 'clists', rows: page };
}

/** Rows the base (0, s] would hold: what a chain of deltas is weighed against. */
export function baseRows(db: Db, s: number): number {
  return prepared<[number, number], number>(
    db,
    'SELECT (SELECT count(*) FROM inodes WHERE born <= ?) + (SELECT count(*) FROM entries WHERE born <= ?) + (SELECT count(*) FROM clists)',
  ).pluck().get(s, s) ?? 0;
}

// Recovery. Deltas arrive in any order (a holder lists objects by id), and a death may come
// before the row it ends: deaths wait in a temporary table until every delta is in.
//
// The tree's secondary indexes are dropped for the import and built again at its end, from
// sorted rows: a recovery of 78.6k files spent a fifth of its inserts keeping them (random
// chunk ids above all). Their definitions wait in a table of the database itself, so an
// import interrupted in between still gets them back when it resumes.
const TREE_TABLES = "('inodes', 'entries', 'clists', 'crefs')";

export function beginImport(db: Db): void {
  db.transaction(() => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS import_indexes (name TEXT PRIMARY KEY, sql TEXT NOT NULL) WITHOUT ROWID;
      INSERT OR IGNORE INTO import_indexes SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ${TREE_TABLES};
    `);
    for (const name of db.prepare<[], string>('SELECT name FROM import_indexes').pluck().all()) db.exec(`DROP INDEX IF EXISTS "${name}"`);
  }).immediate();
  db.exec(`
    CREATE TEMP TABLE IF NOT EXISTS import_inode_deaths (ino INTEGER NOT NULL, born INTEGER NOT NULL, died INTEGER NOT NULL, PRIMARY KEY (ino, born)) WITHOUT ROWID;
    CREATE TEMP TABLE IF NOT EXISTS import_entry_deaths (parent INTEGER NOT NULL, name BLOB NOT NULL, born INTEGER NOT NULL, died INTEGER NOT NULL, PRIMARY KEY (parent, name, born)) WITHOUT ROWID;
    DELETE FROM import_inode_deaths;
    DELETE FROM import_entry_deaths;
  `);
}

// Rows go in statements of up to 64 rows: a recovery of linux-prev writes ~380k rows, and one
// call into SQLite per row cost about as much as SQLite's own work on it.
const ROWS_PER_INSERT = 64;

/** `insert` (ending in VALUES) once per ROWS_PER_INSERT rows, `width` values a row. */
function insertRows<T>(db: Db, insert: string, width: number, rows: readonly T[], values: (row: T, into: unknown[]) => void): void {
  const tuple = `(${new Array<string>(width).fill('?').join(', ')})`;
  const sql = (n: number): string => `${insert} ${new Array<string>(n).fill(tuple).join(', ')}`;
  const full = rows.length >= ROWS_PER_INSERT ? prepared(db, sql(ROWS_PER_INSERT)) : null;
  const args: unknown[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const n = Math.min(ROWS_PER_INSERT, rows.length - i);
    args.length = 0;
    for (let j = i; j < i + n; j++) values(rows[j]!, args);
    (n === ROWS_PER_INSERT ? full! : prepared(db, sql(n))).run(...args);
  }
}

/** Writes one page into the tree; call inside a transaction. */
export function importPage(db: Db, page: DeltaPage): void {
  switch (page.kind) {
    case 'inodes':
      return insertRows(
        db,
        'INSERT OR REPLACE INTO inodes (ino, born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, staged, xattrs) VALUES',
        16,
        page.rows,
        (v, a) => void a.push(v.ino, v.born, v.died, v.kind, v.mode, v.uid, v.gid, v.nlink, v.size, v.atime, v.mtime, v.ctime, v.target, v.cl, null, v.xattrs),
      );
    case 'inodeDeaths':
      return insertRows(db, 'INSERT OR REPLACE INTO temp.import_inode_deaths (ino, born, died) VALUES', 3, page.rows, (d, a) => void a.push(d.ino, d.born, d.died));
    case 'entries':
      return insertRows(db, 'INSERT OR REPLACE INTO entries (parent, name, born, died, ino) VALUES', 5, page.rows, (e, a) => void a.push(e.parent, e.name, e.born, e.died, e.ino));
    case 'entryDeaths':
      return insertRows(db, 'INSERT OR REPLACE INTO temp.import_entry_deaths (parent, name, born, died) VALUES', 4, page.rows, (d, a) => void a.push(d.parent, d.name, d.born, d.died));
    case 'clists': {
      insertRows(db, 'INSERT OR REPLACE INTO clists (cl, users, size) VALUES', 3, page.rows, (l, a) => void a.push(l.cl, 0, l.size));
      const spans = page.rows.flatMap((l) => l.spans.map((s) => ({ cl: l.cl, s })));
      insertRows(db, 'INSERT OR REPLACE INTO crefs (cl, off, handle, id, raw) VALUES', 5, spans, ({ cl, s }, a) => void a.push(cl, s.off, s.handle, s.id, s.raw));
    }
  }
}

/**
 * After the last delta, in one transaction: deaths apply; the tree is cut back to the shipped
 * epoch; rows no kept snapshot sees (a forget dropped them here after they shipped) and lists
 * no row names go; then the counts the deltas do not carry, the epoch after the shipped one and
 * the inode counter.
 */
export function finishImport(db: Db, epoch: number, nextIno: number, snapshots: { epoch: number; name: string; time: number; label: string | null }[]): void {
  for (const sql of db.prepare<[], string>('SELECT sql FROM import_indexes').pluck().all()) db.exec(sql);
  db.exec('DROP TABLE import_indexes');
  db.exec(`
    UPDATE inodes SET died = d.died FROM temp.import_inode_deaths d WHERE inodes.ino = d.ino AND inodes.born = d.born;
    UPDATE entries SET died = d.died FROM temp.import_entry_deaths d WHERE entries.parent = d.parent AND entries.name = d.name AND entries.born = d.born;
    DROP TABLE temp.import_inode_deaths;
    DROP TABLE temp.import_entry_deaths;
  `);
  const ins = prepared(db, 'INSERT OR REPLACE INTO snapshots (epoch, name, time, label) VALUES (?, ?, ?, ?)');
  for (const s of snapshots) ins.run(s.epoch, s.name, s.time, s.label);
  for (const t of ['inodes', 'entries']) {
    prepared(db, `DELETE FROM ${t} WHERE born > ?`).run(epoch);
    prepared(db, `UPDATE ${t} SET died = NULL WHERE died > ?`).run(epoch);
    db.exec(`DELETE FROM ${t} WHERE died IS NOT NULL AND NOT EXISTS (SELECT 1 FROM snapshots s WHERE s.epoch >= ${t}.born AND s.epoch < ${t}.died)`);
  }
  // The lists no row names, found from clists: asked of crefs directly, SQLite walked crefs in
  // the order of its index by chunk id (random) and took 0.4 s for linux-prev's 120k spans.
  db.exec(`
    DELETE FROM crefs WHERE cl IN (SELECT cl FROM clists WHERE cl NOT IN (SELECT cl FROM inodes WHERE cl IS NOT NULL));
    DELETE FROM clists WHERE cl NOT IN (SELECT cl FROM inodes WHERE cl IS NOT NULL);
    UPDATE clists SET users = (SELECT count(*) FROM inodes i WHERE i.cl = clists.cl);
  `);
  const meta = prepared(db, 'INSERT INTO tree_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
  meta.run('epoch', epoch + 1);
  meta.run('next_ino', nextIno);
}

/** Schema 3: entries born in a delta are found by their epoch, as inodes are. */
export function indexEntriesByBorn(db: Db): void {
  db.exec('CREATE INDEX IF NOT EXISTS entries_by_born ON entries(born)');
}
