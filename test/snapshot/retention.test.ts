import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { retain, type Policy } from '../../src/snapshot/retention.js';

/** Brute force from the definition: for each unit, walk newest first and keep the first snapshot of each new period, up to N periods. */
function reference(snaps: { name: string; time: number }[], p: Policy): Set<string> {
  const sorted = [...snaps].sort((a, b) => b.time - a.time || (a.name < b.name ? 1 : -1));
  const keep = new Set(sorted.slice(0, p.last ?? 0).map((s) => s.name));
  const period = {
    hourly: (t: number) => Math.floor(t / 3_600_000),
    daily: (t: number) => Math.floor(t / 86_400_000),
    // ISO weeks start on Monday; 1970-01-01 was a Thursday, so shift by 3 days.
    weekly: (t: number) => Math.floor((t + 3 * 86_400_000) / (7 * 86_400_000)),
    monthly: (t: number) => new Date(t).getUTCFullYear() * 12 + new Date(t).getUTCMonth(),
  };
  for (const unit of ['hourly', 'daily', 'weekly', 'monthly'] as const) {
    let periods = 0;
    let last: number | undefined;
    for (const s of sorted) {
      const k = period[unit](s.time);
      if (k === last) continue;
      if (periods >= (p[unit] ?? 0)) break;
      periods++;
      last = k;
      keep.add(s.name);
    }
  }
  return keep;
}

test('retention keeps exactly what the rules say, on simulated clocks', () => {
  const start = Date.UTC(2026, 0, 1);
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 400 * 24 * 60 }), { minLength: 0, maxLength: 120 }),
      fc.record({ last: fc.option(fc.nat(5), { nil: undefined }), hourly: fc.option(fc.nat(30), { nil: undefined }), daily: fc.option(fc.nat(40), { nil: undefined }), weekly: fc.option(fc.nat(60), { nil: undefined }), monthly: fc.option(fc.nat(14), { nil: undefined }) }),
      (minutes, policy) => {
        const snaps = [...new Set(minutes)].map((m, i) => ({ name: `s${i}`, time: start + m * 60_000 }));
        assert.deepEqual([...retain(snaps, policy)].sort(), [...reference(snaps, policy)].sort());
      },
    ),
    { numRuns: 300 },
  );
});

test('hourly snapshots for ten days under the default-like policy', () => {
  const snaps = Array.from({ length: 240 }, (_, h) => ({ name: `h${h}`, time: Date.UTC(2026, 10, 1) + h * 3_600_000 }));
  const keep = retain(snaps, { hourly: 24, daily: 30 });
  // 24 newest hours, plus the newest of each of the 10 days (one of which is among them)
  assert.equal(keep.size, 24 + 9);
  assert.ok(keep.has('h239'));
  assert.ok(keep.has('h23'), 'newest snapshot of the first day');
  assert.ok(!keep.has('h22'));
});
