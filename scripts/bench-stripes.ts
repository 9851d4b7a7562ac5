// Whole copies against Reed-Solomon stripes, real daemons on 127.0.0.1: the same tree shipped
// by a host on copies:2 to two of six members, then (a fresh group) by a host on rs:4+2 to all
// six; bytes on the wire and time for the first shipment; then recovery on a blank host, from
// the two copies, and from four of the six members (two stopped). Beside them, in the same run,
// raw TCP carrying the same bytes the copies shipment sent.
//   node dist/scripts/bench-stripes.js [--json] [--corpus DIR] [--skip-corpus] [--mib N]
import { execSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { scriptArgs } from './script-args.js';
import { benchTree, bin, host, rawTcp, settle, syncAll, unmountAll, type Host } from './bench-group.js';

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, corpus: { type: 'string' }, 'skip-corpus': { type: 'boolean' }, mib: { type: 'string' } } });
const root = mkdtempSync('/var/tmp/safe-benchrs-');
const results: Record<string, unknown> = {};
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const du = (dir: string): number => Number(execSync(`du -sb --apparent-size ${dir}`, { encoding: 'utf8' }).split('\t')[0]);

const source = benchTree(root, { corpus: values.corpus, skipCorpus: values['skip-corpus'], mib: values.mib });
const bytes = du(source);

async function run(scheme: string, stop: number): Promise<{ shipSeconds: number; wireBytes: number; recoverSeconds: number; received: number; identical: boolean }> {
  const dir = join(root, scheme.replace(/[:+]/g, '-'));
  const hosts: Host[] = [];
  try {
    const first = await host(dir, 'member-0', { offer: '100G', peers: [] });
    hosts.push(first);
    for (let i = 1; i < 6; i++) hosts.push(await host(dir, `member-${i}`, { offer: '100G', peers: [first.addr] }));
    const a = await host(dir, 'host-a', { offer: '100G', peers: [first.addr], redundancy: scheme });
    hosts.push(a);
    execSync(`cp -a ${source}/. ${a.mnt}/`);
    await settle(a);
    a.safe('snapshot');
    const t0 = performance.now();
    const reports = syncAll(a);
    const shipSeconds = (performance.now() - t0) / 1000;
    const wireBytes = reports.reduce((n, r) => n + r.bytes, 0);
    // Stop `stop` of the members holding our data, then recover on a blank host.
    const status = JSON.parse(a.safe('status', '--json')) as { daemon: { peers: { buddies: { peer: string }[] } } };
    const holding = new Set(status.daemon.peers.buddies.map((b) => b.peer));
    const ids = hosts.slice(0, 6).map((h) => (JSON.parse(h.safe('status', '--json')) as { daemon: { peers: { peerId: string } } }).daemon.peers.peerId);
    const stopped = hosts.slice(0, 6).filter((_, i) => holding.has(ids[i]!)).slice(0, stop);
    for (const h of stopped) h.safe('unmount');
    const up = hosts.slice(0, 6).find((h) => !stopped.includes(h))!;
    a.safe('unmount');
    rmSync(a.home, { recursive: true, force: true });
    const r0 = performance.now();
    const r = spawnSync(bin, ['recover', '--host', 'host-a', '--mount', a.mnt, '--group', 'bench', '--peer', up.addr, '--listen', a.addr, '--no-mdns', '--json'], { env: a.env, encoding: 'utf8', maxBuffer: 1 << 28 });
    const recoverSeconds = (performance.now() - r0) / 1000;
    if (r.status !== 0) throw new Error(`recover: ${r.stderr}`);
    const rec = JSON.parse(r.stdout) as { bytes: number };
    const check = spawnSync('diff', ['-rq', '-x', '.snapshots', '-x', '.complete', source, a.mnt], { encoding: 'utf8', maxBuffer: 1 << 28 });
    return { shipSeconds, wireBytes, recoverSeconds, received: rec.bytes, identical: check.status === 0 };
  } finally {
    unmountAll(hosts);
  }
}

try {
  const copies = await run('copies:2', 0);
  const tcp = (await rawTcp(copies.wireBytes)) / 1000;
  const rs = await run('rs:4+2', 2);
  results.copies = copies;
  results.rs = rs;
  results.rawTcpSeconds = tcp;
  results.treeBytes = bytes;
  const mb = (n: number): string => `${(n / 1e6).toFixed(0)} MB`;
  log(`tree ${mb(bytes)}; raw TCP carrying the copies shipment's ${mb(copies.wireBytes)}: ${tcp.toFixed(1)} s`);
  log(`first shipment: copies:2 ${mb(copies.wireBytes)} in ${copies.shipSeconds.toFixed(1)} s; rs:4+2 ${mb(rs.wireBytes)} in ${rs.shipSeconds.toFixed(1)} s (${((rs.wireBytes / copies.wireBytes) * 100).toFixed(0)}% of the bytes)`);
  log(`recovery: copies:2 from both copies ${copies.recoverSeconds.toFixed(1)} s (${mb(copies.received)} received, identical ${copies.identical}); rs:4+2 from 4 of 6 members ${rs.recoverSeconds.toFixed(1)} s (${mb(rs.received)} received, identical ${rs.identical})`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
