// Shipping to a buddy, two real daemons on 127.0.0.1, beside a raw TCP transfer of the same
// number of bytes in the same run; then the bytes a no-change snapshot costs, and (with the
// corpus) the bytes shipped for the linux-prev -> linux update beside the size of the files
// whose content changed.
//   node dist/scripts/bench-ship.js [--json] [--mib N] [--corpus DIR] [--skip-corpus]
import { spawn, spawnSync, execSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, mib: { type: 'string' }, corpus: { type: 'string' }, 'skip-corpus': { type: 'boolean' } } });
const mib = Number(values.mib ?? 512);
const corpusDir = values.corpus ?? process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus';
const bin = new URL('../../bin/safe', import.meta.url).pathname;
const root = mkdtempSync('/var/tmp/safe-benchship-');
const results: Record<string, unknown> = {};
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const mbps = (bytes: number, ms: number): string => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Host {
  mnt: string;
  addr: string;
  safe(...args: string[]): string;
}

async function host(name: string, offer: string, peers: string[]): Promise<Host> {
  const home = join(root, name, 'home');
  const mnt = join(root, name, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const addr = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const env = { ...process.env, SAFE_HOME: home, SAFE_PASSPHRASE: 'bench', SAFE_GROUP_PASSWORD: 'bench group', SAFE_CHUNK_DELAY_MS: '500' };
  const safe = (...args: string[]): string => {
    const r = spawnSync(bin, args, { env, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`safe ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  safe('init', '--host', name, '--mount', mnt, '--group', 'bench', '--offer', offer, '--listen', addr, '--buddies', '1', '--no-mdns', ...peers.flatMap((p) => ['--peer', p]));
  safe('mount');
  return { mnt, addr, safe };
}

async function settle(h: Host): Promise<void> {
  for (;;) {
    const s = JSON.parse(h.safe('status', '--json')) as { daemon: { pendingChunking: number } };
    if (s.daemon.pendingChunking === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Report { chunksSent: number; chunkBytes: number; objectsSent: number; bytes: number; ms: number }
function sync(h: Host): Report {
  const r = JSON.parse(h.safe('sync', '--wait', '--json')) as { buddies: { ok: boolean; error?: string; report?: Report }[] };
  const b = r.buddies.find((x) => x.ok);
  if (!b?.report) throw new Error(`sync failed: ${JSON.stringify(r)}`);
  return b.report;
}

/** Raw TCP: `bytes` from this process to a sink in another, on loopback. */
async function rawTcp(bytes: number): Promise<number> {
  const sink = spawn(process.execPath, ['-e', `
    const s = require('net').createServer((c) => { let n = 0; c.on('data', (b) => { n += b.length; if (n >= ${bytes}) c.end('k'); }); });
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((r) => sink.stdout!.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
  const block = Buffer.alloc(1 << 20, 0x5a);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const c = createConnection(port, '127.0.0.1');
    let sent = 0;
    const pump = (): void => {
      while (sent < bytes) {
        const n = Math.min(block.length, bytes - sent);
        sent += n;
        if (!c.write(block.subarray(0, n))) return void c.once('drain', pump);
      }
    };
    c.on('connect', pump);
    c.on('data', () => { c.destroy(); resolve(); });
    c.on('error', reject);
  });
  const ms = performance.now() - t0;
  sink.kill();
  return ms;
}

const hosts: Host[] = [];
try {
  const buddy = await host('buddy', '100G', []);
  hosts.push(buddy);
  const a = await host('host', '100G', [buddy.addr]);
  hosts.push(a);

  // 1. A first shipment of incompressible data.
  execSync(`dd if=/dev/urandom of=${a.mnt}/random.bin bs=1M count=${mib} status=none`);
  await settle(a);
  a.safe('snapshot');
  const first = sync(a);
  const tcpMs = await rawTcp(first.chunkBytes);
  results.first = { ...first, rawTcpMs: tcpMs, ratio: tcpMs / first.ms };
  log(`first shipment of ${mib} MiB random: ${mbps(first.chunkBytes, first.ms)} (${first.chunksSent} chunks); raw TCP, same bytes: ${mbps(first.chunkBytes, tcpMs)}; ratio ${((tcpMs / first.ms) * 100).toFixed(0)}%`);

  // 2. A snapshot with no change.
  a.safe('snapshot');
  const idle = sync(a);
  results.noChange = { bytes: idle.bytes, ms: idle.ms };
  log(`no-change snapshot: ${idle.bytes} bytes shipped in ${idle.ms.toFixed(0)} ms`);
  execSync(`rm ${a.mnt}/random.bin`);

  // 3. The linux update.
  const prev = join(corpusDir, 'linux-prev');
  const next = join(corpusDir, 'linux');
  if (!values['skip-corpus']) {
    try {
      statSync(join(prev, '.complete'));
      execSync(`cp -a ${prev} ${a.mnt}/linux`);
      await settle(a);
      a.safe('snapshot');
      const base = sync(a);
      log(`linux-prev shipped: ${(base.chunkBytes / 1e6).toFixed(0)} MB of chunks, ${base.objectsSent} objects, ${(base.bytes / 1e6).toFixed(0)} MB in all, ${(base.ms / 1000).toFixed(1)} s (${mbps(base.bytes, base.ms)})`);
      // Files whose content differs (by checksum), and their size in the new release.
      const changed = execSync(`rsync -a -c --delete --dry-run --out-format='%l %n' ${next}/ ${prev}/ | grep -v '/$' || true`, { encoding: 'utf8', shell: '/bin/bash', maxBuffer: 1 << 28 })
        .split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0])).filter((n) => Number.isFinite(n));
      const changedBytes = changed.reduce((s, n) => s + n, 0);
      execSync(`rsync -a --delete ${next}/ ${a.mnt}/linux/`);
      await settle(a);
      a.safe('snapshot');
      const upd = sync(a);
      results.update = { changedFiles: changed.length, changedBytes, shippedBytes: upd.bytes, chunkBytes: upd.chunkBytes, objects: upd.objectsSent, ms: upd.ms, base };
      log(`linux-prev -> linux: ${changed.length} files changed in content (${(changedBytes / 1e6).toFixed(1)} MB); shipped ${(upd.bytes / 1e6).toFixed(1)} MB (${(upd.chunkBytes / 1e6).toFixed(1)} MB chunks, ${upd.objectsSent} metadata objects) in ${(upd.ms / 1000).toFixed(1)} s`);
    } catch (err) {
      log(`(corpus skipped: ${(err as Error).message.split('\n')[0]})`);
    }
  }
} finally {
  for (const h of hosts.reverse()) spawnSync(bin, ['unmount'], { env: { ...process.env, SAFE_HOME: join(h.mnt, '..', 'home') } });
  rmSync(root, { recursive: true, force: true });
}
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
