// Where a host's copies or shards go, when a lost one is replaced, and when a holder counts as
// lost: the decisions the daemon takes, as plain functions, so the durability simulator
// (scripts/simulate-durability.ts) runs exactly these on its simulated group.
import { stripeShape, type Redundancy } from './scheme.js';

/**
 * How many holders one network (an IPv4 /24 or IPv6 /64) may have, tried in turn: one each
 * where the group allows ("a different network where possible"), then M, so that losing a
 * whole network (a house fire, a flood, a burglary) still leaves K.
 */
export function networkCaps(r: Redundancy): number[] {
  const { m } = stripeShape(r);
  return m > 1 ? [1, m] : [1];
}

/**
 * Picks `count` new holders from `ranked` (best first), in passes: the best under the first
 * cap given the holders already placed, then under the next, then, if that is not enough,
 * the best of the rest. A candidate of unknown network (null) is under no cap.
 */
export function pickHolders<C, N>(ranked: readonly C[], count: number, networkOf: (c: C) => N | null, placed: Iterable<N | null>, caps: readonly number[]): C[] {
  const used = new Map<N, number>();
  for (const n of placed) if (n !== null) used.set(n, (used.get(n) ?? 0) + 1);
  const picks: C[] = [];
  let rest = [...ranked];
  for (const cap of [...caps, Infinity]) {
    const skipped: C[] = [];
    for (const c of rest) {
      if (picks.length === count) return picks;
      const n = networkOf(c);
      if (n !== null && (used.get(n) ?? 0) >= cap) {
        skipped.push(c);
        continue;
      }
      picks.push(c);
      if (n !== null) used.set(n, (used.get(n) ?? 0) + 1);
    }
    rest = skipped;
  }
  return picks;
}

/**
 * New holders to place, given how many healthy ones remain. Repair waits until fewer than
 * k + threshold are healthy, then restores all k + m at once (Carbonite: transient losses
 * often come back, and one repair of several shards costs a fraction of several repairs).
 * threshold = m repairs at the first loss, as whole copies always have.
 */
export function vacancies(r: Redundancy, healthy: number, threshold = defaultRepairThreshold(r)): number {
  const { k, m } = stripeShape(r);
  return healthy < k + threshold ? Math.max(0, k + m - healthy) : 0;
}

/** Repair at the first loss unless the user chose otherwise. */
export function defaultRepairThreshold(r: Redundancy): number {
  return stripeShape(r).m;
}

export interface HolderContact {
  /** When it was chosen (ms). */
  chosen: number;
  /** Last successful exchange (ms), or null. */
  lastOk: number | null;
  /** Failed tries since then. */
  fails: number;
}

/**
 * How long a holder may fail every try before it is replaced. Friends' machines sleep, travel
 * and reboot: in the simulator (hosts online 30-95% of the time), 3 days replaced so many
 * holders that were only away that repair traffic reached ~10% of stored bytes a month and
 * hosts caught mid-repair were not recoverable (99.95%); 7 days kept 100% at 2.7% a month.
 */
export const DEFAULT_SILENCE_MS = 7 * 86400_000;

/** A holder that failed every try for `silenceMs` is taken as lost and replaced. */
export function isSilent(h: HolderContact, now: number, silenceMs: number): boolean {
  return h.fails > 0 && (h.lastOk ?? h.chosen) < now - silenceMs;
}
