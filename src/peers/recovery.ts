// Disaster recovery, the network half: find our root block by its locator on any member, check
// our own signature on it and open it, rebuild the tree from the metadata objects a buddy
// holds for us, then fetch every chunk the tree names from all reachable buddies at once,
// checking each tag. Resumable: chunks already in the store are not fetched again.
import { chunkId, hexId } from '../chunkstore/sealer.js';
import type { ChunkRow, ChunkStore } from '../chunkstore/store.js';
import type { HostKeys } from '../keys/derive.js';
import { countReferences, finishImport, handlesAfter, importChunkList, importInode } from '../snapshot/records.js';
import type { PeerNode } from './node.js';
import { RestoreClient } from './retrieval.js';
import { ObjectSealer, openRootBlock, type RootBlock } from './sealed-objects.js';
import { createSigner } from './signing.js';

export class NoRootBlockError extends Error {
  override name = 'NoRootBlockError';
}

export interface RecoveryProgress {
  phase: 'root' | 'metadata' | 'chunks';
  done: number;
  total: number;
  bytes: number;
}

export interface RecoveryReport {
  root: RootBlock;
  rootFrom: string;
  objects: number;
  chunks: number;
  fetched: number;
  bytes: number;
  /** Chunks no reachable buddy could give (missing or failing their tag). */
  missing: number;
  /** Buddies that served a chunk failing its tag (substituted or damaged). */
  flagged: string[];
}

export interface RecoveryOptions {
  node: PeerNode;
  store: ChunkStore;
  keys: HostKeys;
  /** Members to ask for the root block (PeerIds or multiaddrs). */
  candidates: string[];
  progress?: (p: RecoveryProgress) => void;
  log?: (m: string) => void;
}

async function openClient(node: PeerNode, target: string): Promise<RestoreClient | null> {
  try {
    return await RestoreClient.open(node, target, AbortSignal.timeout(15_000));
  } catch {
    return null;
  }
}

/** The newest root block any candidate holds for us, opened. */
export async function findRootBlock(node: PeerNode, keys: HostKeys, candidates: string[]): Promise<{ root: RootBlock; from: string; clients: RestoreClient[] }> {
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
  o.progress?.({ phase: 'root', done: 0, total: o.candidates.length, bytes: 0 });
  const { root, from, clients: asked } = await findRootBlock(o.node, o.keys, o.candidates);
  log(`root block of epoch ${root.epoch} from ${from}: ${root.snapshots.length} snapshots, buddies ${root.buddies.map((b) => b.peer).join(', ')}`);
  // The buddies the root block names, plus whoever answered: everyone that may hold our data.
  for (const b of root.buddies) await o.node.learn(b.peer, b.addrs);
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
  for (const c of holders) {
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
        o.progress?.({ phase: 'metadata', done: objects, total: 0, bytes: 0 });
      }
      flush();
      if (objects === 0) throw new Error('holds no metadata for us');
      break;
    } catch (err) {
      log(`metadata from ${c.peer} failed: ${(err as Error).message}`);
      objects = 0;
    }
  }
  if (objects === 0) throw new Error('no buddy could give back the metadata');
  db.transaction(() => finishImport(db, root.epoch, root.nextIno, root.snapshots)).immediate();

  const report = await fetchChunks(o, holders);
  db.transaction(() => countReferences(db)).immediate();
  for (const c of clients) await c.close();
  return { root, rootFrom: from, objects, ...report };
}

async function fetchChunks(o: RecoveryOptions, holders: RestoreClient[]): Promise<Pick<RecoveryReport, 'chunks' | 'fetched' | 'bytes' | 'missing' | 'flagged'>> {
  const db = o.store.db;
  const total = db.prepare('SELECT count(DISTINCT handle) FROM crefs').pluck().get() as number;
  const raw = db.prepare<[Buffer], number>('SELECT raw FROM crefs WHERE handle = ? LIMIT 1').pluck();
  const writer = o.store.newWriter();
  const flagged = new Set<string>();
  let done = 0;
  let fetched = 0;
  let bytes = 0;
  let missing = 0;
  // Pages of handles go to the buddies in turn; what one lacks or serves damaged, the next tries.
  const pages: Buffer[][] = [];
  for (let after: Buffer = Buffer.alloc(0); ; ) {
    const page = handlesAfter(db, after, 512);
    if (page.length === 0) break;
    after = page[page.length - 1]!;
    const need = page.filter((h) => !o.store.has(chunkId(h)));
    done += page.length - need.length;
    if (need.length > 0) pages.push(need);
  }
  const worker = async (start: number): Promise<void> => {
    for (;;) {
      const page = pages.shift();
      if (!page) return;
      let want = new Map(page.map((h) => [chunkId(h).toString('hex'), h]));
      for (let k = 0; k < holders.length && want.size > 0; k++) {
        const c = holders[(start + k) % holders.length]!;
        for (let tries = 0; want.size > 0 && tries < 64; tries++) {
          let got: { id: Buffer; box: Buffer }[];
          try {
            got = await c.chunks([...want.values()].map((h) => chunkId(h)));
          } catch (err) {
            o.log?.(`fetching from ${c.peer} failed: ${(err as Error).message}`);
            break;
          }
          if (got.length === 0) break;
          const rows: ChunkRow[] = [];
          for (const { id, box } of got) {
            const handle = want.get(id.toString('hex'));
            if (!handle) continue;
            try {
              o.store.sealer.open(handle, box, id);
            } catch {
              flagged.add(c.peer);
              o.log?.(`${c.peer} served chunk ${hexId(id)} with a bad tag: fetching it elsewhere`);
              continue;
            }
            rows.push({ id, handle, raw: raw.get(handle) ?? 0, ...writer.append(id, box) });
            want.delete(id.toString('hex'));
            bytes += box.length;
          }
          writer.sync();
          db.transaction(() => o.store.insert(rows)).immediate();
          fetched += rows.length;
          done += rows.length;
          o.progress?.({ phase: 'chunks', done, total, bytes });
          if (rows.length === 0) break;
        }
      }
      missing += want.size;
      done += want.size;
      want = new Map();
    }
  };
  await Promise.all(holders.map((_, i) => worker(i)));
  writer.seal();
  return { chunks: total, fetched, bytes, missing, flagged: [...flagged] };
}
