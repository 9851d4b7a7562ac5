// How long the folder's daemon keeps a request waiting: statfs on the mount every few
// milliseconds (the kernel never answers statfs from a cache, so each one is a round trip to the
// daemon's thread), until stdin closes; then the latencies, in ms, as one JSON line.
//   node dist/scripts/statfs-probe.js MOUNT
import { statfsSync } from 'node:fs';

const mnt = process.argv[2]!;
const ms: number[] = [];
let done = false;
process.stdin.on('end', () => (done = true)).resume();

const tick = (): void => {
  if (done) {
    ms.sort((a, b) => a - b);
    const at = (q: number): number => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? NaN;
    process.stdout.write(`${JSON.stringify({ n: ms.length, p50: at(0.5), p99: at(0.99), max: ms.at(-1) ?? NaN })}\n`);
    return;
  }
  const t0 = performance.now();
  statfsSync(mnt);
  ms.push(performance.now() - t0);
  setTimeout(tick, 2);
};
tick();
