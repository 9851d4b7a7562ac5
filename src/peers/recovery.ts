// Disaster recovery, the network half: find our root block by its locator on any member, check
// our own signature on it and open it, and rebuild the tree from the metadata objects a buddy
// holds for us. The chunks follow in the background once the tree is mounted (backfill.ts).
import type { ChunkStore } from '../chunkstore/store.js';
import type { HostKeys } from '../keys/derive.js';
import { finishImport, importChunkList, importInode, setBackfillPending } from '../snapshot/records.js';
import type { PeerNode } from './node.js';
import { RestoreClient } from './retrieval.js';
import { ObjectSealer, openRootBlock, type RootBlock } from './sealed-objects.js';
import { createSigner } from './signing.js';

export class NoRootBlockError extends Error {
  override name = 'NoRootBlockError';
}

export interface RecoveryProgress {
  /** Metadata objects imported so far. */
  objects: number;
}

export interface RecoveryReport {
  root: RootBlock;
  rootFrom: string;
  objects: number;
  /** Buddies reachable now that hold our data. */
  holders: string[];
  /** Every member reached, at the addresses it announced now: the daemon's first choice. */
  reached: { peer: string; addrs: string[] }[];
}

export interface LocatedRoot {
  root: RootBlock;
  /** The member it came from. */
  from: string;
  /** Open clients of every member that answered; recover() closes them. */
  clients: RestoreClient[];
}

export interface RecoveryOptions {
  node: PeerNode;
  store: ChunkStore;
  keys: HostKeys;
  /** What findRootBlock found. */
  located: LocatedRoot;
  progress?: (p: RecoveryProgress) => void;
  log?: (m: string) => void;
}

/** Attempts at opening a client before a member counts as unreachable (a connection can drop while it opens). */
const OPEN_ATTEMPTS = 3;

async function openClient(node: PeerNode, target: string): Promise<RestoreClient | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await RestoreClient.open(node, target, AbortSignal.timeout(15_000));
    } catch {
      if (attempt === OPEN_ATTEMPTS) return null;
      await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
    }
  }
}

/** The newest root block any candidate holds for us, opened. */
export async function findRootBlock(node: PeerNode, keys: HostKeys, candidates: string[]): Promise<LocatedRoot> {
  const owner = createSigner(keys.identitySeed).publicKey;
  const clients = (await Promise.all(candidates.map((c) => openClient(node, c)))).filter((c): c is RestoreClient => c !== null);
  if (clients.length === 0) throw new NoRootBlockError('no member of the group is reachable (check --peer and the group name and password)');
  const found = (await Promise.all(clients.map((c) => c.rootBlock(keys.locator, owner).catch(() => null)))).filter((r) => r !== null);
  if (found.length === 0) throw new NoRootBlockError('no root block found for this host in the group: wrong hostname or passphrase, or it never shipped a snapshot');
  found.sort((a, b) => b.epoch - a.epoch);
  const best = found[0]!;
  return { root: openRootBlock(keys.rootKey, keys.locator, best.box), from: best.peer, clients };
}

export async function recover(o: RecoveryOptions): Promise<RecoveryReport> {
  const db = o.store.db;
  const log = o.log ?? (() => {});
  const { root, from, clients: asked } = o.located;
  log(`root block of epoch ${root.epoch} from ${from}: ${root.snapshots.length} snapshots, buddies ${root.buddies.map((b) => b.peer).join(', ')}`);
  // The buddies the root block names, plus whoever answered: everyone that may hold our data.
  // The block's addresses are as old as the block: only for a buddy not reached otherwise.
  const connected = new Set(o.node.peers());
  for (const b of root.buddies) if (!connected.has(b.peer)) await o.node.learn(b.peer, b.addrs);
  const clients = [...asked];
  for (const b of root.buddies) {
    if (clients.some((c) => c.peer === b.peer)) continue;
    const c = await openClient(o.node, b.peer);
    if (c) clients.push(c);
  }
  const holders = clients.filter((c) => root.buddies.some((b) => b.peer === c.peer));
  if (holders.length === 0) throw new NoRootBlockError(`none of the buddies holding this host's data is reachable (${root.buddies.map((b) => b.peer).join(', ')})`);

  // Metadata: from the first buddy that gives a complete, authentic set.
  const sealer = new ObjectSealer(o.keys.metaKey);
  let objects = 0;
  let sources = holders;
  for (let round = 1; ; round++) {
    const failed: string[] = [];
    for (const c of sources) {
      try {
        objects = 0;
        const batch: ReturnType<ObjectSealer['open']>[] = [];
        const flush = (): void => {
          db.transaction(() => {
            for (const ob of batch) ob.kind === 'inode' ? importInode(db, ob.record) : importChunkList(db, ob.record);
          }).immediate();
          batch.length = 0;
        };
        for await (const it of c.objects()) {
          batch.push(sealer.open(it.id, it.box));
          objects++;
          if (batch.length >= 512) flush();
          o.progress?.({ objects });
        }
        flush();
        if (objects === 0) throw new Error('holds no metadata for us');
        break;
      } catch (err) {
        log(`metadata from ${c.peer} failed: ${(err as Error).message}`);
        failed.push(c.peer);
        objects = 0;
      }
    }
    if (objects > 0 || round === OPEN_ATTEMPTS) break;
    // A connection that dropped mid-list: the same buddies again, on fresh streams.
    await new Promise((r) => setTimeout(r, 1000 * round));
    sources = (await Promise.all(failed.map((p) => openClient(o.node, p)))).filter((c): c is RestoreClient => c !== null);
    clients.push(...sources);
  }
  if (objects === 0) throw new Error('no buddy could give back the metadata');

  db.transaction(() => {
    finishImport(db, root.epoch, root.nextIno, root.snapshots);
    // The chunks come next, in the background of the mounted daemon (backfill.ts).
    setBackfillPending(db, true);
  }).immediate();
  for (const c of clients) await c.close();
  const reached = await Promise.all(o.node.peers().map(async (peer) => ({ peer, addrs: await o.node.addressesOf(peer) })));
  return { root, rootFrom: from, objects, holders: holders.map((c) => c.peer), reached };
}
