// A cap on what a host sends (`--max-upload`) holds over a whole shipment: real daemons on
// loopback, the shipment's bytes over its time within 5% of the cap, never far above it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { makeHost } from '../fs/mounted.js';
import { makeMember, syncWait } from './group.js';

test('with --max-upload 2M a 16 MB shipment runs at 2 MB/s, within 5%', { timeout: 180_000 }, async () => {
  const buddy = await makeMember('capped-buddy', { offer: '1G' });
  buddy.mount();
  const host = await makeMember('capped-host', { offer: '1G', buddies: 1, peers: [buddy.addr], initArgs: ['--max-upload', '2M'] });
  host.mount();
  // Random: nothing compresses or dedups away, the shipment carries all 16 MB.
  writeFileSync(join(host.mnt, 'data.bin'), seededBytes(16_000_000, 7));
  await host.settle();
  host.ok('snapshot');
  const t0 = performance.now();
  const r = syncWait(host).buddies[0]!;
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
