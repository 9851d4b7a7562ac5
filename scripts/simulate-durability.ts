// The durability simulator: 10,000 hosts for a simulated year under each redundancy scheme,
// repair threshold and silence period, at several rates of permanent loss; prints, per case,
// the share of hosts fully recoverable at the end, hosts that lost data, the worst host, the
// repair traffic a month as a share of stored bytes, and the storage overhead. The model is
// described in scripts/durability/model.ts; docs/performance.md's redundancy section quotes its table.
//
//   node dist/scripts/simulate-durability.js [--json] [--hosts 10000] [--days 365] [--seeds 1]
//     [--schemes copies:2,copies:3,rs:4+2,rs:6+3,rs:10+4] [--loss 0.1,0.2,0.4] [--silence 72,168]
import { scriptArgs } from './script-args.js';
import { simulate, type SimParams } from './durability/model.js';
import { formatRedundancy, parseRedundancy, stripeShape, type Redundancy } from '../src/redundancy/scheme.js';

const { values } = scriptArgs({
  options: {
    json: { type: 'boolean' },
    hosts: { type: 'string' },
    days: { type: 'string' },
    seeds: { type: 'string' },
    schemes: { type: 'string' },
    loss: { type: 'string' },
    silence: { type: 'string' },
    'network-loss': { type: 'string' },
    'up-mbps': { type: 'string' },
    'data-gb': { type: 'string' },
  },
});
const list = (s: string | undefined, dflt: string): string[] => (s ?? dflt).split(',').map((x) => x.trim()).filter(Boolean);
const num = (s: string, what: string): number => {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`simulate: ${what} "${s}" is not a number\n`);
    process.exit(2);
  }
  return n;
};

let schemes: Redundancy[];
try {
  schemes = list(values.schemes, 'copies:2,copies:3,rs:4+2,rs:6+3,rs:10+4').map(parseRedundancy);
} catch (err) {
  process.stderr.write(`simulate: ${(err as Error).message}\n`);
  process.exit(2);
}
const losses = list(values.loss, '0.1,0.2,0.4').map((s) => num(s, 'loss'));
const silences = list(values.silence, '72,168').map((s) => num(s, 'silence'));
const seeds = num(values.seeds ?? '1', 'seeds');
const base = {
  hosts: num(values.hosts ?? '10000', 'hosts'),
  days: num(values.days ?? '365', 'days'),
  networkLossPerYear: num(values['network-loss'] ?? '0.01', 'network-loss'),
  availability: [0.3, 0.95] as [number, number],
  dataBytes: num(values['data-gb'] ?? '100', 'data-gb') * 1e9,
  newBytesPerDay: 1e9,
  upBytesPerSec: num(values['up-mbps'] ?? '2', 'up-mbps') * 1e6,
};

/** Thresholds worth comparing: at the first loss (m), and lazier ones for stripes. */
function thresholds(r: Redundancy): number[] {
  const { m } = stripeShape(r);
  return r.kind === 'copies' || m === 1 ? [m] : [...new Set([m, Math.ceil(m / 2)])];
}

const cases: { scheme: Redundancy; threshold: number; silence: number; loss: number }[] = [];
for (const scheme of schemes) for (const threshold of thresholds(scheme)) for (const silence of silences) for (const loss of losses) cases.push({ scheme, threshold, silence, loss });

if (!values.json) {
  process.stdout.write(
    `${base.hosts} hosts, ${base.days} days, availability ${base.availability[0] * 100}-${base.availability[1] * 100}% (8 h sessions), ` +
      `${base.networkLossPerYear * 100}% of networks lost a year, ${base.dataBytes / 1e9} GB each, 1 GB new a day, uplink ${base.upBytesPerSec / 1e6} MB/s, ${seeds} seed(s)\n\n`,
  );
  process.stdout.write('scheme    repair at  silence  loss/yr  recoverable   lost  worst  repair/month  overhead\n');
}
const t0 = performance.now();
let done = 0;
for (const c of cases) {
  const { k, m } = stripeShape(c.scheme);
  let recoverable = 0, hosts = 0, lost = 0, worst = k + m, repair = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const params: SimParams = { ...base, scheme: c.scheme, threshold: c.threshold, hostLossPerYear: c.loss, silenceHours: c.silence, seed };
    const r = simulate(params);
    recoverable += r.recoverable;
    hosts += r.hosts;
    lost += r.lostData;
    worst = Math.min(worst, r.worstShards);
    repair += r.repairPerMonth / seeds;
  }
  done++;
  const row = {
    scheme: formatRedundancy(c.scheme), repairBelow: k + c.threshold, silenceHours: c.silence, lossPerYear: c.loss,
    recoverable: recoverable / hosts, lostData: lost, worstShards: worst, shards: k + m, k, repairPerMonth: repair, overhead: (k + m) / k,
  };
  if (values.json) process.stdout.write(JSON.stringify(row) + '\n');
  else {
    process.stdout.write(
      `${row.scheme.padEnd(9)} ${`<${row.repairBelow}`.padStart(9)} ${`${c.silence} h`.padStart(8)} ${`${c.loss * 100}%`.padStart(8)} ` +
        `${(row.recoverable * 100).toFixed(3).padStart(10)}% ${String(lost).padStart(6)} ${`${worst}/${k + m}`.padStart(6)} ` +
        `${(repair * 100).toFixed(2).padStart(12)}% ${row.overhead.toFixed(2).padStart(9)}\n`,
    );
  }
  process.stderr.write(`\r${done}/${cases.length} cases, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
process.stderr.write('\n');
