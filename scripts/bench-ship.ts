// Shipping to a buddy, two real daemons on 127.0.0.1, beside a bare libp2p channel (group
// network, Noise, yamux, 4 MiB messages, nothing stored) and a raw TCP transfer moving the same
// number of bytes in the same run; then the bytes a no-change snapshot costs, and (with the
// corpus) the bytes shipped for the linux-prev -> linux update beside the size of the files
// whose content changed, with what it added to the buddy's disk beside what the same update
// adds to a restic repository.
//   node dist/scripts/bench-ship.js [--json] [--mib N] [--corpus DIR] [--skip-corpus]
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scriptArgs } from './script-args.js';
import { channelReceiver } from './channel-baseline.js';
import { cpuSeconds, daemonPid, host, rawTcp, resticRepo, settle, syncAll, unmountAll, type Host, type Report } from './bench-group.js';

const { values } = scriptArgs({ options: { json: { type: 'boolean' }, mib: { type: 'string' }, corpus: { type: 'string' }, 'skip-corpus': { type: 'boolean' } } });
const mib = Number(values.mib ?? 512);
const corpusDir = values.corpus ?? process.env.SAFE_CORPUS ?? '/var/tmp/safe-corpus';
const root = mkdtempSync('/var/tmp/safe-benchship-');
const results: Record<string, unknown> = {};
const log = (s: string): void => void (values.json || process.stdout.write(s + '\n'));
const du = (dir: string): number => Number(execSync(`du -sb ${dir}`, { encoding: 'utf8' }).split('\t')[0]);
const mbps = (bytes: number, ms: number): string => `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;

function sync(h: Host): Report {
  return syncAll(h)[0]!;
}

const hosts: Host[] = [];
try {
  const buddy = await host(root, 'buddy', { offer: '100G', peers: [] });
  hosts.push(buddy);
  const a = await host(root, 'host', { offer: '100G', peers: [buddy.addr] });
  hosts.push(a);

  // 1. A first shipment of incompressible data.
  execSync(`dd if=/dev/urandom of=${a.mnt}/random.bin bs=1M count=${mib} status=none`);
  await settle(a);
  a.safe('snapshot');
  // Both ends share this machine's CPUs, and a shipment is CPU-bound: the CPU each side spent
  // (every thread: the collector's helpers too) says where a gap to the bare channel comes from.
  const ends = [daemonPid(a), daemonPid(buddy)];
  const cpu0 = ends.map(cpuSeconds);
  const first = sync(a);
  const [hostCpu, buddyCpu] = ends.map((pid, i) => cpuSeconds(pid) - cpu0[i]!);
  const tcpMs = await rawTcp(first.chunkBytes);
  // The backup protocol's window and message size, on a channel that stores nothing; then the
  // same channel with a plain store at its ends, the work any shipment must do and nothing
  // else: messages read from a file (in the page cache, as the host's fresh packs are), each
  // box-sized piece hashed by the receiver and written to its disk.
  const payload = 4 << 20;
  const source = join(root, 'plain-store-source');
  execSync(`head -c ${Math.ceil(first.chunkBytes / payload) * payload} /dev/urandom > ${source}`);
  const receiver = await channelReceiver(16 << 20, root);
  const measure = async (from?: string): Promise<{ ms: number; sender: number; receiver: number }> => {
    const sender0 = process.cpuUsage();
    const receiver0 = cpuSeconds(receiver.pid);
    const ms = await receiver.channel(first.chunkBytes, payload, true, from);
    const used = process.cpuUsage(sender0);
    return { ms, sender: (used.user + used.system) / 1e6, receiver: cpuSeconds(receiver.pid) - receiver0 };
  };
  let channel, plainStore;
  try {
    channel = await measure();
    plainStore = await measure(source);
  } finally {
    await receiver.stop();
    rmSync(source);
  }
  const channelMs = channel.ms;
  results.first = {
    ...first, rawTcpMs: tcpMs, channelMs, ratio: channelMs / first.ms, plainStoreMs: plainStore.ms, plainStoreRatio: plainStore.ms / first.ms,
    cpu: { host: hostCpu, buddy: buddyCpu, sender: channel.sender, receiver: channel.receiver, plainStoreSender: plainStore.sender, plainStoreReceiver: plainStore.receiver },
  };
  log(
    `first shipment of ${mib} MiB random: ${mbps(first.chunkBytes, first.ms)} (${first.chunksSent} chunks); bare libp2p channel, same bytes: ${mbps(first.chunkBytes, channelMs)}; ` +
      `ratio ${((channelMs / first.ms) * 100).toFixed(0)}%; raw TCP: ${mbps(first.chunkBytes, tcpMs)}`,
  );
  log(
    `  the channel with a plain store at its ends (read from a file; every 16 KiB hashed, written, fsynced a message at a time): ${mbps(first.chunkBytes, plainStore.ms)} ` +
      `(${((channelMs / plainStore.ms) * 100).toFixed(0)}% of the bare channel); the shipment makes ${((plainStore.ms / first.ms) * 100).toFixed(0)}% of it`,
  );
  log(
    `  CPU seconds: host ${hostCpu.toFixed(1)} + buddy ${buddyCpu.toFixed(1)}; the bare channel's sender ${channel.sender.toFixed(1)} + receiver ${channel.receiver.toFixed(1)}; ` +
      `the plain store's ${plainStore.sender.toFixed(1)} + ${plainStore.receiver.toFixed(1)}`,
  );

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
      results.base = base;
      log(`linux-prev shipped: ${(base.chunkBytes / 1e6).toFixed(0)} MB of chunks, metadata ${(base.objectBytes / 1e6).toFixed(1)} MB in ${base.objectsSent} objects, ${(base.bytes / 1e6).toFixed(0)} MB in all, ${(base.ms / 1000).toFixed(1)} s (${mbps(base.bytes, base.ms)})`);
      // Files whose content differs (by checksum), and their size in the new release.
      const changed = execSync(`rsync -a -c --delete --dry-run --out-format='%l %n' ${next}/ ${prev}/ | grep -v '/$' || true`, { encoding: 'utf8', shell: '/bin/bash', maxBuffer: 1 << 28 })
        .split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0])).filter((n) => Number.isFinite(n));
      const changedBytes = changed.reduce((s, n) => s + n, 0);
      const buddyBefore = du(buddy.home);
      execSync(`rsync -a --delete ${next}/ ${a.mnt}/linux/`);
      await settle(a);
      a.safe('snapshot');
      const upd = sync(a);
      const buddyGrew = du(buddy.home) - buddyBefore;
      // restic, the same update on plain disk: what its repository grows by.
      const repo = resticRepo(root);
      let resticGrew: number | null = null;
      if (repo) {
        const plain = join(root, 'plain', 'linux');
        execSync(`mkdir -p ${root}/plain && cp -a ${prev} ${plain}`);
        repo.backup(plain);
        const before = repo.bytes();
        execSync(`rsync -a --delete ${next}/ ${plain}/`);
        repo.backup(plain);
        resticGrew = repo.bytes() - before;
      }
      results.update = { changedFiles: changed.length, changedBytes, shippedBytes: upd.bytes, chunkBytes: upd.chunkBytes, metadataBytes: upd.objectBytes, objects: upd.objectsSent, ms: upd.ms, buddyGrew, resticGrew };
      log(`linux-prev -> linux: ${changed.length} files changed in content (${(changedBytes / 1e6).toFixed(1)} MB); shipped ${(upd.bytes / 1e6).toFixed(1)} MB (${(upd.chunkBytes / 1e6).toFixed(1)} MB chunks, metadata ${(upd.objectBytes / 1e6).toFixed(1)} MB in ${upd.objectsSent} objects) in ${(upd.ms / 1000).toFixed(1)} s`);
      log(`  the buddy's disk grew ${(buddyGrew / 1e6).toFixed(1)} MB; a restic repository, same update: ${resticGrew === null ? '(restic not installed)' : `+${(resticGrew / 1e6).toFixed(1)} MB`}`);
    } catch (err) {
      log(`(corpus skipped: ${(err as Error).message.split('\n')[0]})`);
    }
  }
} finally {
  unmountAll(hosts);
  rmSync(root, { recursive: true, force: true });
}
if (values.json) process.stdout.write(JSON.stringify(results) + '\n');
