// Reconciliation after DIBS: the buddy lists every chunk id it holds for us, we walk our own
// list of what it should hold beside it (both in id order, a page at a time, so neither list
// is ever whole in memory) and learn what it lacks and what it keeps that we no longer need.
import type { ChunkStore } from '../../chunkstore/store.js';
import { storedIdsUpTo } from '../../snapshot/records.js';
import type { RestoreClient } from './restore-client.js';

export interface Reconciliation {
  /** Chunks it holds for us that it should. */
  held: number;
  /** Chunks it should hold and does not list: to re-ship. */
  lacking: number;
  /** Chunks it holds for us that no state of ours at its epoch names: to drop. */
  surplus: Buffer[];
}

const PAGE = 4096;

/** The boxes a copies buddy at `epoch` should hold, in id order. */
export async function* boxesUpTo(store: ChunkStore, epoch: number): AsyncGenerator<Buffer> {
  for (let after: Buffer = Buffer.alloc(0); ; ) {
    const page = storedIdsUpTo(store.db, epoch, after, PAGE);
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1]!;
  }
}

async function* theirs(client: RestoreClient): AsyncGenerator<Buffer> {
  for await (const page of client.chunkIds()) yield* page;
}

/** `ours`: what the buddy should hold, in id order (boxes, or its slot's shards). */
export async function reconcile(client: RestoreClient, ours: AsyncIterator<Buffer>): Promise<Reconciliation> {
  const r: Reconciliation = { held: 0, lacking: 0, surplus: [] };
  const a = ours;
  const b = theirs(client);
  let x = await a.next();
  let y = await b.next();
  while (!x.done || !y.done) {
    const c = x.done ? 1 : y.done ? -1 : Buffer.compare(x.value, y.value);
    if (c === 0) {
      r.held++;
      x = await a.next();
      y = await b.next();
    } else if (c < 0) {
      r.lacking++;
      x = await a.next();
    } else {
      r.surplus.push(y.value as Buffer);
      y = await b.next();
    }
  }
  return r;
}
