// /safe/restore/1, the buddy's side: root blocks by locator to anyone, and to a host only what
// it holds for that host: its metadata objects, its chunk ids, its chunks, and audit digests
// over them.
import { inReadTransaction, prepared } from '../../chunkstore/index-db.js';
import type { ChunkStore } from '../../chunkstore/store.js';
import { boxId } from '../../chunkstore/sealer.js';
import { openChannel, serve, type MessageOf } from '../wire/messages.js';
import type { PeerStream } from '../net/node.js';
import { auditDigest, BACKUP_MAX_FRAME, RESTORE_PAGE_BYTES, restoreReplies, restoreRequests } from '../wire/protocol.js';

type Req = MessageOf<typeof restoreRequests.shapes>;
type Rep = MessageOf<typeof restoreReplies.shapes>;

export async function serveRestore(ps: PeerStream, store: ChunkStore, onOwner: (peer: string) => void): Promise<void> {
  const db = store.db;
  const owner = prepared<[string], number>(db, 'SELECT owner FROM held_owners WHERE peer = ?').pluck().get(ps.remotePeer);
  if (owner !== undefined) onOwner(ps.remotePeer);
  const ch = openChannel(ps.stream, { receive: restoreRequests, send: restoreReplies }, { maxFrame: BACKUP_MAX_FRAME, bandwidth: ps.bandwidth });
  await serve(ch, async (req: Req): Promise<Rep> => {
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
        // Three lookups a chunk, for up to a thousand chunks: one read transaction, not one each.
        inReadTransaction(db, () => {
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
        });
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
