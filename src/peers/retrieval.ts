// /safe/restore/1 on both sides. The buddy serves root blocks by locator, and to a host only
// what it holds for that host: its metadata objects, its chunk ids, its chunks, and audit
// digests over them. The host side fetches with these and checks everything it gets: the root
// block's signature and seal, each object's seal, each chunk's tag.
import { createHash } from 'node:crypto';
import { prepared } from '../chunkstore/index-db.js';
import type { ChunkStore } from '../chunkstore/store.js';
import { boxId } from '../chunkstore/sealer.js';
import { openChannel, serve, type Channel, type MessageOf } from './messages.js';
import type { PeerNode, PeerStream } from './node.js';
import { BACKUP_MAX_FRAME, RESTORE_PAGE_BYTES, RESTORE_PROTOCOL, SIGNED, restoreReplies, restoreRequests } from './protocol.js';
import { boxDigest } from './sealed-objects.js';
import { verify } from './signing.js';

type Req = MessageOf<typeof restoreRequests.shapes>;
type Rep = MessageOf<typeof restoreReplies.shapes>;

/** Keyed digest of chunk boxes for an audit: only a holder of every box can answer it. */
export function auditDigest(nonce: Uint8Array, boxes: Iterable<Uint8Array>): Buffer {
  const h = createHash('sha256').update(nonce);
  for (const b of boxes) h.update(b);
  return h.digest();
}

/** `delayMs` (tests): pause before each page of chunks, a slow holder. */
export async function serveRestore(ps: PeerStream, store: ChunkStore, onOwner: (peer: string) => void, delayMs = 0): Promise<void> {
  const db = store.db;
  const owner = prepared<[string], number>(db, 'SELECT owner FROM held_owners WHERE peer = ?').pluck().get(ps.remotePeer);
  if (owner !== undefined) onOwner(ps.remotePeer);
  const ch = openChannel(ps.stream, { receive: restoreRequests, send: restoreReplies }, { maxFrame: BACKUP_MAX_FRAME, bandwidth: ps.bandwidth });
  await serve(ch, async (req: Req): Promise<Rep> => {
    if (delayMs > 0 && (req.type === 'getChunks' || req.type === 'getObjects')) await new Promise((r) => setTimeout(r, delayMs));
    switch (req.type) {
      case 'rootBlock': {
        const r = prepared<[string, Uint8Array], { box: Buffer; sig: Buffer; pubkey: Buffer; epoch: number }>(db, 'SELECT box, sig, pubkey, epoch FROM root_blocks WHERE locator = ? AND pubkey = ?').get(req.locator, req.owner);
        return r ? { type: 'root', ...r } : { type: 'none' };
      }
      case 'listObjects': {
        if (owner === undefined) return { type: 'objectPage', items: [], more: false };
        const rows = prepared<[number, Uint8Array], { id: Buffer; box: Buffer }>(db, 'SELECT id, box FROM held_objects WHERE owner = ? AND pending = 0 AND id > ? ORDER BY id LIMIT 4096').iterate(owner, req.after);
        const items: { id: Buffer; box: Buffer }[] = [];
        let size = 0;
        let more = false;
        for (const r of rows) {
          if (items.length > 0 && size + r.box.length > RESTORE_PAGE_BYTES) {
            more = true;
            break;
          }
          items.push(r);
          size += r.box.length;
        }
        if (items.length === 4096) more = true;
        return { type: 'objectPage', items, more };
      }
      case 'getObjects': {
        const items: { id: Uint8Array; box: Buffer }[] = [];
        if (owner === undefined) return { type: 'objectPage', items, more: false };
        const get = prepared<[number, Uint8Array], Buffer>(db, 'SELECT box FROM held_objects WHERE owner = ? AND id = ? AND pending = 0').pluck();
        let size = 0;
        for (const id of req.ids) {
          const box = get.get(owner, id);
          if (!box) continue;
          if (items.length > 0 && size + box.length > RESTORE_PAGE_BYTES) return { type: 'objectPage', items, more: true };
          items.push({ id, box });
          size += box.length;
        }
        return { type: 'objectPage', items, more: false };
      }
      case 'listChunks': {
        if (owner === undefined) return { type: 'idPage', ids: [], more: false };
        const ids = prepared<[number, Uint8Array], Buffer>(db, 'SELECT id FROM owner_refs WHERE owner = ? AND id > ? ORDER BY id LIMIT 4096').pluck().all(owner, req.after);
        return { type: 'idPage', ids, more: ids.length === 4096 };
      }
      case 'getChunks': {
        const items: { id: Uint8Array; box: Buffer }[] = [];
        if (owner === undefined) return { type: 'chunkPage', items };
        const held = prepared<[number, Uint8Array], number>(db, 'SELECT 1 FROM owner_refs WHERE owner = ? AND id = ?').pluck();
        let size = 0;
        for (const id of req.ids) {
          const real = store.currentId(id);
          if (!real || !held.get(owner, real)) continue;
          try {
            const box = store.readBox(real);
            // A damaged box is not served: the host then asks another buddy.
            if (!boxId(box).equals(real)) continue;
            if (size + box.length > RESTORE_PAGE_BYTES) break;
            items.push({ id, box });
            size += box.length;
          } catch {
            // lost or damaged here: the host fetches it from another buddy
          }
        }
        return { type: 'chunkPage', items };
      }
      case 'audit': {
        let missing = 0;
        const boxes: Uint8Array[] = [];
        const held = prepared<[number, Uint8Array], number>(db, 'SELECT 1 FROM owner_refs WHERE owner = ? AND id = ?').pluck();
        for (const id of req.ids) {
          try {
            const real = store.currentId(id);
            if (owner === undefined || !real || !held.get(owner, real)) throw new Error('not held');
            boxes.push(store.readBox(real));
          } catch {
            missing++;
          }
        }
        return { type: 'auditDigest', digest: auditDigest(req.nonce, boxes), missing };
      }
    }
  });
}

export interface FetchedRoot {
  peer: string;
  box: Buffer;
  epoch: number;
}

/** A client of one holder; every answer is checked by the caller or here. */
export class RestoreClient {
  private constructor(readonly peer: string, private readonly ch: Channel<Rep, Req>) {}

  static async open(node: PeerNode, peer: string, signal?: AbortSignal): Promise<RestoreClient> {
    const { stream, remotePeer, bandwidth } = await node.dial(peer, RESTORE_PROTOCOL, { signal });
    return new RestoreClient(remotePeer, openChannel(stream, { receive: restoreReplies, send: restoreRequests }, { maxFrame: BACKUP_MAX_FRAME, bandwidth }));
  }

  private async ask<T extends Rep['type']>(req: Req, want: T): Promise<Extract<Rep, { type: T }>> {
    const r = await this.ch.request(req);
    if (r.type !== want) throw new Error(`${this.peer} answered ${req.type} with ${r.type}`);
    return r as Extract<Rep, { type: T }>;
  }

  /** Our root block if this holder has one signed by `owner` (our key), else null. */
  async rootBlock(locator: string, owner: Uint8Array): Promise<FetchedRoot | null> {
    const r = await this.ch.request({ type: 'rootBlock', locator, owner });
    if (r.type !== 'root') return null;
    const ok = Buffer.from(r.pubkey).equals(Buffer.from(owner)) && verify(owner, SIGNED.commit, { owner, locator, epoch: r.epoch, root: boxDigest(r.box) }, r.sig);
    return ok ? { peer: this.peer, box: Buffer.from(r.box), epoch: r.epoch } : null;
  }

  async *objects(): AsyncGenerator<{ id: Buffer; box: Buffer }> {
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      const page = await this.ask({ type: 'listObjects', after }, 'objectPage');
      for (const it of page.items) yield { id: Buffer.from(it.id), box: Buffer.from(it.box) };
      if (!page.more || page.items.length === 0) return;
      after = page.items[page.items.length - 1]!.id;
    }
  }

  /** Objects by id, as many as fit one answer (ask again for the rest); ids it lacks are left out. */
  async getObjects(ids: Buffer[]): Promise<{ id: Buffer; box: Buffer }[]> {
    const page = await this.ask({ type: 'getObjects', ids }, 'objectPage');
    return page.items.map((it) => ({ id: Buffer.from(it.id), box: Buffer.from(it.box) }));
  }

  async *chunkIds(): AsyncGenerator<Buffer[]> {
    let after: Uint8Array = new Uint8Array(0);
    for (;;) {
      const page = await this.ask({ type: 'listChunks', after }, 'idPage');
      if (page.ids.length > 0) yield page.ids.map((x) => Buffer.from(x));
      if (!page.more || page.ids.length === 0) return;
      after = page.ids[page.ids.length - 1]!;
    }
  }

  /** Boxes for as many of `ids` as fit one answer (it may return fewer: ask again for the rest). */
  async chunks(ids: Buffer[]): Promise<{ id: Buffer; box: Buffer }[]> {
    const page = await this.ask({ type: 'getChunks', ids }, 'chunkPage');
    return page.items.map((it) => ({ id: Buffer.from(it.id), box: Buffer.from(it.box) }));
  }

  async audit(nonce: Buffer, ids: Buffer[]): Promise<{ digest: Buffer; missing: number }> {
    const r = await this.ask({ type: 'audit', nonce, ids }, 'auditDigest');
    return { digest: Buffer.from(r.digest), missing: r.missing };
  }

  async close(): Promise<void> {
    await this.ch.end().catch(() => {});
  }
}
