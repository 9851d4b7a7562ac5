// How a host's data is spread over its group: N whole copies on N members, or a Reed-Solomon
// stripe of K data and M parity shards on K+M members (any K of them give the data back).
// The written form ("copies:2", "rs:4+2") is what config.json and `safe init --redundancy` carry.

/** The coder's limits (@ronomon/reed-solomon: k <= 24, m <= 6). */
export const MAX_DATA_SHARDS = 24;
export const MAX_PARITY_SHARDS = 6;
/** Whole copies: one to keep, at most as many as a stripe could have members. */
export const MAX_COPIES = MAX_DATA_SHARDS + MAX_PARITY_SHARDS;

/** Whole copies on two buddies: works in a group of three, and what release 0.2 did. */
export const DEFAULT_REDUNDANCY = 'copies:2';

export type Redundancy = { readonly kind: 'copies'; readonly n: number } | { readonly kind: 'rs'; readonly k: number; readonly m: number };

export class RedundancyError extends Error {
  override name = 'RedundancyError';
}

/** Parses "copies:N" or "rs:K+M"; throws RedundancyError naming what is wrong. */
export function parseRedundancy(text: string): Redundancy {
  const copies = /^copies:(\d{1,3})$/.exec(text);
  if (copies) {
    const n = Number(copies[1]);
    if (n < 1 || n > MAX_COPIES) throw new RedundancyError(`redundancy ${text}: copies must be 1..${MAX_COPIES}`);
    return { kind: 'copies', n };
  }
  const rs = /^rs:(\d{1,3})\+(\d{1,3})$/.exec(text);
  if (rs) {
    const k = Number(rs[1]);
    const m = Number(rs[2]);
    if (k < 1 || k > MAX_DATA_SHARDS) throw new RedundancyError(`redundancy ${text}: K (data shards) must be 1..${MAX_DATA_SHARDS}`);
    if (m < 1 || m > MAX_PARITY_SHARDS) throw new RedundancyError(`redundancy ${text}: M (parity shards) must be 1..${MAX_PARITY_SHARDS}`);
    return { kind: 'rs', k, m };
  }
  throw new RedundancyError(`redundancy "${text}": expected copies:N or rs:K+M (for example copies:2 or rs:4+2)`);
}

export function formatRedundancy(r: Redundancy): string {
  return r.kind === 'copies' ? `copies:${r.n}` : `rs:${r.k}+${r.m}`;
}

/** The scheme as a stripe: copies:N is a stripe of one data shard and N-1 "parity" copies. */
export function stripeShape(r: Redundancy): { k: number; m: number } {
  return r.kind === 'copies' ? { k: 1, m: r.n - 1 } : { k: r.k, m: r.m };
}

/** One line for people: "2 whole copies", "4 data + 2 parity shards on 6 buddies (any 4 restore)". */
export function describeRedundancy(r: Redundancy): string {
  if (r.kind === 'copies') return `${formatRedundancy(r)}: ${r.n} whole ${r.n === 1 ? 'copy' : 'copies'} on as many buddies, ${storageOverhead(r)}x the data`;
  return `${formatRedundancy(r)}: ${r.k} data + ${r.m} parity shards on ${r.k + r.m} buddies (any ${r.k} restore), ${storageOverhead(r).toFixed(2)}x the data`;
}

/** Members a host needs: one per copy or per shard. */
export function membersNeeded(r: Redundancy): number {
  const { k, m } = stripeShape(r);
  return k + m;
}

/** Bytes stored across the group per byte of the host's data. */
export function storageOverhead(r: Redundancy): number {
  const { k, m } = stripeShape(r);
  return (k + m) / k;
}
