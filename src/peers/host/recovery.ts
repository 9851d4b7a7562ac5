// Disaster recovery, the network half: find our root block by its locator on any member, check
// our own signature on it and open it, and rebuild the tree from the chain of metadata segments
// it names (a base and a few deltas, fetched in a few large pages from one buddy). The chunks
// follow in the background once the tree is mounted (backfill.ts).
import type { ChunkStore } from '../../chunkstore/store.js';
import type { HostKeys } from '../../keys/derive.js';
import { setBackfillPending } from '../../snapshot/records.js';
import { Decompressor } from 'zstd-napi';
import { beginImport, finishImport, importPage, type DeltaPage } from '../../snapshot/deltas.js';
import type { PeerNode } from '../net/node.js';
import { RestoreClient } from './restore-client.js';
import { MetaSealer, boxDigest, openRootBlock, type RootBlock, type SegmentRef } from '../metadata/sealed-objects.js';
import { MetaLog, logLegacyDrops } from '../metadata/meta-log.js';
import { legacyPages } from '../metadata/legacy-objects.js';
import { SEGMENT_FORMAT, readSegment } from '../metadata/meta-segments.js';
import { createSigner } from '../wire/signing.js';
import { Stripes } from '../metadata/stripes.js';
import { formatRedundancy, parseRedundancy } from '../../redundancy/scheme.js';
import { silentLog, type Log } from '../../log/logger.js';

export class NoRootBlockError extends Error {
  override name = 'NoRootBlockError';
}

/** The root block names metadata this release cannot read: nothing was changed. */
export class MetadataFormatError extends Error {
  override name = 'MetadataFormatError';
}

/** Stripes need K shards: fewer buddies than that are reachable, so nothing can be rebuilt. */
export class TooFewHoldersError extends Error {
  override name = 'TooFewHoldersError';
}

/** A holder served a segment that is not the one the root block names (damaged or substituted). */
class DamagedSegmentError extends Error {
  override name = 'DamagedSegmentError';
}

export interface RecoveryProgress {
  /** Metadata objects (segments) imported so far, and rows (inodes, entries, chunk lists) in them. */
  objects: number;
  rows: number;
}

export interface RecoveryReport {
  root: RootBlock;
  rootFrom: string;
  /** Metadata objects imported, and how many of them an interrupted recovery had already fetched. */
  objects: number;
  reused: number;
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
  /** Members asked that did not answer (after retries): not tried again for the metadata. */
  unreachable: string[];
}

export interface RecoveryOptions {
  node: PeerNode;
  store: ChunkStore;
  keys: HostKeys;
  /** What findRootBlock found. */
  located: LocatedRoot;
  progress?: (p: RecoveryProgress) => void;
  log?: Log;
}

/** Attempts at opening a client before a member counts as unreachable (a connection can drop while it opens). */
const OPEN_ATTEMPTS = 3;

async function openClient(node: PeerNode, target: string): Promise<RestoreClient | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await RestoreClient.open(node, target, AbortSignal.timeout(15_000));
    } catch {
      if (attempt === OPEN_ATTEMPTS) return null;
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}

/** The newest root block any candidate holds for us, opened. */
export async function findRootBlock(node: PeerNode, keys: HostKeys, candidates: string[]): Promise<LocatedRoot> {
  const owner = createSigner(keys.identitySeed).publicKey;
  const opened = await Promise.all(candidates.map((c) => openClient(node, c)));
  const clients = opened.filter((c): c is RestoreClient => c !== null);
  const unreachable = candidates.filter((_, i) => opened[i] === null);
  if (clients.length === 0) throw new NoRootBlockError('no member of the group is reachable (check --peer and the group name and password)');
  const found = (await Promise.all(clients.map((c) => c.rootBlock(keys.locator, owner).catch(() => null)))).filter((r) => r !== null);
  if (found.length === 0) throw new NoRootBlockError('no root block found for this host in the group: wrong hostname or passphrase, or it never shipped a snapshot');
  found.sort((a, b) => b.epoch - a.epoch);
  let best = found[0]!;
  let root = openRootBlock(keys.rootKey, keys.locator, best.box);
  // Stripes need K holders of a state: the newest root block K of them have reached (a buddy
  // keeps the stripes of every state until all buddies have committed past their death).
  const scheme = root.settings.redundancy ? parseRedundancy(root.settings.redundancy) : null;
  if (scheme?.kind === 'rs' && found.length >= scheme.k && found[scheme.k - 1]!.epoch < best.epoch) {
    best = found[scheme.k - 1]!;
    root = openRootBlock(keys.rootKey, keys.locator, best.box);
  }
  if (root.meta && root.meta.format !== SEGMENT_FORMAT) throw new MetadataFormatError(`this host's metadata is in format ${root.meta.format}, this release reads format ${SEGMENT_FORMAT}: upgrade safe`);
  return { root, from: best.peer, clients, unreachable };
}

export async function recover(o: RecoveryOptions): Promise<RecoveryReport> {
  const db = o.store.db;
  const log = o.log ?? silentLog();
  const { root, from, clients: asked, unreachable } = o.located;
  log(`root block of epoch ${root.epoch} from ${from}: ${root.snapshots.length} snapshots, buddies ${root.buddies.map((b) => b.peer).join(', ')}`);
  // The buddies the root block names, plus whoever answered: everyone that may hold our data.
  // The block's addresses are as old as the block: only for a buddy not reached otherwise.
  const connected = new Set(o.node.peers());
  for (const b of root.buddies) if (!connected.has(b.peer)) await o.node.learn(b.peer, b.addrs);
  const clients = [...asked];
  // At once: a buddy that is away costs its retries once, not once per buddy before it.
  const fresh = root.buddies.filter((b) => !asked.some((c) => c.peer === b.peer) && !unreachable.includes(b.peer));
  const opened = await Promise.all(fresh.map((b) => openClient(o.node, b.peer)));
  for (const c of opened) if (c) clients.push(c);
  const holders = clients.filter((c) => root.buddies.some((b) => b.peer === c.peer));
  if (holders.length === 0) throw new NoRootBlockError(`none of the buddies holding this host's data is reachable (${root.buddies.map((b) => b.peer).join(', ')})`);
  const scheme = root.settings.redundancy ? parseRedundancy(root.settings.redundancy) : null;
  if (scheme?.kind === 'rs' && holders.length < scheme.k) {
    for (const c of clients) await c.close();
    const away = root.buddies.filter((b) => !holders.some((c) => c.peer === b.peer)).map((b) => b.peer);
    throw new TooFewHoldersError(
      `only ${holders.length} of the ${root.buddies.length} buddies holding this host's shards are reachable and ${formatRedundancy(scheme)} needs ${scheme.k} to rebuild any of its data; nothing was recovered (away: ${away.join(', ')})`,
    );
  }

  // Metadata: the chain the root block names (or release 0.2's objects), from the first buddy
  // that gives all of it.
  const sealer = new MetaSealer(o.keys.metaKey);
  const stripes = new Stripes(o.store);
  const meta = new MetaLog(db, sealer, log, stripes);
  const chain = root.meta?.segments;
  let objects = 0;
  let reused = 0;
  let sources = holders;
  const why: string[] = [];
  for (let round = 1; objects === 0; round++) {
    const failed: string[] = [];
    for (const c of sources) {
      try {
        if (chain) ({ objects, reused } = await importChain(o.node, c, chain, sealer, meta, stripes, db, o.progress));
        else objects = await importLegacy(c, sealer, db, o.progress);
        break;
      } catch (err) {
        log.warn(`metadata from ${c.peer} failed: ${(err as Error).message}`);
        why.push(`${c.peer.slice(-8)}: ${(err as Error).message}`);
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
  if (objects === 0) throw new Error(`no buddy could give back the metadata (${why.slice(-holders.length).join('; ')})`);

  db.transaction(() => {
    finishImport(db, root.epoch, root.nextIno, root.snapshots);
    stripes.dropUnnamed();
    stripes.markStriped(root.epoch);
    // Buddies drop release 0.2's objects once our first shipment gave them a chain.
    if (!chain) logLegacyDrops(db);
    // The chunks come next, in the background of the mounted daemon (backfill.ts).
    setBackfillPending(db, true);
  }).immediate();
  for (const c of clients) await c.close();
  const reached = await Promise.all(o.node.peers().map(async (peer) => ({ peer, addrs: await o.node.addressesOf(peer) })));
  return { root, rootFrom: from, objects, reused, holders: holders.map((c) => c.peer), reached };
}

/**
 * Imports every segment of `chain`, each in its own transaction and kept as our chain; deaths
 * and the cut to the shipped epoch wait for finishImport. Segments an interrupted recovery
 * already kept are read again from here, not fetched; the rest come by id in pages (from a
 * release-0.2 member, which cannot look objects up by id, from its whole listing). Returns how
 * many segments were imported and how many of them were here already.
 */
async function importChain(
  node: PeerNode, c: RestoreClient, chain: SegmentRef[], sealer: MetaSealer, meta: MetaLog, stripes: Stripes, db: ChunkStore['db'], progress?: (p: RecoveryProgress) => void,
): Promise<{ objects: number; reused: number }> {
  beginImport(db);
  let rows = 0;
  let reused = 0;
  const done = new Set<number>();
  const apply = (ref: SegmentRef, box: Buffer): void => {
    if (!boxDigest(box).equals(Buffer.from(ref.digest))) throw new DamagedSegmentError(`metadata segment ${ref.seq} is not the one the root block names`);
    let body: Buffer;
    try {
      body = sealer.open(ref.seq, box);
    } catch (err) {
      throw new DamagedSegmentError((err as Error).message);
    }
    const { header, pages } = readSegment(body);
    if (header.seq !== ref.seq || header.from !== ref.from || header.to !== ref.to) throw new DamagedSegmentError(`metadata segment ${ref.seq} says it is another`);
    db.transaction(() => {
      let n = 0;
      for (const page of pages) {
        if (page.kind === 'stripes' || page.kind === 'stripeDeaths') stripes.importPage(page);
        else importPage(db, page);
        n += page.rows.length;
      }
      meta.adopt(ref, box, n);
      rows += n;
    }).immediate();
    done.add(ref.seq);
    progress?.({ objects: done.size, rows });
  };
  for (const ref of chain) {
    const here = meta.object(ref.seq);
    if (here && here.digest.equals(Buffer.from(ref.digest))) {
      apply(ref, here.box);
      reused++;
    }
  }
  const want = new Map(chain.filter((r) => !done.has(r.seq)).map((r) => [sealer.segmentId(r.seq).toString('hex'), r]));
  // A damaged segment is skipped, not fatal: the rest of this holder's are applied, and the next
  // holder is asked only for what is still missing.
  const bad = new Set<string>();
  const take = (it: { id: Buffer; box: Buffer }): void => {
    const key = it.id.toString('hex');
    const ref = want.get(key);
    if (!ref || bad.has(key)) return;
    try {
      apply(ref, it.box);
      want.delete(key);
    } catch (err) {
      if (!(err instanceof DamagedSegmentError)) throw err;
      bad.add(key);
    }
  };
  // The next page is asked for before this one is applied: a segment's import takes longer
  // than its transfer (linux-prev: 0.15-0.5 s against 0.06-0.07 s a segment).
  const ask = (skip: Set<string>): Promise<{ id: Buffer; box: Buffer }[]> | null => {
    const ids = [...want.keys()].filter((k) => !bad.has(k) && !skip.has(k)).slice(0, 256);
    if (ids.length === 0) return null;
    const page = c.getObjects(ids.map((k) => Buffer.from(k, 'hex')));
    page.catch(() => {}); // awaited below, unless an apply failed first
    return page;
  };
  let byId = true;
  for (let pending = ask(new Set()); pending; ) {
    let page: { id: Buffer; box: Buffer }[];
    try {
      page = await pending;
    } catch {
      byId = false;
      break;
    }
    if (page.length === 0) break;
    pending = ask(new Set(page.map((it) => it.id.toString('hex'))));
    for (const it of page) take(it);
  }
  if (!byId) {
    const listing = await RestoreClient.open(node, c.peer, AbortSignal.timeout(15_000));
    try {
      for await (const it of listing.objects()) take(it);
    } finally {
      await listing.close();
    }
  }
  if (want.size > 0) {
    throw new Error(`holds ${chain.length - want.size} of the ${chain.length} metadata segments whole${bad.size > 0 ? ` (${bad.size} failed their checks)` : ''}`);
  }
  return { objects: done.size, reused };
}

/** Release 0.2's metadata, one object per inode or chunk list: imported in batches. */
async function importLegacy(c: RestoreClient, sealer: MetaSealer, db: ChunkStore['db'], progress?: (p: RecoveryProgress) => void): Promise<number> {
  beginImport(db);
  const decompressor = new Decompressor();
  let objects = 0;
  let rows = 0;
  let batch: DeltaPage[] = [];
  const flush = (): void => {
    db.transaction(() => {
      for (const page of batch) importPage(db, page);
    }).immediate();
    batch = [];
  };
  for await (const it of c.objects()) {
    for (const page of legacyPages(sealer, it.id, it.box, decompressor)) {
      batch.push(page);
      rows += page.rows.length;
    }
    if (++objects % 512 === 0) flush();
    progress?.({ objects, rows });
  }
  flush();
  if (objects === 0) throw new Error('holds no metadata for us');
  return objects;
}
