// Stripes: with redundancy rs:K+M, what a host ships is not its chunk boxes but Reed-Solomon
// shards of stripes of them. A stripe is up to K x 1 MiB of boxes laid end to end (zero
// padded), coded into K data and M parity shards; shard j of every stripe goes to the buddy in
// slot j. A shard is an opaque blob named by its hash, like a box: buddies store, audit and
// serve shards with the chunk machinery and cannot tell one from the other.
//
// The host keeps the stripe map (which box sits where, each shard's id) in its index; it ships
// in the metadata chain (pages of kind 'stripes'), so a recovery knows where every box is and
// rebuilds a stripe from any K shards. Shards are not kept here: they are computed again from
// our own boxes when a buddy lacks one (an LRU of recently coded stripes serves the K+M
// shipments of one snapshot). The boxes of a stripe are held (owner 0 in owner_refs) so
// garbage collection keeps what a lost shard is rebuilt from.
import { LRUCache } from 'lru-cache';
import { boxId } from '../../chunkstore/sealer.js';
import type { ChunkStore } from '../../chunkstore/store.js';
import { prepared, type Db } from '../../chunkstore/index-db.js';
import { listIds, listsBornIn, refOfId } from '../../snapshot/records.js';
import { encodeStripe } from '../../redundancy/rs-codec.js';
import { MAX_CHUNK_BOX } from '../wire/protocol.js';

/** Our own stripes' hold on their boxes, beside buddy clients' owner numbers (1 and up). */
export const STRIPE_OWNER = 0;
/** Largest shard: it travels as one chunk box. */
export const SHARD_MAX = MAX_CHUNK_BOX;
const ID = 32;
const CACHE_BYTES = 96 * 1024 * 1024;

export interface StripeBox {
  id: Buffer;
  off: number;
  len: number;
}

export interface StripeRow {
  stripe: number;
  /** The snapshot epoch whose shipment made it. */
  epoch: number;
  k: number;
  m: number;
  shardSize: number;
  /** Bytes of boxes in it (the rest of the K shards is padding). */
  length: number;
  /** K + M shard ids, 32 bytes each, shard 0 first. */
  shards: Buffer;
  boxes: StripeBox[];
}

export type StripePage = { kind: 'stripes'; rows: StripeRow[] } | { kind: 'stripeDeaths'; rows: { stripe: number; died: number }[] };

/**
 * A stripe whose live boxes fill less than this share of it is made again from them (its old
 * shards dropped), like pack compaction: dead data costs buddies at most about as much again.
 */
export const RESTRIPE_BELOW = 0.5;

export function createStripeTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS stripes (
      stripe     INTEGER PRIMARY KEY,
      epoch      INTEGER NOT NULL,
      k          INTEGER NOT NULL,
      m          INTEGER NOT NULL,
      shard_size INTEGER NOT NULL,
      length     INTEGER NOT NULL,
      died       INTEGER,          -- the shipment epoch that found it dead (or re-striped it)
      drop_seq   INTEGER           -- its shards' place in the drop log, once every buddy got past its death
    );
    CREATE INDEX IF NOT EXISTS stripes_by_epoch ON stripes (epoch, stripe);
    CREATE TABLE IF NOT EXISTS stripe_boxes (
      id     BLOB PRIMARY KEY,
      stripe INTEGER NOT NULL,
      off    INTEGER NOT NULL,
      len    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS stripe_boxes_by_stripe ON stripe_boxes (stripe, off);
    CREATE TABLE IF NOT EXISTS stripe_shards (
      slot   INTEGER NOT NULL,
      id     BLOB NOT NULL,
      stripe INTEGER NOT NULL,
      PRIMARY KEY (slot, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS stripe_shards_by_stripe ON stripe_shards (stripe, slot);
    -- 'upto': every box of the state at this epoch is in a stripe; 'released': how far the log
    -- of released boxes was read for dead stripes.
    CREATE TABLE IF NOT EXISTS stripe_marks (
      k TEXT PRIMARY KEY,
      v INTEGER NOT NULL
    );
  `);
}

/** The metadata chain, as striping sees it: how far it reaches, and making it reach further. */
export interface MetaCover {
  top(): number;
  extend(epoch: number): Promise<void>;
}

export interface StripeInfo {
  stripe: number;
  k: number;
  m: number;
  shardSize: number;
  length: number;
  /** Shard ids, slot order. */
  shards: Buffer[];
}

export class Stripes {
  private readonly db: Db;
  private readonly coded = new LRUCache<number, Buffer[]>({
    maxSize: CACHE_BYTES,
    sizeCalculation: (shards) => shards.reduce((n, s) => n + s.length, 0),
  });
  /** Stripes being coded now: the shipments asking for the same one wait for one coding. */
  private readonly coding = new Map<number, Promise<Buffer[]>>();
  private busy: Promise<unknown> = Promise.resolve();
  /**
   * Brings a stripe's missing boxes back from K of its shards at the buddies (the fetcher):
   * how a shard is made again when a box of its stripe is gone here too.
   */
  rebuild: ((stripe: number) => Promise<void>) | null = null;

  constructor(private readonly store: ChunkStore) {
    this.db = store.db;
  }

  /**
   * Stripes every box the state at `epoch` names that no stripe holds yet, as k+m, then has
   * `meta` cover `epoch`, in one step: what the stripe map changed goes into the metadata delta
   * of that epoch. Stripes the deletions since the last run killed die (and their live boxes
   * are striped again) only when `meta` does not cover `epoch` yet: a death or a new stripe
   * after the delta was written (a shipment of the same epoch again, after a forget) would be
   * in no delta, and a recovery would look for shards the buddies dropped. One run at a time
   * (the shipments to all buddies of one snapshot ask together). Returns the stripes made and
   * how far the log of released boxes was read (buddies on stripes are told no further).
   */
  stripeAndExtend(epoch: number, k: number, m: number, meta: MetaCover): Promise<{ made: number; released: number }> {
    const run = this.busy.then(async () => {
      const r = await this.make(epoch, k, m, meta.top() < epoch);
      await meta.extend(epoch);
      return r;
    });
    this.busy = run.catch(() => {});
    return run;
  }

  private mark(k: string): number {
    return prepared<[string], number>(this.db, 'SELECT v FROM stripe_marks WHERE k = ?').pluck().get(k) ?? 0;
  }

  /** Every box of the state at `epoch` is striped (a recovery imported the stripe map of it). */
  markStriped(epoch: number): void {
    prepared(this.db, 'INSERT OR REPLACE INTO stripe_marks (k, v) VALUES (?, ?)').run('upto', epoch);
  }

  private async make(epoch: number, k: number, m: number, retire: boolean): Promise<{ made: number; released: number }> {
    const db = this.db;
    // The log of released boxes is read only by a retiring run: buddies are told (and the log
    // drained) no further than the last one read.
    const released = retire ? this.store.releasedHead() : this.mark('released');
    const { dying, again } = retire ? this.dying() : { dying: [], again: [] };
    const striped = prepared<[Buffer], number>(db, 'SELECT 1 FROM stripe_boxes WHERE id = ?').pluck();
    const limit = k * SHARD_MAX;
    let made = 0;
    let boxes: { id: Buffer; box: Buffer }[] = [];
    let length = 0;
    const batch = new Set<string>();
    const flush = async (): Promise<void> => {
      if (boxes.length === 0) return;
      const bytes = Buffer.concat(boxes.map((b) => b.box), length);
      const shards = await encodeStripe(bytes, k, m);
      const ids = shards.map((s) => boxId(s));
      const laid: StripeBox[] = [];
      let off = 0;
      for (const b of boxes) {
        laid.push({ id: b.id, off, len: b.box.length });
        off += b.box.length;
      }
      const stripe = db.transaction(() => {
        const n = Number(prepared(db, 'INSERT INTO stripes (epoch, k, m, shard_size, length) VALUES (?, ?, ?, ?, ?)').run(epoch, k, m, shards[0]!.length, length).lastInsertRowid);
        this.insertLayout(n, ids, laid);
        for (const b of laid) this.store.holdFor(STRIPE_OWNER, b.id);
        return n;
      }).immediate();
      this.coded.set(stripe, shards);
      made++;
      boxes = [];
      length = 0;
      batch.clear();
    };
    const add = async (id: Buffer, again = false): Promise<void> => {
      const key = id.toString('latin1');
      if (batch.has(key) || (!again && striped.get(id))) return;
      let box: Buffer;
      try {
        box = this.store.readBox(id);
      } catch {
        return; // collected since the snapshot: no longer needed
      }
      if (length + box.length > limit) await flush();
      batch.add(key);
      boxes.push({ id, box });
      length += box.length;
    };
    // The live boxes of stripes about to die, then the files written since the last run, file
    // by file: what is deleted together (a file, a directory written at once) tends to die as
    // whole stripes. The old stripes die only once their live boxes are in new ones: a crash
    // in between leaves them alive, never a live box in no stripe.
    for (const id of again) await add(id, true);
    const upto = this.mark('upto');
    for (let after = 0; upto < epoch; ) {
      const lists = listsBornIn(db, upto, epoch, after, 256);
      if (lists.length === 0) break;
      after = lists[lists.length - 1]!;
      for (const cl of lists) for (const id of listIds(db, cl)) await add(id);
    }
    await flush();
    this.kill(dying, epoch);
    if (upto < epoch) this.markStriped(epoch);
    if (retire) prepared(db, 'INSERT OR REPLACE INTO stripe_marks (k, v) VALUES (?, ?)').run('released', released);
    return { made, released };
  }

  /**
   * Stripes no snapshot needs any more, or mostly dead ones, and the live boxes of those (to
   * be striped again). Only stripes holding a box released since the log was last drained can
   * have died.
   */
  private dying(): { dying: number[]; again: Buffer[] } {
    const db = this.db;
    const suspects = new Set<number>();
    for (let seq = 0; ; ) {
      const page = this.store.releasedAfter(seq, 4096);
      if (page.length === 0) break;
      seq = page[page.length - 1]!.seq;
      for (const r of page) {
        const at = this.boxPlace(r.id);
        if (at) suspects.add(at.stripe);
      }
    }
    const alive = prepared<[number], { length: number }>(db, 'SELECT length FROM stripes WHERE stripe = ? AND died IS NULL');
    const again: Buffer[] = [];
    const dying: number[] = [];
    for (const st of suspects) {
      const t = alive.get(st);
      if (!t) continue;
      const live = this.boxesOf(st).filter((b) => refOfId(db, b.id) !== undefined);
      if (live.reduce((n, b) => n + b.len, 0) >= RESTRIPE_BELOW * t.length) continue;
      // Made again only from boxes we have: one still being fetched back keeps its stripe.
      if (live.some((b) => !this.store.has(b.id))) continue;
      dying.push(st);
      again.push(...live.map((b) => b.id));
    }
    return { dying, again };
  }

  /**
   * These stripes die at `epoch`: their boxes (those no new stripe took over) are no longer
   * held for them, so garbage collection frees the dead ones; their shards are dropped from
   * buddies later (logDrops).
   */
  private kill(stripes: number[], epoch: number): void {
    if (stripes.length === 0) return;
    const db = this.db;
    const died = prepared(db, 'UPDATE stripes SET died = ? WHERE stripe = ?');
    const unlay = prepared(db, 'DELETE FROM stripe_boxes WHERE stripe = ?');
    db.transaction(() => {
      for (const st of stripes) {
        for (const b of this.boxesOf(st)) this.store.dropFor(STRIPE_OWNER, b.id);
        unlay.run(st);
        died.run(epoch, st);
        this.coded.delete(st);
      }
    }).immediate();
  }

  /**
   * Dead stripes every buddy has committed a state without: their shards join the drop log
   * (`log` appends and returns the sequence number). Until then a buddy behind still needs them.
   */
  logDrops(committedByAll: number, log: (stripe: number) => number): void {
    const db = this.db;
    const due = prepared<[number], number>(db, 'SELECT stripe FROM stripes WHERE died IS NOT NULL AND died <= ? AND drop_seq IS NULL ORDER BY stripe').pluck().all(committedByAll);
    if (due.length === 0) return;
    const set = prepared(db, 'UPDATE stripes SET drop_seq = ? WHERE stripe = ?');
    db.transaction(() => {
      for (const st of due) set.run(log(st), st);
    }).immediate();
  }

  /** Every buddy was told to drop what the log holds up to `upTo`: those stripes are gone. */
  purge(upTo: number): void {
    const db = this.db;
    prepared(db, 'DELETE FROM stripe_shards WHERE stripe IN (SELECT stripe FROM stripes WHERE drop_seq <= ?)').run(upTo);
    prepared(db, 'DELETE FROM stripes WHERE drop_seq <= ?').run(upTo);
  }

  /** Slot `slot`'s shard of a stripe. */
  shardId(stripe: number, slot: number): Buffer | undefined {
    return prepared<[number, number], Buffer>(this.db, 'SELECT id FROM stripe_shards WHERE stripe = ? AND slot = ?').pluck().get(stripe, slot);
  }

  private insertLayout(stripe: number, shardIds: Buffer[], boxes: StripeBox[]): void {
    const putBox = prepared(this.db, 'INSERT OR REPLACE INTO stripe_boxes (id, stripe, off, len) VALUES (?, ?, ?, ?)');
    const putShard = prepared(this.db, 'INSERT OR REPLACE INTO stripe_shards (slot, id, stripe) VALUES (?, ?, ?)');
    for (const b of boxes) putBox.run(b.id, stripe, b.off, b.len);
    shardIds.forEach((id, slot) => putShard.run(slot, id, stripe));
  }

  /**
   * Slot `slot`'s shards of stripes made after epoch `base`, in stripe order from stripe `after`
   * on: the K+M shipments of one snapshot walk the stripes in step, so each is coded once.
   */
  shardsAfter(slot: number, base: number, after: number, limit: number): { stripe: number; id: Buffer }[] {
    return prepared<[number, number, number, number], { stripe: number; id: Buffer }>(
      this.db,
      `SELECT s.stripe, s.id FROM stripe_shards s JOIN stripes t ON t.stripe = s.stripe
        WHERE s.slot = ? AND s.stripe > ? AND t.epoch > ? AND t.died IS NULL ORDER BY s.stripe LIMIT ?`,
    ).all(slot, after, base, limit);
  }

  /** How many shards shardsAfter pages through from the start. */
  shardCount(slot: number, base: number): number {
    return prepared<[number, number], number>(
      this.db,
      'SELECT count(*) FROM stripe_shards s JOIN stripes t ON t.stripe = s.stripe WHERE s.slot = ? AND t.epoch > ? AND t.died IS NULL',
    ).pluck().get(slot, base) ?? 0;
  }

  /**
   * Ids of slot `slot`'s shards of stripes made by epoch `s` that its holder was not yet told
   * to drop (drop log up to `dropped`), in id order: what the holder should list.
   */
  shardIdsUpTo(slot: number, s: number, dropped: number, after: Buffer, limit: number): Buffer[] {
    return prepared<[number, Buffer, number, number, number], Buffer>(
      this.db,
      `SELECT h.id FROM stripe_shards h JOIN stripes t ON t.stripe = h.stripe
        WHERE h.slot = ? AND h.id > ? AND t.epoch <= ? AND (t.drop_seq IS NULL OR t.drop_seq > ?) ORDER BY h.id LIMIT ?`,
    ).pluck().all(slot, after, s, dropped, limit);
  }

  /** Up to `n` stripes made by epoch `s`, at random: one audit round challenges every slot's shard of them. */
  sample(n: number, s: number): number[] {
    return prepared<[number, number], number>(this.db, 'SELECT stripe FROM stripes WHERE epoch <= ? AND died IS NULL ORDER BY random() LIMIT ?').pluck().all(s, n);
  }

  /** Slot `slot`'s shard ids of these stripes (those made by epoch `s`). */
  shardsIn(stripes: number[], slot: number, s: number): Buffer[] {
    const q = prepared<[number, number, number], Buffer>(
      this.db,
      'SELECT h.id FROM stripe_shards h JOIN stripes t ON t.stripe = h.stripe WHERE h.stripe = ? AND h.slot = ? AND t.epoch <= ?',
    ).pluck();
    return stripes.flatMap((st) => q.all(st, slot, s));
  }

  /** The stripe a box lies in, and where. */
  boxPlace(id: Uint8Array): { stripe: number; off: number; len: number } | undefined {
    return prepared<[Uint8Array], { stripe: number; off: number; len: number }>(this.db, 'SELECT stripe, off, len FROM stripe_boxes WHERE id = ?').get(id);
  }

  info(stripe: number): StripeInfo | undefined {
    const s = prepared<[number], { k: number; m: number; shardSize: number; length: number }>(
      this.db,
      'SELECT k, m, shard_size AS shardSize, length FROM stripes WHERE stripe = ?',
    ).get(stripe);
    if (!s) return undefined;
    const shards = prepared<[number], Buffer>(this.db, 'SELECT id FROM stripe_shards WHERE stripe = ? ORDER BY slot').pluck().all(stripe);
    return { stripe, ...s, shards };
  }

  boxesOf(stripe: number): StripeBox[] {
    return prepared<[number], StripeBox>(this.db, 'SELECT id, off, len FROM stripe_boxes WHERE stripe = ? ORDER BY off').all(stripe);
  }

  /** A shard of ours, coded again from our boxes; null when it is not ours or a box is gone. */
  async shard(id: Uint8Array): Promise<Buffer | null> {
    const at = prepared<[Uint8Array], { slot: number; stripe: number }>(this.db, 'SELECT slot, stripe FROM stripe_shards WHERE id = ? LIMIT 1').get(id);
    if (!at) return null;
    const cached = this.coded.get(at.stripe);
    if (cached) return cached[at.slot] ?? null;
    let coding = this.coding.get(at.stripe);
    if (!coding) {
      coding = this.code(at.stripe).finally(() => this.coding.delete(at.stripe));
      this.coding.set(at.stripe, coding);
    }
    try {
      const shards = await coding;
      this.coded.set(at.stripe, shards);
      return shards[at.slot] ?? null;
    } catch {
      return null;
    }
  }

  private async code(stripe: number): Promise<Buffer[]> {
    const s = this.info(stripe)!;
    const bytes = Buffer.alloc(s.length);
    const boxes = this.boxesOf(stripe);
    // A dead stripe has no layout left: its shards cannot be made again, only dropped.
    if (boxes.reduce((n, b) => n + b.len, 0) !== s.length) throw new Error(`stripe ${stripe} is no longer laid out here`);
    if (this.rebuild && boxes.some((b) => !this.store.has(b.id))) await this.rebuild(stripe);
    for (const b of boxes) this.store.readBox(b.id).copy(bytes, b.off);
    const shards = await encodeStripe(bytes, s.k, s.m);
    if (shards[0]!.length !== s.shardSize) throw new Error(`stripe ${stripe} codes to shards of ${shards[0]!.length} bytes, not ${s.shardSize}`);
    return shards;
  }

  /**
   * The stripe map's change in epochs (a, b], a page at a time: stripes made in it and still
   * alive at b, then the deaths in it of stripes made by a. What the metadata chain carries.
   */
  *pages(a: number, b: number, size = 256): Generator<StripePage> {
    const db = this.db;
    const born = prepared<[number, number, number, number, number], Omit<StripeRow, 'shards' | 'boxes'>>(
      db,
      `SELECT stripe, epoch, k, m, shard_size AS shardSize, length FROM stripes
        WHERE epoch > ? AND epoch <= ? AND (died IS NULL OR died > ?) AND stripe > ? ORDER BY stripe LIMIT ?`,
    );
    for (let after = 0; ; ) {
      const rows = born.all(a, b, b, after, size);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.stripe;
      yield {
        kind: 'stripes',
        rows: rows.map((r) => ({ ...r, shards: Buffer.concat(this.info(r.stripe)!.shards), boxes: this.boxesOf(r.stripe) })),
      };
    }
    const dead = prepared<[number, number, number, number, number], { stripe: number; died: number }>(
      db,
      'SELECT stripe, died FROM stripes WHERE died > ? AND died <= ? AND epoch <= ? AND stripe > ? ORDER BY stripe LIMIT ?',
    );
    for (let after = 0; ; ) {
      const rows = dead.all(a, b, a, after, size * 16);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.stripe;
      yield { kind: 'stripeDeaths', rows };
    }
  }

  /** Stripes made by `s`: the rows a base of the chain at s carries. */
  count(s: number): number {
    return prepared<[number, number], number>(this.db, 'SELECT count(*) FROM stripes WHERE epoch <= ? AND (died IS NULL OR died > ?)').pluck().get(s, s) ?? 0;
  }

  /** Recovery: a page of the stripe map fetched back. Call inside the import's transaction. */
  importPage(page: StripePage): void {
    if (page.kind === 'stripeDeaths') {
      for (const r of page.rows) {
        prepared(this.db, 'DELETE FROM stripe_boxes WHERE stripe = ?').run(r.stripe);
        prepared(this.db, 'DELETE FROM stripe_shards WHERE stripe = ?').run(r.stripe);
        prepared(this.db, 'DELETE FROM stripes WHERE stripe = ?').run(r.stripe);
      }
      return;
    }
    const put = prepared(this.db, 'INSERT OR REPLACE INTO stripes (stripe, epoch, k, m, shard_size, length) VALUES (?, ?, ?, ?, ?, ?)');
    for (const r of page.rows) {
      put.run(r.stripe, r.epoch, r.k, r.m, r.shardSize, r.length);
      const ids = Array.from({ length: r.k + r.m }, (_, i) => r.shards.subarray(i * ID, (i + 1) * ID));
      this.insertLayout(r.stripe, ids, r.boxes);
    }
  }

  /**
   * Recovery, once the tree is cut to the kept snapshots: stripes none of whose boxes the tree
   * names are history (a forget, a re-striping the chain did not carry yet); they go, and a
   * buddy's copy of their shards is surplus to the next reconciliation.
   */
  dropUnnamed(): number {
    const db = this.db;
    const page = prepared<[number], number>(db, 'SELECT stripe FROM stripes WHERE stripe > ? ORDER BY stripe LIMIT 256').pluck();
    const dead: number[] = [];
    for (let after = 0; ; ) {
      const stripes = page.all(after);
      if (stripes.length === 0) break;
      after = stripes[stripes.length - 1]!;
      for (const st of stripes) if (!this.boxesOf(st).some((b) => refOfId(db, b.id) !== undefined)) dead.push(st);
    }
    for (const st of dead) {
      prepared(db, 'DELETE FROM stripe_boxes WHERE stripe = ?').run(st);
      prepared(db, 'DELETE FROM stripe_shards WHERE stripe = ?').run(st);
      prepared(db, 'DELETE FROM stripes WHERE stripe = ?').run(st);
    }
    return dead.length;
  }
}
