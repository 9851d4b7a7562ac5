// Filesystem benchmarks through a real mount, each beside the same work on the plain disk
// under SAFE_HOME in the same run.
//   node dist/scripts/bench-fs.js [--json] [--mib N] [--corpus DIR] [--skip-corpus]
import { spawnSync, execSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, mib: { type: 'string' }, corpus: { type: 'string' }, 'skip-corpus': { type: 'boolean' } } });
const mib = Number(values.mib ?? 1024);
const corpus = join(values.corpus ?? process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus', 'linux-prev');
const bin = new URL('../../bin/safe', import.meta.url).pathname;
const root = mkdtempSync('/var/tmp/safe-benchfs-');
const home = join(root, 'home');
const mnt = join(root, 'mnt');
const plain = join(root, 'plain');
mkdirSync(mnt);
mkdirSync(plain);
const env = { ...process.env, SAFE_HOME: home, SAFE_PASSPHRASE: 'bench', SAFE_CHUNK_DELAY_MS: '500' };
const safe = (...args: string[]): string => {
  const r = spawnSync(bin, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`safe ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const results: Record<string, unknown> = {};
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const time = (cmd: string): number => {
  const t0 = performance.now();
  execSync(cmd, { stdio: 'ignore', shell: '/bin/bash' });
  return (performance.now() - t0) / 1000;
};
const dropCaches = (): void => void spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
async function settle(): Promise<void> {
  for (;;) {
    const s = JSON.parse(safe('status', '--json')) as { daemon: { pendingChunking: number } };
    if (s.daemon.pendingChunking === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

safe('init', '--host', 'bench', '--mount', mnt);
safe('mount');
try {
  // 1. Sequential write with fsync, and read back.
  const w = (dir: string): number => mib / time(`dd if=/dev/zero of=${dir}/seq bs=1M count=${mib} conv=fsync status=none`);
  const r = (dir: string): number => { dropCaches(); return mib / time(`dd if=${dir}/seq of=/dev/null bs=1M status=none`); };
  const seq = { diskWrite: w(plain), mountWrite: w(mnt), diskRead: r(plain), mountReadStaged: r(mnt), mountReadChunked: 0 };
  await settle();
  seq.mountReadChunked = r(mnt);
  results.sequentialMiBs = seq;
  log(`sequential ${mib} MiB write+fsync: disk ${seq.diskWrite.toFixed(0)} MiB/s, mount ${seq.mountWrite.toFixed(0)} MiB/s (${((seq.mountWrite / seq.diskWrite) * 100).toFixed(0)}% of disk)`);
  log(`sequential read (cold): disk ${seq.diskRead.toFixed(0)} MiB/s, mount staged ${seq.mountReadStaged.toFixed(0)} MiB/s, mount chunked ${seq.mountReadChunked.toFixed(0)} MiB/s`);
  rmSync(join(plain, 'seq'));
  rmSync(join(mnt, 'seq'));

  // 2. Small-file cycles: create+write+close+stat+unlink, from a separate process.
  const cycles = (dir: string): number => {
    const out = spawnSync(process.execPath, ['-e', `
      const fs = require('fs'); const buf = Buffer.alloc(1000, 7); let n = 0; const t0 = Date.now();
      while (Date.now() - t0 < 3000) { const p = '${dir}/s' + (n % 64); fs.writeFileSync(p, buf); fs.statSync(p); fs.unlinkSync(p); n++; }
      console.log(n / ((Date.now() - t0) / 1000));`], { encoding: 'utf8' });
    return Number(out.stdout.trim());
  };
  const small = { disk: cycles(plain), mount: cycles(mnt) };
  results.smallFileCyclesPerSec = small;
  log(`small-file cycles: disk ${small.disk.toFixed(0)}/s, mount ${small.mount.toFixed(0)}/s`);

  // 3. The linux corpus with cp -a, and until every file is chunked.
  if (!values['skip-corpus']) {
    try {
      statSync(join(corpus, '.complete'));
      const bytes = Number(execSync(`du -sb ${corpus} | cut -f1`, { encoding: 'utf8' }));
      const disk = time(`cp -a ${corpus} ${plain}/linux && sync`);
      const t0 = performance.now();
      const cp = time(`cp -a ${corpus} ${mnt}/linux`);
      await settle();
      const chunked = (performance.now() - t0) / 1000;
      results.corpus = { bytes, diskCpSecs: disk, mountCpSecs: cp, mountChunkedSecs: chunked, ratio: chunked / disk };
      log(`cp -a linux (${(bytes / 1e6).toFixed(0)} MB): disk ${disk.toFixed(1)} s (${(bytes / 1e6 / disk).toFixed(0)} MB/s), mount ${cp.toFixed(1)} s, all chunked after ${chunked.toFixed(1)} s (${(chunked / disk).toFixed(2)}x disk)`);
      const ls = { disk: time(`ls -R ${plain}/linux > /dev/null`), mount: time(`ls -R ${mnt}/linux > /dev/null`) };
      results.lsR = ls;
      log(`ls -R: disk ${ls.disk.toFixed(2)} s, mount ${ls.mount.toFixed(2)} s`);

      // 4. Snapshots of the whole tree: latency, browsing and reading a snapshot, diff.
      const lat: number[] = [];
      for (let i = 0; i < 10; i++) lat.push((JSON.parse(safe('snapshot', '--json')) as { ms: number }).ms);
      lat.sort((x, y) => x - y);
      const snapName = (JSON.parse(safe('snapshot', '--json', '--label', 'prev')) as { name: string }).name;
      const snap = `${mnt}/.snapshots/${snapName}/linux`;
      const view = {
        lsLive: time(`ls -R ${mnt}/linux > /dev/null`), lsSnap: time(`ls -R ${snap} > /dev/null`),
        readDisk: (dropCaches(), time(`tar cf - -C ${plain} linux | cat > /dev/null`)),
        readLive: (dropCaches(), time(`tar cf - -C ${mnt} linux | cat > /dev/null`)),
        readSnap: (dropCaches(), time(`tar cf - -C ${mnt}/.snapshots/${snapName} linux | cat > /dev/null`)),
      };
      results.snapshot = { latencyMsMedian: lat[5], latencyMsMax: lat[9], ...view };
      log(`safe snapshot with ${(bytes / 1e6).toFixed(0)} MB in the tree: median ${lat[5]!.toFixed(2)} ms in the daemon (max ${lat[9]!.toFixed(2)} ms)`);
      log(`ls -R live ${view.lsLive.toFixed(2)} s, snapshot ${view.lsSnap.toFixed(2)} s; full read (tar, cold): disk ${(bytes / 1e6 / view.readDisk).toFixed(0)} MB/s, live ${(bytes / 1e6 / view.readLive).toFixed(0)} MB/s, snapshot ${(bytes / 1e6 / view.readSnap).toFixed(0)} MB/s`);
      const next = join(corpus, '..', 'linux');
      const changedFiles = Number(execSync(`rsync -a --delete --dry-run --out-format=%n ${next}/ ${plain}/linux/ | grep -v '/$' | wc -l`, { encoding: 'utf8', shell: '/bin/bash' }));
      const rs = time(`rsync -a --delete ${next}/ ${mnt}/linux/`);
      await settle();
      const after = (JSON.parse(safe('snapshot', '--json', '--label', 'next')) as { name: string }).name;
      const t1 = performance.now();
      const d = JSON.parse(safe('diff', snapName, after, '--json')) as { added: string[]; removed: string[]; modified: string[] };
      const diffSecs = (performance.now() - t1) / 1000;
      results.update = { changedFiles, rsyncSecs: rs, diffSecs, added: d.added.length, removed: d.removed.length, modified: d.modified.length };
      log(`update linux-prev -> linux: rsync touched ${changedFiles} files in ${rs.toFixed(1)} s; safe diff ${(diffSecs * 1000).toFixed(0)} ms (+${d.added.length} -${d.removed.length} M${d.modified.length})`);
    } catch (err) {
      log(`(corpus skipped: ${(err as Error).message.split('\n')[0]})`);
    }
  }
} finally {
  spawnSync(bin, ['unmount'], { env });
  rmSync(root, { recursive: true, force: true });
}
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
