// A simulated group: hosts that are also members holding copies or shards for each other, on a
// simulated clock (one step per hour). Placement, the repair threshold and silence are the
// daemon's own functions (src/redundancy/placement.ts); what the daemon does over the network
// (probes, shipments, audits) is reduced to "owner and holder online at the same hour".
//
// The model, stated so that its figures can be argued with:
// - Each host is online in alternating periods: sessions of 8 h on average, and offline gaps
//   sized so that its share of time online is its availability (drawn per host).
// - Permanent loss (a dead disk) strikes each host at a constant hazard (p a year), and each
//   network (/24; 1-4 hosts) at its own hazard, all its hosts at once. A lost host recovers
//   from its holders if at least k of its shards are intact, and comes back with its own data
//   but none of what it held for others; with fewer than k it has lost its data (counted) and
//   starts over.
// - Every 3 hours an online owner tries its holders: an online holder that still has the shard
//   answers; one that does not answer for the silence period is replaced (isSilent), and when
//   fewer than k + threshold holders remain, the empty places are filled (vacancies,
//   pickHolders among online members drawn at random).
// - A new holder receives its shard from the owner at the uplink cap, while both are online,
//   after the owner's new data (shipped first, at the scheme's overhead).
import { isSilent, networkCaps, pickHolders, vacancies } from '../../src/redundancy/placement.js';
import { stripeShape, storageOverhead, type Redundancy } from '../../src/redundancy/scheme.js';
import { seededRandom } from '../seeded-random.js';

export interface SimParams {
  hosts: number;
  days: number;
  scheme: Redundancy;
  /** Repair when fewer than k + threshold shards are healthy (default: m, at the first loss). */
  threshold?: number;
  /** Share of hosts that lose their disk in a year. */
  hostLossPerYear: number;
  /** Share of networks lost whole in a year (correlated failures). */
  networkLossPerYear: number;
  /** Each host's share of time online, drawn uniformly from [min, max]. */
  availability: [number, number];
  /** Bytes of data each host keeps. */
  dataBytes: number;
  /** New bytes each host writes a day (they ship at the scheme's overhead). */
  newBytesPerDay: number;
  /** Uplink cap, bytes a second. */
  upBytesPerSec: number;
  silenceHours: number;
  seed: number;
  /** Losses at given hours, on top of the random ones (tests). */
  script?: { hour: number; hosts: number[] }[];
}

export interface SimResult {
  /** Hosts that never lost data and could recover at the end. */
  recoverable: number;
  hosts: number;
  /** Hosts whose disk died with fewer than k shards left. */
  lostData: number;
  /** Recoveries that succeeded. */
  recovered: number;
  /** Fewest intact shards any host had at the end (k is the minimum to recover). */
  worstShards: number;
  /** Repair bytes uploaded a month, as a share of the bytes stored for all hosts. */
  repairPerMonth: number;
  repairBytes: number;
  overhead: number;
}

const HOUR_MS = 3600_000;
const SESSION_HOURS = 8;
const CONTACT_EVERY = 3;

export function simulate(p: SimParams): SimResult {
  const rand = seededRandom(p.seed);
  const expo = (rate: number): number => (rate > 0 ? -Math.log(1 - rand()) / rate : Infinity);
  const { k, m } = stripeShape(p.scheme);
  const S = k + m;
  const H = p.hosts;
  const hours = p.days * 24;
  const caps = networkCaps(p.scheme);
  const threshold = p.threshold ?? m;
  const silenceMs = p.silenceHours * HOUR_MS;
  const shardBytes = p.dataBytes / k;
  const upPerHour = p.upBytesPerSec * 3600;
  const overhead = storageOverhead(p.scheme);

  // Networks of 1-4 hosts.
  const net = new Int32Array(H);
  const members: number[][] = [];
  for (let h = 0; h < H; ) {
    const size = 1 + Math.floor(rand() * 4);
    const n = members.length;
    members.push([]);
    for (let i = 0; i < size && h < H; i++, h++) {
      net[h] = n;
      members[n]!.push(h);
    }
  }

  // Online periods.
  const online = new Uint8Array(H);
  const nextFlip = new Float64Array(H);
  const offMean = new Float64Array(H);
  for (let h = 0; h < H; h++) {
    const a = p.availability[0] + rand() * (p.availability[1] - p.availability[0]);
    offMean[h] = a >= 1 ? 0 : (SESSION_HOURS * (1 - a)) / a;
    online[h] = offMean[h] === 0 || rand() < a ? 1 : 0;
    nextFlip[h] = offMean[h] === 0 ? Infinity : expo(1 / (online[h] ? SESSION_HOURS : offMean[h]!));
  }

  // Permanent losses.
  const hostRate = -Math.log(1 - p.hostLossPerYear) / (365 * 24);
  const netRate = -Math.log(1 - p.networkLossPerYear) / (365 * 24);
  const nextDeath = new Float64Array(H).map(() => expo(hostRate));
  const nextNetDeath = new Float64Array(members.length).map(() => expo(netRate));
  const gen = new Int32Array(H);

  // Slots: owner o's i-th copy or shard at o * S + i. State 0 empty, 1 receiving, 2 held.
  const holder = new Int32Array(H * S).fill(-1);
  const slotGen = new Int32Array(H * S);
  const state = new Uint8Array(H * S);
  const chosen = new Float64Array(H * S);
  const lastOk = new Float64Array(H * S);
  const fails = new Int32Array(H * S);
  const remaining = new Float64Array(H * S);
  const backlog = new Float64Array(H);
  const receiving = new Set<number>();
  const lostData = new Uint8Array(H);
  let recovered = 0;
  let repairBytes = 0;

  const holdersOf = (o: number): Set<number> => {
    const s = new Set<number>();
    for (let i = 0; i < S; i++) if (state[o * S + i]) s.add(holder[o * S + i]!);
    return s;
  };
  /** Fills up to `need` empty slots of o with members drawn at random (online ones, unless complete). */
  const place = (o: number, need: number, t: number, complete: boolean): void => {
    const current = holdersOf(o);
    const seen = new Set<number>();
    const drawn: number[] = [];
    for (let tries = 0; tries < need * 8 + 16 && drawn.length < need * 4; tries++) {
      const c = Math.floor(rand() * H);
      if (c === o || current.has(c) || seen.has(c) || (!complete && !online[c])) continue;
      seen.add(c);
      drawn.push(c);
    }
    const placed = [...current].map((h) => net[h]!);
    const picks = pickHolders(drawn, need, (c) => net[c]!, placed, caps);
    let i = 0;
    for (const c of picks) {
      while (state[o * S + i]) i++;
      const s = o * S + i;
      holder[s] = c;
      slotGen[s] = gen[c]!;
      state[s] = complete ? 2 : 1;
      chosen[s] = lastOk[s] = t * HOUR_MS;
      fails[s] = 0;
      remaining[s] = complete ? 0 : shardBytes;
      if (!complete) receiving.add(o);
    }
  };
  const intact = (o: number): number => {
    let n = 0;
    for (let i = 0; i < S; i++) {
      const s = o * S + i;
      if (state[s] === 2 && gen[holder[s]!] === slotGen[s]) n++;
    }
    return n;
  };
  const lose = (dead: number[], t: number): void => {
    for (const x of dead) gen[x]!++;
    for (const x of dead) {
      if (intact(x) >= k) {
        recovered++;
        continue;
      }
      lostData[x] = 1;
      for (let i = 0; i < S; i++) state[x * S + i] = 0;
      receiving.delete(x);
      place(x, S, t, true);
    }
  };

  for (let o = 0; o < H; o++) place(o, S, 0, true);
  const script = new Map((p.script ?? []).map((e) => [e.hour, e.hosts]));

  for (let t = 1; t <= hours; t++) {
    const dead: number[] = [];
    for (let h = 0; h < H; h++) {
      while (nextFlip[h]! <= t) {
        online[h] ^= 1;
        nextFlip[h] += expo(1 / (online[h] ? SESSION_HOURS : offMean[h]!));
      }
      if (nextDeath[h]! <= t) {
        dead.push(h);
        nextDeath[h] = t + expo(hostRate);
      }
    }
    for (let n = 0; n < members.length; n++) {
      if (nextNetDeath[n]! > t) continue;
      nextNetDeath[n] = t + expo(netRate);
      for (const h of members[n]!) if (!dead.includes(h)) dead.push(h);
    }
    for (const h of script.get(t) ?? []) if (!dead.includes(h)) dead.push(h);
    if (dead.length > 0) lose(dead, t);

    if (t % 24 === 0) for (let h = 0; h < H; h++) backlog[h] += p.newBytesPerDay * overhead;

    if (t % CONTACT_EVERY === 0) {
      const now = t * HOUR_MS;
      for (let o = 0; o < H; o++) {
        if (!online[o]) continue;
        let placed = 0;
        for (let i = 0; i < S; i++) {
          const s = o * S + i;
          if (!state[s]) continue;
          const h = holder[s]!;
          if (online[h] && gen[h] === slotGen[s]) {
            lastOk[s] = now;
            fails[s] = 0;
          } else fails[s]!++;
          if (isSilent({ chosen: chosen[s]!, lastOk: lastOk[s]!, fails: fails[s]! }, now, silenceMs)) state[s] = 0;
          else placed++;
        }
        const need = vacancies(p.scheme, placed, threshold);
        if (need > 0) place(o, need, t, false);
      }
    }

    for (const o of receiving) {
      if (!online[o]) continue;
      let budget = upPerHour;
      const fresh = Math.min(backlog[o]!, budget);
      backlog[o] -= fresh;
      budget -= fresh;
      let pending = 0;
      for (let i = 0; i < S; i++) {
        const s = o * S + i;
        if (state[s] !== 1) continue;
        const h = holder[s]!;
        if (budget > 0 && online[h] && gen[h] === slotGen[s]) {
          const sent = Math.min(remaining[s]!, budget);
          remaining[s] -= sent;
          budget -= sent;
          repairBytes += sent;
          if (remaining[s] === 0) state[s] = 2;
        }
        if (state[s] === 1) pending++;
      }
      if (pending === 0) receiving.delete(o);
    }
    // Owners with nothing to repair ship their new data whenever online.
    for (let h = 0; h < H; h++) if (online[h] && !receiving.has(h)) backlog[h] = Math.max(0, backlog[h]! - upPerHour);
  }

  let recoverable = 0;
  let worstShards = S;
  let lost = 0;
  for (let o = 0; o < H; o++) {
    const n = intact(o);
    worstShards = Math.min(worstShards, n);
    if (lostData[o]) lost++;
    if (!lostData[o] && n >= k) recoverable++;
  }
  const stored = H * p.dataBytes * overhead;
  return {
    recoverable, hosts: H, lostData: lost, recovered, worstShards, repairBytes,
    repairPerMonth: repairBytes / stored / (p.days / (365 / 12)), overhead,
  };
}
