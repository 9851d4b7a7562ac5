// The buddy side of /safe/backup/1: stores other hosts' chunks in our own chunkstore (one copy
// whoever sends it, a reference per owner), their metadata objects and their latest root
// block. What a shipment sends is kept pending until its commit; the commit makes it current
// and applies the signed deletions in one transaction, so a shipment cut off anywhere leaves
// the previous state whole and the next attempt resumes from what is already durable.
import type { ChunkStore, Location } from '../../chunkstore/store.js';
import type { PackWriter } from '../../chunkstore/packs.js';
import { boxId, hexId } from '../../chunkstore/sealer.js';
import { isDiskFull, prepared, type Db } from '../../chunkstore/index-db.js';
import { openChannel, ProtocolError, type MessageOf } from '../wire/messages.js';
import { BACKUP_MAX_FRAME, SIGNED, buddyMessages, hostMessages } from '../wire/protocol.js';
import { boxDigest } from '../metadata/sealed-objects.js';
import { publicKeyFromPeerId, verify } from '../wire/signing.js';
import type { PeerStream } from '../net/node.js';
import type { Log } from '../../log/logger.js';

type HostMsg = MessageOf<typeof hostMessages.shapes>;
type BuddyMsg = MessageOf<typeof buddyMessages.shapes>;

export interface HolderOptions {
  store: ChunkStore;
  /** Bytes offered to the group: the most we hold for all others together. */
  offer: number;
  log: Log;
  /** Told after a commit dropped references: time to collect garbage. */
  onDropped?: () => void;
}

export interface OwnerUsage {
  peer: string;
  charged: number;
  offer: number;
  epoch: number;
  chunks: number;
  objects: number;
  lastSeen: number;
}

class Refusal extends Error {}

export class Holder {
  private readonly db: Db;

  constructor(private readonly opts: HolderOptions) {
    this.db = opts.store.db;
  }

  /** Bytes held for all other hosts. */
  used(): number {
    return prepared(this.db, 'SELECT coalesce(sum(charged), 0) FROM held_owners').pluck().get() as number;
  }

  free(): number {
    return Math.max(0, this.opts.offer - this.used());
  }

  /** How many of these ids we store (for anyone, ourselves included): a candidate's coverage. */
  coverage(ids: Uint8Array[]): number {
    let n = 0;
    for (const id of ids) if (this.opts.store.has(id)) n++;
    return n;
  }

  owners(): OwnerUsage[] {
    return prepared<[], OwnerUsage>(
      this.db,
      `SELECT peer, charged, offer, epoch, last_seen AS lastSeen,
              (SELECT count(*) FROM owner_refs r WHERE r.owner = o.owner) AS chunks,
              (SELECT count(*) FROM held_objects h WHERE h.owner = o.owner AND h.pending = 0) AS objects
         FROM held_owners o ORDER BY peer`,
    ).all();
  }

  /** The owner heard from us another way (an audit, a restore): it is not gone. */
  touch(peer: string): void {
    prepared(this.db, 'UPDATE held_owners SET last_seen = ? WHERE peer = ?').run(Date.now(), peer);
  }

  /**
   * Hosts silent since before `cutoff` are taken as decommissioned: their references, objects,
   * pending shipments and root block go (garbage collection then frees the chunks nobody else
   * holds). Returns the peers reclaimed.
   */
  reclaimSilent(cutoff: number): string[] {
    const db = this.db;
    const gone = prepared<[number], { owner: number; peer: string; pubkey: Buffer }>(db, 'SELECT owner, peer, pubkey FROM held_owners WHERE last_seen < ?').all(cutoff);
    if (gone.length === 0) return [];
    db.transaction(() => {
      for (const o of gone) {
        prepared(db, 'DELETE FROM owner_refs WHERE owner = ?').run(o.owner);
        prepared(db, 'DELETE FROM held_objects WHERE owner = ?').run(o.owner);
        prepared(db, 'DELETE FROM held_deletes WHERE owner = ?').run(o.owner);
        prepared(db, 'DELETE FROM root_blocks WHERE pubkey = ?').run(o.pubkey);
        prepared(db, 'DELETE FROM held_owners WHERE owner = ?').run(o.owner);
      }
    }).immediate();
    for (const o of gone) this.opts.log(`host ${o.peer} silent since before ${new Date(cutoff).toISOString()}: its space is reclaimed`);
    this.opts.onDropped?.();
    return gone.map((o) => o.peer);
  }

  async serve(ps: PeerStream): Promise<void> {
    const ch = openChannel(ps.stream, { receive: hostMessages, send: buddyMessages }, { maxFrame: BACKUP_MAX_FRAME, bandwidth: ps.bandwidth });
    let writer: PackWriter | null = null;
    try {
      const hello = await ch.receive();
      if (hello === null) {
        // Ended before a word: ending our side too is what lets the stream close.
        await ch.end();
        return;
      }
      if (hello.type !== 'hello') throw new ProtocolError(`expected hello, got ${hello.type}`);
      const session = this.open(ps.remotePeer, hello);
      if (typeof session === 'string') {
        this.opts.log.warn(`refused backup from ${ps.remotePeer}: ${session}`);
        await ch.send({ type: 'refused', reason: session });
        await ch.end();
        return;
      }
      await ch.send({ type: 'welcome', heldEpoch: session.heldEpoch, charged: session.charged, free: this.free() });
      for await (const msg of ch) {
        let reply: BuddyMsg;
        try {
          if (msg.type === 'chunks') writer ??= this.opts.store.newWriter();
          reply = this.handle(session, msg, writer);
        } catch (err) {
          // Our own disk filling up is a refusal like a full offer (the host goes elsewhere),
          // not a reset stream it could only retry against.
          const reason = err instanceof Refusal ? err.message : isDiskFull(err) ? "buddy full: this buddy's disk is full" : null;
          if (reason === null) throw err;
          this.opts.log.warn(`refused backup from ${ps.remotePeer}: ${reason}`);
          await ch.send({ type: 'refused', reason });
          break;
        }
        await ch.send(reply);
        if (reply.type === 'committed') this.opts.log(`committed epoch ${reply.epoch} from ${ps.remotePeer}`);
      }
      await ch.end();
    } catch (err) {
      // Logged whatever it was: a lost connection or a failure of our own (disk, database)
      // leaves a shipment pending here, and this line is all that says why.
      const e = err instanceof Error ? err : new Error(String(err));
      this.opts.log.warn(`backup stream from ${ps.remotePeer} ${err instanceof ProtocolError ? 'reset' : 'failed'}: ${e.message || e.name}`);
      ch.abort(e);
    } finally {
      writer?.seal();
    }
  }

  private open(peer: string, hello: Extract<HostMsg, { type: 'hello' }>): Session | string {
    let key: Uint8Array;
    try {
      key = publicKeyFromPeerId(peer);
    } catch {
      return 'not an Ed25519 peer';
    }
    if (!Buffer.from(key).equals(Buffer.from(hello.owner))) return 'forged hello: the owner key is not the key of this connection';
    const db = this.db;
    return db.transaction(() => {
      prepared(db, 'INSERT INTO held_owners (peer, pubkey, offer, last_seen) VALUES (?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET offer = excluded.offer, last_seen = excluded.last_seen')
        .run(peer, hello.owner, hello.offer, Date.now());
      const row = prepared<[string], { owner: number; epoch: number; charged: number }>(db, 'SELECT owner, epoch, charged FROM held_owners WHERE peer = ?').get(peer)!;
      // Leftovers of an abandoned shipment of another epoch: that state will never commit.
      const stale = prepared<[number, number], number>(db, 'SELECT coalesce(sum(length(box)), 0) FROM held_objects WHERE owner = ? AND pending <> 0 AND pending <> ?').pluck().get(row.owner, hello.epoch) ?? 0;
      prepared(db, 'DELETE FROM held_objects WHERE owner = ? AND pending <> 0 AND pending <> ?').run(row.owner, hello.epoch);
      prepared(db, 'UPDATE held_owners SET charged = charged - ? WHERE owner = ?').run(stale, row.owner);
      row.charged -= stale;
      prepared(db, 'DELETE FROM held_deletes WHERE owner = ? AND pending <> ?').run(row.owner, hello.epoch);
      return { owner: row.owner, peer, pubkey: hello.owner, offer: hello.offer, epoch: hello.epoch, locator: hello.locator, heldEpoch: row.epoch, charged: row.charged };
    }).immediate();
  }

  private charge(s: Session, bytes: number): void {
    if (bytes === 0) return;
    prepared(this.db, 'UPDATE held_owners SET charged = charged + ? WHERE owner = ?').run(bytes, s.owner);
    s.charged += bytes;
  }

  private checkRoom(s: Session, bytes: number): void {
    if (bytes > this.free()) throw new Refusal(`buddy full: ${bytes} more bytes do not fit in the ${this.opts.offer} bytes offered`);
    if (s.charged + bytes > s.offer) throw new Refusal(`unfair: you would store ${s.charged + bytes} bytes here but offer ${s.offer} to the group`);
  }

  /** The owner's references to those of `ids` stored (at `locs`); the bytes newly held. */
  private hold(s: Session, ids: Uint8Array[], locs: (Location | undefined)[]): number {
    let held = 0;
    locs.forEach((loc, i) => {
      if (loc) held += this.opts.store.holdAt(s.owner, ids[i]!, loc);
    });
    return held;
  }

  private forged(s: Session, what: string): never {
    throw new ProtocolError(`forged ${what}: the signature is not ${s.peer}'s`);
  }

  private handle(s: Session, msg: HostMsg, writer: PackWriter | null): BuddyMsg {
    const store = this.opts.store;
    const db = this.db;
    switch (msg.type) {
      case 'hello':
        throw new ProtocolError('hello sent twice');
      case 'has': {
        // Looked up 64 at a time (a statement per id was a tenth of a first shipment's time
        // here), inside the transaction: garbage collection runs beside us in a worker.
        const indexes: number[] = [];
        db.transaction(() => {
          const locs = store.locations(msg.ids);
          let dedup = 0;
          locs.forEach((loc, i) => {
            if (!loc) indexes.push(i);
            else dedup += loc.len;
          });
          // Chunks we already store (for anyone) only cost the owner a reference.
          this.checkRoom(s, dedup);
          this.charge(s, this.hold(s, msg.ids, locs));
        }).immediate();
        return { type: 'missing', indexes };
      }
      case 'chunks': {
        // A chunk is named by the hash of its box: bytes under someone else's id are refused, so
        // no member can park garbage where another host's chunk will be deduplicated.
        for (const it of msg.items) if (!boxId(it.box).equals(Buffer.from(it.id))) throw new ProtocolError(`chunk box does not match its id ${hexId(it.id)}`);
        const ids = msg.items.map((it) => it.id);
        const stored = store.locations(ids);
        const fresh = msg.items.filter((_, i) => !stored[i]);
        this.checkRoom(s, fresh.reduce((n, it) => n + it.box.length, 0));
        const rows = fresh.map((it) => ({ id: Buffer.from(it.id), raw: 0, handle: null, ...writer!.append(it.id, it.box) }));
        // Pack bytes durable before the rows that name them (DESIGN: order of writes).
        writer!.sync();
        db.transaction(() => {
          store.insert(rows);
          // Looked up again: the fresh rows are in now, and GC may have dropped an old one.
          this.charge(s, this.hold(s, ids, store.locations(ids)));
        }).immediate();
        return { type: 'stored', n: msg.items.length };
      }
      case 'hasObjects': {
        const have = prepared<[number, Uint8Array, number, Uint8Array], number>(
          db,
          'SELECT 1 FROM held_objects WHERE owner = ? AND id = ? AND pending IN (0, ?) AND digest = ? LIMIT 1',
        ).pluck();
        const indexes: number[] = [];
        msg.items.forEach((it, i) => {
          if (!have.get(s.owner, it.id, s.epoch, it.digest)) indexes.push(i);
        });
        return { type: 'missing', indexes };
      }
      case 'objects': {
        const signed = { owner: s.pubkey, epoch: s.epoch, items: msg.items.map((it) => ({ id: it.id, digest: it.digest })) };
        if (!verify(s.pubkey, SIGNED.objects, signed, msg.sig)) this.forged(s, 'metadata objects');
        for (const it of msg.items) if (!boxDigest(it.box).equals(Buffer.from(it.digest))) throw new ProtocolError('object digest does not match its box');
        const bytes = msg.items.reduce((n, it) => n + it.box.length, 0);
        this.checkRoom(s, bytes);
        db.transaction(() => {
          const put = prepared(db, 'INSERT OR REPLACE INTO held_objects (owner, id, pending, digest, box) VALUES (?, ?, ?, ?, ?)');
          for (const it of msg.items) put.run(s.owner, it.id, s.epoch, it.digest, it.box);
          this.charge(s, bytes);
        }).immediate();
        return { type: 'stored', n: msg.items.length };
      }
      case 'deletes': {
        if (!verify(s.pubkey, SIGNED.deletes, { owner: s.pubkey, epoch: s.epoch, chunks: msg.chunks, objects: msg.objects }, msg.sig)) this.forged(s, 'delete set');
        db.transaction(() => {
          const put = prepared(db, 'INSERT OR REPLACE INTO held_deletes (owner, pending, kind, id) VALUES (?, ?, ?, ?)');
          for (const id of msg.chunks) put.run(s.owner, s.epoch, 0, id);
          for (const id of msg.objects) put.run(s.owner, s.epoch, 1, id);
        }).immediate();
        return { type: 'stored', n: msg.chunks.length + msg.objects.length };
      }
      case 'commit': {
        if (msg.epoch !== s.epoch) throw new ProtocolError(`commit of epoch ${msg.epoch} in a shipment of epoch ${s.epoch}`);
        const signed = { owner: s.pubkey, locator: s.locator, epoch: s.epoch, root: boxDigest(msg.root) };
        if (!verify(s.pubkey, SIGNED.commit, signed, msg.sig)) this.forged(s, 'commit');
        const dropped = this.commit(s, msg.root, msg.sig);
        if (dropped > 0) this.opts.onDropped?.();
        return { type: 'committed', epoch: s.epoch };
      }
    }
  }

  /** Everything the shipment sent becomes current, deletions apply, the root block is replaced. */
  private commit(s: Session, root: Uint8Array, sig: Uint8Array): number {
    const db = this.db;
    const store = this.opts.store;
    return db.transaction(() => {
      const existing = prepared<[string, Uint8Array], { epoch: number }>(db, 'SELECT epoch FROM root_blocks WHERE locator = ? AND pubkey = ?').get(s.locator, s.pubkey);
      if (existing && existing.epoch > s.epoch) throw new ProtocolError(`root block rollback: epoch ${s.epoch} after ${existing.epoch}`);
      const replaced = prepared<[number, number, number], number>(
        db,
        `SELECT coalesce(sum(length(box)), 0) FROM held_objects WHERE owner = ? AND pending = 0
           AND id IN (SELECT id FROM held_objects WHERE owner = ? AND pending = ?)`,
      ).pluck();
      let freed = replaced.get(s.owner, s.owner, s.epoch) ?? 0;
      prepared(db, 'DELETE FROM held_objects WHERE owner = ? AND pending = 0 AND id IN (SELECT id FROM held_objects WHERE owner = ? AND pending = ?)').run(s.owner, s.owner, s.epoch);
      prepared(db, 'UPDATE held_objects SET pending = 0 WHERE owner = ? AND pending = ?').run(s.owner, s.epoch);
      let dropped = 0;
      const dels = prepared<[number, number], { kind: number; id: Buffer }>(db, 'SELECT kind, id FROM held_deletes WHERE owner = ? AND pending = ?').all(s.owner, s.epoch);
      const objBytes = prepared<[number, Buffer], number>(db, 'SELECT length(box) FROM held_objects WHERE owner = ? AND id = ? AND pending = 0').pluck();
      const delObj = prepared(db, 'DELETE FROM held_objects WHERE owner = ? AND id = ? AND pending = 0');
      for (const d of dels) {
        if (d.kind === 0) {
          const n = store.dropFor(s.owner, d.id);
          if (n > 0) dropped++;
          freed += n;
        } else {
          freed += objBytes.get(s.owner, d.id) ?? 0;
          delObj.run(s.owner, d.id);
        }
      }
      prepared(db, 'DELETE FROM held_deletes WHERE owner = ? AND pending = ?').run(s.owner, s.epoch);
      this.charge(s, -freed);
      prepared(db, 'INSERT OR REPLACE INTO root_blocks (locator, pubkey, epoch, box, sig, written) VALUES (?, ?, ?, ?, ?, ?)').run(s.locator, s.pubkey, s.epoch, root, sig, Date.now());
      prepared(db, 'UPDATE held_owners SET epoch = ? WHERE owner = ?').run(s.epoch, s.owner);
      s.heldEpoch = s.epoch;
      return dropped;
    }).immediate();
  }
}

interface Session {
  owner: number;
  peer: string;
  pubkey: Uint8Array;
  offer: number;
  epoch: number;
  locator: string;
  heldEpoch: number;
  charged: number;
}
