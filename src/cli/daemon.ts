// The daemon: one per SAFE_HOME. Opens the store and tree, recovers staging files left by a
// crash, mounts the filesystem, serves the control socket, and on unmount/SIGTERM/SIGINT
// finishes pending chunking and makes everything durable before it exits.
import { closeSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { ChunkStore } from '../chunkstore/store.js';
import { HOST_SCHEMA } from './host-schema.js';
import type { StoreKeysReply } from './open-store.js';
import { Tree } from '../snapshot/tree.js';
import { CommitLock } from '../chunkstore/commit-lock.js';
import { Staging } from '../fs/staging.js';
import { Filesystem } from '../fs/filesystem.js';
import { ChunkQueue, DEFAULT_CHUNK_DELAY_MS } from '../fs/chunk-queue.js';
import { mountFs, prepareMountPoint, type Mounted } from '../fs/mount.js';
import { parseDuration, parseRate, parseSize, paths, redundancyOf, relaySlotsOf, repairThresholdOf, settingsOf, type HostConfig } from './config.js';
import { bandwidthOf } from '../peers/net/bandwidth.js';
import { rotateIfLarge } from '../log/rotate.js';
import { closedUntil, parseShipWindow } from '../peers/host/ship-window.js';
import { serveControl, type Request } from './control.js';
import { countSnapshots, findSnapshot, forgetSnapshots, listSnapshots, snapshotName } from '../snapshot/snapshots.js';
import { Dashboard } from './dashboard.js';
import { DEFAULT_POLICY, retain, type Policy } from '../snapshot/retention.js';
import { scheduleJob } from './scheduler.js';
import { recordSample } from './storage-samples.js';
import { collectGarbageInWorker, type GcProgress, type GcReport } from '../chunkstore/gc.js';
import { reduceV8Heap, trimHeap } from '../chunkstore/native.js';
import { shrinkWal } from '../chunkstore/index-db.js';
import { UserError } from './errors.js';
import { requireSoundIndex } from './index-check.js';
import type { PeerService, PeerStatus } from '../peers/service.js';
import { alertsOf, Notifier, type Alert } from './alerts.js';
import { backfillPending } from '../snapshot/records.js';
import { chunkListsUnder } from '../snapshot/walk.js';
import type { GroupKeys, HostKeys } from '../keys/derive.js';
import type { Log } from '../log/logger.js';

/** Bytes V8's young generation spans now: it grows under a burst and keeps what it grew. */
const youngBytes = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;

/** Audits of the buddies: daily, at an hour when machines are usually idle but on. */
const DEFAULT_AUDIT_SCHEDULE = '17 4 * * *';

/** What the schedules do next (ms since the epoch; null: nothing scheduled). */
export interface Upcoming {
  snapshot: number | null;
  /** The next snapshot's shipment: at once, or when the ship window opens. */
  ship: number | null;
  audit: number | null;
}

export interface DaemonKeys {
  convergence: Uint8Array;
  host: HostKeys;
  group: GroupKeys | null;
}

export interface DaemonHandle {
  done: Promise<void>;
}

function takeLock(pidFile: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(pidFile, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (pid && pid !== process.pid && alive(pid)) throw new UserError(`a safe daemon already runs on this SAFE_HOME (pid ${pid})`);
      unlinkSync(pidFile);
    }
  }
  throw new UserError(`cannot take the lock ${pidFile}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed daemon nobody reaped yet is a zombie: it holds nothing.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function runDaemon(home: string, cfg: HostConfig, keys: DaemonKeys, log: Log): Promise<DaemonHandle> {
  const p = paths(home);
  const shipWindow = cfg.shipWindow ? parseShipWindow(cfg.shipWindow) : null;
  const logMax = parseSize(cfg.logMaxSize ?? '10M');
  takeLock(p.pid);
  // Before this run's first line, so a rotated log starts with it.
  const rotate = (): void => {
    if (rotateIfLarge(p.log, logMax)) log(`log rotated: the lines before are in ${p.log}.1`);
  };
  rotate();
  const t0 = performance.now();
  const phase = (what: string): void => log.debug(`start: ${what} at ${(performance.now() - t0).toFixed(0)} ms`);
  let store: ChunkStore | undefined;
  try {
    try {
      store = ChunkStore.open(p.store, keys.convergence, { recover: true, schema: HOST_SCHEMA, key: keys.host.storeKey });
    } catch (cause) {
      throw new UserError(`cannot open the store: ${(cause as Error).message}`, 1, { cause });
    }
    // Cheap next to a session's work, and a damaged page found now loses nothing later.
    requireSoundIndex(store, true);
    // SQLite checkpoints the WAL inside the commit that takes it past the threshold (1,000
    // pages by default): 5-10 ms with two fsyncs, on the FUSE thread, every few hundred files
    // of an untar. The ingest workers checkpoint after each batch instead, outside the commit
    // lock; this bound only matters when the tree changes and nothing is chunked (rm -rf).
    store.db.pragma('wal_autocheckpoint = 4096');
    phase('store open and checked');
    // The main thread and the ingest workers take turns at the database's write lock.
    const commitLock = new CommitLock();
    const tree = new Tree(store.db, store, commitLock);
    const staging = new Staging(p.staging, 0, keys.host.stagingKey);
    staging.keepReserve();
    const sealed = staging.sealPlaintext();
    if (sealed > 0) log(`sealed ${sealed} staged files left in the clear by an earlier release`);
    const fs = new Filesystem(tree, store, staging, home);
    phase('tree and staging ready');
    // Scripts and tests that want their files chunked at once set the delay lower.
    const delay = Number(process.env.SAFE_CHUNK_DELAY_MS ?? DEFAULT_CHUNK_DELAY_MS);
    if (!Number.isSafeInteger(delay) || delay < 0) throw new UserError(`SAFE_CHUNK_DELAY_MS is not a number of milliseconds: '${process.env.SAFE_CHUNK_DELAY_MS}'`);
    // What V8's young generation spanned after the last shrink: grown past it, a quiet spell
    // shrinks it again (commands-mount.ts: it may grow to 16 MiB semi-spaces under a burst).
    let youngAtRest = 0;
    const shrinkV8Heap = (): void => {
      reduceV8Heap();
      youngAtRest = youngBytes();
    };
    const queue = new ChunkQueue(
      {
        wanted: (items) => fs.wanted(items),
        path: (ino, gen) => staging.path(ino, gen),
        settled: (items) => fs.settled(items),
        failed: (ino, gen, err) => {
          // Deleted or rewritten while waiting: nothing to chunk, nothing to report.
          if (!fs.wanted([{ ino, gen }])[0]) return fs.settled([{ ino, gen }]);
          log.warn(`chunking ${ino}-${gen} failed: ${err.message}; retrying in 30 s`);
          queue.schedule(ino, gen, 30_000);
        },
        // The heap's holes from the burst (write buffers, chunkers, the workers' pages) go back
        // now rather than after the next quiet spell: the burst is over, so the pause costs nobody.
        // V8's first: after the linux tree's untar its heap held 90 MB, 20 of them live. Then
        // the disk space of the WAL the burst grew.
        drained: () => {
          shrinkV8Heap();
          trimHeap();
          shrinkWal(store!.db);
        },
        roomToWait: () => staging.roomToWait(),
      },
      { storeDir: p.store, storeKey: keys.host.storeKey, stagingKey: keys.host.stagingKey, convergence: keys.convergence, avgChunk: cfg.avgChunk },
      delay,
      commitLock,
    );
    fs.attachQueue(queue);
    const rec = fs.recoverStaging();
    if (rec.queued + rec.removed > 0) log(`recovered staging: ${rec.queued} files to chunk, ${rec.removed} stale removed`);
    phase('staging recovered');
    try {
      await prepareMountPoint(cfg.mount);
    } catch (cause) {
      throw new UserError((cause as Error).message, 1, { cause });
    }
    let mounted: Mounted | undefined;
    const takeSnapshot = (label: string | null): { name: string; epoch: number; time: number; ms: number } => {
      const t0 = performance.now();
      const time = Date.now();
      const name = snapshotName(time, label, (n) => findSnapshot(tree.db, n) !== undefined);
      const epoch = tree.snapshot(name, time, label);
      mounted?.snapshotsChanged([name]);
      sampleSoon(epoch, time);
      return { name, epoch, time, ms: performance.now() - t0 };
    };
    // The store's figures at a snapshot, for the dashboard's chart, read in steps off the
    // folder's way. Snapshots taken faster than that (a script, say) are noted at the newest.
    let sampleNext: { epoch: number; time: number } | null = null;
    let sampling: Promise<void> | null = null;
    const sampleSoon = (epoch: number, time: number): void => {
      sampleNext = { epoch, time };
      sampling ??= (async () => {
        while (sampleNext) {
          const s = sampleNext;
          sampleNext = null;
          await sampleStorage(s.epoch, s.time);
        }
        sampling = null;
      })();
    };
    const sampleStorage = async (epoch: number, time: number): Promise<void> => {
      try {
        const s = await store!.measure();
        const shipped = (await peersReady)?.status().buddies.reduce((n, b) => n + b.shipped, 0) ?? 0;
        recordSample(store!.db, { epoch, time, liveBytes: s.liveBytes, referencedRaw: s.referencedRaw, packBytes: s.packBytes, shipped });
      } catch (err) {
        log.warn(`the store's figures at snapshot ${epoch}: ${(err as Error).message}`);
      }
    };

    /** A collection off the folder's thread; where it is, for status and the dashboard. */
    let gcProgress: (GcProgress & { started: number }) | null = null;
    const collect = async (): Promise<GcReport> => {
      const started = Date.now();
      try {
        return await collectGarbageInWorker(p.store, keys.host.storeKey, {}, (g) => (gcProgress = { ...g, started }));
      } finally {
        gcProgress = null;
      }
    };

    /** Apply a retention policy, release what only the forgotten snapshots held, then collect. */
    const forget = async (policy: Policy, dryRun: boolean, allowAll: boolean): Promise<unknown> => {
      // The tree names chunks not back yet; their reference counts are set when they all are.
      if (!dryRun && backfillPending(tree.db)) throw new Error('chunks are still being fetched back after the recovery (safe status): forget once that is done');
      const all = listSnapshots(tree.db);
      const keep = retain(all, policy);
      const drop = all.filter((s) => !keep.has(s.name)).map((s) => s.name);
      if (all.length > 0 && keep.size === 0 && !allowAll) throw new Error('this would forget every snapshot; pass --allow-empty to really do it');
      if (dryRun) return { keep: [...keep].sort(), forget: drop, dryRun: true };
      const r = forgetSnapshots(tree.db, store!, drop);
      mounted?.snapshotsChanged(drop);
      fs.settled(r.staged.map(([ino, gen]) => ({ ino, gen })));
      // Alone, nobody needs to be told what was dropped; in a group the replicator drains.
      if (!inGroup) store!.drainReleased(store!.releasedHead());
      const gc = drop.length > 0 ? await collect() : null;
      return { keep: [...keep].sort(), forget: drop, rowsReleased: r.rows, gc };
    };
    let gcRunning: Promise<unknown> | null = null;
    let gcTimer: NodeJS.Timeout | null = null;
    /** Buddy side: references dropped by a host's delete set; collect a little later, once. */
    const collectSoon = (): void => {
      if (gcTimer) return;
      gcTimer = setTimeout(() => {
        gcTimer = null;
        gcRunning ??= collect()
          .catch((err: Error) => log.warn(`garbage collection failed: ${err.message}`))
          .finally(() => (gcRunning = null));
      }, 5000);
      gcTimer.unref();
    };
    // The folder is usable before the peer service is: loading libp2p and listening took ~0.6 s
    // of every mount. Commands that need the service wait for it; a service that fails to start
    // leaves the folder working and says why in the log and in safe status.
    let peersFailed: string | null = null;
    let audits: ReturnType<typeof scheduleJob> | null = null;
    const inGroup = !!(cfg.group && keys.group);
    const startPeers = async (): Promise<PeerService | null> => {
      if (!cfg.group || !keys.group) return null;
      const redundancy = redundancyOf(cfg);
      const repairThreshold = repairThresholdOf(cfg, redundancy);
      let peers: PeerService;
      try {
        const { PeerService } = await import('../peers/service.js');
        peers = await PeerService.start({
          store: store!, keys: keys.host, group: keys.group, listen: cfg.listen, peers: cfg.peers, offer: cfg.offer, redundancy, mdns: cfg.mdns ?? true,
          settings: settingsOf(cfg),
          shipWindow,
          relaySlots: relaySlotsOf(cfg),
          bandwidth: bandwidthOf({
            maxUploadRate: cfg.maxUpload ? parseRate(cfg.maxUpload, 'maxUpload in the config') : null,
            maxDownloadRate: cfg.maxDownload ? parseRate(cfg.maxDownload, 'maxDownload in the config') : null,
          }),
          buddySilenceMs: cfg.buddySilence === undefined ? undefined : parseDuration(cfg.buddySilence, 'buddySilence'),
          repairThreshold,
          ownerSilenceMs: parseDuration(cfg.ownerSilence ?? '60d', 'ownerSilence'),
          flush: () => queue.flush(), onDropped: collectSoon, log: log.child('peers'),
        });
      } catch (err) {
        peersFailed = (err as Error).message;
        log.error(`cannot start the peer service: ${peersFailed}; the folder works, nothing ships until the next mount`);
        return null;
      }
      if (stopping) return peers; // stop() stops it
      audits = scheduleJob('audit', cfg.auditSchedule ?? DEFAULT_AUDIT_SCHEDULE, async () => {
        await peers.audit();
        notifier.notify(alerts(peers.status()));
      }, log);
      return peers;
    };
    let peersStarted!: (s: PeerService | null) => void;
    const peersReady = new Promise<PeerService | null>((resolve) => (peersStarted = resolve));
    // Until then, reads of chunks not here yet (a recovery still fetching) wait for the
    // service rather than fail.
    if (inGroup) {
      store!.setRemote({
        fetch: async (refs) => (await peersReady)?.remote.fetch(refs) ?? 0,
        repair: async (refs) => (await peersReady)?.remote.repair(refs) ?? 0,
      });
    }
    /** The peer service, once started; a one-line reason when there is none. */
    const needPeers = async (none: string): Promise<PeerService> => {
      const s = await peersReady;
      if (s) return s;
      throw new Error(inGroup ? `the peer service did not start: ${peersFailed}` : `this host is in no backup group: ${none}`);
    };
    const cron = scheduleJob('snapshot', cfg.schedule, async () => {
      const snap = takeSnapshot(null);
      if (backfillPending(tree.db)) {
        log(`scheduled snapshot ${snap.name}; retention waits until the recovery has every chunk back`);
      } else {
        const r = (await forget(cfg.retention ?? DEFAULT_POLICY, false, false)) as { forget: string[] };
        log(`scheduled snapshot ${snap.name}; forgot ${r.forget.length}`);
      }
      void peersReady.then((s) => s?.replicator.kick());
    }, log);
    try {
      mounted = await mountFs(cfg.mount, fs, tree, staging, log.child('fs'));
    } catch (err) {
      cron.stop();
      peersStarted(null);
      await queue.close();
      throw err;
    }
    phase('mounted');
    log(`mounted ${cfg.mount}`);

    /** What the schedules do next: a snapshot, then its shipment (in the ship window), and an audit. */
    const upcoming = (): Upcoming => {
      const snapshot = cron.next();
      const opens = snapshot === null ? null : closedUntil(shipWindow, new Date(snapshot));
      return { snapshot, ship: inGroup && snapshot !== null ? (opens?.getTime() ?? snapshot) : null, audit: audits?.next() ?? null };
    };

    const shipAlertMs = parseDuration(cfg.alertAfter ?? '2d', 'alertAfter');
    const alerts = (peers: PeerStatus | null): Alert[] =>
      alertsOf({ now: Date.now(), home, peers, latestTime: findSnapshot(tree.db, 'latest')?.time ?? null, shipAlertMs });
    const notifier = new Notifier(log.child('alerts'));
    const alertTimer = setInterval(() => void peersReady.then((s) => notifier.notify(alerts(s?.status() ?? null)), () => {}), 10 * 60_000);
    alertTimer.unref();
    const rotateTimer = setInterval(rotate, 60_000);
    rotateTimer.unref();
    // glibc keeps the holes a burst of reads or writes leaves in its heap (~55 MB after an
    // md5sum of the linux tree). Handing them back took 14-38 ms of the event loop on that heap,
    // so it waits for a quiet spell: ten seconds in which the daemon used under 1% of a CPU.
    let cpuBefore = process.cpuUsage();
    const trimTimer = setInterval(() => {
      const used = process.cpuUsage(cpuBefore);
      cpuBefore = process.cpuUsage();
      if (used.user + used.system >= 100_000) return;
      if (youngBytes() > youngAtRest) shrinkV8Heap();
      trimHeap();
    }, 10_000);
    trimTimer.unref();
    void startPeers().then(peersStarted);
    const dashboard = new Dashboard(log.child('ui'));

    let stopping: Promise<void> | undefined;
    /** Every step runs even if an earlier one failed: a daemon must always get out. */
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        log('unmounting');
        const step = async (what: string, fn: () => unknown): Promise<void> => {
          try {
            await fn();
          } catch (err) {
            log.warn(`${what}: ${(err as Error).message}`);
          }
        };
        cron.stop();
        clearInterval(alertTimer);
        clearInterval(rotateTimer);
        clearInterval(trimTimer);
        dashboard.stop();
        if (gcTimer) clearTimeout(gcTimer);
        await step('peer service', async () => {
          const s = await peersReady;
          audits?.stop();
          await s?.stop();
        });
        await step('unmount', () => mounted?.unmount());
        await step('closing open files', () => fs.closeAll());
        await step('finishing chunking', () => queue.close());
        await step('spare staging files', () => staging.dropSpares());
        await step('garbage collection', () => gcRunning);
        sampleNext = null;
        await step("the store's figures", () => sampling);
        server.close();
        await step('checkpoint', () => store!.db.pragma('wal_checkpoint(TRUNCATE)'));
        await step('closing the store', () => store!.close());
        // Closing the server removed it already, unless it was replaced or close failed.
        await step('socket', () => rmSync(p.socket, { force: true }));
        await step('lock', () => unlinkSync(p.pid));
        log('stopped cleanly');
      })());

    const handle = async (req: Request): Promise<unknown> => {
      switch (req.cmd) {
        // Only this user reaches the socket (SAFE_HOME is 0700), and while mounted the folder
        // shows them everything anyway: their commands need not ask for the passphrase.
        case 'storeKeys':
          return { store: Buffer.from(keys.host.storeKey).toString('hex'), staging: Buffer.from(keys.host.stagingKey).toString('hex') } satisfies StoreKeysReply;
        case 'status': {
          const peers = (await peersReady)?.status() ?? null;
          const now = alerts(peers);
          notifier.notify(now);
          return { mounted: true, mount: cfg.mount, pid: process.pid, pendingChunking: queue.pending, writersOpen: fs.writersOpen, epoch: tree.epoch, snapshots: countSnapshots(store!.db), peers, peersFailed, alerts: now, next: upcoming(), gc: gcProgress };
        }
        case 'flush':
          await queue.flush();
          return { pendingChunking: queue.pending };
        case 'snapshot': {
          const snap = takeSnapshot(req.label ?? null);
          void peersReady.then((s) => s?.replicator.kick());
          return snap;
        }
        case 'sync': {
          const opens = req.now ? null : closedUntil(shipWindow);
          if (opens) throw new Error(`outside the ship window ${shipWindow!.text} (it opens ${opens.toLocaleString()}): safe sync --now ships anyway`);
          const run = (await needPeers('there is nobody to ship to')).sync();
          if (!req.wait) {
            run.catch((err: Error) => log.warn(`sync failed: ${err.message}`));
            return { started: true };
          }
          return run;
        }
        case 'fetch': {
          const s = await peersReady;
          if (!s) return { fetched: 0, bytes: 0, missing: 0 };
          return s.fetchLists(chunkListsUnder(tree, req.ino, req.epoch));
        }
        case 'repair':
          return (await needPeers('there is no buddy to repair from')).repair(req.ids.map((id) => Buffer.from(id, 'hex')));
        case 'audit': {
          const s = await needPeers('there are no buddies to audit');
          const r = await s.audit();
          notifier.notify(alerts(s.status()));
          return r;
        }
        case 'peers': {
          const s = await needPeers('there are no members to show');
          return { self: s.status(), members: await s.members() };
        }
        case 'forget':
          return forget(req.policy, req.dryRun, req.allowAll);
        case 'ui':
          return { url: await dashboard.url() };
        case 'unmount':
          await stop();
          return { stopped: true };
        default:
          throw new Error(`unknown command ${(req as { cmd: string }).cmd}`);
      }
    };
    const server = serveControl(p.socket, handle);
    const done = new Promise<void>((resolve) => {
      const onSignal = (sig: string): void => {
        log(`${sig}: stopping`);
        void stop().then(resolve);
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
      server.on('close', () => void stopping?.then(resolve));
    });
    return { done };
  } catch (err) {
    store?.close();
    try { unlinkSync(p.pid); } catch { /* not ours */ }
    throw err;
  }
}
