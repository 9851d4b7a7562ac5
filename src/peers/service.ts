// The daemon's peer side: a libp2p node in the group's private network, serving buddies
// (/safe/backup/1) and probes (/safe/probe/1), and replicating our own snapshots.
import type { ChunkStore, RemoteChunks } from '../chunkstore/store.js';
import { prepared } from '../chunkstore/index-db.js';
import type { GroupKeys, HostKeys } from '../keys/derive.js';
import { findSnapshot, listSnapshots } from '../snapshot/snapshots.js';
import { Holder, type OwnerUsage } from './buddy/holder.js';
import { listMembers, networkOf, noteMember, serveProbe, type Member } from './group/members.js';
import { createPeerNode, type PeerNode } from './net/node.js';
import type { Bandwidth } from './net/bandwidth.js';
import type { ShipWindow } from './host/ship-window.js';
import { BACKUP_PROTOCOL, PROBE_PROTOCOL, REACH_PROTOCOL, RESTORE_PROTOCOL } from './wire/protocol.js';
import { Reachability, serveDialBack, type Reach } from './group/reachability.js';
import { serveRestore } from './buddy/restore-server.js';
import { Replicator, recentAudits, type AuditOutcome, type AuditRecord, type BuddyState, type Shipment, type SyncOutcome } from './host/replicator.js';
import { MetaSealer, type HostSettings } from './metadata/sealed-objects.js';
import { MetaLog } from './metadata/meta-log.js';
import { createSigner } from './wire/signing.js';
import { Backfill, missingBatches, type BackfillProgress } from './host/backfill.js';
import { ChunkFetcher, STREAMS_PER_HOLDER, type Holders } from './host/fetcher.js';
import { backfillPending } from '../snapshot/records.js';
import { Stripes } from './metadata/stripes.js';
import { formatRedundancy, membersNeeded, type Redundancy } from '../redundancy/scheme.js';
import type { Log } from '../log/logger.js';

const DEFAULT_OWNER_SILENCE = 60 * 86400_000;
/** A failed fetch round is retried soon once (a connection still settling), then with backoff. */
const retryDelay = (attempt: number): number => (attempt === 0 ? 2000 : Math.min(3600_000, 15_000 * 2 ** (attempt - 1)));

export interface PeerServiceOptions {
  store: ChunkStore;
  keys: HostKeys;
  group: GroupKeys;
  listen: string[];
  peers: string[];
  /** Caps over all the node's channels. */
  bandwidth?: Bandwidth;
  /** Relay for members behind NAT, this many reservations at most; null or absent: no. */
  relaySlots?: number | null;
  /** When automatic shipments may run; null or absent: at any time. */
  shipWindow?: ShipWindow | null;
  offer: number;
  redundancy: Redundancy;
  /** Kept in the root block for recovery, with `offer` and the redundancy. */
  settings: Omit<HostSettings, 'offer' | 'buddies'>;
  /** A buddy failing this long is replaced (ms; default DEFAULT_SILENCE_MS). */
  buddySilenceMs?: number;
  /** rs:K+M: replace lost buddies once fewer than K + this many are left (default M). */
  repairThreshold?: number;
  /** A host we hold for, silent this long, is reclaimed (ms; default 60 days). */
  ownerSilenceMs?: number;
  /** Look for members on the LAN by mDNS. */
  mdns: boolean;
  flush: () => Promise<void>;
  /** A buddy collected garbage is due (references dropped). */
  onDropped: () => void;
  log: Log;
}

export interface PeerStatus {
  peerId: string;
  addrs: string[];
  latest: number | null;
  buddies: BuddyState[];
  holding: OwnerUsage[];
  offered: number;
  used: number;
  /** The recovery's background fetch: the last (or current) run. */
  backfill: BackfillProgress | null;
  /** Chunks are still being fetched back after a recovery. */
  fetching: boolean;
  /** Peers that served a chunk failing its tag since the daemon started. */
  flagged: string[];
  /** Audits of the last week, newest first. */
  audits: AuditRecord[];
  /** Shipments under way. */
  shipping: Shipment[];
  /** Members we hold a connection to now. */
  connected: string[];
  /** Whether members can dial us, or through which relay. */
  reach: Reach;
}

export class PeerService {
  private readonly fetcher: ChunkFetcher;

  /** Where the store fetches chunks it lacks: the buddies. */
  get remote(): RemoteChunks {
    return this.fetcher;
  }
  private sweepTimer: NodeJS.Timeout | null = null;
  private backfill: Backfill | null = null;
  private backfillRun: Promise<unknown> | null = null;
  private backfillTimer: NodeJS.Timeout | null = null;
  private stopping = false;

  private constructor(
    readonly node: PeerNode,
    readonly holder: Holder,
    readonly replicator: Replicator,
    private readonly reachability: Reachability,
    stripes: Stripes,
    private readonly o: PeerServiceOptions,
  ) {
    this.fetcher = new ChunkFetcher({ node, store: o.store, stripes, holders: () => this.holders(), log: o.log.child('fetcher') });
    stripes.rebuild = (stripe) => this.fetcher.rebuildStripe(stripe);
  }

  static async start(o: PeerServiceOptions): Promise<PeerService> {
    const db = o.store.db;
    const node = await createPeerNode({
      identitySeed: o.keys.identitySeed,
      pnetKey: o.group.pnetKey,
      listen: o.listen,
      bootstrap: o.peers,
      bandwidth: o.bandwidth,
      relaySlots: o.relaySlots,
      mdnsTag: o.mdns ? `_safe-${o.group.rendezvous.slice(0, 16)}._udp.local` : null,
      rendezvous: o.group.rendezvous,
      onRendezvousError: (err) => o.log.warn(`${err.message}: ${(err.cause as Error | undefined)?.message ?? ''}`),
      onBootstrapError: (addr, err) => o.log.warn(`peer ${addr} unreachable: ${err.message}`),
    });
    const holder = new Holder({ store: o.store, offer: o.offer, log: o.log.child('holder'), onDropped: o.onDropped });
    const latest = (): number | null => findSnapshot(db, 'latest')?.epoch ?? null;
    const stripes = new Stripes(o.store);
    const scheme = o.redundancy;
    const replicator = new Replicator({
      ship: {
        db, store: o.store, node, signer: createSigner(o.keys.identitySeed), meta: new MetaLog(db, new MetaSealer(o.keys.metaKey), o.log.child('metadata'), stripes),
        rootKey: o.keys.rootKey, locator: o.keys.locator, offer: o.offer, log: o.log.child('shipper'),
        striping: scheme.kind === 'rs' ? { stripes, k: scheme.k, m: scheme.m } : undefined,
      },
      scheme,
      latest,
      rootBlock: (epoch) => ({
        epoch,
        nextIno: (prepared(db, "SELECT v FROM tree_meta WHERE k = 'next_ino'").pluck().get() as number | undefined) ?? 2,
        snapshots: listSnapshots(db).filter((s) => s.epoch <= epoch),
        settings: { ...o.settings, offer: o.offer, buddies: membersNeeded(scheme), redundancy: formatRedundancy(scheme) },
        written: Date.now(),
      }),
      flush: o.flush,
      knownPeers: () => o.peers,
      silenceMs: o.buddySilenceMs,
      repairThreshold: o.repairThreshold,
      window: o.shipWindow ?? null,
      log: o.log.child('replicator'),
    });
    const reachability = new Reachability({ node, members: () => listMembers(db).map((m) => m.peer), log: o.log.child('reach') });
    const service = new PeerService(node, holder, replicator, reachability, stripes, o);
    // libp2p forgets addresses at exit; the members table does not: a restarted daemon can
    // still reach a buddy it heard of through another member.
    for (const m of listMembers(db)) if (m.addrs.length > 0) await node.learn(m.peer, m.addrs).catch(() => {});
    node.onDiscovery((peer, addrs) => {
      if (peer !== node.peerId) noteMember(db, peer, { addrs, network: addrs.map(networkOf).find((n) => n !== null) ?? null });
    });
    node.onConnect((peer, addr) => {
      // Under the private network, whoever connects is a member.
      noteMember(db, peer, { lastSeen: Date.now(), network: networkOf(addr) });
    });
    await node.handle(BACKUP_PROTOCOL, (ps) => holder.serve(ps), { maxInboundStreams: 8 });
    await node.handle(RESTORE_PROTOCOL, (ps) => serveRestore(ps, o.store, (peer) => holder.touch(peer)), { maxInboundStreams: 8 });
    await node.handle(PROBE_PROTOCOL, (ps) =>
      serveProbe(ps, {
        coverage: (ids) => holder.coverage(ids),
        offer: o.offer,
        free: () => holder.free(),
        members: () => service.knownMembers(),
      }),
    );
    await node.handle(REACH_PROTOCOL, (ps) => serveDialBack(ps));
    o.log(`peer ${node.peerId} listening on ${node.multiaddrs().join(' ')}${o.relaySlots ? `, relaying for up to ${o.relaySlots} members` : ''}`);
    reachability.start();
    service.sweepSoon();
    o.store.setRemote(service.fetcher);
    service.backfillSoon(0);
    return service;
  }

  /** Peers that may hold our chunks: the buddies; then former buddies, then the other members. */
  private holders(): Holders {
    const self = this.node.peerId;
    const buddies = this.replicator.buddies().map((b) => b.peer).filter((p) => p !== self);
    const former = this.replicator.buddies(true).map((b) => b.peer);
    const members = listMembers(this.o.store.db).map((m) => m.peer);
    return { buddies, others: [...new Set([...former, ...members])].filter((p) => p !== self && !buddies.includes(p)) };
  }

  /** After a recovery: fetch every chunk the tree names back, retrying while holders are away. */
  private backfillSoon(delayMs: number, attempt = 0): void {
    if (this.stopping || !backfillPending(this.o.store.db)) return;
    this.backfillTimer = setTimeout(() => {
      this.backfillTimer = null;
      const bf = new Backfill(this.o.store, this.fetcher, () => STREAMS_PER_HOLDER * Math.min(4, Math.max(1, this.replicator.buddies().length)), this.backfill?.progress);
      this.backfill = bf;
      this.backfillRun = bf.run().then(
        (complete) => {
          const p = bf.progress;
          this.o.log(`recovery fetch: ${p.chunksFetched} chunks (${p.received} bytes) in ${((Date.now() - p.startedAt) / 1000).toFixed(1)} s; ${complete ? 'every chunk is back' : `${p.missing} still missing, trying again later`}`);
          if (!complete) this.backfillSoon(retryDelay(attempt), attempt + 1);
        },
        (err: Error) => {
          this.o.log.warn(`recovery fetch failed: ${err.message}`);
          this.backfillSoon(retryDelay(attempt), attempt + 1);
        },
      );
    }, delayMs);
    this.backfillTimer.unref();
  }

  /** Fetches the chunks of these lists that are not here (a restore of a path). */
  async fetchLists(lists: Iterable<{ cl: number; size: number }>): Promise<{ fetched: number; bytes: number; missing: number }> {
    const out = { fetched: 0, bytes: 0, missing: 0 };
    for (const { refs } of missingBatches(this.o.store, lists)) {
      if (refs.length === 0) continue;
      const r = await this.fetcher.fetchAll(refs);
      out.fetched += r.fetched;
      out.bytes += r.bytes;
      out.missing += r.missing.length;
    }
    return out;
  }

  /** Looks for decommissioned hosts now and then (at most hourly, sooner for short thresholds). */
  private sweepSoon(): void {
    const silence = this.o.ownerSilenceMs ?? DEFAULT_OWNER_SILENCE;
    const sweep = (): void => {
      try {
        this.holder.reclaimSilent(Date.now() - silence);
      } catch (err) {
        this.o.log.warn(`reclaiming silent hosts failed: ${(err as Error).message}`);
      }
      this.sweepTimer = setTimeout(sweep, Math.min(3600_000, Math.max(1000, silence / 4)));
      this.sweepTimer.unref();
    };
    sweep();
  }

  /** Good copies from the buddies for our chunks stored here damaged; how many came. */
  async repair(ids: Buffer[]): Promise<{ repaired: number }> {
    return { repaired: await this.fetcher.repair(ids.map((id) => this.o.store.refOf(id)).filter((r) => r !== undefined)) };
  }

  audit(): Promise<AuditOutcome[]> {
    return this.replicator.audit();
  }

  private async knownMembers(): Promise<{ peer: string; addrs: string[] }[]> {
    const out = [{ peer: this.node.peerId, addrs: this.node.multiaddrs() }];
    for (const m of listMembers(this.o.store.db)) {
      const addrs = (await this.node.addressesOf(m.peer)).concat(m.addrs);
      if (addrs.length > 0) out.push({ peer: m.peer, addrs: [...new Set(addrs)].slice(0, 16) });
    }
    return out;
  }

  sync(): Promise<SyncOutcome> {
    return this.replicator.sync();
  }

  /** Probes the group now and lists what we know of each member. */
  async members(): Promise<Member[]> {
    return this.replicator.refreshMembers();
  }

  status(): PeerStatus {
    return {
      peerId: this.node.peerId,
      addrs: this.node.multiaddrs(),
      latest: findSnapshot(this.o.store.db, 'latest')?.epoch ?? null,
      buddies: this.replicator.buddies(),
      holding: this.holder.owners(),
      offered: this.o.offer,
      used: this.holder.used(),
      backfill: this.backfill?.progress ?? null,
      fetching: backfillPending(this.o.store.db),
      flagged: [...this.fetcher.flagged],
      audits: recentAudits(this.o.store.db),
      shipping: this.replicator.shipments(),
      connected: this.node.peers(),
      reach: this.reachability.reach,
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    if (this.backfillTimer) clearTimeout(this.backfillTimer);
    this.backfill?.stop();
    this.reachability.stop();
    // Its current batch finishes before the store it writes to closes.
    await this.backfillRun;
    this.o.store.setRemote(null);
    await this.fetcher.close();
    // The node's end cuts a shipment or audit off; the replicator is done before the store closes.
    const replicating = this.replicator.stop();
    await this.node.stop();
    await replicating;
  }
}
