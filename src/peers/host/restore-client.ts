// /safe/restore/1, the host's side: it fetches its root block, metadata and chunks back from a
// holder and audits it, and checks everything it gets: the root block's signature and seal,
// each object's seal, each chunk's tag.
import { openChannel, type Channel, type MessageOf } from '../wire/messages.js';
import type { PeerNode } from '../net/node.js';
import { BACKUP_MAX_FRAME, RESTORE_PROTOCOL, SIGNED, restoreReplies, restoreRequests } from '../wire/protocol.js';
import { boxDigest } from '../metadata/sealed-objects.js';
import { verify } from '../wire/signing.js';

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

type Req = MessageOf<typeof restoreRequests.shapes>;
type Rep = MessageOf<typeof restoreReplies.shapes>;

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
    // Views into the answer, which is ours alone (the channel copies each frame out): a
    // recovery's fetch takes ~120k boxes, and a copy of each was garbage for the collector.
    return page.items.map((it) => ({ id: asBuffer(it.id), box: asBuffer(it.box) }));
  }

  async audit(nonce: Buffer, ids: Buffer[]): Promise<{ digest: Buffer; missing: number }> {
    const r = await this.ask({ type: 'audit', nonce, ids }, 'auditDigest');
    return { digest: Buffer.from(r.digest), missing: r.missing };
  }

  async close(): Promise<void> {
    await this.ch.end().catch(() => {});
  }
}
