// safe recover: a blank machine, the hostname, the passphrase, the group name and password.
// Nothing is written before our root block is found and opened, so a wrong passphrase or
// hostname leaves SAFE_HOME untouched. After that the config is saved marked "recovering":
// an interrupted recovery resumes where it stopped when run again.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChunkStore } from '../chunkstore/store.js';
import { groupKeys, hostKeys, hostMaster } from '../keys/derive.js';
import { createPeerNode, type PeerNode } from '../peers/node.js';
import { probe } from '../peers/members.js';
import { findRootBlock, NoRootBlockError, recover as recoverData } from '../peers/recovery.js';
import { adoptBuddies } from '../peers/replicator.js';
import { createTreeTables } from '../snapshot/schema.js';
import { formatBytes, loadConfig, paths, safeHome, saveConfig, type Unlocked } from './config.js';
import { UserError } from './errors.js';
import { Progress } from './progress.js';
import { secret } from './secrets.js';
import { mount } from './commands-mount.js';
import { newConfig, type Out } from './commands-store.js';

export interface RecoverOptions {
  host?: string;
  mount?: string;
  group?: string;
  peer?: string[];
  listen?: string;
  force?: boolean;
  'no-mdns'?: boolean;
  'no-mount'?: boolean;
}

/** Members to ask: --peer addresses, and everyone they know of. */
async function candidates(node: PeerNode, peers: string[]): Promise<string[]> {
  const out = new Set<string>();
  await Promise.all(
    peers.map(async (addr) => {
      try {
        const id = await node.connect(addr, { signal: AbortSignal.timeout(10_000) });
        out.add(id);
        const r = await probe(node, id, [], AbortSignal.timeout(10_000));
        for (const m of r.members) {
          if (m.peer === node.peerId) continue;
          await node.learn(m.peer, m.addrs);
          out.add(m.peer);
        }
      } catch {
        // unreachable: the others may do
      }
    }),
  );
  return [...out];
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
  const mountDir = resolve(opts.mount ?? previous?.mount ?? join(homedir(), 'safe'));
  const peers = opts.peer ?? previous?.peers ?? [];

  const keys = hostKeys(await hostMaster(host, await secret('SAFE_PASSPHRASE', `Passphrase for ${host}`)));
  const gk = await groupKeys(group, await secret('SAFE_GROUP_PASSWORD', `Password of group ${group}`));
  const node = await createPeerNode({
    identitySeed: keys.identitySeed,
    pnetKey: gk.pnetKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdnsTag: opts['no-mdns'] ? null : `_safe-${gk.rendezvous.slice(0, 16)}._udp.local`,
  });
  let store: ChunkStore | null = null;
  try {
    if (!opts['no-mdns']) await new Promise((r) => setTimeout(r, 2000)); // give mDNS a moment
    const asked = [...new Set([...(await candidates(node, peers)), ...node.peers()])];
    let found;
    try {
      found = await findRootBlock(node, keys, asked);
    } catch (err) {
      if (err instanceof NoRootBlockError) throw new UserError(err.message);
      throw err;
    }
    for (const c of found.clients) await c.close();
    const s = found.root.settings;
    const cfg = newConfig(
      { host, mount: mountDir, group, offer: s.offer, listen: opts.listen ?? previous?.listen[0], peers, buddies: s.buddies, mdns: !opts['no-mdns'], avgChunk: s.avgChunk, schedule: s.schedule },
      keys,
      gk,
    );
    cfg.recovering = true;
    if (!resuming) {
      // --force: what was here goes; nothing of it is reused.
      rmSync(p.store, { recursive: true, force: true });
      rmSync(p.staging, { recursive: true, force: true });
    }
    saveConfig(home, cfg);
    store = ChunkStore.open(p.store, gk.convergence, { create: true, recover: true });
    createTreeTables(store.db);
    const bar = new Progress('recover');
    const t0 = performance.now();
    const report = await recoverData({
      node, store, keys, candidates: asked,
      progress: (pr) => bar.update(pr.done, pr.total, `${pr.phase} ${pr.done}${pr.total ? `/${pr.total}` : ''} ${formatBytes(pr.bytes)}`),
    });
    bar.done();
    if (report.missing > 0) throw new UserError(`${report.missing} chunks could not be fetched from any reachable buddy: run safe recover again when more are online`);
    adoptBuddies(store.db, report.root.buddies, report.root.epoch);
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    store.close();
    store = null;
    saveConfig(home, { ...cfg, recovering: false });
    const secs = (performance.now() - t0) / 1000;
    const summary = `recovered '${host}' from ${report.rootFrom}: ${report.root.snapshots.length} snapshots, ${report.objects} metadata objects, ${report.chunks} chunks (${report.fetched} fetched, ${formatBytes(report.bytes)}) in ${secs.toFixed(1)} s${report.flagged.length ? `; buddies serving bad chunks: ${report.flagged.join(', ')}` : ''}`;
    await node.stop();
    if (opts['no-mount']) {
      out.print(summary, { ...report, seconds: secs, mounted: false });
      return;
    }
    const unlocked: Unlocked = { config: { ...cfg, recovering: false }, keys, convergence: gk.convergence, group: gk };
    await mount(false, { json: true, print: () => {} }, unlocked);
    out.print(`${summary}\nmounted ${mountDir}`, { ...report, seconds: secs, mounted: true, mount: mountDir });
  } finally {
    store?.close();
    await node.stop().catch(() => {});
  }
}
