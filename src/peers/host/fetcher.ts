// Chunks back from buddies: for the recovery's background fetch, for reads of chunks that are
// not here (the mount is up before every chunk is back), for restores of such paths, and for
// good copies of chunks damaged here. Each box is checked against its id (the hash of the box)
// before it is stored; a buddy that serves a wrong one is flagged and the chunk asked of the
// next. Stored rows get the reference count the tree gives them, so garbage collection keeps
// them. A box in a stripe (rs:K+M) comes back with its whole stripe: shards from every holder
// at once, the first K that match their ids decoded, every box of the stripe stored.
import { boxId, handleDigest, hexId } from '../../chunkstore/sealer.js';
import type { ChunkRef, ChunkRow, ChunkStore, RemoteChunks } from '../../chunkstore/store.js';
import type { PackWriter } from '../../chunkstore/packs.js';
import { inReadTransaction } from '../../chunkstore/index-db.js';
import { referencesOf, refOfId, renameChunk } from '../../snapshot/records.js';
import { decodeStripe } from '../../redundancy/rs-codec.js';
import { STRIPE_OWNER, type Stripes } from '../metadata/stripes.js';
import type { PeerNode } from '../net/node.js';
import { RestoreClient } from './restore-client.js';
import type { Log } from '../../log/logger.js';

export interface FetcherOptions {
  node: PeerNode;
  store: ChunkStore;
  /** Where striped boxes lie (empty for a host on whole copies). */
  stripes: Stripes;
  /**
   * Peers that may hold our chunks: `buddies` hold them (callers spread their requests over
   * these), `others` are asked in order for what the buddies lack (former buddies, members).
   */
  holders: () => Holders;
  log: Log;
}

export interface FetchResult {
  fetched: number;
  /** Box bytes received and stored. */
  bytes: number;
  /** Asked for but given by nobody (or only with a bad tag). */
  missing: ChunkRef[];
  /** Holders that could not be asked (no connection, or it dropped): the missing may be there. */
  unreachable: string[];
}

/** Boxes appended to our pack by one fetch, their rows not committed yet. */
interface Received {
  rows: ChunkRow[];
  /** Release 0.1.0 ids and the box ids their chunks are stored under. */
  renamed: [Buffer, Buffer][];
  bytes: number;
}

export interface Holders {
  buddies: string[];
  others: string[];
}

const everyHolder = (h: Holders): string[] => [...h.buddies, ...h.others];

/** The ids of the first `n` refs still wanted. */
function firstIds(want: Map<string, ChunkRef>, n: number): Buffer[] {
  const ids: Buffer[] = [];
  for (const r of want.values()) {
    if (ids.length === n) break;
    ids.push(r.id);
  }
  return ids;
}

/** Requests in flight to one holder: one answer is being read while the next is prepared. */
export const STREAMS_PER_HOLDER = 2;
/** Starts for callers that name none: few enough to reuse streams, more than one holder. */
const TURNS = 8;

export class ChunkFetcher implements RemoteChunks {
  private readonly clients = new Map<string, Promise<RestoreClient | null>>();
  private writer: PackWriter | null = null;
  /** Peers that served a chunk failing its tag. */
  readonly flagged = new Set<string>();
  /** Callers that name no start take turns, so every holder is asked first now and then. */
  private turn = 0;
  /** When a holder last gave us a chunk (ms since the epoch), null before any did. */
  lastDelivery: number | null = null;
  /** Stripes being fetched now: callers wanting boxes of the same one wait for one fetch. */
  private readonly stripesInFlight = new Map<number, Promise<void>>();

  constructor(private readonly o: FetcherOptions) {}

  async fetch(refs: ChunkRef[]): Promise<number> {
    return (await this.fetchAll(refs)).fetched;
  }

  async repair(refs: ChunkRef[]): Promise<number> {
    const r = await this.fetchAll(refs, this.turn++ % TURNS, true);
    if (r.fetched > 0) this.o.log(`repaired ${r.fetched} damaged chunks from buddies${r.missing.length ? `; ${r.missing.length} could not be` : ''}`);
    return r.fetched;
  }

  /**
   * Fetches what of `refs` is not stored (with `repair`: good copies of chunks stored here
   * damaged), from the buddy `start` picks, then the other buddies, then the other holders.
   * Callers numbered 0, 1, 2... spread over the buddies first, then over each buddy's streams,
   * so that several requests are in flight to each (one stream answers one at a time).
   */
  async fetchAll(refs: ChunkRef[], start = this.turn++ % TURNS, repair = false): Promise<FetchResult> {
    const { store } = this.o;
    const want = new Map<string, ChunkRef>();
    inReadTransaction(store.db, () => {
      for (const r of refs) if (repair || !store.has(r.id)) want.set(r.id.toString('hex'), r);
    });
    const result: FetchResult = { fetched: 0, bytes: 0, missing: [], unreachable: [] };
    const h = this.o.holders();
    const [first, rest] = h.buddies.length > 0 ? [h.buddies, h.others] : [h.others, []];
    const slot = Math.floor(start / Math.max(1, first.length)) % STREAMS_PER_HOLDER;
    const order = [...first.map((_, k) => first[(start + k) % first.length]!), ...rest];
    await this.fetchStriped(want, everyHolder(h), slot, repair, result);
    const received: Received = { rows: [], renamed: [], bytes: 0 };
    try {
      for (const peer of order) {
        if (want.size === 0) break;
        const client = await this.client(peer, slot);
        if (!client) {
          result.unreachable.push(peer);
          continue;
        }
        // A page of answers is bounded in bytes: ask again until it gives nothing new.
        while (want.size > 0) {
          let got: { id: Buffer; box: Buffer }[];
          try {
            got = await client.chunks(firstIds(want, 1024));
          } catch (err) {
            this.o.log.warn(`fetching chunks from ${peer} failed: ${(err as Error).message}`);
            this.clients.delete(this.key(peer, slot));
            result.unreachable.push(peer);
            break;
          }
          const n = this.receive(peer, got, want, received);
          if (n > 0) this.lastDelivery = Date.now();
          if (n === 0) break;
        }
      }
    } finally {
      this.commit(received, repair);
    }
    result.fetched += received.rows.length;
    result.bytes += received.bytes;
    result.missing = [...want.values()];
    return result;
  }

  /**
   * A box is what its id says. Chunks named in metadata shipped by release 0.1.0 carry their old
   * id (a hash of the handle), which only the tag can confirm; they are stored under their box
   * id, and the tree's references follow. Boxes go into our pack as they come; their rows wait
   * for commit(). Returns how many were taken.
   */
  private receive(peer: string, got: { id: Buffer; box: Buffer }[], want: Map<string, ChunkRef>, into: Received): number {
    this.writer ??= this.o.store.newWriter();
    let n = 0;
    for (const { id, box } of got) {
      const key = id.toString('hex');
      const ref = want.get(key);
      if (!ref) continue;
      const real = boxId(box);
      const old = !real.equals(id);
      try {
        if (old && !id.equals(handleDigest(ref.handle))) throw new Error('box does not match its id');
        if (old) this.o.store.sealer.open(ref.handle, box, id);
      } catch {
        if (!this.flagged.has(peer)) this.o.log.warn(`${peer} served a box for chunk ${hexId(id)} that is not it: fetching it elsewhere`);
        this.flagged.add(peer);
        continue;
      }
      if (old) into.renamed.push([id, real]);
      into.rows.push({ id: real, handle: ref.handle, raw: 0, ...this.writer.append(real, box) });
      into.bytes += box.length;
      want.delete(key);
      n++;
    }
    return n;
  }

  /**
   * The received boxes durable in their pack, then their rows, with the references the tree
   * gives them, in one transaction per fetch: a recovery's pages of ~1,000 chunks each had an
   * fsync and a commit of their own, and rows in id order touch each page of the index once.
   */
  private commit(received: Received, repair: boolean): void {
    const { rows, renamed } = received;
    if (rows.length === 0) return;
    this.writer!.sync();
    rows.sort((a, b) => Buffer.compare(a.id, b.id));
    const { store } = this.o;
    const db = store.db;
    db.transaction(() => {
      if (repair) return store.relocate(rows);
      for (const [old, real] of renamed) renameChunk(db, old, real);
      for (const r of rows) Object.assign(r, referencesOf(db, r.id));
      store.insert(rows);
    }).immediate();
  }

  /** Fetches the stripes the striped boxes of `want` lie in, and takes them out of `want`. */
  private async fetchStriped(want: Map<string, ChunkRef>, holders: string[], slot: number, repair: boolean, result: FetchResult): Promise<void> {
    const stripes = new Set<number>();
    const striped: string[] = [];
    inReadTransaction(this.o.store.db, () => {
      for (const [key, r] of want) {
        const place = this.o.stripes.boxPlace(r.id);
        if (!place) continue;
        stripes.add(place.stripe);
        striped.push(key);
      }
    });
    const unreachable = new Set<string>();
    for (const stripe of stripes) {
      let run = this.stripesInFlight.get(stripe);
      if (!run || repair) {
        run = this.fetchStripe(stripe, want, holders, slot, repair, result, unreachable).finally(() => this.stripesInFlight.delete(stripe));
        if (!repair) this.stripesInFlight.set(stripe, run);
      }
      await run;
    }
    if (!repair) for (const key of striped) if (this.o.store.has(want.get(key)!.id)) want.delete(key);
    for (const p of unreachable) if (!result.unreachable.includes(p)) result.unreachable.push(p);
  }

  /** Every box of a stripe we lack, back from K of its shards (a shard to make again needs them). */
  async rebuildStripe(stripe: number): Promise<void> {
    const result: FetchResult = { fetched: 0, bytes: 0, missing: [], unreachable: [] };
    await this.fetchStripe(stripe, new Map(), everyHolder(this.o.holders()), this.turn++ % STREAMS_PER_HOLDER, false, result, new Set());
  }

  private async fetchStripe(
    stripe: number, want: Map<string, ChunkRef>, holders: string[], slot: number, repair: boolean, result: FetchResult, unreachable: Set<string>,
  ): Promise<void> {
    const { store } = this.o;
    const info = this.o.stripes.info(stripe);
    if (!info) return;
    const { k, m, shardSize } = info;
    const index = new Map(info.shards.map((id, i) => [id.toString('hex'), i]));
    const shards: (Buffer | null)[] = new Array<Buffer | null>(k + m).fill(null);
    let have = 0;
    // Every holder at once, each answering with the shard of its slot; the first k that match
    // their ids are enough (a holder that is away or slow is not waited for).
    await new Promise<void>((resolve) => {
      let pending = holders.length;
      const settle = (): void => {
        if (--pending === 0 || have >= k) resolve();
      };
      if (pending === 0) resolve();
      for (const peer of holders) {
        void (async () => {
          const client = await this.client(peer, slot);
          if (!client) return void unreachable.add(peer);
          let got: { id: Buffer; box: Buffer }[];
          try {
            got = await client.chunks(info.shards);
          } catch (err) {
            this.o.log.warn(`fetching shards from ${peer} failed: ${(err as Error).message}`);
            this.clients.delete(this.key(peer, slot));
            return void unreachable.add(peer);
          }
          for (const { id, box } of got) {
            const i = index.get(id.toString('hex'));
            if (i === undefined || shards[i]) continue;
            if (box.length !== shardSize || !boxId(box).equals(id)) {
              if (!this.flagged.has(peer)) this.o.log.warn(`${peer} served a shard of stripe ${stripe} that is not it: using the others`);
              this.flagged.add(peer);
              continue;
            }
            shards[i] = box;
            have++;
            result.bytes += box.length;
          }
        })().finally(settle);
      }
    });
    if (have < k) {
      this.o.log.warn(`stripe ${stripe}: ${have} of its ${k + m} shards could be fetched, ${k} are needed`);
      return;
    }
    const data = await decodeStripe(shards, k, m, info.length);
    const rows: ChunkRow[] = [];
    this.writer ??= store.newWriter();
    for (const b of this.o.stripes.boxesOf(stripe)) {
      const key = b.id.toString('hex');
      const wanted = want.get(key);
      if (repair ? !wanted : store.has(b.id)) continue;
      const box = data.subarray(b.off, b.off + b.len);
      if (!boxId(box).equals(b.id)) {
        this.o.log.error(`stripe ${stripe} decodes to a box that is not ${hexId(b.id)}: the stripe map or the shards are damaged`);
        continue;
      }
      const ref = wanted ?? refOfId(store.db, b.id);
      rows.push({ id: b.id, handle: ref?.handle ?? null, raw: 0, ...this.writer.append(b.id, box) });
    }
    if (rows.length === 0) return;
    this.writer.sync();
    const db = store.db;
    db.transaction(() => {
      if (repair) return store.relocate(rows);
      for (const r of rows) if (r.handle) Object.assign(r, referencesOf(db, r.id));
      store.insert(rows);
      for (const r of rows) store.holdFor(STRIPE_OWNER, r.id);
    }).immediate();
    this.lastDelivery = Date.now();
    result.fetched += rows.filter((r) => want.has(r.id.toString('hex'))).length;
    if (repair) for (const r of rows) want.delete(r.id.toString('hex'));
  }

  private key(peer: string, slot: number): string {
    return `${peer}/${slot}`;
  }

  private client(peer: string, slot: number): Promise<RestoreClient | null> {
    const key = this.key(peer, slot);
    let c = this.clients.get(key);
    if (!c) {
      c = RestoreClient.open(this.o.node, peer, AbortSignal.timeout(15_000)).catch((err: Error) => {
        this.o.log.warn(`cannot reach ${peer} for chunks: ${err.message}`);
        this.clients.delete(key);
        return null;
      });
      this.clients.set(key, c);
    }
    return c;
  }

  async close(): Promise<void> {
    this.writer?.seal();
    this.writer = null;
    const all = [...this.clients.values()];
    this.clients.clear();
    for (const c of all) await (await c)?.close();
  }
}
