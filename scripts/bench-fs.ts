// Filesystem benchmark: everyday work on three targets in the same run, each figure printed
// beside its baselines: the plain disk, gocryptfs (another encrypted FUSE folder) and a safe mount.
//   node dist/scripts/bench-fs.js [--json] [--mib N] [--corpus DIR] [--skip-corpus]
//                                 [--skip-gocryptfs] [--targets disk,gocryptfs,safe]
// Every workload runs once per target (a benchmark, not a test). "Cold" means after a remount
// (unmount + mount of a FUSE target) and `sync; echo 3 > /proc/sys/vm/drop_caches` for every target.
// The safe daemon is its own process; this one only makes filesystem calls into the mounts.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scriptArgs } from './script-args.js';
import { resticRepo } from './bench-group.js';
import { DEFAULT_CHUNK_DELAY_MS } from '../src/fs/chunk-queue.js';

const NAMES = ['disk', 'gocryptfs', 'safe'] as const;
type Name = (typeof NAMES)[number];

const { values } = scriptArgs({
  options: {
    json: { type: 'boolean' }, mib: { type: 'string' }, corpus: { type: 'string' }, targets: { type: 'string' },
    'skip-corpus': { type: 'boolean' }, 'skip-gocryptfs': { type: 'boolean' },
  },
});
const mib = Number(values.mib ?? 1024);
const corpusRoot = values.corpus ?? process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus';
const corpusDir = join(corpusRoot, 'linux-prev');
const corpusTar = join(corpusRoot, 'linux-prev.tar');
// The daemon's own delay unless told otherwise: chunking waits for the folder for up to thirty of them.
const chunkDelayMs = Number(process.env.SAFE_CHUNK_DELAY_MS ?? DEFAULT_CHUNK_DELAY_MS);
const hasGocryptfs = spawnSync('gocryptfs', ['-version'], { stdio: 'ignore' }).status === 0;
if (!hasGocryptfs && !values['skip-gocryptfs']) process.stderr.write('bench-fs: gocryptfs is not installed (apt-get install -y gocryptfs): its column is skipped\n');
const names = (values.targets ?? NAMES.join(',')).split(',').map((s) => s.trim()).filter((n) => n !== 'gocryptfs' || (hasGocryptfs && !values['skip-gocryptfs']));
for (const n of names) if (!(NAMES as readonly string[]).includes(n)) throw new Error(`unknown target ${n} (known: ${NAMES.join(', ')})`);
const SAFE_BIN = new URL('../../bin/safe', import.meta.url).pathname;
const COMMAND_TIMEOUT_MS = 30 * 60_000;
const MB = 1e6;

// ---- small helpers ----

const say = (s: string): void => void (values.json || process.stderr.write(s + '\n'));
const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Run a bash command line, throwing with its stderr on failure. */
function sh(cmd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync('bash', ['-c', cmd], { env, encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.signal ? `killed by ${r.signal} ` : ''}${r.error?.message ?? ''}${r.stderr}`);
  return r.stdout;
}

/** Seconds a bash command line takes. */
function time(cmd: string, env?: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  sh(cmd, env);
  return (performance.now() - t0) / 1000;
}

const dropCaches = (): void => void sh('sync; echo 3 > /proc/sys/vm/drop_caches');

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000, everyMs = 50): void {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    sleep(everyMs);
  }
}

const alive = (pid: number): boolean => existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

/** Seconds a daemon is left idle before its RSS is read again. */
const IDLE_SECS = 15;

/** VmRSS and VmHWM (peak) of a process, in MB. */
function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { now: (kB('VmRSS') * 1024) / MB, peak: (kB('VmHWM') * 1024) / MB };
}

function forceUnmount(dir: string): void {
  for (const bin of ['fusermount3', 'fusermount']) if (isMounted(dir)) spawnSync(bin, ['-uz', dir], { stdio: 'ignore' });
}

// ---- the targets ----

interface Target {
  name: Name;
  /** Where the workloads run. */
  dir: string;
  /** What holds the data on the disk (for the space used). */
  backing: string;
  /** The serving process, if any. */
  pid(): number | null;
  /** Remount (FUSE targets) and drop the kernel caches. */
  cold(): void;
  /** Wait until the target holds everything durably in its own form (safe: every file chunked). */
  settle(): void;
  /** Take a snapshot (safe only): milliseconds the daemon reports. */
  snapshot?(): number;
  close(): void;
}

function diskTarget(root: string): Target {
  const dir = join(root, 'disk');
  mkdirSync(dir);
  return { name: 'disk', dir, backing: dir, pid: () => null, cold: dropCaches, settle: () => {}, close: () => {} };
}

function gocryptfsTarget(root: string): Target {
  const cipher = join(root, 'gocryptfs.cipher');
  const dir = join(root, 'gocryptfs');
  const passfile = join(root, 'gocryptfs.pass');
  mkdirSync(cipher);
  mkdirSync(dir);
  writeFileSync(passfile, 'bench\n', { mode: 0o600 });
  sh(`gocryptfs -init -q -passfile ${passfile} ${cipher}`);
  let child: ChildProcess | null = null;
  const mount = (): void => {
    // In the foreground, so that we know its pid (for its RSS) and can end it by that pid.
    child = spawn('gocryptfs', ['-fg', '-q', '-passfile', passfile, cipher, dir], { stdio: 'ignore', detached: true });
    child.unref();
    waitFor('gocryptfs to mount', () => isMounted(dir));
  };
  const unmount = (): void => {
    forceUnmount(dir);
    const pid = child?.pid;
    if (pid) waitFor('gocryptfs to exit', () => !alive(pid), 10_000);
    child = null;
  };
  mount();
  return {
    name: 'gocryptfs', dir, backing: cipher,
    pid: () => child?.pid ?? null,
    cold: () => { unmount(); mount(); dropCaches(); },
    settle: () => {},
    close: () => {
      try { unmount(); } catch { if (child?.pid) process.kill(child.pid, 'SIGKILL'); }
    },
  };
}

interface SafeStatus { daemon: { pid: number; pendingChunking: number } | null }

function safeTarget(root: string): Target {
  const home = join(root, 'safe.home');
  const dir = join(root, 'safe');
  mkdirSync(dir);
  const env = { ...process.env, SAFE_HOME: home, SAFE_PASSPHRASE: 'bench', SAFE_CHUNK_DELAY_MS: String(chunkDelayMs) };
  const safe = (...args: string[]): string => {
    const r = spawnSync(SAFE_BIN, args, { env, encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
    if (r.status !== 0) throw new Error(`safe ${args.join(' ')}: ${r.signal ? `killed by ${r.signal} ` : ''}${r.error?.message ?? ''}${r.stderr}`);
    return r.stdout;
  };
  const status = (): SafeStatus => JSON.parse(safe('status', '--json')) as SafeStatus;
  safe('init', '--host', 'bench', '--mount', dir);
  safe('mount');
  const target: Target = {
    name: 'safe', dir, backing: home,
    pid: () => status().daemon?.pid ?? null,
    cold: () => {
      const pid = target.pid();
      safe('unmount');
      if (pid) waitFor('the safe daemon to exit', () => !alive(pid), 60_000);
      safe('mount');
      dropCaches();
    },
    settle: () => waitFor('safe to chunk every file', () => (status().daemon?.pendingChunking ?? 0) === 0, COMMAND_TIMEOUT_MS, 100),
    snapshot: () => (JSON.parse(safe('snapshot', '--json')) as { ms: number }).ms,
    close: () => {
      spawnSync(SAFE_BIN, ['unmount'], { env, stdio: 'ignore', timeout: 120_000 });
      forceUnmount(dir);
    },
  };
  return target;
}

const OPEN: Record<Name, (root: string) => Target> = { disk: diskTarget, gocryptfs: gocryptfsTarget, safe: safeTarget };

// ---- results and the one table ----

interface Row { key: string; label: string; unit: string; figures: Partial<Record<Name, number>> }
const rows: Row[] = [];
const errors: string[] = [];

function record(key: string, label: string, unit: string, figures: Partial<Record<Name, number>>): void {
  rows.push({ key, label, unit, figures });
  say(`  ${label}: ${NAMES.filter((n) => figures[n] !== undefined).map((n) => `${n} ${fmt(figures[n]!)}`).join(', ')} ${unit}`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function printTable(): void {
  const ran = NAMES.filter((n) => names.includes(n));
  const ratios = ([['safe', 'disk'], ['safe', 'gocryptfs'], ['gocryptfs', 'disk']] as [Name, Name][]).filter(([a, b]) => ran.includes(a) && ran.includes(b));
  const short = (n: Name): string => (n === 'gocryptfs' ? 'gocfs' : n);
  const ratio = (a?: number, b?: number): string => (a !== undefined && b !== undefined && b !== 0 ? `${(a / b).toFixed(2)}x` : '');
  const head = ['workload', 'unit', ...ran, ...ratios.map(([a, b]) => `${short(a)}/${short(b)}`)];
  const body = rows.map(({ label, unit, figures: f }) => [
    label, unit,
    ...ran.map((n) => (f[n] === undefined ? '' : fmt(f[n]!))),
    ...ratios.map(([a, b]) => ratio(f[a], f[b])),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write([line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n') + '\n');
  if (ratios.length) process.stdout.write('a ratio divides the figures themselves: above 1x is faster for MB/s and /s; slower, or bigger, for s, ms and MB\n');
}

// ---- workloads ----

/** Run one workload on every target in turn: figures by target name. */
function each(fn: (t: Target) => number, targets: Target[]): Partial<Record<Name, number>> {
  const out: Partial<Record<Name, number>> = {};
  for (const t of targets) out[t.name] = fn(t);
  return out;
}

/** Workloads that need no corpus: dd write and read back, small-file cycles. */
function basics(targets: Target[], random: string): void {
  const bytes = mib * 1024 * 1024;
  const write: Partial<Record<Name, number>> = {};
  const chunked: Partial<Record<Name, number>> = {};
  const readCold: Partial<Record<Name, number>> = {};
  const smallWrites: Partial<Record<Name, number>> = {};
  // One target at a time, its files deleted before the next one writes: this VM's disk slows
  // down as written data is kept (a GiB written and fsynced after three kept ones: disk 276-289
  // MB/s against 764-1247 fresh), so with every file kept until the end the order counted
  // against whichever target came last.
  for (const t of targets) {
    sh(`cat ${random} > /dev/null`); // in RAM already (/dev/shm); make sure
    const t0 = performance.now();
    write[t.name] = bytes / MB / time(`dd if=${random} of=${t.dir}/seq bs=1M conv=fsync status=none`);
    if (t.name === 'safe') { t.settle(); chunked.safe = (performance.now() - t0) / 1000; }
    t.cold();
    readCold[t.name] = bytes / MB / time(`dd if=${t.dir}/seq of=/dev/null bs=1M status=none`);
    // Logs, databases and compilers write a few KiB at a time: each write(2) reaches the daemon
    // unless the kernel may keep it in its cache.
    smallWrites[t.name] = bytes / MB / time(`dd if=${random} of=${t.dir}/small bs=4k conv=fsync status=none`);
    t.settle();
    for (const f of ['seq', 'small']) rmSync(join(t.dir, f));
  }
  record('ddWriteMBs', `dd ${mib} MiB random, conv=fsync`, 'MB/s', write);
  if (chunked.safe !== undefined) record('ddUntilChunkedSecs', `  same, until chunked`, 's', chunked);
  record('ddReadColdMBs', 'dd read back (cold)', 'MB/s', readCold);
  record('ddSmallWritesMBs', `dd ${mib} MiB random in 4 KiB writes, conv=fsync`, 'MB/s', smallWrites);
  record('smallFileCyclesPerSec', 'small files: create+write 1000 B+close+stat+unlink, 3 s', '/s', each((t) => smallFileCycles(t.dir), targets));
}

/** Cycles per second from a separate node process (never the one serving a mount). */
function smallFileCycles(dir: string): number {
  const script = `
    const fs = require('fs'); const buf = Buffer.alloc(1000, 7); let n = 0; const t0 = Date.now();
    while (Date.now() - t0 < 3000) { const p = ${JSON.stringify(dir)} + '/s' + (n % 64); fs.writeFileSync(p, buf); fs.statSync(p); fs.unlinkSync(p); n++; }
    console.log(n / ((Date.now() - t0) / 1000));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`small-file cycles in ${dir}: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** The tar of linux-prev, made once and kept beside the corpus. */
function corpusTarball(): string {
  const done = statSync(join(corpusDir, '.complete')); // throws when the corpus is missing or still being built
  if (existsSync(corpusTar) && statSync(corpusTar).mtimeMs >= done.mtimeMs) return corpusTar;
  say(`making ${corpusTar} (once)`);
  sh(`tar cf ${corpusTar}.tmp -C ${corpusRoot} --exclude=linux-prev/.complete linux-prev`);
  renameSync(`${corpusTar}.tmp`, corpusTar);
  return corpusTar;
}

/** Seconds for `restic backup` of a tree into a fresh local repository, or undefined without restic. */
function resticBackup(root: string, tree: string): number | undefined {
  const repo = resticRepo(root);
  if (!repo) errors.push('restic is not installed (apt-get install -y restic): no "until protected" baseline');
  return repo?.backup(tree);
}

/** The linux-prev workloads: untar, until protected, space, ls -lR, md5sum, stat storm, snapshots, rm -rf. */
function corpusWorkloads(root: string, targets: Target[]): void {
  const tar = corpusTarball();
  const tree = (t: Target): string => join(t.dir, 'linux-prev');
  const files = Number(sh(`find ${corpusDir} -type f ! -path ${corpusDir}/.complete | wc -l`));
  const bytes = Number(sh(`tar tvf ${tar} | awk '{ s += $3 } END { print s }'`));
  const reference = sh(`cd ${corpusDir} && find . -type f ! -name .complete -print -quit`).trim();
  say(`corpus linux-prev: ${files} files, ${(bytes / MB).toFixed(0)} MB (tar ${tar})`);

  type Figures = Partial<Record<Name, number>>;
  const untar: Figures = {};
  const chunked: Figures = {};
  const protectedSecs: Figures = {};
  const daemon: Figures = {};
  const daemonPeak: Figures = {};
  const idle: Figures = {};
  const space: Figures = {};
  const lsCold: Figures = {};
  const lsWarm: Figures = {};
  const md5: Figures = {};
  const storm: Figures = {};
  const stormAgain: Figures = {};
  const snapshotMs: number[] = [];
  const rmRf: Figures = {};
  const du = (dir: string): number => Number(sh(`du -sb ${dir} | cut -f1`));
  // One target at a time, from its untar to its rm -rf, as the write rows go: with every
  // target's tree kept until the end, this VM's disk wrote slower for whichever untarred last.
  for (const t of targets) {
    const before = du(t.backing);
    sh(`cat ${tar} > /dev/null`);
    const t0 = performance.now();
    untar[t.name] = time(`tar xf ${tar} -C ${t.dir} --no-same-owner && sync`);
    t.settle();
    if (t.name === 'safe') protectedSecs.safe = chunked.safe = (performance.now() - t0) / 1000;
    if (t.name === 'disk') {
      const restic = resticBackup(root, tree(t));
      if (restic !== undefined) protectedSecs.disk = untar.disk! + restic;
      for (const d of ['restic.repo', 'restic.cache']) rmSync(join(root, d), { recursive: true, force: true });
    }
    space[t.name] = (du(t.backing) - before) / MB;
    const pid = t.pid();
    if (pid) {
      ({ now: daemon[t.name], peak: daemonPeak[t.name] } = rss(pid));
      // What a daemon keeps once the burst is over: safe's ingest workers leave and its heap is
      // trimmed after 10 s without work.
      sh(`sleep ${IDLE_SECS}`);
      idle[t.name] = rss(pid).now;
    }

    t.cold();
    lsCold[t.name] = time(`ls -lR ${tree(t)} > /dev/null`);
    lsWarm[t.name] = time(`ls -lR ${tree(t)} > /dev/null`);

    // The storm right after the md5sum finds every file's attributes stale on a FUSE mount (a
    // read invalidates the kernel's atime); run again, it finds them all cached.
    t.cold();
    md5[t.name] = time(`cd ${tree(t)} && find . -type f -print0 | xargs -0 md5sum > /dev/null`);
    storm[t.name] = time(`cd ${tree(t)} && find . -newer ${reference} > /dev/null`);
    stormAgain[t.name] = time(`cd ${tree(t)} && find . -newer ${reference} > /dev/null`);

    if (t.snapshot) for (let i = 0; i < 10; i++) snapshotMs.push(t.snapshot());

    sh(`find ${tree(t)} > /dev/null`);
    rmRf[t.name] = time(`rm -rf ${tree(t)}`);
  }

  record('untarSecs', `untar linux-prev (${files} files, ${(bytes / MB).toFixed(0)} MB) + sync`, 's', untar);
  if (chunked.safe !== undefined) record('untarUntilChunkedSecs', '  same, until chunked', 's', chunked);
  // The growth: safe keeps deleted files' chunks (the dd file's among them) until its own retention lets go.
  record('spaceUsedMB', '  disk space it took', 'MB', space);
  if (Object.keys(protectedSecs).length) record('untilProtectedSecs', 'until protected (disk: untar+restic backup)', 's', protectedSecs);
  if (Object.keys(daemon).length) {
    record('daemonRssMB', 'daemon RSS after untar+chunking', 'MB', daemon);
    record('daemonPeakRssMB', '  peak RSS so far (VmHWM)', 'MB', daemonPeak);
    record('daemonIdleRssMB', `  ${IDLE_SECS} s later, idle`, 'MB', idle);
  }
  record('lsLRColdSecs', 'ls -lR (cold)', 's', lsCold);
  record('lsLRWarmSecs', 'ls -lR (warm)', 's', lsWarm);
  record('md5sumColdSecs', 'md5sum every file (cold)', 's', md5);
  record('findNewerWarmSecs', 'stat storm: find . -newer FILE, after the md5sum', 's', storm);
  record('findNewerAgainSecs', '  again (attributes cached)', 's', stormAgain);
  if (snapshotMs.length) {
    snapshotMs.sort((x, y) => x - y);
    record('snapshotMsMedian', 'safe snapshot, median of 10 (in the daemon)', 'ms', { safe: snapshotMs[5]! });
    record('snapshotMsMax', '  slowest of 10', 'ms', { safe: snapshotMs[9]! });
  }
  record('rmRfSecs', 'rm -rf the tree (warm)', 's', rmRf);
}

// ---- the run ----

const root = mkdtempSync('/var/tmp/safe-benchfs-');
const random = `${existsSync('/dev/shm') ? '/dev/shm' : root}/safe-benchfs-random-${process.pid}`;
const targets: Target[] = [];
// Ctrl-C reaches the running child too (same process group): it fails, and the finally below cleans up.
process.on('SIGINT', () => {});
try {
  for (const n of names) targets.push(OPEN[n as Name](root));
  say(`bench-fs: ${names.join(', ')} under ${root}; safe chunk delay ${chunkDelayMs} ms`);
  sh(`head -c ${mib}M /dev/urandom > ${random}`);
  basics(targets, random);
  rmSync(random, { force: true });
  if (!values['skip-corpus']) {
    if (!existsSync(join(corpusDir, '.complete'))) errors.push(`no complete corpus at ${corpusDir}: corpus workloads skipped`);
    else corpusWorkloads(root, targets);
  }
} catch (err) {
  errors.push((err as Error).stack ?? String(err));
  process.exitCode = 1;
} finally {
  for (const t of targets.reverse()) {
    try { t.close(); } catch (err) { errors.push(`closing ${t.name}: ${(err as Error).message}`); }
  }
  rmSync(random, { force: true });
  for (const n of NAMES) forceUnmount(join(root, n)); // also a target that failed half-way through opening
  const stillMounted = NAMES.map((n) => join(root, n)).filter(isMounted);
  if (stillMounted.length) errors.push(`left ${root} in place: ${stillMounted.join(', ')} still mounted`);
  else rmSync(root, { recursive: true, force: true });
}

if (values.json) {
  const results = Object.fromEntries(rows.map((r) => [r.key, { label: r.label.trim(), unit: r.unit, ...r.figures }]));
  process.stdout.write(JSON.stringify({ bench: 'fs', targets: names, mib, corpus: corpusDir, chunkDelayMs, results, errors }) + '\n');
} else {
  if (rows.length) printTable();
  for (const e of errors) process.stderr.write(`! ${e}\n`);
}
