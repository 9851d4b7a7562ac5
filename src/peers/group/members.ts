// Group members we know of, and what probing them told us: their coverage of a fingerprint of
// our chunk ids, the space they offer and have free, their round-trip time. Members come from
// --peer addresses, inbound connections (under the group's private network only members can
// connect) and each probe's answer, which lists the members the other side knows.
import { randomBytes } from 'node:crypto';
import { prepared, type Db } from '../../chunkstore/index-db.js';
import { openChannel, serve } from '../wire/messages.js';
import type { PeerNode, PeerStream } from '../net/node.js';
import { isRelayed } from '../net/addresses.js';
import { multiaddr } from '../net/libp2p.js';
import { PROBE_PROTOCOL, probeReplies, probeRequests } from '../wire/protocol.js';

export interface Member {
  peer: string;
  addrs: string[];
  offer: number | null;
  free: number | null;
  /** Fraction of our fingerprint the member stores, 0..1; null until probed. */
  coverage: number | null;
  rtt: number | null;
  lastSeen: number | null;
  network: string | null;
}

/**
 * The /24 (IPv4) or /64 (IPv6) an address is in: "same network" for buddy placement. A relayed
 * address names the relay's network, not the member's: none.
 */
export function networkOf(addr: string): string | null {
  if (isRelayed(addr)) return null;
  try {
    const c = multiaddr(addr).getComponents();
    const ip4 = c.find((x) => x.name === 'ip4')?.value;
    if (ip4) return ip4.split('.').slice(0, 3).join('.');
    const ip6 = c.find((x) => x.name === 'ip6')?.value;
    if (ip6) return ip6.split(':').slice(0, 4).join(':');
  } catch {
    // not a multiaddr we understand
  }
  return null;
}

export function listMembers(db: Db): Member[] {
  return prepared<[], Omit<Member, 'addrs'> & { addrs: string }>(
    db,
    'SELECT peer, addrs, offer, free, coverage, rtt, last_seen AS lastSeen, network FROM members ORDER BY peer',
  ).all().map((m) => ({ ...m, addrs: JSON.parse(m.addrs) as string[] }));
}

export function noteMember(db: Db, peer: string, fields: Partial<Omit<Member, 'peer'>>): void {
  prepared(db, 'INSERT OR IGNORE INTO members (peer) VALUES (?)').run(peer);
  const sets: string[] = [];
  const vals: unknown[] = [];
  const col: Record<string, string> = { addrs: 'addrs', offer: 'offer', free: 'free', coverage: 'coverage', rtt: 'rtt', lastSeen: 'last_seen', network: 'network' };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    sets.push(`${col[k]} = ?`);
    vals.push(k === 'addrs' ? JSON.stringify(v) : v);
  }
  if (sets.length > 0) db.prepare(`UPDATE members SET ${sets.join(', ')} WHERE peer = ?`).run(...vals, peer);
}

/** A small random sample of our chunk ids (random start points in id order: no table scan). */
export function fingerprint(db: Db, n = 64): Buffer[] {
  const pick = prepared<[Buffer], Buffer>(db, 'SELECT id FROM chunks WHERE id >= ? AND refs > 0 ORDER BY id LIMIT 4').pluck();
  const out = new Map<string, Buffer>();
  for (let i = 0; i < n && out.size < n; i++) {
    for (const id of pick.all(randomBytes(32))) out.set(id.toString('hex'), id);
  }
  return [...out.values()].slice(0, n);
}

export interface ProbeAnswerer {
  coverage(ids: Uint8Array[]): number;
  offer: number;
  free(): number;
  members(): Promise<{ peer: string; addrs: string[] }[]>;
}

export async function serveProbe(ps: PeerStream, me: ProbeAnswerer): Promise<void> {
  const ch = openChannel(ps.stream, { receive: probeRequests, send: probeReplies });
  await serve(ch, async (req) => ({
    type: 'probed' as const,
    covered: me.coverage(req.fingerprint),
    offer: me.offer,
    free: me.free(),
    members: (await me.members()).slice(0, 256),
  }));
}

export interface ProbeResult {
  covered: number;
  offer: number;
  free: number;
  members: { peer: string; addrs: string[] }[];
  rtt: number;
}

export async function probe(node: PeerNode, peer: string, ids: Buffer[], signal?: AbortSignal): Promise<ProbeResult> {
  const t0 = performance.now();
  const { stream } = await node.dial(peer, PROBE_PROTOCOL, { signal });
  const ch = openChannel(stream, { receive: probeReplies, send: probeRequests });
  try {
    const r = await ch.request({ type: 'probe', fingerprint: ids }, { signal });
    const rtt = performance.now() - t0;
    await ch.end();
    return { covered: r.covered, offer: r.offer, free: r.free, members: r.members, rtt };
  } catch (err) {
    ch.abort(err as Error);
    throw err;
  }
}
