// Disaster recovery from two buddies, real daemons on 127.0.0.1: a tree is shipped, the host's
// SAFE_HOME is wiped, and `safe recover` brings it back; beside `cp -a` of the same tree on
// the same disk, and `restic restore` of it from a local repository, in the same run. Also
// the time to a usable mount, and what an audit costs.
//   node dist/scripts/bench-recover.js [--json] [--corpus DIR] [--skip-corpus] [--mib N]
import { execSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { scriptArgs } from './script-args.js';
import { benchTree, bin, host, resticRepo, settle, syncAll, unmountAll, type Host } from './bench-group.js';

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, corpus: { type: 'string' }, 'skip-corpus': { type: 'boolean' }, mib: { type: 'string' } } });
const root = mkdtempSync('/var/tmp/safe-benchrec-');
const results: Record<string, unknown> = {};
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const seconds = (cmd: string): number => {
  const t0 = performance.now();
  execSync(cmd, { stdio: 'ignore', shell: '/bin/bash' });
  return (performance.now() - t0) / 1000;
};
const du = (dir: string): number => Number(execSync(`du -sb --apparent-size ${dir}`, { encoding: 'utf8' }).split('\t')[0]);

const hosts: Host[] = [];
try {
  const c = await host(root, 'buddy-c', { offer: '100G', peers: [] });
  const d = await host(root, 'buddy-d', { offer: '100G', peers: [c.addr] });
  const a = await host(root, 'host-a', { offer: '100G', peers: [c.addr], buddies: 2 });
  hosts.push(c, d, a);
  const source = benchTree(root, { corpus: values.corpus, skipCorpus: values['skip-corpus'], mib: values.mib });
  const bytes = du(source);
  execSync(`cp -a ${source}/. ${a.mnt}/`);
  await settle(a);
  a.safe('snapshot');
  const shipped = syncAll(a);
  log(`shipped ${(bytes / 1e6).toFixed(0)} MB of files to ${shipped.length} buddies (${(shipped[0]!.bytes / 1e6).toFixed(0)} MB each)`);

  // What an audit costs, per buddy.
  const audit = JSON.parse(a.safe('verify', '--remote', '--json')) as { remote: { buddies: { peer: string; ms: number; bytes: number; sampled: number; verdict: string }[] } };
  results.audit = audit.remote.buddies;
  for (const b of audit.remote.buddies) log(`audit: ${b.verdict}, ${b.sampled} chunks challenged, ${b.bytes} bytes on the wire, ${b.ms.toFixed(0)} ms (the reconcile listing after it: 32 bytes per chunk held)`);

  // The baseline: cp -a of the same tree to the same disk.
  const plain = join(root, 'plain');
  const cp = seconds(`cp -a ${source} ${plain} && sync`);
  rmSync(plain, { recursive: true, force: true });
  // And what a restic user waits for: `restic restore` of the same tree from a local repository.
  const repo = resticRepo(root);
  let restic: number | null = null;
  if (repo) {
    repo.backup(source);
    restic = repo.restore(plain) + seconds('sync');
    rmSync(plain, { recursive: true, force: true });
  }

  a.safe('unmount');
  rmSync(a.home, { recursive: true, force: true });
  const t0 = performance.now();
  const r = spawnSync(bin, ['recover', '--host', 'host-a', '--mount', a.mnt, '--group', 'bench', '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--json'], { env: a.env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const total = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`recover: ${r.stderr}`);
  const rec = JSON.parse(r.stdout) as { mountedAfter: number; seconds: number; fetched: number; bytes: number; files: number };
  const check = spawnSync('diff', ['-rq', '-x', '.snapshots', '-x', '.complete', source, a.mnt], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (check.status !== 0) log(check.stdout.split('\n').slice(0, 5).join('\n'));
  results.recover = { treeBytes: bytes, seconds: total, mountedAfter: rec.mountedAfter, chunks: rec.fetched, received: rec.bytes, cpSeconds: cp, resticRestoreSeconds: restic, identical: check.status === 0 };
  log(`recover ${(bytes / 1e6).toFixed(0)} MB from 2 buddies: ${total.toFixed(1)} s (${(bytes / 1e6 / total).toFixed(0)} MB/s of files, ${(rec.bytes / 1e6).toFixed(0)} MB received), mount usable after ${rec.mountedAfter.toFixed(1)} s; cp -a of the same tree: ${cp.toFixed(1)} s (${(bytes / 1e6 / cp).toFixed(0)} MB/s); ratio ${((cp / total) * 100).toFixed(0)}%; restic restore from a local repository: ${restic === null ? '(restic not installed)' : `${restic.toFixed(1)} s`}; tree identical: ${check.status === 0}`);
} finally {
  unmountAll(hosts);
  rmSync(root, { recursive: true, force: true });
}
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
