// Which snapshots a retention policy keeps: restic's rules (keep-last, then the newest
// snapshot of each of the last N hours / days / weeks / months), in UTC.
export interface Policy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export interface Dated {
  name: string;
  time: number;
}

/** Time Machine-like default: hourly for a day, daily for a month, weekly for a year. */
export const DEFAULT_POLICY: Policy = { last: 1, hourly: 24, daily: 30, weekly: 52 };

const bucketOf: Record<Exclude<keyof Policy, 'last'>, (t: Date) => string> = {
  hourly: (t) => t.toISOString().slice(0, 13),
  daily: (t) => t.toISOString().slice(0, 10),
  weekly: (t) => {
    // ISO week: the Thursday of the week decides its year.
    const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
    const day = d.getUTCDay() || 7;
    d.setUTCDate(d.getUTCDate() + 4 - day);
    const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
    const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
    return `${d.getUTCFullYear()}-W${week}`;
  },
  monthly: (t) => t.toISOString().slice(0, 7),
};

/** The names to keep, given every snapshot (any order). */
export function retain(snapshots: Dated[], policy: Policy): Set<string> {
  const newestFirst = [...snapshots].sort((a, b) => b.time - a.time || (a.name < b.name ? 1 : -1));
  const keep = new Set<string>();
  newestFirst.slice(0, policy.last ?? 0).forEach((s) => keep.add(s.name));
  for (const unit of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
    const n = policy[unit] ?? 0;
    const seen = new Set<string>();
    for (const s of newestFirst) {
      if (seen.size >= n) break;
      const b = bucketOf[unit](new Date(s.time));
      if (seen.has(b)) continue;
      seen.add(b);
      keep.add(s.name);
    }
  }
  return keep;
}
