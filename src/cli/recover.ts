// safe recover: a blank machine, the hostname, the passphrase, the group name and password.
// Nothing is written before our root block is found and opened, so a wrong passphrase or
// hostname leaves SAFE_HOME untouched. After that the config is saved marked "recovering":
// an interrupted recovery resumes where it stopped when run again.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChunkStore } from '../chunkstore/store.js';
import { HOST_SCHEMA } from './host-schema.js';
import { groupKeys, hostKeys, hostMaster } from '../keys/derive.js';
import { createPeerNode, GroupMismatchError, type PeerNode } from '../peers/net/node.js';
import { findMembers } from '../peers/group/find-members.js';
import { findRootBlock, MetadataFormatError, NoRootBlockError, TooFewHoldersError, recover as recoverData } from '../peers/host/recovery.js';
import { adoptBuddies } from '../peers/host/replicator.js';
import { formatBytes, loadConfig, paths, safeHome, redundancyOf, saveConfig, type HostConfig, type Unlocked } from './config.js';
import { UserError } from './errors.js';
import { Progress } from './progress.js';
import { secret } from './secrets.js';
import { mount, spawnBackgroundDaemon, type PendingDaemon } from './commands-mount.js';
import { callDaemon } from './control.js';
import type { BackfillProgress } from '../peers/host/backfill.js';
import type { PeerStatus } from '../peers/service.js';
import { newConfig, type Out } from './commands-store.js';

/** Follows the daemon's background fetch until it ends, with a progress bar on a terminal. */
async function waitForChunks(home: string): Promise<BackfillProgress> {
  const bar = new Progress('fetching');
  for (;;) {
    const r = await callDaemon(paths(home).socket, { cmd: 'status' }, 10_000);
    const peers = (r?.ok ? (r.data as { peers: PeerStatus | null }).peers : null) ?? null;
    if (!peers) throw new UserError('the daemon stopped while fetching chunks back: safe mount resumes it');
    const p = peers.backfill;
    if (!p && !peers.fetching) return { files: 0, totalFiles: 0, bytes: 0, totalBytes: 0, received: 0, chunksFetched: 0, missing: 0, unreachable: [], done: true, error: null, startedAt: Date.now(), finishedAt: Date.now() };
    if (p) bar.update(p.bytes, p.totalBytes, `${p.files}/${p.totalFiles} files ${formatBytes(p.bytes)}/${formatBytes(p.totalBytes)}`);
    if (p && (!peers.fetching || p.finishedAt !== null)) {
      bar.done();
      return p;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

export interface RecoverOptions {
  host?: string;
  mount?: string;
  group?: string;
  peer?: string[];
  listen?: string;
  force?: boolean;
  'no-mdns'?: boolean;
  'no-mount'?: boolean;
  'no-wait'?: boolean;
}

/** Members to ask: --peer addresses, and everyone they know of. */
async function candidates(node: PeerNode, addrs: string[]): Promise<string[]> {
  try {
    return await findMembers(node, addrs);
  } catch (err) {
    if (err instanceof GroupMismatchError) throw new UserError(err.message, 1, { cause: err });
    throw err;
  }
}

export async function recover(opts: RecoverOptions, out: Out): Promise<void> {
  const home = safeHome();
  const p = paths(home);
  const previous = existsSync(p.config) ? loadConfig(home) : null;
  const resuming = previous?.recovering === true;
  if (previous && !resuming && !opts.force) throw new UserError(`${home} already holds host '${previous.host}': pass --force to replace it with the recovered one`);
  if (!previous && existsSync(home) && readdirSync(home).length > 0 && !opts.force) throw new UserError(`${home} is not empty: pass --force to recover into it anyway`);
  const host = opts.host ?? previous?.host ?? hostname();
  const group = opts.group ?? previous?.group;
  if (!group) throw new UserError('recovery needs the backup group: --group NAME');
  const peers = opts.peer ?? previous?.peers ?? [];

  const pass = await secret('SAFE_PASSPHRASE', `Passphrase for ${host}`);
  const groupPassword = await secret('SAFE_GROUP_PASSWORD', `Password of group ${group}`);
  // Both scrypts at once, on libuv's pool: ~0.4 s less to wait with two cores.
  const [master, gk] = await Promise.all([hostMaster(host, pass), groupKeys(group, groupPassword)]);
  const keys = hostKeys(master);
  const node = await createPeerNode({
    identitySeed: keys.identitySeed,
    pnetKey: gk.pnetKey,
    // Dial-only and silent: the members must not note this short-lived node's addresses for
    // the host (the recovered daemon announces its own, from the root block's settings).
    listen: [],
    announce: false,
    bootstrap: [],
    mdnsTag: opts['no-mdns'] ? null : `_safe-${gk.rendezvous.slice(0, 16)}._udp.local`,
    rendezvous: gk.rendezvous,
  });
  let store: ChunkStore | null = null;
  let early: PendingDaemon | undefined;
  try {
    if (!opts['no-mdns']) await new Promise((r) => setTimeout(r, 2000)); // give mDNS a moment
    const known = await candidates(node, peers);
    // Members beyond those named: the group's rendezvous record, once we reach anyone at all.
    const found = node.peers().length > 0 ? await node.rendezvousNow() : [];
    const asked = [...new Set([...known, ...found, ...node.peers()])];
    let located;
    try {
      located = await findRootBlock(node, keys, asked);
    } catch (err) {
      if (err instanceof NoRootBlockError || err instanceof MetadataFormatError) throw new UserError(err.message);
      throw err;
    }
    // The host as it was (root blocks of 0.1.0 carry fewer settings: defaults for the rest);
    // what is given on the command line wins.
    const s = located.root.settings;
    const mountDir = resolve(opts.mount ?? previous?.mount ?? s.mount ?? join(homedir(), 'safe'));
    const cfg: HostConfig = {
      ...newConfig(
        {
          host, mount: mountDir, group, offer: s.offer, listen: opts.listen ? [opts.listen] : previous?.listen ?? s.listen,
          peers: [...new Set([...peers, ...(s.peers ?? [])])], redundancy: redundancyOf({ buddies: s.buddies, redundancy: s.redundancy }),
          mdns: opts['no-mdns'] ? false : previous?.mdns ?? s.mdns ?? true, avgChunk: s.avgChunk, schedule: s.schedule,
        },
        keys,
        gk,
      ),
      retention: s.retention, auditSchedule: s.auditSchedule, buddySilence: s.buddySilence, ownerSilence: s.ownerSilence,
      repairThreshold: s.repairThreshold,
      recovering: true,
    };
    if (!resuming) {
      // --force: what was here goes; nothing of it is reused.
      rmSync(p.store, { recursive: true, force: true });
      rmSync(p.staging, { recursive: true, force: true });
    }
    saveConfig(home, cfg);
    store = ChunkStore.open(p.store, gk.convergence, { create: true, recover: true, schema: HOST_SCHEMA, key: keys.storeKey });
    const bar = new Progress('recover');
    const t0 = performance.now();
    // The daemon loads its code during the import; it touches nothing before it has its keys.
    if (!opts['no-mount']) early = spawnBackgroundDaemon(home);
    let report;
    try {
      report = await recoverData({
        node, store, keys, located,
        progress: (pr) => bar.update(0, 0, `metadata: ${pr.objects} segments, ${pr.rows} rows`),
      });
    } catch (err) {
      if (!(err instanceof TooFewHoldersError)) throw err;
      // Nothing imported yet: leave no half-made host behind (a resumed recovery keeps its own).
      store.close();
      store = null;
      if (!resuming) for (const f of readdirSync(home)) rmSync(join(home, f), { recursive: true, force: true });
      throw new UserError(err.message);
    }
    bar.done();
    adoptBuddies(store.db, report.root.buddies, report.root.epoch, report.reached);
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    store.close();
    store = null;
    saveConfig(home, { ...cfg, recovering: false });
    const summary = `recovered '${host}' from ${report.rootFrom}: ${report.root.snapshots.length} snapshots, ${report.objects} metadata segments`;
    const base = { host, rootFrom: report.rootFrom, snapshots: report.root.snapshots.length, objects: report.objects, reusedObjects: report.reused, holders: report.holders };
    await node.stop();
    if (opts['no-mount']) {
      out.print(`${summary}; the chunks are fetched back at the next safe mount`, { ...base, mounted: false });
      return;
    }
    const unlocked: Unlocked = { config: { ...cfg, recovering: false }, keys, convergence: gk.convergence, group: gk };
    await mount(false, { json: true, print: () => {} }, unlocked, undefined, early);
    early = undefined; // started: nothing to cancel
    const mountedAfter = (performance.now() - t0) / 1000;
    if (opts['no-wait']) {
      out.print(`${summary}\nmounted ${mountDir} after ${mountedAfter.toFixed(1)} s; chunks are being fetched back (safe status shows how far; reads fetch what they need)`, { ...base, mounted: true, mount: mountDir, mountedAfter });
      return;
    }
    const fetched = await waitForChunks(home);
    const secs = (performance.now() - t0) / 1000;
    const data = { ...base, mounted: true, mount: mountDir, mountedAfter, seconds: secs, fetched: fetched.chunksFetched, bytes: fetched.received, files: fetched.totalFiles, missing: fetched.missing };
    if (!fetched.done) {
      out.print(`${summary}\nmounted ${mountDir}`, data);
      throw new UserError(`${fetched.error ?? `${fetched.missing} chunks are not back`}; files needing them cannot be read yet: the mounted daemon keeps trying (safe status), and after a restart safe mount resumes it`);
    }
    out.print(
      `${summary}, ${fetched.totalFiles} files' contents (${fetched.chunksFetched} chunks, ${formatBytes(fetched.received)}) in ${secs.toFixed(1)} s\nmounted ${mountDir} (usable after ${mountedAfter.toFixed(1)} s)`,
      data,
    );
  } finally {
    early?.cancel();
    store?.close();
    await node.stop().catch(() => {});
  }
}
