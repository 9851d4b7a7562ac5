// Rendezvous beyond the LAN: every member of a group provides one content id, derived from the
// group's rendezvous secret, in a Kad-DHT of our own, and asks the DHT for the other providers
// of it. A member reachable from any other member is then found by all, where bootstrap
// addresses reach only the hosts named and mDNS only the LAN.
import type { KadDHT } from '@libp2p/kad-dht';
import type { PeerInfo } from '@libp2p/interface';
import type { Libp2p } from 'libp2p';
import { CID, kadDHT, passthroughMapper, raw, sha256 } from './libp2p.js';

/** Not '/ipfs/kad/1.0.0': a member must never join, or answer for, the public IPFS DHT. */
export const DHT_PROTOCOL = '/safe/kad/1.0.0';

/** Provider records live 48 h, but members come and go: announce and look again this often. */
const ROUND_INTERVAL_MS = 10 * 60_000;
/** A round waits for DHT peers; past this, try again at the next round rather than hang on. */
const ROUND_TIMEOUT_MS = 60_000;

/** `serve` false: a client only, kept out of the members' routing tables. */
export function rendezvousDHT(serve: boolean): ReturnType<typeof kadDHT> {
  return kadDHT({
    protocol: DHT_PROTOCOL,
    // Explicit: left unset, the DHT stays a client until it sees a public address of ours, so
    // members on a LAN or behind NAT would never answer each other's queries.
    clientMode: !serve,
    // The default mapper drops private and loopback addresses: the ones members on a LAN have.
    peerInfoMapper: passthroughMapper,
    // Queries wait for the first self-query, 1 s after start by default: no reason to wait.
    initialQuerySelfInterval: 0,
  });
}

/** The content id all members of a group provide: sha256 of the rendezvous secret, raw codec. */
export async function rendezvousCid(rendezvous: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(Buffer.from(rendezvous, 'hex')));
}

export interface RendezvousOptions {
  /** GroupKeys.rendezvous, hex. */
  rendezvous: string;
  /** Provide the group's id as well as look it up (false: look only). */
  announce: boolean;
  /** Told of each member found, every round it is found in (its addresses may have changed). */
  onFound: (peer: string, addrs: string[]) => void;
  onError?: (err: Error) => void;
}

export interface Rendezvous {
  /** One lookup: the PeerIds of the other members that provide the group's id, dialed. Never throws. */
  find(): Promise<string[]>;
  stop(): void;
}

/** Runs rounds on `dht`, a rendezvousDHT() service of `node`, until stopped. */
export async function startRendezvous(node: Libp2p, dht: KadDHT, o: RendezvousOptions): Promise<Rendezvous> {
  const cid = await rendezvousCid(o.rendezvous);
  const stopping = new AbortController();
  const roundSignal = (): AbortSignal => AbortSignal.any([stopping.signal, AbortSignal.timeout(ROUND_TIMEOUT_MS)]);
  const report = (what: string, err: unknown): void => {
    if (!stopping.signal.aborted) o.onError?.(new Error(`rendezvous: ${what} failed`, { cause: err }));
  };

  const find = async (): Promise<string[]> => {
    const found = new Map<string, PeerInfo>();
    const signal = roundSignal();
    try {
      for await (const ev of dht.findProviders(cid, { signal })) {
        if (ev.name !== 'PROVIDER') continue;
        for (const p of ev.providers) if (!p.id.equals(node.peerId)) found.set(p.id.toString(), p);
      }
    } catch (err) {
      // Those found before a timeout are as good as any: keep them.
      report('lookup', err);
    }
    await Promise.all(
      [...found.values()].map(async (p) => {
        o.onFound(p.id.toString(), p.multiaddrs.map((m) => m.toString()));
        try {
          await node.peerStore.merge(p.id, { multiaddrs: p.multiaddrs });
          // Often connected already (the lookup itself may have dialed it): then this is free.
          await node.dial(p.id, { signal });
        } catch (err) {
          report(`dialing member ${p.id}`, err);
        }
      }),
    );
    return [...found.keys()];
  };

  const round = async (): Promise<void> => {
    try {
      if (o.announce) for await (const _ of dht.provide(cid, { signal: roundSignal() }));
    } catch (err) {
      report('announcing', err);
    }
    await find();
  };

  // The first round as soon as there is someone to ask, e.g. a bootstrap peer; later rounds
  // only while connected, since the DHT would only wait for a peer until the round times out.
  const first = (): void => {
    node.removeEventListener('peer:connect', first);
    void round();
  };
  if (node.getPeers().length > 0) first();
  else node.addEventListener('peer:connect', first);
  const timer = setInterval(() => {
    if (node.getPeers().length > 0) void round();
  }, ROUND_INTERVAL_MS);
  // A backup daemon's lifetime is not the rendezvous timer's business.
  timer.unref();

  return {
    find,
    stop() {
      stopping.abort();
      clearInterval(timer);
      node.removeEventListener('peer:connect', first);
    },
  };
}
