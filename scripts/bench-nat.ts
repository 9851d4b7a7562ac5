// Shipping and recovery across home routers (scripts/nat-bed.ts: two NAT homes whose uplinks
// are shaped to --rate, a reachable member in the open), each beside a plain TCP stream over
// the same path in the same run:
//   - direct: a host behind NAT ships to the member in the open; baseline: one TCP stream home
//     -> open member;
//   - relayed: a host in one home ships to a host in the other through a relay member;
//     baseline: one TCP stream relayed by socat on the same middle host;
//   - recovery through the relay of what was shipped; baseline: the socat stream the other way.
//   node dist/scripts/bench-nat.js [--json] [--mib N] [--rate 100mbit]
import { execSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { scriptArgs } from './script-args.js';
import { host, settle, syncAll, unmountAll, type Host } from './bench-group.js';
import { canBuildBed, makeBed, type Bed } from './nat-bed.js';

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, mib: { type: 'string' }, rate: { type: 'string' } } });
const mib = Number(values.mib ?? 256);
const rate = values.rate ?? '100mbit';
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

if (!canBuildBed() || spawnSync('socat', ['-V'], { stdio: 'ignore' }).status !== 0) {
  log('bench-nat: skipped (needs root, iproute2, iptables and socat)');
  process.exit(0);
}

/** Node in a namespace, running a script; resolves with what it printed once it exits. */
function nodeIn(ns: string, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`node in ${ns} exited ${code}`))));
  });
}

/** Connects (retrying while nothing listens yet), then either sends `bytes` and times until the acknowledgement, or receives them and acknowledges. */
const peerScript = (role: 'send' | 'sink', host: string, port: number, bytes: number): string => `
  const net = require('net');
  const go = () => {
    const c = net.createConnection(${port}, '${host}');
    c.on('error', () => setTimeout(go, 50));
    c.on('connect', () => {
      if ('${role}' === 'sink') {
        let n = 0;
        c.on('data', (b) => { n += b.length; if (n >= ${bytes}) c.end('k'); });
        return;
      }
      const block = Buffer.alloc(1 << 20, 0x5a);
      let sent = 0;
      const t0 = performance.now();
      const pump = () => { while (sent < ${bytes}) { const k = Math.min(block.length, ${bytes} - sent); sent += k; if (!c.write(block.subarray(0, k))) return void c.once('drain', pump); } };
      c.on('data', () => { console.log(performance.now() - t0); c.destroy(); });
      pump();
    });
  };
  go();`;

/** One TCP stream from `from` to `to`, relayed by socat on the open member when `via` is set. */
async function tcpStream(bed: Bed, from: 'home1' | 'home2', to: 'home1' | 'home2' | 'pub', bytes: number, viaSocat: boolean): Promise<number> {
  if (!viaSocat) {
    const sink = nodeIn(bed.ns.pub, `require('net').createServer((c) => { let n = 0; c.on('data', (b) => { n += b.length; if (n >= ${bytes}) { c.end('k'); process.exit(0); } }); }).listen(5000, '${bed.ip.pub}');`);
    const ms = Number(await nodeIn(bed.ns[from], peerScript('send', bed.ip.pub, 5000, bytes)));
    await sink;
    return ms;
  }
  // Both homes dial out to the middle host, which joins the two connections: what a relay does.
  const socat = spawn('nsenter', [`--net=/run/netns/${bed.ns.pub}`, 'socat', `TCP-LISTEN:5002,bind=${bed.ip.pub},reuseaddr`, `TCP-LISTEN:5001,bind=${bed.ip.pub},reuseaddr`], { stdio: 'ignore' });
  try {
    const sink = nodeIn(bed.ns[to as 'home1' | 'home2'], peerScript('sink', bed.ip.pub, 5002, bytes));
    await new Promise((r) => setTimeout(r, 300));
    const ms = Number(await nodeIn(bed.ns[from], peerScript('send', bed.ip.pub, 5001, bytes)));
    await sink;
    return ms;
  } finally {
    socat.kill();
  }
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`bench-nat: not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const reach = (h: Host): string => (JSON.parse(h.safe('status', '--json')) as { daemon: { peers: { reach: { kind: string } } } }).daemon.peers.reach.kind;

const bed = makeBed({ uplink: rate });
const root = mkdtempSync('/var/tmp/safe-benchnat-');
const hosts: Host[] = [];
const results: Record<string, unknown> = { mib, rate };
try {
  const line = (what: string, bytes: number, ms: number, baseMs: number, base: string): void => {
    const r = { MBps: mbps(bytes, ms), baselineMBps: mbps(bytes, baseMs), ratio: baseMs / ms };
    results[what] = r;
    log(`${what}: ${r.MBps.toFixed(1)} MB/s; ${base}, same bytes: ${r.baselineMBps.toFixed(1)} MB/s; ratio ${(r.ratio * 100).toFixed(0)}%`);
  };
  log(`${mib} MiB of random data across home routers, uplinks shaped to ${rate}`);

  // Direct: a home ships to the member in the open.
  const open = await host(root, 'open', { offer: '100G', peers: [], group: 'bench-direct', netns: { name: bed.ns.pub, ip: bed.ip.pub, port: 4747 } });
  hosts.push(open);
  const h1 = await host(root, 'home1', { offer: '100G', peers: [open.addr], group: 'bench-direct', netns: { name: bed.ns.home1, ip: bed.ip.home1, port: 4747 } });
  hosts.push(h1);
  execSync(`dd if=/dev/urandom of=${h1.mnt}/random.bin bs=1M count=${mib} status=none`);
  await settle(h1);
  h1.safe('snapshot');
  const direct = syncAll(h1)[0]!;
  line('direct shipment', direct.bytes, direct.ms, await tcpStream(bed, 'home1', 'pub', direct.bytes, false), 'one TCP stream');
  unmountAll(hosts.splice(0));

  // Relayed: home1 ships to home2 through a relay member that offers no space.
  const relay = await host(root, 'relay', { offer: '0', peers: [], group: 'bench-relay', initArgs: ['--relay', '4'], netns: { name: bed.ns.pub, ip: bed.ip.pub, port: 4748 } });
  hosts.push(relay);
  const a = await host(root, 'a', { offer: '100G', peers: [relay.addr], group: 'bench-relay', netns: { name: bed.ns.home1, ip: bed.ip.home1, port: 4748 } });
  const b = await host(root, 'b', { offer: '100G', peers: [relay.addr], group: 'bench-relay', netns: { name: bed.ns.home2, ip: bed.ip.home2, port: 4748 } });
  hosts.push(a, b);
  await until('both homes hold a slot on the relay', () => reach(a) === 'relayed' && reach(b) === 'relayed', 60_000);
  execSync(`dd if=/dev/urandom of=${a.mnt}/random.bin bs=1M count=${mib} status=none`);
  await settle(a);
  a.safe('snapshot');
  const sentBefore = bed.uplinkSent('router1');
  const relayed = syncAll(a)[0]!;
  const onWire = bed.uplinkSent('router1') - sentBefore;
  results.relayedOnWire = onWire;
  log(`relayed shipment: ${(relayed.bytes / 1e6).toFixed(1)} MB shipped, ${(onWire / 1e6).toFixed(1)} MB out of home 1's uplink`);
  line('relayed shipment', relayed.bytes, relayed.ms, await tcpStream(bed, 'home1', 'home2', relayed.bytes, true), 'one TCP stream relayed by socat');

  // Recovery of home1 through the relay, everything fetched before it returns.
  a.safe('unmount');
  hosts.splice(hosts.indexOf(a), 1);
  rmSync(a.home, { recursive: true, force: true });
  const t0 = performance.now();
  const rec = JSON.parse(a.safe('recover', '--host', 'a', '--mount', a.mnt, '--group', 'bench-relay', '--peer', relay.addr, '--listen', a.addr, '--no-mdns', '--json')) as { mountedAfter: number; seconds: number };
  const recMs = performance.now() - t0;
  hosts.push(a);
  // The recovery's own clock starts once the root block is found (after the keys and the dials).
  const fetchS = rec.seconds - rec.mountedAfter;
  results.recovery = { seconds: recMs / 1000, untilRootBlock: recMs / 1000 - rec.seconds, mountedAfter: rec.mountedAfter, fetchSeconds: fetchS };
  log(`recovery: ${(recMs / 1000).toFixed(1)} s: root block found after ${(recMs / 1000 - rec.seconds).toFixed(1)} s, mounted ${rec.mountedAfter.toFixed(1)} s later, chunks fetched in ${fetchS.toFixed(1)} s (${mbps(relayed.chunkBytes, fetchS * 1000).toFixed(1)} MB/s)`);
  line('recovery through the relay', relayed.chunkBytes, recMs, await tcpStream(bed, 'home2', 'home1', relayed.chunkBytes, true), 'one TCP stream relayed by socat');
  if (values.json) process.stdout.write(JSON.stringify({ bench: 'nat', ...results }) + '\n');
} finally {
  unmountAll(hosts);
  bed.teardown();
  rmSync(root, { recursive: true, force: true });
}
