// One libp2p node per host: TCP + Noise + yamux, identify and ping, and, when the host is in a
// backup group, a private network keyed by the group so that only members can even finish a
// handshake. Circuit relay v2 lets members behind NAT be reached through a member that offers to
// relay; a relayed connection is itself a group-network connection end to end, so the relay
// carries only ciphertext and serves members only. The rest of src/peers talks to this wrapper, not to libp2p, so a libp2p upgrade
// touches this file and the modules' list in libp2p.ts.
import {
  bootstrap, circuitRelayServer, circuitRelayTransport, createLibp2p, generateKeyPairFromSeed, identify, identifyPush, mdns, multiaddr, noise, peerIdFromString, ping,
  RELAY_V2_HOP_CODEC, tcp,
} from './libp2p.js';
import type { Libp2p } from 'libp2p';
import type { Identify } from '@libp2p/identify';
import type { Ping } from '@libp2p/ping';
import type { Multiaddr } from '@multiformats/multiaddr';
import { cappedYamux } from './yamux-frames.js';
import type { TransportManager } from '@libp2p/interface-internal';
import { isRelayed } from './addresses.js';
import type { Connection, PeerId, Stream, StreamHandlerOptions } from '@libp2p/interface';
import { groupNetwork } from './private-network.js';
import { noiseCrypto } from './noise-crypto.js';
import { rendezvousDHT, startRendezvous, type Rendezvous } from './rendezvous.js';
import { UNLIMITED, type Bandwidth } from './bandwidth.js';

export type { Stream } from '@libp2p/interface';
export { GroupMismatchError } from './private-network.js';

export interface PeerNodeOptions {
  /** 32-byte Ed25519 seed (HostKeys.identitySeed): the same seed always gives the same PeerId. */
  identitySeed: Uint8Array;
  /** 32-byte group key (GroupKeys.pnetKey), or null for a node outside any private network. */
  pnetKey: Uint8Array | null;
  /** Multiaddrs to listen on, e.g. '/ip4/127.0.0.1/tcp/0'. */
  listen: string[];
  /**
   * Peers to connect to at start, in the background. With /p2p/<id> the remote identity is
   * checked by Noise (and libp2p's bootstrap module dials it); without, we dial the address
   * and accept whoever answers there (still only a group member, under pnet).
   */
  bootstrap: string[];
  /**
   * Find members on the LAN by mDNS under this service name (derived from the group secret, so
   * other groups' hosts are not even found); null or absent: no multicast at all (tests).
   */
  mdnsTag?: string | null;
  /**
   * Find members anywhere by a record in a Kad-DHT among members, keyed by this (hex,
   * GroupKeys.rendezvous); null or absent: no DHT.
   */
  rendezvous?: string | null;
  /**
   * false: a node that only asks (a recovery before the host is back). It serves no DHT and
   * provides no rendezvous record, so with no listen address it leaves no address of its own
   * in the members' peer stores and DHT records, only the host's real daemon does (default true).
   */
  announce?: boolean;
  /** Told when a rendezvous round fails (the node carries on; the next round tries again). */
  onRendezvousError?: (err: Error) => void;
  /** Budget for one dial, handshakes included (default 10 s). */
  dialTimeoutMs?: number;
  /** Caps over all channels of this node (upload, download); none by default. */
  bandwidth?: Bandwidth;
  /** Told when a bootstrap address without /p2p/ could not be dialed (start never fails for it). */
  onBootstrapError?: (addr: string, err: Error) => void;
  /** Relay for members behind NAT, holding at most this many reservations; null or absent: no. */
  relaySlots?: number | null;
}

/** A stream and who is at the other end, for inbound and outbound streams alike. */
export interface PeerStream {
  stream: Stream;
  /** PeerId string of the authenticated remote: Noise proved it holds that key. */
  remotePeer: string;
  remoteAddr: string;
  /** The node's caps, for the channel on this stream. */
  bandwidth: Bandwidth;
}

export type StreamHandler = (incoming: PeerStream) => void | Promise<void>;

export interface HandleOptions {
  /** Concurrent inbound streams per connection for this protocol (libp2p default 32). */
  maxInboundStreams?: number;
  maxOutboundStreams?: number;
}

export interface DialOptions {
  signal?: AbortSignal;
}

export interface PeerNode {
  readonly peerId: string;
  /** Addresses we listen on, each ending in /p2p/<our id>: hand these to other hosts. */
  multiaddrs(): string[];
  /** Opens (or reuses) a connection and returns the remote's PeerId. */
  connect(target: string, opts?: DialOptions): Promise<string>;
  /** Opens a new stream for `protocol` on an existing or new connection to `target`. */
  dial(target: string, protocol: string, opts?: DialOptions): Promise<PeerStream>;
  /** Serves `protocol`; a handler that throws aborts its stream, never the process. */
  handle(protocol: string, handler: StreamHandler, opts?: HandleOptions): Promise<void>;
  unhandle(protocol: string): Promise<void>;
  /** PeerIds we hold an open connection to. */
  peers(): string[];
  /**
   * Settles once the dials of configured addresses that name no peer have ended, either way:
   * until then a peer's remembered address may be one it left.
   */
  readonly configuredDialed: Promise<void>;
  /** Round-trip time in ms. */
  ping(target: string, opts?: DialOptions): Promise<number>;
  hangUp(target: string): Promise<void>;
  /** Addresses known for a peer (what it announced through identify, or we dialed). */
  addressesOf(peer: string): Promise<string[]>;
  /** Remembers addresses for a peer heard of from another member (peer exchange). */
  learn(peer: string, addrs: string[]): Promise<void>;
  /**
   * Called with each peer a discovery module (mDNS, bootstrap) finds, and its addresses, and
   * with each member a rendezvous round finds, every round that finds it.
   */
  onDiscovery(cb: (peer: string, addrs: string[]) => void): void;
  /** Runs one rendezvous lookup now: the PeerIds of the members it found (and dialed). */
  rendezvousNow(): Promise<string[]>;
  /** Called with the PeerId of every new connection, inbound or outbound. */
  onConnect(cb: (peer: string, remoteAddr: string) => void): void;
  /** Called when a connection closes. */
  onDisconnect(cb: (peer: string, remoteAddr: string) => void): void;
  /** Whether we hold a connection to the peer that does not pass through a relay. */
  directTo(peer: string): boolean;
  /** Whether the peer said (through identify) that it relays. */
  relays(peer: string): Promise<boolean>;
  /** Reserves a slot on a relay we are connected to, and listens on the relayed address. */
  reserveOn(relay: string, opts?: DialOptions): Promise<void>;
  /** The relays our relayed addresses go through now. */
  relayedVia(): string[];
  /** The TCP ports we listen on. */
  listenPorts(): number[];
  stop(): Promise<void>;
  /** The underlying node, for services a later layer adds (DHT, discovery). */
  readonly libp2p: Libp2p<{ identify: Identify; ping: Ping }>;
}

/** A multiaddr string ('/ip4/…') or a bare PeerId string of a peer already known. */
function parseTarget(target: string): Multiaddr | PeerId {
  return target.startsWith('/') ? multiaddr(target) : peerIdFromString(target);
}

/** The relay a relayed address goes through. */
function relayOf(addr: string): string | null {
  const c = multiaddr(addr).getComponents();
  const at = c.findIndex((x) => x.name === 'p2p-circuit');
  return at > 0 && c[at - 1]!.name === 'p2p' ? c[at - 1]!.value ?? null : null;
}

/**
 * The group's own relay limits: reservations are the owner's offer; a relayed connection has no
 * time or byte limit (libp2p's defaults, 2 minutes and 128 KiB, would cut every shipment) since
 * only members can reach the relay at all.
 */
const relayServer = (slots: number) =>
  circuitRelayServer({ reservations: { maxReservations: slots, applyDefaultLimit: false } });

/** Listening on a relay at run time (the transport manager is libp2p-internal). */
interface RelayListener {
  listen(addr: Multiaddr): Promise<void>;
  getAddrs(): Multiaddr[];
}

// Not the transport manager itself as a service: libp2p would start it a second time.
function relayListener({ transportManager: tm }: { transportManager: TransportManager }): RelayListener {
  return {
    getAddrs: () => tm.getAddrs(),
    async listen(addr) {
      const before = new Set(tm.getListeners());
      try {
        await tm.listen([addr]);
      } catch (err) {
        // A failed listen leaves its listener behind; closing it drops it (no slot is held when
        // we ask for one, so the reservations its close cancels are none).
        for (const l of tm.getListeners()) if (!before.has(l)) await l.close().catch(() => {});
        // libp2p folds the relay's answer into a long message with a stack: keep the answer.
        const msg = (err as Error).message;
        throw new Error(/Error: ([^\n]+)/.exec(msg)?.[1] ?? msg.split('\n')[0]);
      }
    },
  };
}

const hasPeerId = (addr: string): boolean => multiaddr(addr).getComponents().some((c) => c.name === 'p2p');

export async function createPeerNode(opts: PeerNodeOptions): Promise<PeerNode> {
  if (opts.identitySeed.length !== 32) throw new Error(`identity seed must be 32 bytes, got ${opts.identitySeed.length}`);
  // Not privateKeyFromRaw: given 32 bytes it silently builds a secp256k1 key (@libp2p/crypto 5).
  const privateKey = await generateKeyPairFromSeed('Ed25519', opts.identitySeed);

  // The bootstrap module only takes addresses that name the peer; the others we dial ourselves.
  const named = opts.bootstrap.filter(hasPeerId);
  const announce = opts.announce ?? true;
  const bare = opts.bootstrap.filter((a) => !hasPeerId(a));

  const node = await createLibp2p({
    privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [cappedYamux()],
    ...(opts.pnetKey ? { connectionProtector: groupNetwork(opts.pnetKey) } : {}),
    // timeout 0: the default waits a whole second before the first dial.
    peerDiscovery: [
      ...(named.length > 0 ? [bootstrap({ list: named, timeout: 0 })] : []),
      ...(opts.mdnsTag ? [mdns({ serviceTag: opts.mdnsTag })] : []),
    ],
    connectionManager: { dialTimeout: opts.dialTimeoutMs ?? 10_000 },
    // libp2p pings every connection each 10 s and drops one whose ping is 5 s late. On a home
    // uplink a shipment keeps up to its window (16 MiB) queued ahead of the ping: at 40 Mbit/s
    // over 3 s, and a first shipment in the NAT bed was cut every few seconds. Pings a minute
    // apart, each given 50 s (so they never overlap: one ping stream per connection), still
    // find a member that is gone within two minutes.
    connectionMonitor: { pingInterval: 60_000, pingTimeout: { minTimeout: 50_000, maxTimeout: 50_000 } },
    services: {
      identify: identify(),
      // Tells connected members when our addresses change: a relayed address once a relay
      // holds a slot for us, or none once it is lost.
      identifyPush: identifyPush(),
      ping: ping(),
      ...(opts.rendezvous ? { dht: rendezvousDHT(announce) } : {}),
      ...(opts.relaySlots ? { relay: relayServer(opts.relaySlots) } : {}),
      listener: relayListener,
    },
    start: true,
  });

  const discovered: Array<(peer: string, addrs: string[]) => void> = [];
  const tellDiscovered = (peer: string, addrs: string[]): void => {
    for (const cb of discovered) {
      try {
        cb(peer, addrs);
      } catch {
        // a listener must not take the node down
      }
    }
  };
  node.addEventListener('peer:discovery', (evt) => tellDiscovered(evt.detail.id.toString(), evt.detail.multiaddrs.map((m) => m.toString())));

  const rendezvous: Rendezvous | null =
    opts.rendezvous && node.services.dht
      ? await startRendezvous(node, node.services.dht, { rendezvous: opts.rendezvous, announce, onFound: tellDiscovered, onError: opts.onRendezvousError })
      : null;

  const configuredDialed = Promise.all(
    bare.map((addr) => node.dial(multiaddr(addr)).then(() => {}, (err: Error) => opts.onBootstrapError?.(addr, err))),
  ).then(() => {});

  const wrap = (stream: Stream, connection: Connection): PeerStream => ({
    stream,
    remotePeer: connection.remotePeer.toString(),
    remoteAddr: connection.remoteAddr.toString(),
    bandwidth: opts.bandwidth ?? UNLIMITED,
  });

  return {
    peerId: node.peerId.toString(),
    libp2p: node,
    configuredDialed,
    multiaddrs: () => node.getMultiaddrs().map((m) => m.toString()),
    async connect(target, o) {
      const conn = await node.dial(parseTarget(target), { signal: o?.signal });
      return conn.remotePeer.toString();
    },
    async dial(target, protocol, o) {
      const peer = parseTarget(target);
      const open = async (): Promise<PeerStream> => {
        const conn = await node.dial(peer, { signal: o?.signal });
        return wrap(await conn.newStream(protocol, { signal: o?.signal }), conn);
      };
      try {
        return await open();
      } catch (err) {
        // A connection the other side closes as it opens: a daemon just started after a
        // recovery met it on its first fetch from a buddy, every time (that buddy was dialing
        // it back to see whether it is reachable). Dialed again, it opens.
        if (o?.signal?.aborted || (err as Error).name !== 'ConnectionClosedError') throw err;
        return open();
      }
    },
    async handle(protocol, handler, o) {
      const options: StreamHandlerOptions = {};
      if (o?.maxInboundStreams !== undefined) options.maxInboundStreams = o.maxInboundStreams;
      if (o?.maxOutboundStreams !== undefined) options.maxOutboundStreams = o.maxOutboundStreams;
      await node.handle(
        protocol,
        async (stream, connection) => {
          try {
            await handler(wrap(stream, connection));
          } catch (err) {
            // A bad peer or a bug in one handler costs that stream only.
            stream.abort(err instanceof Error ? err : new Error(String(err)));
          }
        },
        options,
      );
    },
    async unhandle(protocol) {
      await node.unhandle(protocol);
    },
    peers: () => node.getPeers().map((p) => p.toString()),
    ping: (target, o) => node.services.ping.ping(parseTarget(target), { signal: o?.signal }),
    hangUp: (target) => node.hangUp(parseTarget(target)),
    async addressesOf(peer) {
      try {
        const p = await node.peerStore.get(peerIdFromString(peer));
        return p.addresses.map((a) => a.multiaddr.toString());
      } catch {
        return [];
      }
    },
    async learn(peer, addrs) {
      try {
        await node.peerStore.merge(peerIdFromString(peer), { multiaddrs: addrs.map((a) => multiaddr(a)) });
      } catch {
        // a malformed address from a peer teaches us nothing
      }
    },
    onDiscovery(cb) {
      discovered.push(cb);
    },
    rendezvousNow: async () => rendezvous?.find() ?? [],
    onConnect(cb) {
      node.addEventListener('connection:open', (evt) => {
        try {
          cb(evt.detail.remotePeer.toString(), evt.detail.remoteAddr.toString());
        } catch {
          // a listener must not take the node down
        }
      });
    },
    onDisconnect(cb) {
      node.addEventListener('connection:close', (evt) => {
        try {
          cb(evt.detail.remotePeer.toString(), evt.detail.remoteAddr.toString());
        } catch {
          // a listener must not take the node down
        }
      });
    },
    directTo: (peer) => node.getConnections(peerIdFromString(peer)).some((c) => !isRelayed(c.remoteAddr.toString())),
    async relays(peer) {
      try {
        return (await node.peerStore.get(peerIdFromString(peer))).protocols.includes(RELAY_V2_HOP_CODEC);
      } catch {
        return false;
      }
    },
    async reserveOn(relay, o) {
      // A reservation lives as long as the connection it was made on; dialing first makes a
      // dropped relay's return a new connection, not a failed reservation libp2p then shuns.
      await node.dial(peerIdFromString(relay), { signal: o?.signal });
      await node.services.listener.listen(multiaddr(`/p2p/${relay}/p2p-circuit`));
    },
    relayedVia: () => [...new Set(node.getMultiaddrs().map((m) => m.toString()).filter(isRelayed).map(relayOf).filter((r) => r !== null))],
    listenPorts: () => [
      ...new Set(
        node.services.listener
          .getAddrs()
          .map((m) => m.getComponents().find((c) => c.name === 'tcp')?.value)
          .filter((v) => v !== undefined)
          .map(Number),
      ),
    ],
    async stop() {
      rendezvous?.stop();
      await node.stop();
    },
  };
}
