// The host side of /safe/backup/1: ships the state at one snapshot epoch to one buddy. What to
// send is worked out against the buddy's cursor (the epoch it last committed, and how far it
// was told of the delete-set and pruned logs): an incremental shipment costs what changed. The
// buddy names what it lacks at every step, so an interrupted shipment resumes without sending
// anything twice that reached its disk.
import { hexId } from '../chunkstore/sealer.js';
import type { ChunkStore } from '../chunkstore/store.js';
import type { Db } from '../chunkstore/index-db.js';
import { addSet, changedObjects } from '../snapshot/changes.js';
import { PRUNED_CHUNK_LIST, PRUNED_OBJECT } from '../snapshot/snapshots.js';
import {
  chunkListRecord, chunkListsBornIn, chunkListsUpTo, idsUpTo, inodeRecord, inodesUpTo, prunedAfter, prunedHead, unchunkedUpTo,
} from '../snapshot/records.js';
import { openChannel, type Channel, type MessageOf } from './messages.js';
import type { PeerNode } from './node.js';
import { BACKUP_MAX_FRAME, BACKUP_PROTOCOL, IDS_PER_MESSAGE, SIGNED, buddyMessages, hostMessages } from './protocol.js';
import { boxDigest, sealRootBlock, type ObjectSealer, type RootBlock, type SealedObject } from './sealed-objects.js';
import type { Signer } from './signing.js';

type HostMsg = MessageOf<typeof hostMessages.shapes>;
type BuddyMsg = MessageOf<typeof buddyMessages.shapes>;

export interface BuddyCursor {
  /** Epoch the buddy last committed for us (0: nothing). */
  epoch: number;
  releasedSeq: number;
  prunedSeq: number;
}

export interface ShipContext {
  db: Db;
  store: ChunkStore;
  node: PeerNode;
  signer: Signer;
  sealer: ObjectSealer;
  rootKey: Uint8Array;
  locator: string;
  offer: number;
  log: (m: string) => void;
}

export interface ShipReport {
  peer: string;
  epoch: number;
  /** True when the buddy got everything (first shipment, or it lost track of us). */
  full: boolean;
  /** The buddy had already committed this epoch: nothing was sent. */
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
  cursor: BuddyCursor;
}

/** The buddy said no (full, unfair, forged): choose another; not worth retrying soon. */
export class BuddyRefusedError extends Error {
  override name = 'BuddyRefusedError';
}

const CHUNK_BATCH_BYTES = 4 * 1024 * 1024;
const OBJECT_BATCH_BYTES = 4 * 1024 * 1024;
const OBJECTS_PER_PAGE = 512;
/** Messages in flight before we wait for the first answer: keeps the pipe full over fsyncs. */
const PIPELINE = 4;

/** Sends requests ahead of their answers (each must be 'stored'), up to PIPELINE at once. */
class Pipe {
  private outstanding = 0;
  bytes = 0;
  constructor(private readonly ch: Channel<BuddyMsg, HostMsg>) {}

  async request(msg: HostMsg, bytes: number): Promise<BuddyMsg> {
    await this.drain();
    this.bytes += bytes;
    return answer(await this.ch.request(msg));
  }

  async push(msg: HostMsg, bytes: number): Promise<void> {
    this.bytes += bytes;
    await this.ch.send(msg);
    this.outstanding++;
    while (this.outstanding >= PIPELINE) await this.take();
  }

  async drain(): Promise<void> {
    while (this.outstanding > 0) await this.take();
  }

  private async take(): Promise<void> {
    const r = await this.ch.receive();
    this.outstanding--;
    if (r === null) throw new Error('the buddy ended the shipment early');
    answer(r);
  }
}

function answer(r: BuddyMsg): BuddyMsg {
  if (r.type === 'refused') throw new BuddyRefusedError(r.reason);
  return r;
}

export async function shipSnapshot(
  ctx: ShipContext,
  peer: string,
  epoch: number,
  cursor: BuddyCursor,
  root: RootBlock,
  opts: { signal?: AbortSignal; drop?: Buffer[] } = {},
): Promise<ShipReport> {
  const t0 = performance.now();
  const unchunked = unchunkedUpTo(ctx.db, epoch);
  if (unchunked > 0) throw new Error(`${unchunked} files of the snapshot are still waiting to be chunked`);
  const heads = { released: ctx.store.releasedHead(), pruned: prunedHead(ctx.db) };
  const { stream } = await ctx.node.dial(peer, BACKUP_PROTOCOL, { signal: opts.signal });
  const ch = openChannel(stream, { receive: buddyMessages, send: hostMessages }, { maxFrame: BACKUP_MAX_FRAME });
  const pipe = new Pipe(ch);
  const owner = ctx.signer.publicKey;
  const report: ShipReport = {
    peer, epoch, full: false, already: false, chunksOffered: 0, chunksSent: 0, chunkBytes: 0, objectsSent: 0, objectBytes: 0, deletes: 0, bytes: 0, ms: 0, cursor,
  };
  try {
    const welcome = await pipe.request({ type: 'hello', owner, offer: ctx.offer, epoch, locator: ctx.locator }, 120);
    if (welcome.type !== 'welcome') throw new Error(`buddy answered hello with ${welcome.type}`);
    // Held already, unless a forget since pruned objects or released chunks of it: those
    // deletions travel in a shipment of the same epoch (marking them told without sending them
    // left the buddy with chunk lists whose chunks a later reconcile dropped as surplus).
    const told = cursor.releasedSeq === heads.released && cursor.prunedSeq === heads.pruned;
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
    const deletedObjects = await shipObjects(base);
    await shipDeletes(base, deletedObjects);

    const rootBox = sealRootBlock(ctx.rootKey, ctx.locator, root);
    const sig = ctx.signer.sign(SIGNED.commit, { owner, locator: ctx.locator, epoch, root: boxDigest(rootBox) });
    const c = await pipe.request({ type: 'commit', epoch, root: rootBox, sig }, rootBox.length + 80);
    if (c.type !== 'committed' || c.epoch !== epoch) throw new Error(`buddy answered commit with ${c.type}`);
    await ch.end();
    return done();
  } catch (err) {
    ch.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }

  function done(): ShipReport {
    report.bytes = pipe.bytes;
    report.ms = performance.now() - t0;
    report.cursor = { epoch, releasedSeq: heads.released, prunedSeq: heads.pruned };
    return report;
  }

  async function offerChunks(ids: Buffer[]): Promise<void> {
    report.chunksOffered += ids.length;
    const m = await pipe.request({ type: 'has', ids }, ids.length * 32);
    if (m.type !== 'missing') throw new Error(`buddy answered has with ${m.type}`);
    let batch: { id: Buffer; box: Buffer }[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await pipe.push({ type: 'chunks', items: batch }, size + batch.length * 32);
      batch = [];
      size = 0;
    };
    for (const i of m.indexes) {
      const id = ids[i];
      if (!id) throw new Error(`buddy named chunk ${i} of ${ids.length}`);
      let box: Buffer;
      try {
        box = ctx.store.readBox(id);
      } catch (err) {
        // Collected since we listed it: released after the snapshot, so no longer needed.
        ctx.log(`chunk ${hexId(id)} left the store during shipment: ${(err as Error).message}`);
        continue;
      }
      if (size + box.length > CHUNK_BATCH_BYTES) await flush();
      batch.push({ id, box });
      size += box.length;
      report.chunksSent++;
      report.chunkBytes += box.length;
    }
    await flush();
    await pipe.drain();
  }

  async function shipChunks(base: number): Promise<void> {
    if (base === 0) {
      let after: Buffer = Buffer.alloc(0);
      for (;;) {
        const ids = idsUpTo(ctx.db, epoch, after, IDS_PER_MESSAGE);
        if (ids.length === 0) break;
        await offerChunks(ids);
        after = ids[ids.length - 1]!;
      }
      return;
    }
    const ids = addSet(ctx.db, base, epoch).ids;
    for (let i = 0; i < ids.length; i += IDS_PER_MESSAGE) await offerChunks(ids.slice(i, i + IDS_PER_MESSAGE));
  }

  async function offerObjects(objs: SealedObject[]): Promise<void> {
    if (objs.length === 0) return;
    const m = await pipe.request({ type: 'hasObjects', items: objs.map((o) => ({ id: o.id, digest: o.digest })) }, objs.length * 48);
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
      const o = objs[i];
      if (!o) throw new Error(`buddy named object ${i} of ${objs.length}`);
      if (size + o.box.length > OBJECT_BATCH_BYTES) await flush();
      batch.push(o);
      size += o.box.length;
      report.objectsSent++;
      report.objectBytes += o.box.length;
    }
    await flush();
    await pipe.drain();
  }

  /** Ships changed inode and chunk-list objects; returns the ids of objects that are gone. */
  async function shipObjects(base: number): Promise<Buffer[]> {
    const gone: Buffer[] = [];
    const sealInodes = async (inos: number[]): Promise<void> => {
      const objs: SealedObject[] = [];
      for (const ino of inos) {
        const r = inodeRecord(ctx.db, ino, epoch);
        if (r) objs.push(ctx.sealer.sealInode(r));
        else gone.push(ctx.sealer.inodeId(ino));
      }
      await offerObjects(objs);
    };
    const sealLists = async (cls: number[]): Promise<void> => {
      const objs: SealedObject[] = [];
      for (const cl of cls) {
        const r = chunkListRecord(ctx.db, cl);
        if (r) objs.push(ctx.sealer.sealChunkList(r));
      }
      await offerObjects(objs);
    };
    if (base === 0) {
      for (let after = 0; ; ) {
        const inos = inodesUpTo(ctx.db, epoch, after, OBJECTS_PER_PAGE);
        if (inos.length === 0) break;
        await sealInodes(inos);
        after = inos[inos.length - 1]!;
      }
      for (let after = 0; ; ) {
        const cls = chunkListsUpTo(ctx.db, epoch, after, OBJECTS_PER_PAGE);
        if (cls.length === 0) break;
        await sealLists(cls);
        after = cls[cls.length - 1]!;
      }
      return gone;
    }
    const inos = new Set(changedObjects(ctx.db, base, epoch));
    for (let seq = cursor.prunedSeq; seq < heads.pruned; ) {
      const page = prunedAfter(ctx.db, seq, 4096).filter((p) => p.seq <= heads.pruned);
      if (page.length === 0) break;
      for (const p of page) {
        if (p.kind === PRUNED_OBJECT) inos.add(p.key);
        else if (p.kind === PRUNED_CHUNK_LIST) gone.push(ctx.sealer.chunkListId(p.key));
      }
      seq = page[page.length - 1]!.seq;
    }
    const list = [...inos];
    for (let i = 0; i < list.length; i += OBJECTS_PER_PAGE) await sealInodes(list.slice(i, i + OBJECTS_PER_PAGE));
    const cls = chunkListsBornIn(ctx.db, base, epoch);
    for (let i = 0; i < cls.length; i += OBJECTS_PER_PAGE) await sealLists(cls.slice(i, i + OBJECTS_PER_PAGE));
    return gone;
  }

  async function shipDeletes(base: number, objects: Buffer[]): Promise<void> {
    // A first shipment carries the whole state: there is nothing for the buddy to drop but the
    // surplus a reconciliation found.
    const chunks: Buffer[] = [...(opts.drop ?? [])];
    if (base > 0) {
      for (let seq = cursor.releasedSeq; seq < heads.released; ) {
        const page = ctx.store.releasedAfter(seq, 4096).filter((r) => r.seq <= heads.released);
        if (page.length === 0) break;
        for (const r of page) chunks.push(r.id);
        seq = page[page.length - 1]!.seq;
      }
    }
    for (let i = 0; i < Math.max(chunks.length, objects.length); i += IDS_PER_MESSAGE) {
      const c = chunks.slice(i, i + IDS_PER_MESSAGE);
      const o = objects.slice(i, i + IDS_PER_MESSAGE);
      const sig = ctx.signer.sign(SIGNED.deletes, { owner, epoch, chunks: c, objects: o });
      await pipe.request({ type: 'deletes', chunks: c, objects: o, sig }, (c.length + o.length) * 32 + 64);
      report.deletes += c.length + o.length;
    }
  }
}
