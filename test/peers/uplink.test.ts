// A host that is a good citizen on its uplink. A cap on what it sends (`--max-upload`) holds
// over a whole 30 s shipment from behind a home router (scripts/nat-bed.ts, in network
// namespaces this test makes and removes; the home's uplink shaped to 100 Mbit/s): its bytes
// over its time never more than 5% above the cap, and near it (a machine too loaded to keep
// up falls under a cap, never over). safe status shows the shipment under way with its rate
// and what is left. Outside its ship window (`shipWindow`) nothing ships unless asked with
// --now (real daemons on loopback).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logMessages, seededBytes } from '../helpers.js';
import { makeHost, SAFE_BIN, setConfig } from '../fs/mounted.js';
import { canBuildBed, makeBed } from '../../scripts/nat-bed.js';
import { makeMember, type Member, type SyncJson } from './group.js';

const CAP = 2e6;
/** 30 s of shipping at the cap; random, so nothing compresses or dedups away. */
const BYTES = 60_000_000;

test('with --max-upload 2M a 60 MB shipment from behind a home router runs at 2 MB/s for 30 s, never 5% above it, and safe status shows it going', { skip: canBuildBed() ? false : 'needs root and iproute2 to make network namespaces', timeout: 240_000 }, async (t) => {
  const bed = makeBed({ uplink: '100mbit' });
  const hosts: Member[] = [];
  try {
    const buddy = await makeMember('capped-buddy', { offer: '1G', netns: { name: bed.ns.pub, ip: bed.ip.pub } });
    hosts.push(buddy);
    buddy.mount();
    const host = await makeMember('capped-host', { offer: '1G', buddies: 1, peers: [buddy.addr], netns: { name: bed.ns.home1, ip: bed.ip.home1 }, initArgs: ['--max-upload', '2M'] });
    hosts.push(host);
    host.mount();
    writeFileSync(join(host.mnt, 'data.bin'), seededBytes(BYTES, 7));
    await host.settle();
    host.ok('snapshot');
    const sentBefore = bed.uplinkSent('router1');
    const sync = new Promise<string>((resolve, reject) => {
      const c = spawn(SAFE_BIN, ['sync', '--wait', '--json'], { env: host.env, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`safe sync --wait exited ${code}: ${out}`))));
    });
    sync.catch(() => {}); // awaited below; a failed check before then must not leave it unhandled
    type Shipping = { done: number; total: number; bytes: number; updatedAt: number; rate: number; etaSeconds: number | null };
    const shipping = (): Shipping[] => (JSON.parse(host.ok('status', '--json')) as { daemon: { peers: { shipping: Shipping[] } } }).daemon.peers.shipping;
    // Under way, safe status shows how far, how fast, how long still. Between two looks, the
    // rate on the wire is the cap: what the shipment sent between the daemon's own timestamps.
    await new Promise((r) => setTimeout(r, 3000));
    const early = shipping();
    assert.equal(early.length, 1, JSON.stringify(early));
    const s = early[0]!;
    assert.ok(s.done > 0 && s.done < s.total && s.etaSeconds !== null && s.etaSeconds > 10 && s.etaSeconds < 40, JSON.stringify(s));
    assert.ok(Math.abs(s.rate - CAP) / CAP < 0.25, `the rate shown: ${JSON.stringify(s)}`);
    const status = host.ok('status');
    assert.doesNotMatch(status, /no member of the group is reachable/);
    assert.match(status, /\nshipping epoch \d+ to \S+: \d+% of the chunks, [\d.]+ [KM]iB sent at [\d.]+ [KM]iB\/s, about \d+ s left(\n|$)/);
    // The second look once 30 MB more went, 15 s at the cap (each look may take a while on a
    // loaded machine; the rate comes from the daemon's own timestamps).
    let late: Shipping | undefined;
    for (let cur = shipping()[0]; cur; cur = shipping()[0]) {
      if (cur.bytes - s.bytes > 30e6) {
        late = cur;
        break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(late, 'the shipment was still under way 30 MB after the first look');
    const onWire = (late.bytes - s.bytes) / ((late.updatedAt - s.updatedAt) / 1000);
    assert.ok(onWire < CAP * 1.05 && onWire > CAP * 0.85, `between the looks: ${(onWire / 1e6).toFixed(3)} MB/s (${JSON.stringify([s, late])})`);
    const r = (JSON.parse(await sync) as SyncJson).buddies[0]!;
    assert.ok(r.ok && r.report, JSON.stringify(r));
    assert.ok(r.report.bytes > BYTES && r.report.ms > 28_000, `the whole file shipped, for 30 s: ${JSON.stringify(r.report)}`);
    // Over the whole shipment (its set-up, round trips and commit included) never above the
    // cap; and what left the home's router, counted by the router, no more than 5% above it.
    const rate = r.report.bytes / (r.report.ms / 1000);
    assert.ok(rate < CAP * 1.02 && rate > CAP * 0.8, `shipped at ${(rate / 1e6).toFixed(3)} MB/s against a cap of 2 MB/s (${JSON.stringify(r.report)})`);
    const onUplink = (bed.uplinkSent('router1') - sentBefore) / (r.report.ms / 1000);
    t.diagnostic(`MB/s: between the looks ${(onWire / 1e6).toFixed(3)}, the whole shipment ${(rate / 1e6).toFixed(3)} over ${(r.report.ms / 1000).toFixed(1)} s, out of the uplink ${(onUplink / 1e6).toFixed(3)}`);
    assert.ok(onUplink < CAP * 1.05, `out of the home's uplink: ${(onUplink / 1e6).toFixed(3)} MB/s`);
  } finally {
    for (const h of hosts.reverse()) h.safe('unmount');
    bed.teardown();
  }
});

test('a rate that is not one is refused at init with one line, and no host is made', () => {
  const h = makeHost({ init: false });
  const r = h.safe('init', '--host', 'bad-rate', '--mount', h.mnt, '--max-upload', 'fast');
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, "safe: --max-upload is not a rate of at least 1K: 'fast' (e.g. 2M for 2 MB/s, 500K)\n");
  assert.equal(existsSync(join(h.home, 'config.json')), false);
});

test('outside the ship window a snapshot waits; safe sync refuses in one line; safe sync --now ships', { timeout: 120_000 }, async () => {
  const buddy = await makeMember('window-buddy', { offer: '1G' });
  buddy.mount();
  const host = await makeMember('window-host', { offer: '1G', buddies: 1, peers: [buddy.addr] });
  // A window that opens two hours from now, whatever the time of day.
  const from = (new Date().getHours() + 2) % 24;
  const window = `${from}:00-${(from + 1) % 24}:00`;
  setConfig(host, { shipWindow: window });
  host.mount();
  writeFileSync(join(host.mnt, 'f'), 'waits for the night\n');
  await host.settle();
  host.ok('snapshot');
  await new Promise((r) => setTimeout(r, 3000));
  const held = (): number => (JSON.parse(buddy.ok('peers', '--json')) as { self: { holding: unknown[] } }).self.holding.length;
  assert.equal(held(), 0, 'nothing shipped outside the window');
  assert.ok(logMessages(host.home).some((m) => m.startsWith(`shipping waits for the ship window ${window}`)), logMessages(host.home).join('\n'));
  assert.match(host.ok('status'), new RegExp(`\\nship window ${window}: closed; shipments wait until .* \\(safe sync --now ships anyway\\)\\n`));
  const st = (JSON.parse(host.ok('status', '--json')) as { shipWindow: { window: string; open: boolean; opens: string } }).shipWindow;
  assert.deepEqual({ ...st, opens: new Date(st.opens).getHours() }, { window, open: false, opens: from });
  const refused = host.safe('sync', '--wait');
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`^safe: outside the ship window ${window} \\(it opens .*\\): safe sync --now ships anyway\\n$`));
  const r = JSON.parse(host.ok('sync', '--wait', '--now', '--json')) as SyncJson;
  assert.ok(r.buddies.length === 1 && r.buddies[0]!.ok, JSON.stringify(r));
  assert.equal(held(), 1);
});
