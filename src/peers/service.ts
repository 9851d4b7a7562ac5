// The daemon's peer side: a libp2p node in the group's private network, serving buddies
// (/safe/backup/1) and probes (/safe/probe/1), and replicating our own snapshots.
import type { ChunkStore } from '../chunkstore/store.js';
import { prepared } from '../chunkstore/index-db.js';
import type { GroupKeys, HostKeys } from '../keys/derive.js';
import { findSnapshot, listSnapshots } from '../snapshot/snapshots.js';
import { Holder, type OwnerUsage } from './holder.js';
import { createMemberTables, listMembers, networkOf, noteMember, serveProbe, type Member } from './members.js';
import { createPeerNode, type PeerNode } from './node.js';
import { BACKUP_PROTOCOL, PROBE_PROTOCOL } from './protocol.js';
import { Replicator, type BuddyState, type SyncOutcome } from './replicator.js';
import { ObjectSealer } from './sealed-objects.js';
import { createSigner } from './signing.js';

export interface PeerServiceOptions {
  store: ChunkStore;
  keys: HostKeys;
  group: GroupKeys;
  listen: string[];
  peers: string[];
  offer: number;
  buddies: number;
  /** Look for members on the LAN by mDNS. */
  mdns: boolean;
  flush: () => Promise<void>;
  /** A buddy collected garbage is due (references dropped). */
  onDropped: () => void;
  log: (m: string) => void;
  receiveDelayMs?: number;
}

export interface PeerStatus {
  peerId: string;
  addrs: string[];
  latest: number | null;
  buddies: BuddyState[];
  holding: OwnerUsage[];
  offered: number;
  used: number;
}

export class PeerService {
  private constructor(
    readonly node: PeerNode,
    readonly holder: Holder,
    readonly replicator: Replicator,
    private readonly o: PeerServiceOptions,
  ) {}

  static async start(o: PeerServiceOptions): Promise<PeerService> {
    const db = o.store.db;
    createMemberTables(db);
    const node = await createPeerNode({
      identitySeed: o.keys.identitySeed,
      pnetKey: o.group.pnetKey,
      listen: o.listen,
      bootstrap: o.peers,
      mdnsTag: o.mdns ? `_safe-${o.group.rendezvous.slice(0, 16)}._udp.local` : null,
      onBootstrapError: (addr, err) => o.log(`peer ${addr} unreachable: ${err.message}`),
    });
    const holder = new Holder({ store: o.store, offer: o.offer, log: o.log, onDropped: o.onDropped, receiveDelayMs: o.receiveDelayMs });
    const latest = (): number | null => findSnapshot(db, 'latest')?.epoch ?? null;
    const replicator = new Replicator({
      ship: {
        db, store: o.store, node, signer: createSigner(o.keys.identitySeed), sealer: new ObjectSealer(o.keys.metaKey),
        rootKey: o.keys.rootKey, locator: o.keys.locator, offer: o.offer, log: o.log,
      },
      wanted: o.buddies,
      latest,
      rootBlock: (epoch) => ({
        epoch,
        nextIno: (prepared(db, "SELECT v FROM tree_meta WHERE k = 'next_ino'").pluck().get() as number | undefined) ?? 2,
        snapshots: listSnapshots(db).filter((s) => s.epoch <= epoch),
        written: Date.now(),
      }),
      flush: o.flush,
      knownPeers: () => o.peers,
      log: o.log,
    });
    const service = new PeerService(node, holder, replicator, o);
    node.onDiscovery((peer, addrs) => {
      if (peer !== node.peerId) noteMember(db, peer, { addrs, network: addrs.map(networkOf).find((n) => n !== null) ?? null });
    });
    node.onConnect((peer, addr) => {
      // Under the private network, whoever connects is a member.
      noteMember(db, peer, { lastSeen: Date.now(), network: networkOf(addr) });
    });
    await node.handle(BACKUP_PROTOCOL, (ps) => holder.serve(ps), { maxInboundStreams: 8 });
    await node.handle(PROBE_PROTOCOL, (ps) =>
      serveProbe(ps, {
        coverage: (ids) => holder.coverage(ids),
        offer: o.offer,
        free: () => holder.free(),
        members: () => service.knownMembers(),
      }),
    );
    o.log(`peer ${node.peerId} listening on ${node.multiaddrs().join(' ')}`);
    return service;
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
    };
  }

  async stop(): Promise<void> {
    this.replicator.stop();
    await this.node.stop();
  }
}
