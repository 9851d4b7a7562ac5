// The host side of /safe/backup/1: ships the state at one snapshot epoch to one buddy. What to
// send is worked out against the buddy's cursor (the epoch it last committed, and how far it
// was told of the delete-set and drop logs): an incremental shipment costs what changed. The
// metadata is the chain of segments (meta-log.ts), offered whole: the buddy takes what it lacks.
// With rs:K+M the data is not our boxes but this buddy's slot's shard of each stripe
// (stripes.ts), coded again from our boxes when it lacks one.
// The buddy names what it lacks at every step, so an interrupted shipment resumes without
// sending anything twice that reached its disk.
import { createHash } from 'node:crypto';
import { encode, type Value } from '../wire/canonical.js';
import { hexId } from '../../chunkstore/sealer.js';
import type { ChunkStore, Location } from '../../chunkstore/store.js';
import { BufferPool } from '../../chunkstore/buffer-pool.js';
import type { Db } from '../../chunkstore/index-db.js';
import { addSet } from '../../snapshot/changes.js';
import { countUpTo, idsUpTo, unchunkedUpTo } from '../../snapshot/records.js';
import { openChannel, type Channel, type MessageOf } from '../wire/messages.js';
import type { PeerNode } from '../net/node.js';
import { BACKUP_MAX_FRAME, BACKUP_PROTOCOL, IDS_PER_MESSAGE, SIGNED, buddyMessages, hostMessages } from '../wire/protocol.js';
import { boxDigest, sealRootBlock, type RootBlock, type SealedObject } from '../metadata/sealed-objects.js';
import type { MetaLog } from '../metadata/meta-log.js';
import type { Signer } from '../wire/signing.js';
import type { Stripes } from '../metadata/stripes.js';
import type { Log } from '../../log/logger.js';

type HostMsg = MessageOf<typeof hostMessages.shapes>;
type BuddyMsg = MessageOf<typeof buddyMessages.shapes>;

export interface BuddyCursor {
  /** Epoch the buddy last committed for us (0: nothing). */
  epoch: number;
  releasedSeq: number;
  droppedSeq: number;
  /**
   * Digest of the snapshot list in the root block it committed: a forget that released no
   * chunk changes only that list, and must still reach the buddy (else a recovery brings the
   * forgotten snapshots back). Null: not known (a buddy from before schema 5).
   */
  snapshots: string | null;
}

/** What names a root block's snapshot list, for BuddyCursor.snapshots. */
export function snapshotsDigest(root: RootBlock): string {
  return createHash('sha256').update(encode(root.snapshots as unknown as Value)).digest('hex');
}

export interface ShipContext {
  db: Db;
  store: ChunkStore;
  node: PeerNode;
  signer: Signer;
  meta: MetaLog;
  rootKey: Uint8Array;
  locator: string;
  offer: number;
  log: Log;
  /** rs:K+M: what ships is shards of stripes, not boxes (stripes.ts). */
  striping?: { stripes: Stripes; k: number; m: number };
}

export interface ShipReport {
  peer: string;
  epoch: number;
  /** True when the buddy got everything (first shipment, or it lost track of us). */
  full: boolean;
  /**
   * The buddy had already committed this epoch: nothing was sent now. The replicator then
   * reports the shipment that brought it there, with this set, so its figures are not taken
   * for new ones.
   */
  already: boolean;
  chunksOffered: number;
  chunksSent: number;
  chunkBytes: number;
  objectsSent: number;
  objectBytes: number;
  deletes: number;
  /** Payload bytes of every message sent (ids, boxes, signatures), without framing. */
  bytes: number;
  ms: number;
  /** When the shipment ended (ms since the epoch); 0 for one that found nothing to send. */
  endedAt: number;
  cursor: BuddyCursor;
}

/** The buddy said no (full, unfair, forged): choose another; not worth retrying soon. */
export class BuddyRefusedError extends Error {
  override name = 'BuddyRefusedError';
}

const CHUNK_BATCH_BYTES = 4 * 1024 * 1024;
const OBJECT_BATCH_BYTES = 4 * 1024 * 1024;
/** Messages in flight before we wait for the first answer: keeps the pipe full over fsyncs. */
const PIPELINE = 4;
const NO_BUFFER = Buffer.alloc(0);

/** Sends requests ahead of their answers, up to PIPELINE at once; the buddy answers in order. */
class Pipe {
  /** Per message sent and not yet answered, what to run with its answer (or nothing). */
  private readonly outstanding: (((r: BuddyMsg) => void) | undefined)[] = [];
  bytes = 0;
  constructor(private readonly ch: Channel<BuddyMsg, HostMsg>) {}

  async request(msg: HostMsg, bytes: number): Promise<BuddyMsg> {
    await this.drain();
    this.bytes += bytes;
    return answer(await this.ch.request(msg));
  }

  /** `answered` runs with the buddy's answer to this message: its bytes are no longer needed. */
  async push(msg: HostMsg, bytes: number, answered?: (r: BuddyMsg) => void): Promise<void> {
    this.bytes += bytes;
    await this.ch.send(msg);
    this.outstanding.push(answered);
    while (this.outstanding.length >= PIPELINE) await this.take();
  }

  /**
   * Sends `msg` behind those in flight, without waiting for them; the function returned reads
   * answers up to its own and gives it.
   */
  async ask(msg: HostMsg, bytes: number): Promise<() => Promise<BuddyMsg>> {
    let got: BuddyMsg | undefined;
    await this.push(msg, bytes, (r) => (got = r));
    return async () => {
      while (got === undefined) await this.take();
      return got;
    };
  }

  async drain(): Promise<void> {
    while (this.outstanding.length > 0) await this.take();
  }

  private async take(): Promise<void> {
    const r = await this.ch.receive();
    const answered = this.outstanding.shift();
    if (r === null) throw new Error('the buddy ended the shipment early');
    answered?.(answer(r));
  }
}

function answer(r: BuddyMsg): BuddyMsg {
  if (r.type === 'refused') throw new BuddyRefusedError(r.reason);
  return r;
}

/** A shipment under way: chunks settled (sent, or held there already) of those it offers, and bytes sent so far. */
export interface ShipProgress {
  done: number;
  total: number;
  bytes: number;
}

export async function shipSnapshot(
  ctx: ShipContext,
  peer: string,
  epoch: number,
  cursor: BuddyCursor,
  root: RootBlock,
  opts: { signal?: AbortSignal; drop?: Buffer[]; slot?: number; onProgress?: (p: ShipProgress) => void } = {},
): Promise<ShipReport> {
  const t0 = performance.now();
  const unchunked = unchunkedUpTo(ctx.db, epoch);
  if (unchunked > 0) throw new Error(`${unchunked} files of the snapshot are still waiting to be chunked`);
  const striping = ctx.striping;
  const slot = opts.slot ?? null;
  if (striping && slot === null) throw new Error(`buddy ${peer} has no stripe slot`);
  // The stripe map of this epoch goes into its metadata delta: stripe first.
  const striped = striping ? await striping.stripes.stripeAndExtend(epoch, striping.k, striping.m, ctx.meta) : null;
  if (!striped) await ctx.meta.extend(epoch);
  const chain = ctx.meta.chain();
  // With stripes, released boxes are read by the striping, not sent: buddies are told (and the
  // log drained) only as far as it read.
  const heads = { released: striped ? striped.released : ctx.store.releasedHead(), dropped: ctx.meta.dropsHead() };
  const { stream, bandwidth } = await ctx.node.dial(peer, BACKUP_PROTOCOL, { signal: opts.signal });
  const ch = openChannel(stream, { receive: buddyMessages, send: hostMessages }, { maxFrame: BACKUP_MAX_FRAME, bandwidth });
  const pipe = new Pipe(ch);
  // Our boxes are read straight into the buffer of the message that carries them, one buffer
  // per message in flight, used again once the buddy answered it. A fresh buffer per box lived
  // through the window in flight, outlived the young generation, and only a full collection
  // freed it: 21-26 of those per 256 MiB shipped, 11-17 since (four runs each).
  const messageBuffers = new BufferPool(CHUNK_BATCH_BYTES, PIPELINE + 1);
  // Shards are coded into buffers of their own: a message of shards takes none from the pool
  // (and the pool takes back only buffers of its own size).
  const messageBuffer = (): Buffer => (striping ? NO_BUFFER : messageBuffers.take(CHUNK_BATCH_BYTES));
  const owner = ctx.signer.publicKey;
  /** Chunk ids this shipment will offer, once shipChunks counted them, and how many are settled. */
  let total = 0;
  let settled = 0;
  const progress = (): void => opts.onProgress?.({ done: settled, total: Math.max(total, settled), bytes: pipe.bytes });
  const report: ShipReport = {
    peer, epoch, full: false, already: false, chunksOffered: 0, chunksSent: 0, chunkBytes: 0, objectsSent: 0, objectBytes: 0, deletes: 0, bytes: 0, ms: 0, endedAt: 0, cursor,
  };
  try {
    const welcome = await pipe.request({ type: 'hello', owner, offer: ctx.offer, epoch, locator: ctx.locator }, 120);
    if (welcome.type !== 'welcome') throw new Error(`buddy answered hello with ${welcome.type}`);
    // Held already, unless chunks were released or metadata objects dropped since: those
    // deletions travel in a shipment of the same epoch (marking them told without sending them
    // left the buddy with chunk lists whose chunks a later reconcile dropped as surplus).
    const told = cursor.releasedSeq === heads.released && cursor.droppedSeq === heads.dropped && cursor.snapshots === snapshotsDigest(root);
    if (welcome.heldEpoch === epoch && cursor.epoch === epoch && told && !opts.drop?.length) {
      report.already = true;
      await ch.end();
      return done();
    }
    // A buddy that lost track of us (or we of it) gets the whole state again; it keeps what it
    // has, so only the missing part travels.
    const base = welcome.heldEpoch === cursor.epoch ? cursor.epoch : 0;
    report.full = base === 0;

    await shipChunks(base);
    await shipMeta();
    await shipDeletes(base);

    const rootBox = sealRootBlock(ctx.rootKey, ctx.locator, { ...root, meta: ctx.meta.refs(chain) });
    const sig = ctx.signer.sign(SIGNED.commit, { owner, locator: ctx.locator, epoch, root: boxDigest(rootBox) });
    const c = await pipe.request({ type: 'commit', epoch, root: rootBox, sig }, rootBox.length + 80);
    if (c.type !== 'committed' || c.epoch !== epoch) throw new Error(`buddy answered commit with ${c.type}`);
    await ch.end();
    return done();
  } catch (err) {
    ch.abort(err instanceof Error ? err : new Error(String(err)));
    // A buddy whose disk filled sends its refusal and ends; the send after it can meet the
    // reset before the answers are read. Its word, not the reset, says why.
    const refusal = err instanceof BuddyRefusedError ? undefined : ch.unread().find((m): m is Extract<BuddyMsg, { type: 'refused' }> => m.type === 'refused');
    throw refusal ? new BuddyRefusedError(refusal.reason) : err;
  }

  function done(): ShipReport {
    report.bytes = pipe.bytes;
    report.ms = performance.now() - t0;
    report.endedAt = report.already ? 0 : Date.now();
    report.cursor = { epoch, releasedSeq: heads.released, droppedSeq: heads.dropped, snapshots: snapshotsDigest(root) };
    return report;
  }

  /**
   * A box to send, read into `into` at `at` when it fits there, or a shard coded again from our
   * boxes; null once it left the store.
   */
  async function payload(id: Buffer, loc: Location | undefined, into: Buffer, at: number): Promise<Buffer | null> {
    if (striping) return striping.stripes.shard(id);
    const room = (l: Location): Buffer | undefined => (l.len <= into.length - at ? into.subarray(at) : undefined);
    try {
      if (loc) {
        try {
          return ctx.store.readBoxAt(id, loc, room(loc));
        } catch {
          // Looked up with its page: garbage collection may have moved it since.
        }
      }
      const now = ctx.store.location(id);
      if (!now) throw new Error('not in the index');
      return ctx.store.readBoxAt(id, now, room(now));
    } catch (err) {
      // Collected since we listed it: released after the snapshot, so no longer needed.
      ctx.log.warn(`chunk ${hexId(id)} left the store during shipment: ${(err as Error).message}`);
      return null;
    }
  }

  /**
   * Offers every page of ids `next` gives (an empty one ends) and sends what the buddy lacks
   * as one stream of messages. The question about the next page goes down the pipe ahead of
   * this page's chunks, so its answer is back before they are all sent, and a message fills
   * across pages. Sent page by page (each page's last message part full, the pipe drained
   * between pages), a first shipment of 512 MiB made 135-140 MB/s; as one stream, 143-152
   * (five rounds alternating).
   */
  async function offerPages(next: () => Buffer[]): Promise<void> {
    let batch: { id: Buffer; box: Buffer }[] = [];
    let size = 0;
    let buf = messageBuffer();
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const sent = buf;
      await pipe.push({ type: 'chunks', items: batch }, size + batch.length * 32, () => messageBuffers.give(sent));
      settled += batch.length;
      progress();
      batch = [];
      size = 0;
      buf = messageBuffer();
    };
    const send = async (wanted: Buffer[]): Promise<void> => {
      const locs = striping ? [] : ctx.store.locations(wanted);
      for (const [k, id] of wanted.entries()) {
        const loc = locs[k];
        // A message of tiny boxes reaches the protocol's count before its size.
        if (batch.length === IDS_PER_MESSAGE || (loc && size + loc.len > CHUNK_BATCH_BYTES)) await flush();
        const box = await payload(id, loc, buf, size);
        if (!box) {
          if (striping) ctx.log.warn(`shard ${hexId(id)} cannot be coded again: a box of its stripe left the store`);
          continue;
        }
        // Only a box that came in a buffer of its own can overflow: a shard, or one found again.
        if (size + box.length > CHUNK_BATCH_BYTES) await flush();
        batch.push({ id, box });
        size += box.length;
        report.chunksSent++;
        report.chunkBytes += box.length;
      }
    };
    const ask = async (ids: Buffer[]): Promise<(() => Promise<BuddyMsg>) | null> => {
      if (ids.length === 0) return null;
      report.chunksOffered += ids.length;
      return pipe.ask({ type: 'has', ids }, ids.length * 32);
    };
    let ids = next();
    let answer = await ask(ids);
    while (answer) {
      const m = await answer();
      if (m.type !== 'missing') throw new Error(`buddy answered has with ${m.type}`);
      settled += ids.length - m.indexes.length;
      const asked = ids;
      const wanted = m.indexes.map((i) => {
        const id = asked[i];
        if (!id) throw new Error(`buddy named chunk ${i} of ${asked.length}`);
        return id;
      });
      ids = next();
      answer = await ask(ids);
      await send(wanted);
    }
    await flush();
    messageBuffers.give(buf);
    await pipe.drain();
    progress();
  }

  async function shipChunks(base: number): Promise<void> {
    if (striping) {
      total = striping.stripes.shardCount(slot!, base);
      progress();
      // Our slot's shard of every stripe made since the buddy's epoch.
      let after = 0;
      return offerPages(() => {
        const page = striping.stripes.shardsAfter(slot!, base, after, IDS_PER_MESSAGE);
        if (page.length > 0) after = page[page.length - 1]!.stripe;
        return page.map((p) => p.id);
      });
    }
    if (base === 0) {
      total = countUpTo(ctx.db, epoch);
      progress();
      let after: Buffer = Buffer.alloc(0);
      return offerPages(() => {
        const ids = idsUpTo(ctx.db, epoch, after, IDS_PER_MESSAGE);
        if (ids.length > 0) after = ids[ids.length - 1]!;
        return ids;
      });
    }
    const ids = addSet(ctx.db, base, epoch).ids;
    total = ids.length;
    progress();
    let at = 0;
    return offerPages(() => ids.slice(at, (at += IDS_PER_MESSAGE)));
  }

  /** Offers the chain's segments; sends those the buddy lacks (or holds another version of). */
  async function shipMeta(): Promise<void> {
    if (chain.length === 0) return;
    const m = await pipe.request({ type: 'hasObjects', items: chain.map((c) => ({ id: c.id, digest: c.digest })) }, chain.length * 48);
    if (m.type !== 'missing') throw new Error(`buddy answered hasObjects with ${m.type}`);
    let batch: SealedObject[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const items = batch.map((o) => ({ id: o.id, digest: o.digest, box: o.box }));
      const sig = ctx.signer.sign(SIGNED.objects, { owner, epoch, items: batch.map((o) => ({ id: o.id, digest: o.digest })) });
      await pipe.push({ type: 'objects', items, sig }, size + batch.length * 48 + 64);
      batch = [];
      size = 0;
    };
    for (const i of m.indexes) {
      const c = chain[i];
      if (!c) throw new Error(`buddy named segment ${i} of ${chain.length}`);
      // A new base written since this shipment began replaced it: the next shipment sends that.
      const o = ctx.meta.object(c.seq);
      if (!o) throw new Error(`metadata segment ${c.seq} was replaced during the shipment`);
      if (size + o.box.length > OBJECT_BATCH_BYTES) await flush();
      batch.push(o);
      size += o.box.length;
      report.objectsSent++;
      report.objectBytes += o.box.length;
    }
    await flush();
    await pipe.drain();
  }

  async function shipDeletes(base: number): Promise<void> {
    // A first shipment carries the whole state: there is nothing for the buddy to drop but the
    // surplus a reconciliation found.
    const chunks: Buffer[] = [...(opts.drop ?? [])];
    // A shard holder holds none of our boxes: released ones are nothing to it.
    if (base > 0 && !striping) {
      for (let seq = cursor.releasedSeq; seq < heads.released; ) {
        const page = ctx.store.releasedAfter(seq, 4096).filter((r) => r.seq <= heads.released);
        if (page.length === 0) break;
        for (const r of page) chunks.push(r.id);
        seq = page[page.length - 1]!.seq;
      }
    }
    const send = async (c: Buffer[], o: Buffer[]): Promise<void> => {
      const sig = ctx.signer.sign(SIGNED.deletes, { owner, epoch, chunks: c, objects: o });
      await pipe.request({ type: 'deletes', chunks: c, objects: o, sig }, (c.length + o.length) * 32 + 64);
      report.deletes += c.length + o.length;
    };
    for (let i = 0; i < chunks.length; i += IDS_PER_MESSAGE) await send(chunks.slice(i, i + IDS_PER_MESSAGE), []);
    // Metadata objects no chain names any more, release 0.2's per-inode objects, and dead
    // stripes' shards of this buddy's slot.
    for (let seq = cursor.droppedSeq; seq < heads.dropped; ) {
      const page = ctx.meta.dropsAfter(seq, heads.dropped, IDS_PER_MESSAGE, slot);
      if (page.length === 0) break;
      const shards = page.flatMap((d) => (d.chunk && d.id ? [d.id] : []));
      const objects = page.flatMap((d) => (!d.chunk && d.id ? [d.id] : []));
      if (shards.length + objects.length > 0) await send(shards, objects);
      seq = page[page.length - 1]!.seq;
    }
  }
}
