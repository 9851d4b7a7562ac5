// A cap on what a host sends (`--max-upload`) holds over a whole shipment: real daemons on
// loopback, the shipment's bytes over its time within 5% of the cap; safe status shows it under
// way with its rate and what is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { makeHost, SAFE_BIN } from '../fs/mounted.js';
import { makeMember, type SyncJson } from './group.js';

test('with --max-upload 2M a 16 MB shipment runs at 2 MB/s, within 5%, and safe status shows it going', { timeout: 180_000 }, async () => {
  const buddy = await makeMember('capped-buddy', { offer: '1G' });
  buddy.mount();
  const host = await makeMember('capped-host', { offer: '1G', buddies: 1, peers: [buddy.addr], initArgs: ['--max-upload', '2M'] });
  host.mount();
  // Random: nothing compresses or dedups away, the shipment carries all 16 MB.
  writeFileSync(join(host.mnt, 'data.bin'), seededBytes(16_000_000, 7));
  await host.settle();
  host.ok('snapshot');
  const t0 = performance.now();
  const sync = new Promise<string>((resolve, reject) => {
    const c = spawn(SAFE_BIN, ['sync', '--wait', '--json'], { env: host.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`safe sync --wait exited ${code}: ${out}`))));
  });
  sync.catch(() => {}); // awaited below; a failed check before then must not leave it unhandled
  // Half-way, safe status shows the shipment: how far, how fast, how long still.
  await new Promise((r) => setTimeout(r, 4000));
  const shipping = (JSON.parse(host.ok('status', '--json')) as { daemon: { peers: { shipping: { done: number; total: number; rate: number; etaSeconds: number | null }[] } } }).daemon.peers.shipping;
  assert.equal(shipping.length, 1, JSON.stringify(shipping));
  const s = shipping[0]!;
  assert.ok(s.done > 0 && s.done < s.total, JSON.stringify(s));
  assert.ok(Math.abs(s.rate - 2e6) / 2e6 < 0.25 && s.etaSeconds !== null && s.etaSeconds > 1 && s.etaSeconds < 12, JSON.stringify(s));
  assert.match(host.ok('status'), /\nshipping epoch \d+ to \S+: \d+% of the chunks, [\d.]+ MiB sent at [\d.]+ MiB\/s, about \d+ s left\n/);
  const r = (JSON.parse(await sync) as SyncJson).buddies[0]!;
  const wall = performance.now() - t0;
  assert.ok(r.ok && r.report, JSON.stringify(r));
  const rate = r.report.bytes / (r.report.ms / 1000);
  assert.ok(r.report.bytes > 16_000_000, `the whole file shipped: ${JSON.stringify(r.report)}`);
  assert.ok(Math.abs(rate - 2e6) / 2e6 < 0.05, `shipped at ${(rate / 1e6).toFixed(3)} MB/s against a cap of 2 MB/s (${JSON.stringify(r.report)})`);
  assert.ok(wall >= r.report.ms, `the command took ${wall} ms, the shipment ${r.report.ms}`);
});

test('a rate that is not one is refused at init with one line, and no host is made', () => {
  const h = makeHost({ init: false });
  const r = h.safe('init', '--host', 'bad-rate', '--mount', h.mnt, '--max-upload', 'fast');
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, "safe: --max-upload is not a rate of at least 1K: 'fast' (e.g. 2M for 2 MB/s, 500K)\n");
  assert.equal(existsSync(join(h.home, 'config.json')), false);
});
