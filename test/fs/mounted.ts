// A real host for tests: its own SAFE_HOME and mount point, the daemon in its own process
// (driven only from this one: never from the process serving the mount).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { callDaemon } from '../../src/cli/control.js';

export const SAFE_BIN = new URL('../../../bin/safe', import.meta.url).pathname;

export interface Host {
  home: string;
  mnt: string;
  env: NodeJS.ProcessEnv;
  safe(...args: string[]): SpawnSyncReturns<string>;
  /** Run safe and fail the test on a non-zero exit. */
  ok(...args: string[]): string;
  mount(): void;
  unmount(): void;
  /** Wait until every closed file is chunked. */
  settle(timeoutMs?: number): Promise<void>;
  status(): { mounted: boolean; daemon: { pendingChunking: number; writersOpen: number; pid: number } | null; store: { chunks: number; packBytes: number } };
}

/**
 * Changes keys of a host's config.json, read at its daemon's next start; a key set to undefined
 * is removed (e.g. `{ maxDownload: undefined }` lifts a cap set with `safe init --max-download`).
 */
export function setConfig(h: Pick<Host, 'home'>, patch: Record<string, unknown>): void {
  const file = join(h.home, 'config.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...patch }, null, 2));
}

/** `dir`: where its SAFE_HOME and mount point go (a small disk), else the temp dir. */
/**
 * A host in a temp dir. `netns`: its commands (and so the daemon they start) run in that network
 * namespace, entered with nsenter so the FUSE mount stays visible to the test.
 */
export function makeHost(opts: { delayMs?: number; init?: boolean; initArgs?: string[]; env?: NodeJS.ProcessEnv; host?: string; dir?: string; netns?: string } = {}): Host {
  const root = mkdtempSync(join(opts.dir ?? tmpdir(), 'safe-host-'));
  const home = join(root, 'home');
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  const env = { ...process.env, SAFE_HOME: home, SAFE_PASSPHRASE: 'test passphrase', SAFE_CHUNK_DELAY_MS: String(opts.delayMs ?? 50), ...opts.env };
  const [bin, pre] = opts.netns ? ['nsenter', [`--net=/run/netns/${opts.netns}`, SAFE_BIN]] : [SAFE_BIN, []];
  const safe = (...args: string[]): SpawnSyncReturns<string> => spawnSync(bin, [...pre, ...args], { env, encoding: 'utf8', timeout: 600_000 });
  const ok = (...args: string[]): string => {
    const r = safe(...args);
    if (r.status !== 0) throw new Error(`safe ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const host: Host = {
    home, mnt, env, safe, ok,
    mount: () => void ok('mount'),
    unmount: () => void ok('unmount'),
    status: () => JSON.parse(ok('status', '--json')),
    // Asks the daemon over its control socket, as safe status does, without a process per look:
    // each safe status cost ~0.4 s of CPU in a full suite run, and settling polls every 50 ms.
    async settle(timeoutMs = 60_000) {
      const t0 = Date.now();
      for (;;) {
        const reply = await callDaemon(join(home, 'daemon.sock'), { cmd: 'status' }, timeoutMs);
        const daemon = reply?.ok ? (reply.data as { pendingChunking: number }) : null;
        if (!daemon || daemon.pendingChunking === 0) return;
        if (Date.now() - t0 > timeoutMs) throw new Error(`chunking did not finish: ${JSON.stringify(daemon)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
  if (opts.init !== false) {
    ok('init', '--host', opts.host ?? 'testhost', '--mount', mnt, ...(opts.initArgs ?? []));
    // Snapshots and audits when the test says so: the hourly schedule firing in a run across
    // the top of the hour took a snapshot and applied retention mid-test. February 29th
    // comes every four years, at midnight.
    setConfig(host, { schedule: '0 0 29 2 *', auditSchedule: '0 0 29 2 *' });
  }
  after(() => {
    if (safe('unmount').status !== 0) killDaemonOf(home);
    spawnSync('fusermount3', ['-uz', mnt]);
    if (process.env.SAFE_TEST_KEEP) process.stderr.write(`kept ${root}\n`);
    else rmSync(root, { recursive: true, force: true });
  });
  return host;
}

/**
 * A daemon that could not answer its unmount (a hung event loop: what a failing test may have
 * found) must not outlive the test run. Only the process started with this SAFE_HOME is killed:
 * the pid file may be stale and its pid reused.
 */
function killDaemonOf(home: string): void {
  try {
    const pid = Number(readFileSync(join(home, 'daemon.pid'), 'utf8'));
    if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`SAFE_HOME=${home}`)) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or no such process: nothing left running
  }
}
