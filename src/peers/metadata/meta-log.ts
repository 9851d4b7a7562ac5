// The metadata a host ships: a chain of sealed segments, a base (the whole tree at one epoch)
// then deltas, each covering the epochs after the one before. A shipment offers the chain and a
// buddy takes the segments it lacks, so one chain serves every buddy whatever it held before.
// Once the chain is mostly history nobody needs (or holds many deltas), the next extension with
// a change writes a new base and the old segments join the drop log, which shipments turn into
// signed deletes: a recovery never replays much more than the tree, and buddies never keep what
// no chain names.
// Segments are kept here as sealed boxes: a new buddy gets the same chain the others hold.
import { prepared, type Db } from '../../chunkstore/index-db.js';
import { baseRows, deltaPages } from '../../snapshot/deltas.js';
import { SEGMENT_FORMAT, SegmentBuilder, type MetaPage } from './meta-segments.js';
import type { Stripes } from './stripes.js';
import { LEGACY_CHUNK_LIST, LEGACY_INODE, type MetaSealer, type SealedObject, type SegmentRef } from './sealed-objects.js';
import type { Log } from '../../log/logger.js';

/** Kinds in the drop log: release 0.2's objects (by inode and chunk list), our segments, dead stripes' shards. */
export const DROP_SEGMENT = 2;
export const DROP_STRIPE = 3;

/** A drop-log entry as one buddy is told it: an object id, a shard (chunk) id, or nothing for it. */
export interface Drop {
  seq: number;
  id: Buffer | null;
  chunk: boolean;
}
/**
 * A new base once the chain holds this many times the rows a base would (the rest is history
 * no snapshot needs any more, and deaths), or once this many deltas pile up, even small ones.
 */
const MAX_WASTE = 2;
const MAX_DELTAS = 128;

export interface SegmentInfo {
  seq: number;
  id: Buffer;
  from: number;
  to: number;
  digest: Buffer;
  bytes: number;
  rows: number;
}

export function createMetaTables(db: Db): void {
  db.exec(`
    -- live = 0 while the delta it belongs to is being written: not part of the chain yet.
    CREATE TABLE IF NOT EXISTS meta_segments (
      seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a segment's id derives from it
      from_epoch INTEGER NOT NULL,
      to_epoch   INTEGER NOT NULL,
      live       INTEGER NOT NULL,
      rows       INTEGER NOT NULL,               -- inode, entry and list rows and deaths in it
      digest     BLOB NOT NULL,
      box        BLOB NOT NULL
    );
    -- Objects buddies must drop; each buddy's cursor says how far it was told.
    CREATE TABLE IF NOT EXISTS meta_drops (
      seq  INTEGER PRIMARY KEY AUTOINCREMENT,
      kind INTEGER NOT NULL,
      key  INTEGER NOT NULL
    );
  `);
}

/**
 * Schema 3: metadata ships in segments. Release 0.2's log of objects a forget removed becomes
 * the drop log (same sequence numbers, so buddies' cursors stay right), and a host that shipped
 * before has every one of its per-inode objects dropped by its buddies once they hold a chain.
 */
export function moveToSegments(db: Db): void {
  createMetaTables(db);
  db.exec(`
    INSERT INTO meta_drops (seq, kind, key) SELECT seq, kind, key FROM pruned ORDER BY seq;
    DROP TABLE pruned;
  `);
  if (db.prepare('SELECT 1 FROM buddies LIMIT 1').get() !== undefined) logLegacyDrops(db);
}

/** Every per-inode and per-list object release 0.2 could have shipped of this tree, to drop. */
export function logLegacyDrops(db: Db): void {
  db.prepare(`INSERT INTO meta_drops (kind, key) SELECT DISTINCT ${LEGACY_INODE}, ino FROM inodes ORDER BY ino`).run();
  db.prepare(`INSERT INTO meta_drops (kind, key) SELECT ${LEGACY_CHUNK_LIST}, cl FROM clists ORDER BY cl`).run();
}

export class MetaLog {
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly sealer: MetaSealer,
    private readonly log: Log,
    /** The stripe map, whose new rows each delta carries too (hosts on rs:K+M). */
    private readonly stripes?: Stripes,
  ) {}

  /** Every page of the delta (a, b]: the tree's, then the stripe map's. */
  private *pages(a: number, b: number, size?: number): Generator<MetaPage> {
    yield* deltaPages(this.db, a, b, size);
    if (this.stripes) yield* this.stripes.pages(a, b, size);
  }

  chain(): SegmentInfo[] {
    return prepared<[], Omit<SegmentInfo, 'id'>>(
      this.db,
      'SELECT seq, from_epoch AS "from", to_epoch AS "to", digest, length(box) AS bytes, rows FROM meta_segments WHERE live = 1 ORDER BY seq',
    ).all().map((s) => ({ ...s, id: this.sealer.segmentId(s.seq) }));
  }

  /** The last epoch the chain covers (0: none). */
  top(): number {
    return (prepared(this.db, 'SELECT max(to_epoch) FROM meta_segments WHERE live = 1').pluck().get() as number | null) ?? 0;
  }

  /** The chain as a root block names it. */
  refs(chain = this.chain()): { format: number; segments: SegmentRef[] } {
    return { format: SEGMENT_FORMAT, segments: chain.map((s) => ({ seq: s.seq, from: s.from, to: s.to, digest: s.digest })) };
  }

  /** A live segment's sealed object, or null once a new base replaced it. */
  object(seq: number): SealedObject | null {
    const r = prepared<[number], { digest: Buffer; box: Buffer }>(this.db, 'SELECT digest, box FROM meta_segments WHERE seq = ? AND live = 1').get(seq);
    return r ? { id: this.sealer.segmentId(seq), digest: r.digest, box: r.box } : null;
  }

  /**
   * Makes the chain cover `epoch`: a delta from where it ends, or a new base when that is due.
   * One extension at a time; each yields to the event loop between pages (a base of a large
   * tree takes a while, and the folder is served from this thread).
   */
  extend(epoch: number): Promise<void> {
    const run = this.busy.then(() => this.build(epoch));
    this.busy = run.catch(() => {});
    return run;
  }

  private async build(epoch: number): Promise<void> {
    const db = this.db;
    prepared(db, 'DELETE FROM meta_segments WHERE live = 0').run();
    const chain = this.chain();
    const top = chain.at(-1)?.to ?? 0;
    if (top >= epoch) return;
    // Nothing changed since the chain's end: nothing to write (and no reason for a new base).
    if (chain.length > 0 && this.pages(top, epoch, 1).next().done) return;
    // Deltas that are mostly live data (a new tree copied in) make a base no smaller: weigh the
    // chain against the rows a new base would hold, not against the old base.
    const chainRows = chain.reduce((n, s) => n + s.rows, 0);
    const deltas = new Set(chain.filter((s) => s.from !== 0).map((s) => s.from)).size;
    const rebase = chain.length === 0 || chainRows >= MAX_WASTE * (baseRows(db, epoch) + (this.stripes?.count(epoch) ?? 0)) || deltas >= MAX_DELTAS;
    const from = rebase ? 0 : top;
    const compressor = SegmentBuilder.compressor();
    const nextSeq = prepared(db, "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'meta_segments'), 0) + 1").pluck();
    const put = prepared(db, 'INSERT INTO meta_segments (seq, from_epoch, to_epoch, live, rows, digest, box) VALUES (?, ?, ?, 0, ?, ?, ?)');
    let seq = nextSeq.get() as number;
    let builder: SegmentBuilder | null = null;
    const written: number[] = [];
    let bytes = 0;
    const flush = (): void => {
      if (!builder) return;
      const o = this.sealer.seal(seq, builder.body());
      put.run(seq, from, epoch, builder.rows, o.digest, o.box);
      written.push(seq);
      bytes += o.box.length;
      seq++;
      builder = null;
    };
    for (const page of this.pages(from, epoch)) {
      builder ??= new SegmentBuilder(compressor, { format: SEGMENT_FORMAT, seq, from, to: epoch });
      builder.add(page);
      if (builder.full()) flush();
      await new Promise<void>((r) => setImmediate(r));
    }
    flush();
    db.transaction(() => {
      prepared(db, 'UPDATE meta_segments SET live = 1 WHERE live = 0').run();
      if (!rebase) return;
      const old = prepared<[number], number>(db, 'SELECT seq FROM meta_segments WHERE live = 1 AND seq < ? ORDER BY seq').pluck().all(written[0] ?? seq);
      const drop = prepared(db, 'INSERT INTO meta_drops (kind, key) VALUES (?, ?)');
      for (const s of old) drop.run(DROP_SEGMENT, s);
      prepared(db, 'DELETE FROM meta_segments WHERE live = 1 AND seq < ?').run(written[0] ?? seq);
    }).immediate();
    this.log(`metadata ${rebase ? 'base' : 'delta'} (${from}, ${epoch}]: ${written.length} segments, ${bytes} bytes`);
  }

  /**
   * Recovery: the chain fetched back from a buddy becomes ours, so the next shipment is a delta
   * from it. Call inside the import's transaction.
   */
  adopt(ref: SegmentRef, box: Buffer, rows: number): void {
    prepared(this.db, 'INSERT OR REPLACE INTO meta_segments (seq, from_epoch, to_epoch, live, rows, digest, box) VALUES (?, ?, ?, 1, ?, ?, ?)')
      .run(ref.seq, ref.from, ref.to, rows, Buffer.from(ref.digest), box);
  }

  dropsHead(): number {
    return (prepared(this.db, "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'meta_drops'), 0)").pluck().get() as number) ?? 0;
  }

  /** Logs a dead stripe's shards for every buddy to drop; returns its place in the log. */
  logStripeDrop(stripe: number): number {
    return Number(prepared(this.db, 'INSERT INTO meta_drops (kind, key) VALUES (?, ?)').run(DROP_STRIPE, stripe).lastInsertRowid);
  }

  /**
   * What buddies must drop, logged after `seq` up to `upTo`, oldest first, as the buddy in
   * `slot` is told it: a dead stripe's shard is a chunk id, and nothing to a buddy of no slot.
   */
  dropsAfter(seq: number, upTo: number, limit: number, slot: number | null = null): Drop[] {
    return prepared<[number, number, number], { seq: number; kind: number; key: number }>(this.db, 'SELECT seq, kind, key FROM meta_drops WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?')
      .all(seq, upTo, limit)
      .map((d) => {
        if (d.kind === DROP_STRIPE) return { seq: d.seq, id: slot === null ? null : (this.stripes?.shardId(d.key, slot) ?? null), chunk: true };
        const id = d.kind === DROP_SEGMENT ? this.sealer.segmentId(d.key) : this.sealer.legacyId(d.kind as 0 | 1, d.key);
        return { seq: d.seq, id, chunk: false };
      });
  }

  /** Every buddy was told up to `upTo`. */
  drain(upTo: number): void {
    prepared(this.db, 'DELETE FROM meta_drops WHERE seq <= ?').run(upTo);
    this.stripes?.purge(upTo);
  }
}
