// verify: re-read every pack, check every box against its id (a hash of the box, so chunks held
// for others are checked too) and every tag we hold the key for (our own chunks), and name
// exactly what is wrong.
import { packPath, scanPack, type PackScan } from './packs.js';
import { ChunkError, boxId, hexId } from './sealer.js';
import type { ChunkStore } from './store.js';

export type ProblemKind = 'missing-pack' | 'torn-pack' | 'bad-chunk' | 'missing-chunk' | 'unknown-pack';

export interface Problem {
  kind: ProblemKind;
  pack?: number;
  id?: string;
  detail: string;
}

export interface VerifyReport {
  packs: number;
  chunks: number;
  bytes: number;
  problems: Problem[];
}

export interface VerifyProgress {
  packsDone: number;
  packsTotal: number;
  bytes: number;
}

/**
 * SQLite's own check of the index, page by page (quick: the b-trees only; else every index
 * against its table too): the first problems it names, none when the file is sound. Pack
 * checks trust the index, and a damaged page nothing reads today fails a request later.
 */
export function checkIndex(db: ChunkStore['db'], quick: boolean): string[] {
  const found = db.pragma(`${quick ? 'quick_check' : 'integrity_check'}(5)`, { simple: false }) as Record<string, string>[];
  const lines = found.map((r) => Object.values(r)[0]!);
  return lines.length === 1 && lines[0] === 'ok' ? [] : lines;
}

export function verifyStore(store: ChunkStore, onProgress?: (p: VerifyProgress) => void): VerifyReport {
  const db = store.db;
  const report: VerifyReport = { packs: 0, chunks: 0, bytes: 0, problems: [] };
  // The daemon may collect while we read: compaction moves live chunks into packs made after
  // our listing and deletes the old ones. Pack numbers only grow, so listing again past the
  // last one seen until nothing new appears checks every moved chunk in its new place.
  const packsAfter = db.prepare<[number], number>('SELECT pack FROM packs WHERE pack > ? ORDER BY pack').pluck();
  const known = db.prepare<[number], number>('SELECT 1 FROM packs WHERE pack = ?').pluck();
  const rowsOf = db.prepare<[number], ChunkRow>('SELECT id, off, len, handle FROM chunks WHERE pack = ?');
  // The pack's rows and whether it still exists, as of one moment.
  const listed = db.transaction((pack: number) => (known.get(pack) ? rowsOf.all(pack) : null));
  let total = 0;
  for (let last = 0, next = packsAfter.all(last); next.length > 0; next = packsAfter.all(last)) {
    total += next.length;
    for (const pack of next) {
      last = pack;
      const rows = listed(pack);
      if (rows) checkPack(store, pack, rows, report, () => known.get(pack) !== undefined);
      report.packs++;
      onProgress?.({ packsDone: report.packs, packsTotal: total, bytes: report.bytes });
    }
  }
  const orphans = db
    .prepare<[], { id: Buffer; pack: number }>('SELECT id, pack FROM chunks WHERE pack NOT IN (SELECT pack FROM packs)')
    .all();
  for (const o of orphans) {
    report.chunks++;
    report.problems.push({ kind: 'unknown-pack', pack: o.pack, id: hexId(o.id), detail: `chunk ${hexId(o.id)} names pack ${o.pack}, which the index does not know` });
  }
  return report;
}

interface ChunkRow {
  id: Buffer;
  off: number;
  len: number;
  handle: Buffer | null;
}

/** Checks one pack's records against the rows naming it; `stillKnown` asks the index again. */
function checkPack(store: ChunkStore, pack: number, rows: ChunkRow[], report: VerifyReport, stillKnown: () => boolean): void {
  let scan: PackScan;
  try {
    scan = scanPack(packPath(store.packsDir, pack));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // Compacted since we read its rows: they moved to a later pack, which the listing reaches.
    if (!stillKnown()) return;
    if (rows.length > 0) report.problems.push({ kind: 'missing-pack', pack, detail: `pack ${pack} is missing: ${rows.length} chunks lost` });
    for (const r of rows) report.problems.push({ kind: 'missing-chunk', pack, id: hexId(r.id), detail: `chunk ${hexId(r.id)} is in missing pack ${pack}` });
    return;
  }
  report.bytes += scan.size;
  const byOff = new Map(scan.records.map((r) => [r.off, r]));
  // A torn tail is normal after a crash (bytes no row names); it matters only if rows point into it.
  let tornNamed = false;
  for (const row of rows) {
    report.chunks++;
    const rec = byOff.get(row.off);
    // The id in the record's head is not compared: packs written by release 0.1.0 carry old ids.
    if (!rec || rec.len !== row.len) {
      tornNamed = true;
      report.problems.push({ kind: 'missing-chunk', pack, id: hexId(row.id), detail: `chunk ${hexId(row.id)}: pack ${pack} has no matching record at offset ${row.off}` });
      continue;
    }
    const box = scan.data.subarray(rec.off, rec.off + rec.len);
    if (!boxId(box).equals(row.id)) {
      report.problems.push({ kind: 'bad-chunk', pack, id: hexId(row.id), detail: `chunk ${hexId(row.id)} does not match its id (pack ${pack}, offset ${row.off})` });
      continue;
    }
    if (!row.handle) continue;
    try {
      store.sealer.open(row.handle, box, row.id);
    } catch (err) {
      const why = err instanceof ChunkError ? err.message : String(err);
      report.problems.push({ kind: 'bad-chunk', pack, id: hexId(row.id), detail: `${why} (pack ${pack}, offset ${row.off})` });
    }
  }
  if (scan.problem && tornNamed) report.problems.push({ kind: 'torn-pack', pack, detail: `pack ${pack}: ${scan.problem}` });
}
