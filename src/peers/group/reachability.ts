// Whether members can dial us and, when they cannot, a slot on a member that relays.
//
// A member we hold a direct connection to tries a TCP connection back to the address it sees
// us at, on each port we listen on (the dial-back). One that gets through means members can
// reach us; answers that all fail mean we sit behind a NAT (or a firewall), and we reserve a
// slot on a relay of the group, whose relayed address then reaches the other members through
// identify, probes and the rendezvous record. libp2p forgets a reservation when the relay's
// connection drops and does not make it again (js-libp2p #3601), so a lost one is made again
// here, with backoff. AutoNAT would do the dial-back, but it wants answers from several
// networks and ignores private ranges, which a group of a few homes does not give.
import { connect } from 'node:net';
import { openChannel, serve } from '../wire/messages.js';
import type { PeerNode, PeerStream } from '../net/node.js';
import { isRelayed } from '../net/addresses.js';
import { multiaddr } from '../net/libp2p.js';
import { REACH_PROTOCOL, reachReplies, reachRequests } from '../wire/protocol.js';
import type { Log } from '../../log/logger.js';

export type Reach =
  /** Nobody to ask yet. */
  | { kind: 'unknown' }
  /** This member dialed us back. */
  | { kind: 'direct'; by: string }
  /** Behind NAT; members reach us through this relay. */
  | { kind: 'relayed'; via: string }
  /** Behind NAT, and no relay holds a slot for us. */
  | { kind: 'unreachable'; reason: string };

const DIAL_BACK_MS = 3000;
/** Members asked per check: the first that reaches us settles it. */
const ASKED = 3;
/** How often a settled answer is checked again (the router, the relay may change). */
const RECHECK_MS = 10 * 60_000;
/** A held reservation is looked at this often (cheap: our own addresses). */
const HOLD_MS = 30_000;
const backoff = (attempt: number): number => Math.min(60_000, 1000 * 2 ** attempt);

/** A TCP connection to host:port that the far end speaks first on (the group network's IV). */
function answers(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.once('data', () => done(true));
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

/** Serves /safe/reach/1: dials the asker back where we see it. */
export async function serveDialBack(ps: PeerStream, timeoutMs = DIAL_BACK_MS): Promise<void> {
  // Through a relay we see the relay's address, which says nothing about the asker.
  if (isRelayed(ps.remoteAddr)) throw new Error('dial-back asked over a relayed connection');
  const c = multiaddr(ps.remoteAddr).getComponents();
  const host = c.find((x) => x.name === 'ip4' || x.name === 'ip6')?.value;
  if (!host) throw new Error(`dial-back: no IP address in ${ps.remoteAddr}`);
  const ch = openChannel(ps.stream, { receive: reachRequests, send: reachReplies });
  await serve(ch, async (req) => {
    const ports = [...new Set(req.ports)];
    const ok = await Promise.all(ports.map((p) => answers(host, p, timeoutMs)));
    return { type: 'dialedBack' as const, reached: ports.filter((_, i) => ok[i]).map((p) => `${host}:${p}`) };
  });
}

async function askDialBack(node: PeerNode, peer: string, ports: number[], signal: AbortSignal): Promise<boolean> {
  const { stream } = await node.dial(peer, REACH_PROTOCOL, { signal });
  const ch = openChannel(stream, { receive: reachReplies, send: reachRequests });
  try {
    const r = await ch.request({ type: 'dialBack', ports: ports.slice(0, 4) }, { signal });
    await ch.end();
    return r.reached.length > 0;
  } catch (err) {
    ch.abort(err as Error);
    throw err;
  }
}

export interface ReachabilityOptions {
  node: PeerNode;
  /** Members we know of, connected or not (relays among them). */
  members: () => string[];
  log: Log;
}

export class Reachability {
  private state: Reach = { kind: 'unknown' };
  private checkedAt = 0;
  private behindNat = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private due = Infinity;
  private running = false;
  private readonly halt = new AbortController();

  constructor(private readonly o: ReachabilityOptions) {}

  get reach(): Reach {
    return this.state;
  }

  start(): void {
    const { node } = this.o;
    node.onConnect(() => {
      if (this.state.kind === 'unknown' || this.state.kind === 'unreachable') this.soon(1000);
    });
    node.onDisconnect((peer) => {
      if (this.state.kind === 'relayed' && this.state.via === peer) this.soon(1000);
    });
    this.soon(1000);
  }

  stop(): void {
    this.halt.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private soon(ms: number): void {
    if (this.halt.signal.aborted || Date.now() + ms >= this.due) return;
    if (this.timer) clearTimeout(this.timer);
    this.due = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.due = Infinity;
      void this.tick();
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running) return this.soon(1000);
    this.running = true;
    try {
      await this.check();
    } catch (err) {
      if (!this.halt.signal.aborted) this.o.log.warn(`reachability check failed: ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
    const settled = this.state.kind === 'direct' || this.state.kind === 'relayed';
    this.attempt = settled ? 0 : this.attempt + 1;
    this.soon(settled ? HOLD_MS : backoff(this.attempt - 1));
  }

  private async check(): Promise<void> {
    const { node, log } = this.o;
    if (this.state.kind === 'unknown' || Date.now() - this.checkedAt > RECHECK_MS) await this.dialBack();
    if (!this.behindNat) return;
    const via = node.relayedVia();
    if (via.length > 0) {
      this.state = { kind: 'relayed', via: via[0]! };
      return;
    }
    const candidates = [...new Set([...node.peers(), ...this.o.members()])].filter((p) => p !== node.peerId);
    const relays: string[] = [];
    for (const p of candidates) if (await node.relays(p)) relays.push(p);
    if (relays.length === 0) {
      this.state = { kind: 'unreachable', reason: 'no member of the group relays' };
      return;
    }
    // Relays we are connected to first: no dial needed.
    relays.sort((a, b) => Number(node.directTo(b)) - Number(node.directTo(a)));
    const refusals: string[] = [];
    for (const relay of relays) {
      try {
        await node.reserveOn(relay, { signal: AbortSignal.any([this.halt.signal, AbortSignal.timeout(10_000)]) });
        log(`reachable through relay ${relay}`);
        this.state = { kind: 'relayed', via: relay };
        return;
      } catch (err) {
        refusals.push(`${relay}: ${(err as Error).message}`);
      }
    }
    this.state = { kind: 'unreachable', reason: `no relay took a reservation (${refusals.join('; ')})` };
  }

  /** Asks directly connected members to dial us back; no answer leaves what we knew. */
  private async dialBack(): Promise<void> {
    const { node, log } = this.o;
    const ports = node.listenPorts();
    if (ports.length === 0) return;
    const asked = node.peers().filter((p) => node.directTo(p)).slice(0, ASKED);
    let answered = false;
    for (const peer of asked) {
      try {
        const reached = await askDialBack(node, peer, ports, AbortSignal.any([this.halt.signal, AbortSignal.timeout(DIAL_BACK_MS + 5000)]));
        answered = true;
        this.checkedAt = Date.now();
        if (reached) {
          if (this.behindNat || this.state.kind !== 'direct') log(`reachable directly (dialed back by ${peer})`);
          this.behindNat = false;
          this.state = { kind: 'direct', by: peer };
          return;
        }
      } catch {
        // an older member without the protocol, or one gone: ask the next
      }
    }
    if (!answered) return;
    if (!this.behindNat) log(`not reachable directly: no member asked could dial back`);
    this.behindNat = true;
  }
}
