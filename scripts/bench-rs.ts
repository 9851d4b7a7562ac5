// Reed-Solomon stripe coding beside a same-run baseline: a plain copy of the same bytes (what
// any stripe costs at least: the coder copies shards in and out). Encode = all parity of a
// stripe; decode = the stripe back from k shards with m data shards lost (the worst case).
//
//   node dist/scripts/bench-rs.js [--json] [--mib 256] [--stripe-mib 4]
import { randomFillSync } from 'node:crypto';
import { scriptArgs } from './script-args.js';
import { decodeStripe, encodeStripe } from '../src/redundancy/rs-codec.js';

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, mib: { type: 'string' }, 'stripe-mib': { type: 'string' } } });
const MiB = 1 << 20;
const total = Number(values.mib ?? 256) * MiB;
const stripeBytes = Number(values['stripe-mib'] ?? 4) * MiB;
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));

const data = randomFillSync(Buffer.allocUnsafe(total));
const stripes = Array.from({ length: total / stripeBytes }, (_, i) => data.subarray(i * stripeBytes, (i + 1) * stripeBytes));

async function rate(fn: () => Promise<void> | void): Promise<number> {
  await fn(); // warm-up
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await fn();
    runs.push(total / MiB / ((performance.now() - t0) / 1000));
  }
  return runs.sort((a, b) => a - b)[1]!;
}

const copy = await rate(() => {
  for (const s of stripes) Buffer.from(s);
});
log(`baseline: plain copy of ${total / MiB} MiB in ${stripeBytes / MiB} MiB pieces: ${copy.toFixed(0)} MiB/s`);
const results: Record<string, unknown> = { copyMiBs: Math.round(copy) };
// Two stripes in flight per core, as a shipment would keep the libuv pool busy.
const inFlight = 4;
async function each(fn: (s: Buffer) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < stripes.length; i += inFlight) await Promise.all(stripes.slice(i, i + inFlight).map(fn));
}
for (const [k, m] of [[4, 2], [6, 3], [10, 4]] as const) {
  const encoded = await Promise.all(stripes.map((s) => encodeStripe(s, k, m)));
  const lossy = encoded.map((shards) => shards.map((s, i) => (i < m ? null : s)));
  const enc = await rate(() => each((s) => encodeStripe(s, k, m)));
  let at = 0;
  const dec = await rate(async () => {
    at = 0;
    await each(() => decodeStripe(lossy[at++]!, k, m, stripeBytes));
  });
  log(`rs:${k}+${m}  encode ${enc.toFixed(0)} MiB/s (${(enc / copy).toFixed(2)}x copy)  decode with ${m} data shards lost ${dec.toFixed(0)} MiB/s (${(dec / copy).toFixed(2)}x copy)`);
  results[`rs${k}+${m}`] = { encodeMiBs: Math.round(enc), decodeMiBs: Math.round(dec) };
}
if (values.json) process.stdout.write(JSON.stringify({ bench: 'rs', stripeMiB: stripeBytes / MiB, ...results }) + '\n');
