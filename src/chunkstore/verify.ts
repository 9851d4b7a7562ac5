// verify: re-read every pack, check every box against its id (a hash of the box, so chunks held
// for others are checked too) and every tag we hold the key for (our own chunks), and name
// exactly what is wrong.
import { existsSync } from 'node:fs';
import { packPath, scanPack } from './packs.js';
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
  const packs = db.prepare<[], { pack: number; sealed: number }>('SELECT pack, sealed FROM packs ORDER BY pack').all();
  const rowsOf = db.prepare<[number], { id: Buffer; off: number; len: number; handle: Buffer | null }>(
    'SELECT id, off, len, handle FROM chunks WHERE pack = ?',
  );
  for (const { pack } of packs) {
    const rows = rowsOf.all(pack);
    const path = packPath(store.packsDir, pack);
    report.packs++;
    if (!existsSync(path)) {
      if (rows.length > 0) report.problems.push({ kind: 'missing-pack', pack, detail: `pack ${pack} is missing: ${rows.length} chunks lost` });
      for (const r of rows) report.problems.push({ kind: 'missing-chunk', pack, id: hexId(r.id), detail: `chunk ${hexId(r.id)} is in missing pack ${pack}` });
      continue;
    }
    const scan = scanPack(path);
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
    onProgress?.({ packsDone: report.packs, packsTotal: packs.length, bytes: report.bytes });
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
