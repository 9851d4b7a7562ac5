// Garbage collection: drop index rows nobody references, then compact packs whose live
// bytes fell under a threshold by copying their live records into a fresh pack. Each step
// is its own short transaction, so ingest workers keep committing in between.
import { existsSync, unlinkSync } from 'node:fs';
import { RECORD_HEAD, packPath, scanPack } from './packs.js';
import type { ChunkStore } from './store.js';

export interface GcOptions {
  /** Compact packs whose live bytes are below this fraction of their size. */
  threshold?: number;
  /** Stop after compacting this many packs (incremental GC); default: all candidates. */
  maxPacks?: number;
  /** Rows deleted per transaction. */
  batch?: number;
}

export interface GcReport {
  collected: number;
  packsCompacted: number;
  packsDeleted: number;
  bytesFreed: number;
}

/** Where a collection is: chunks dropped, then packs compacted out of those found. */
export interface GcProgress extends GcReport {
  phase: 'dropping' | 'compacting';
  packsDone: number;
  packsTotal: number;
}

export function collectGarbage(store: ChunkStore, opts: GcOptions = {}, progress: (p: GcProgress) => void = () => {}): GcReport {
  const report: GcReport = { collected: 0, packsCompacted: 0, packsDeleted: 0, bytesFreed: 0 };
  report.collected = dropUnreferenced(store, opts.batch ?? 2000, (n) => progress({ ...report, collected: n, phase: 'dropping', packsDone: 0, packsTotal: 0 }));
  compactPacks(store, opts.threshold ?? 0.5, opts.maxPacks ?? Infinity, report, (done, total) => progress({ ...report, phase: 'compacting', packsDone: done, packsTotal: total }));
  return report;
}

function dropUnreferenced(store: ChunkStore, batch: number, progress: (collected: number) => void): number {
  const db = store.db;
  const pick = db.prepare<[number], { id: Buffer; pack: number; len: number }>(
    'SELECT id, pack, len FROM chunks WHERE refs = 0 AND NOT EXISTS (SELECT 1 FROM owner_refs o WHERE o.id = chunks.id) LIMIT ?',
  );
  // Re-checked at delete time: a worker may have referenced the chunk since it was picked.
  const del = db.prepare('DELETE FROM chunks WHERE id = ? AND refs = 0 AND NOT EXISTS (SELECT 1 FROM owner_refs o WHERE o.id = ?)');
  const live = db.prepare('UPDATE packs SET live = live - ? WHERE pack = ?');
  let total = 0;
  for (;;) {
    const n = db.transaction(() => {
      let gone = 0;
      for (const r of pick.all(batch)) {
        if (del.run(r.id, r.id).changes > 0) {
          live.run(r.len + RECORD_HEAD, r.pack);
          gone++;
        }
      }
      return gone;
    }).immediate();
    total += n;
    progress(total);
    if (n < batch) return total;
  }
}

function compactPacks(store: ChunkStore, threshold: number, maxPacks: number, report: GcReport, progress: (done: number, total: number) => void): void {
  const db = store.db;
  const candidates = db
    .prepare<[number], { pack: number; size: number; live: number }>(
      'SELECT pack, size, live FROM packs WHERE sealed = 1 AND live < size * ? ORDER BY live * 1.0 / max(size, 1) LIMIT 100000',
    )
    .all(threshold);
  const writer = store.newWriter();
  // By place, not by the id in the record's head: packs written by release 0.1.0 carry old ids.
  const rowAt = db.prepare<[number, number, number], Buffer>('SELECT id FROM chunks WHERE pack = ? AND off = ? AND len = ?').pluck();
  const move = db.prepare('UPDATE chunks SET pack = ?, off = ? WHERE id = ? AND pack = ? AND off = ?');
  const addLive = db.prepare('UPDATE packs SET live = live + ? WHERE pack = ?');
  const dropPack = db.prepare('DELETE FROM packs WHERE pack = ?');
  const stillNamed = db.prepare<[number], number>('SELECT count(*) FROM chunks WHERE pack = ?').pluck();
  let done = 0;
  const total = Math.min(candidates.length, maxPacks);
  progress(0, total);
  for (const c of candidates) {
    if (done >= maxPacks) break;
    const path = packPath(store.packsDir, c.pack);
    const moves: { id: Buffer; from: number; to: number; newPack: number; len: number }[] = [];
    if (c.live > 0 && existsSync(path)) {
      const scan = scanPack(path);
      for (const r of scan.records) {
        const id = rowAt.get(c.pack, r.off, r.len);
        if (!id) continue;
        const placed = writer.append(id, scan.data.subarray(r.off, r.off + r.len));
        moves.push({ id, from: r.off, to: placed.off, newPack: placed.pack, len: r.len });
      }
      writer.sync();
    }
    const ok = db.transaction(() => {
      for (const m of moves) {
        if (move.run(m.newPack, m.to, m.id, c.pack, m.from).changes > 0) addLive.run(m.len + RECORD_HEAD, m.newPack);
      }
      // Something still names the old pack (a row we could not read): keep it, verify reports it.
      if (stillNamed.get(c.pack)! > 0) return false;
      dropPack.run(c.pack);
      return true;
    }).immediate();
    if (!ok) continue;
    store.dropPack(c.pack);
    if (existsSync(path)) unlinkSync(path);
    report.bytesFreed += c.size - moves.reduce((s, m) => s + m.len + RECORD_HEAD, 0);
    if (moves.length > 0) report.packsCompacted++;
    else report.packsDeleted++;
    done++;
    progress(done, total);
  }
  writer.seal();
}

/** Run a collection in a worker thread, leaving the caller's thread free (the FUSE thread). */
export function collectGarbageInWorker(storeDir: string, storeKey: Uint8Array, options: GcOptions = {}, progress: (p: GcProgress) => void = () => {}): Promise<GcReport> {
  return import('node:worker_threads').then(
    ({ Worker }) =>
      new Promise<GcReport>((resolve, reject) => {
        const w = new Worker(new URL('./gc-entry.js', import.meta.url), { workerData: { storeDir, storeKey, options } });
        w.on('message', (m: { progress?: GcProgress; report?: GcReport; error?: string }) => {
          if (m.progress) progress(m.progress);
          else if (m.report) resolve(m.report);
          else reject(new Error(`gc: ${m.error}`));
        });
        w.once('error', reject);
      }),
  );
}
