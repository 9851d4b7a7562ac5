// Real daemons for the peer benchmarks: each host its own SAFE_HOME, mount and port on
// 127.0.0.1, all in one group; and a raw TCP transfer to measure beside them.
import { execSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

export const bin = new URL('../../bin/safe', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Host {
  name: string;
  home: string;
  mnt: string;
  addr: string;
  env: NodeJS.ProcessEnv;
  safe(...args: string[]): string;
}

export const GROUP_ENV = { SAFE_PASSPHRASE: 'bench', SAFE_GROUP_PASSWORD: 'bench group', SAFE_CHUNK_DELAY_MS: '500' };

export interface HostOptions {
  offer: string;
  peers: string[];
  buddies?: number;
  redundancy?: string;
  group?: string;
  initArgs?: string[];
  /** Run in this network namespace (entered with nsenter: the mount stays visible), listening there. */
  netns?: { name: string; ip: string; port: number };
}

export async function host(root: string, name: string, o: HostOptions): Promise<Host> {
  const home = join(root, name, 'home');
  const mnt = join(root, name, 'mnt');
  mkdirSync(mnt, { recursive: true });
  const addr = o.netns ? `/ip4/${o.netns.ip}/tcp/${o.netns.port}` : `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const env = { ...process.env, SAFE_HOME: home, ...GROUP_ENV };
  const [cmd, pre] = o.netns ? ['nsenter', [`--net=/run/netns/${o.netns.name}`, bin]] : [bin, []];
  const safe = (...args: string[]): string => {
    const r = spawnSync(cmd, [...pre, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`safe ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const spread = o.redundancy ? ['--redundancy', o.redundancy] : ['--buddies', String(o.buddies ?? 1)];
  safe('init', '--host', name, '--mount', mnt, '--group', o.group ?? 'bench', '--offer', o.offer, '--listen', addr, ...spread, '--no-mdns', ...o.peers.flatMap((p) => ['--peer', p]), ...(o.initArgs ?? []));
  safe('mount');
  return { name, home, mnt, addr, env, safe };
}

const CLK_TCK = Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }));

/** CPU seconds a process has used so far, in all its threads (user and system). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

export function daemonPid(h: Host): number {
  return Number(readFileSync(join(h.home, 'daemon.pid'), 'utf8'));
}

export async function settle(h: Host): Promise<void> {
  for (;;) {
    const s = JSON.parse(h.safe('status', '--json')) as { daemon: { pendingChunking: number } };
    if (s.daemon.pendingChunking === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface Report { chunksSent: number; chunkBytes: number; objectsSent: number; objectBytes: number; bytes: number; ms: number }

/** sync --wait; the reports of the buddies that committed. */
export function syncAll(h: Host): Report[] {
  const r = JSON.parse(h.safe('sync', '--wait', '--json')) as { buddies: { ok: boolean; error?: string; report?: Report }[] };
  const ok = r.buddies.filter((x) => x.ok && x.report).map((x) => x.report!);
  if (ok.length === 0) throw new Error(`sync failed: ${JSON.stringify(r)}`);
  return ok;
}

export function unmountAll(hosts: Host[]): void {
  for (const h of [...hosts].reverse()) spawnSync(bin, ['unmount'], { env: h.env });
}

/** Raw TCP: `bytes` from this process to a sink in another, on loopback; returns ms. */
export async function rawTcp(bytes: number): Promise<number> {
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

/**
 * A restic repository in `root` (Debian's restic): the baseline a restic user would get on the
 * same trees in the same run. Null when restic is not installed.
 */
export function resticRepo(root: string): { backup(tree: string): number; restore(target: string): number; bytes(): number } | null {
  if (spawnSync('restic', ['version'], { stdio: 'ignore' }).status !== 0) return null;
  const env = { ...process.env, RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: join(root, 'restic.cache'), RESTIC_REPOSITORY: join(root, 'restic.repo') };
  const run = (...args: string[]): number => {
    const t0 = performance.now();
    const r = spawnSync('restic', ['-q', ...args], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`restic ${args.join(' ')}: ${r.stderr}`);
    return (performance.now() - t0) / 1000;
  };
  run('init');
  return {
    backup: (tree) => run('backup', tree),
    restore: (target) => run('restore', 'latest', '--target', target),
    bytes: () => Number(spawnSync('du', ['-sb', env.RESTIC_REPOSITORY], { encoding: 'utf8' }).stdout.split('\t')[0]),
  };
}

/**
 * The tree a peer benchmark ships: linux-prev of the corpus when it is built (and not
 * skipped), else a synthetic one in `root`: 2,000 small files and `mib` MiB of random bytes.
 */
export function benchTree(root: string, o: { corpus?: string; skipCorpus?: boolean; mib?: string }): string {
  const corpus = join(o.corpus ?? process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus', 'linux-prev');
  if (!o.skipCorpus && existsSync(join(corpus, '.complete'))) return corpus;
  const source = join(root, 'synthetic');
  execSync(`mkdir -p ${source}/small && for i in $(seq 1 2000); do head -c $((RANDOM * 2)) /dev/urandom > ${source}/small/f$i; done && dd if=/dev/urandom of=${source}/big.bin bs=1M count=${Number(o.mib ?? 256)} status=none`, { shell: '/bin/bash' });
  return source;
}
