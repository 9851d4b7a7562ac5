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
import { boxId } from '../chunkstore/sealer.js';
import type { ChunkStore } from '../chunkstore/store.js';
import { prepared, type Db } from '../chunkstore/index-db.js';
import { idsUpTo } from '../snapshot/records.js';
import { encodeStripe } from '../redundancy/rs-codec.js';
import { MAX_CHUNK_BOX } from './protocol.js';

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

export interface StripePage {
  kind: 'stripes';
  rows: StripeRow[];
}

export function createStripeTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS stripes (
      stripe     INTEGER PRIMARY KEY,
      epoch      INTEGER NOT NULL,
      k          INTEGER NOT NULL,
      m          INTEGER NOT NULL,
      shard_size INTEGER NOT NULL,
      length     INTEGER NOT NULL
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
  `);
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

  constructor(private readonly store: ChunkStore) {
    this.db = store.db;
  }

  /**
   * Stripes every box the state at `epoch` names that no stripe holds yet, as k+m. One run at
   * a time (the shipments to all buddies of one snapshot ask together). Returns stripes made.
   */
  stripeUpTo(epoch: number, k: number, m: number): Promise<number> {
    const run = this.busy.then(() => this.make(epoch, k, m));
    this.busy = run.catch(() => {});
    return run;
  }

  private async make(epoch: number, k: number, m: number): Promise<number> {
    const db = this.db;
    const striped = prepared<[Buffer], number>(db, 'SELECT 1 FROM stripe_boxes WHERE id = ?').pluck();
    const limit = k * SHARD_MAX;
    let made = 0;
    let boxes: { id: Buffer; box: Buffer }[] = [];
    let length = 0;
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
    };
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const page = idsUpTo(db, epoch, after, 1024);
      if (page.length === 0) break;
      after = page[page.length - 1]!;
      for (const id of page) {
        if (striped.get(id)) continue;
        let box: Buffer;
        try {
          box = this.store.readBox(id);
        } catch {
          continue; // collected since the snapshot: no longer needed
        }
        if (length + box.length > limit) await flush();
        boxes.push({ id, box });
        length += box.length;
      }
    }
    await flush();
    return made;
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
        WHERE s.slot = ? AND s.stripe > ? AND t.epoch > ? ORDER BY s.stripe LIMIT ?`,
    ).all(slot, after, base, limit);
  }

  /** Ids of slot `slot`'s shards of stripes made by epoch `s`, in id order: what its holder should list. */
  shardIdsUpTo(slot: number, s: number, after: Buffer, limit: number): Buffer[] {
    return prepared<[number, Buffer, number, number], Buffer>(
      this.db,
      `SELECT h.id FROM stripe_shards h JOIN stripes t ON t.stripe = h.stripe
        WHERE h.slot = ? AND h.id > ? AND t.epoch <= ? ORDER BY h.id LIMIT ?`,
    ).pluck().all(slot, after, s, limit);
  }

  /** Up to `n` stripes made by epoch `s`, at random: one audit round challenges every slot's shard of them. */
  sample(n: number, s: number): number[] {
    return prepared<[number, number], number>(this.db, 'SELECT stripe FROM stripes WHERE epoch <= ? ORDER BY random() LIMIT ?').pluck().all(s, n);
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
    for (const b of this.boxesOf(stripe)) this.store.readBox(b.id).copy(bytes, b.off);
    const shards = await encodeStripe(bytes, s.k, s.m);
    if (shards[0]!.length !== s.shardSize) throw new Error(`stripe ${stripe} codes to shards of ${shards[0]!.length} bytes, not ${s.shardSize}`);
    return shards;
  }

  /** The stripe map's rows made in epochs (a, b], a page at a time: what the metadata chain carries. */
  *pages(a: number, b: number, size = 256): Generator<StripePage> {
    const db = this.db;
    const page = prepared<[number, number, number, number], Omit<StripeRow, 'shards' | 'boxes'>>(
      db,
      `SELECT stripe, epoch, k, m, shard_size AS shardSize, length FROM stripes
        WHERE epoch > ? AND epoch <= ? AND stripe > ? ORDER BY stripe LIMIT ?`,
    );
    for (let after = 0; ; ) {
      const rows = page.all(a, b, after, size);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.stripe;
      yield {
        kind: 'stripes',
        rows: rows.map((r) => ({ ...r, shards: Buffer.concat(this.info(r.stripe)!.shards), boxes: this.boxesOf(r.stripe) })),
      };
    }
  }

  /** Stripes made by `s`: the rows a base of the chain at s carries. */
  count(s: number): number {
    return prepared<[number], number>(this.db, 'SELECT count(*) FROM stripes WHERE epoch <= ?').pluck().get(s) ?? 0;
  }

  /** Recovery: a page of the stripe map fetched back. Call inside the import's transaction. */
  importPage(page: StripePage): void {
    const put = prepared(this.db, 'INSERT OR REPLACE INTO stripes (stripe, epoch, k, m, shard_size, length) VALUES (?, ?, ?, ?, ?, ?)');
    for (const r of page.rows) {
      put.run(r.stripe, r.epoch, r.k, r.m, r.shardSize, r.length);
      const ids = Array.from({ length: r.k + r.m }, (_, i) => r.shards.subarray(i * ID, (i + 1) * ID));
      this.insertLayout(r.stripe, ids, r.boxes);
    }
  }

  /** After a recovery brought the boxes back: our stripes hold theirs again. */
  holdStored(): void {
    const db = this.db;
    const page = prepared<[Buffer], Buffer>(db, 'SELECT id FROM stripe_boxes WHERE id > ? ORDER BY id LIMIT 4096').pluck();
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const ids = page.all(after);
      if (ids.length === 0) return;
      db.transaction(() => {
        for (const id of ids) this.store.holdFor(STRIPE_OWNER, id);
      }).immediate();
      after = ids[ids.length - 1]!;
    }
  }
}
