// mount / unmount: start the daemon (in the background, or --foreground) and stop it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { loadConfig, paths, safeHome, unlock, type Unlocked } from './config.js';
import { callDaemon } from './control.js';
import type { DaemonKeys } from './daemon.js';
import { UserError } from './errors.js';
import type { Unattended } from './secrets.js';
import { isMountPoint } from '../fs/mount.js';
import type { Out } from './commands-store.js';
import { createLog, formatLine, parseLine } from '../log/logger.js';

const BIN = fileURLToPath(new URL('../../../bin/safe', import.meta.url));

// The daemon always runs in a process of its own, started with these. A young generation of
// 1 MiB instead of V8's 16-32 MiB per heap (since grown again, below) and two malloc arenas instead of one per thread took
// an idle daemon after an untar of 4,011 files from 230 to 133 MB of RSS, at the same speed
// (dd, untar); the main thread's live heap was 20 MB of it.
// Fixed malloc thresholds (both 16 MiB at first; the trim one since raised, below). glibc's
// sliding ones left half the runs of a 256 MiB dd taking each FUSE write's buffer (up to
// 1 MiB) fresh from the kernel (66k page faults, 200-230 MB/s against 500-575). Below 8 MiB
// the mmap threshold mapped, faulted in and unmapped every shipment message a buddy receives
// (13% of its main thread), and a 128 KiB trim threshold gave the heap's top back after each;
// 256 MiB first shipments went from 38-51 to 43-66 MB/s. What the heap keeps goes back once
// the daemon is idle (daemon.ts: malloc_trim after a quiet spell): after an untar of 8k files
// and a 256 MiB dd, 126-129 MB 16 s later, 77-78 MB once trimmed.
// Since then the heap's top is kept between bursts (trim threshold 256 MiB, 64 MiB of padding
// on each growth): a shipping host still took 87-173k page faults per 512 MiB, each buffer of
// the channel's ciphers landing on pages the last trim had given back. With both, 39-47k, and
// first shipments of 512 MiB went from 64-66 to 72-77 MB/s (alternating runs, CPU of both
// daemons 13.5-13.9 -> 11.6-12.6 s). The same untar and dd: 121-151 MB after, 81 MB once
// trimmed (the old thresholds 127-129 and 79-80); the linux tree's untar: 118 MB after.
// With so small a young generation, whatever outlives a few milliseconds is promoted: on a
// buddy, every frame and message of the 16 MiB a shipment keeps in flight. V8 then ran a full
// collection each time its old generation grew past its limit, a small factor over the 22-25 MB
// live heap: 37-50 per 256 MiB received, their marking 2.6-3.5 s of CPU per 512 MiB on the
// helper threads (a bare channel's receiver: 0.6). With the limit at three times the live heap
// (--heap-growing-percent=200), 1.2-1.4 s, and the linux tree's untar left 135 MB after it and
// 95 MB once idle (before: 117-119 and 82-92).
// That limit also lets the heap stay large after a burst of writes; the daemon collects it in
// full once the burst is chunked (daemon.ts).
// The 1 MiB young generation cost the network more than its own promotions: the bench's bare
// libp2p channel, run with it, made 159-185 MB/s against 241-267 with V8's default, its
// receiver's CPU 3.0-3.5 s against 1.8-2.0 per 512 MiB. V8 starts a young generation at 1 MiB
// and grows it only while what it holds survives (a shipment's frames in flight), so the
// daemon now runs with V8's own limit (16 MiB semi-spaces; a --max-semi-space-size flag would
// also override the ingest workers' own limit). The folder's requests die young: it ran as
// fast (alternating runs: untar of linux-prev 53.7-54.5 s against 54.6-56.0, small-file cycles
// the same), but V8 keeps a grown young generation for good: 222-233 MB of RSS after the
// untar against 107-119. The daemon now shrinks it after each burst and in quiet spells
// (reduceV8Heap, daemon.ts). The ingest workers keep 1 MiB (ingest-pool.ts).
const DAEMON_NODE_FLAGS = ['--heap-growing-percent=200'];
const DAEMON_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: String(16 << 20), MALLOC_TRIM_THRESHOLD_: String(256 << 20), MALLOC_TOP_PAD_: String(64 << 20) };

/** A daemon process started before its keys are given: it loads its code meanwhile. */
export interface PendingDaemon {
  /** Hands it the keys; resolves once it mounted, or throws why not. */
  start(keys: DaemonKeys): Promise<ChildProcess>;
  /** Not needed after all: it exits without touching anything. */
  cancel(): void;
}

function spawnDaemon(home: string, stderr: 'pipe' | number, detached: boolean): PendingDaemon {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, BIN, '__daemon'], {
    detached,
    stdio: ['pipe', 'pipe', stderr],
    env: { ...process.env, ...DAEMON_ENV, SAFE_HOME: home, SAFE_PASSPHRASE: undefined, SAFE_GROUP_PASSWORD: undefined },
  });
  // In the foreground its log comes here, shown as `safe logs` shows it (under a service, to
  // the journal), and goes to the log file as well, for safe logs.
  if (child.stderr) {
    const file = openSync(paths(home).log, 'a', 0o600);
    const lines = createInterface({ input: child.stderr });
    lines.once('close', () => closeSync(file));
    lines.on('line', (line) => {
      writeSync(file, line + '\n');
      const l = parseLine(line);
      if (l) process.stderr.write(formatLine(l) + '\n');
    });
  }
  const answer = new Promise<string>((resolve) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => resolve(line));
    child.once('exit', (code) => resolve(`error the daemon exited (code ${code}); see ${stderr === 'pipe' ? 'above' : paths(home).log}`));
  });
  return {
    async start(keys) {
      child.stdin!.end(keysToLine(keys) + '\n');
      const line = await answer;
      child.stdout!.destroy();
      if (!line.startsWith('ready')) throw new UserError(line.replace(/^error /, ''));
      return child;
    },
    cancel: () => void child.stdin!.end(),
  };
}

/**
 * A background daemon for `home`, started now and given its keys later: `safe recover` starts
 * it before its import, so the ~0.3 s a daemon takes to load overlap the import, not the wait
 * for a usable mount.
 */
export function spawnBackgroundDaemon(home: string): PendingDaemon {
  const log = openSync(paths(home).log, 'a', 0o600);
  try {
    return spawnDaemon(home, log, true);
  } finally {
    closeSync(log);
  }
}

const daemonKeys = (u: Unlocked): DaemonKeys => ({ convergence: u.convergence, host: u.keys, group: u.group });

// Keys travel to the background daemon as one JSON line on its stdin; bytes as hex.
function keysToLine(k: DaemonKeys): string {
  return JSON.stringify(k, function (this: Record<string, unknown>, key) {
    const raw = this[key];
    return raw instanceof Uint8Array ? { hex: Buffer.from(raw).toString('hex') } : raw;
  });
}

function keysFromLine(line: string): DaemonKeys {
  return JSON.parse(line, (_k, v: unknown) => (v && typeof v === 'object' && 'hex' in v ? Buffer.from((v as { hex: string }).hex, 'hex') : v)) as DaemonKeys;
}

/** `early`: a daemon spawnBackgroundDaemon started for this mount. */
export async function mount(foreground: boolean, out: Out, unlocked?: Unlocked, from?: Unattended, early?: PendingDaemon): Promise<void> {
  const home = safeHome();
  const cfg = loadConfig(home);
  if (cfg.recovering) throw new UserError(`recovery of '${cfg.host}' is not finished: run safe recover again to resume it`);
  const running = await callDaemon(paths(home).socket, { cmd: 'status' }, 5000);
  if (running?.ok) throw new UserError(`already mounted at ${cfg.mount}`);
  const keys = unlocked ?? (await unlock(home, cfg, from));
  if (foreground) {
    const child = await spawnDaemon(home, 'pipe', false).start(daemonKeys(keys));
    out.print(`mounted ${cfg.mount} (foreground; Ctrl-C to unmount)`, { mounted: true, mount: cfg.mount, pid: child.pid });
    // The daemon unmounts on SIGINT/SIGTERM; this process only waits for it to be done.
    const pass = (sig: NodeJS.Signals): void => void child.kill(sig);
    process.on('SIGINT', pass).on('SIGTERM', pass).on('SIGHUP', pass);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new UserError(`the daemon exited with code ${code}`);
    return;
  }
  const child = await (early ?? spawnBackgroundDaemon(home)).start(daemonKeys(keys));
  child.unref();
  out.print(`mounted ${cfg.mount}`, { mounted: true, mount: cfg.mount, pid: child.pid });
}

/** Entry of the background daemon process: keys arrive on stdin, never via argv or env (no secret stays in its environment). */
export async function daemonMain(): Promise<void> {
  const home = safeHome();
  // The code loads while the keys are on their way (safe recover starts the daemon early).
  const code = import('./daemon.js');
  code.catch(() => {}); // a failure to load surfaces where it is awaited
  const line = await new Promise<string | null>((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.once('line', (l) => {
      resolve(l); // before close(), which would resolve it with null
      rl.close();
    });
    rl.once('close', () => resolve(null));
  });
  // Started early and then not needed (the recovery failed or was stopped).
  if (line === null) process.exit(0);
  const cfg = loadConfig(home);
  const { runDaemon } = await code;
  const log = createLog(2);
  let d;
  try {
    d = await runDaemon(home, cfg, keysFromLine(line), log);
  } catch (err) {
    process.stdout.write(`error ${(err as Error).message}\n`);
    log.error(`failed to start: ${(err as Error).stack}`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
  process.stdout.end();
  await d.done;
  process.exit(0);
}

export async function unmount(out: Out): Promise<void> {
  const home = safeHome();
  const cfg = loadConfig(home);
  const reply = await callDaemon(paths(home).socket, { cmd: 'unmount' });
  if (reply?.ok) {
    out.print(`unmounted ${cfg.mount}`, { mounted: false, mount: cfg.mount });
    return;
  }
  if (reply && !reply.ok) throw new UserError(`unmount failed: ${reply.error}`);
  if (isMountPoint(cfg.mount) || staleMount(cfg.mount)) {
    execFileSync('fusermount3', ['-uz', cfg.mount], { stdio: 'ignore' });
    out.print(`no daemon was running; removed the stale mount at ${cfg.mount}`, { mounted: false, mount: cfg.mount, stale: true });
    return;
  }
  throw new UserError(`not mounted (${cfg.mount})`);
}

function staleMount(mnt: string): boolean {
  try {
    execFileSync('stat', [mnt], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}
