// init, status, verify: the commands that work on a host's local state.
import { existsSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { PeerStatus } from '../peers/service.js';
import type { Alert } from './alerts.js';
import type { Upcoming } from './daemon.js';
import type { GcProgress } from '../chunkstore/gc.js';
import { buddyLines } from './commands-peers.js';
import { ChunkStore } from '../chunkstore/store.js';
import { HOST_SCHEMA } from './host-schema.js';
import { verifyStore, type Problem, type VerifyReport } from '../chunkstore/verify.js';
import { groupKeys, hostKeys, hostMaster, type GroupKeys, type HostKeys } from '../keys/derive.js';
import { DEFAULT_AVG_CHUNK } from '../chunkstore/defaults.js';
import { closedUntil, parseShipWindow, ShipWindowError } from '../peers/host/ship-window.js';
import { formatBytes, loadConfig, parseRate, parseSize, paths, redundancyOf, safeHome, saveConfig, sealSecrets, type HostConfig } from './config.js';
import { UserError } from './errors.js';
import { callDaemon } from './control.js';
import { openHostStore } from './open-store.js';
import { findSnapshot } from '../snapshot/snapshots.js';
import { checkReferences, type RefProblem } from '../snapshot/check-refs.js';
import { Progress } from './progress.js';
import { diskUsage } from './disk-usage.js';
import { requireSoundIndex } from './index-check.js';
import { ask, secret } from './secrets.js';
import { recoverySheet, writeSheet, type SheetFacts } from './recovery-sheet.js';
import { DEFAULT_REDUNDANCY, describeRedundancy, formatRedundancy, membersNeeded, parseRedundancy, type Redundancy } from '../redundancy/scheme.js';

export interface Out {
  json: boolean;
  print(human: string, data: unknown): void;
}

export interface InitOptions {
  host?: string;
  mount?: string;
  group?: string;
  offer?: string;
  listen?: string;
  buddies?: string;
  redundancy?: string;
  fallback?: string;
  'no-mdns'?: boolean;
  peer?: string[];
  'recovery-sheet'?: string;
  'max-upload'?: string;
  'max-download'?: string;
  /** true: the default number of slots; a string: a number of them. */
  relay?: boolean | string;
}

/** Members behind NAT a relay holds slots for unless told otherwise. */
const DEFAULT_RELAY_SLOTS = 16;

function relaySlots(v: boolean | string | undefined): number | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return DEFAULT_RELAY_SLOTS;
  if (!/^[1-9][0-9]{0,3}$/.test(v)) throw new UserError(`--relay takes a number of members to relay for (1-9999), not "${v}"`, 2);
  return Number(v);
}

/** --redundancy copies:N|rs:K+M, or release 0.2's --buddies N (copies:N). */
function redundancy(opts: InitOptions): Redundancy {
  if (opts.buddies !== undefined && opts.redundancy !== undefined) throw new UserError('--buddies N is --redundancy copies:N: give one of them', 2);
  if (opts.buddies !== undefined) {
    const n = Number(opts.buddies);
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new UserError(`--buddies takes a whole number from 1 to 16, not '${opts.buddies}'`, 2);
    return { kind: 'copies', n };
  }
  try {
    return parseRedundancy(opts.redundancy ?? DEFAULT_REDUNDANCY);
  } catch (err) {
    throw new UserError(`--${(err as Error).message}`, 2);
  }
}

export interface ConfigChoices {
  host: string;
  mount: string;
  group: string | null;
  offer: number;
  listen?: string[];
  peers: string[];
  redundancy: Redundancy;
  mdns: boolean;
  avgChunk?: number;
  schedule?: string;
}

/** A host's config; the group keys and convergence secret sealed under its own keys. */
export function newConfig(c: ConfigChoices, keys: HostKeys, gk: GroupKeys | null): HostConfig {
  return {
    version: 1,
    host: c.host,
    mount: c.mount,
    group: c.group,
    offer: c.offer,
    listen: c.listen ?? ['/ip4/0.0.0.0/tcp/4747'],
    peers: c.peers,
    buddies: membersNeeded(c.redundancy),
    redundancy: formatRedundancy(c.redundancy),
    mdns: c.mdns,
    avgChunk: c.avgChunk ?? DEFAULT_AVG_CHUNK,
    schedule: c.schedule ?? '0 * * * *',
    verifier: keys.verifier,
    sealed: sealSecrets(keys, gk ? gk.convergence : keys.soloConvergence, gk),
    created: new Date().toISOString(),
  };
}

/**
 * rs:K+M needs K+M members to hold its shards: counted now (the --peer addresses, what they
 * know, the LAN and the group's rendezvous). Too few: refused, or whole copies if --fallback
 * said so.
 */
async function settleRedundancy(
  opts: InitOptions, wanted: Redundancy, fallback: Redundancy | null, keys: HostKeys, gk: GroupKeys | null, group: string | null,
): Promise<{ scheme: Redundancy; why: string | null }> {
  if (wanted.kind !== 'rs' || !gk) return { scheme: wanted, why: null };
  // libp2p costs 0.5 s to load: only an init that counts members pays it, not every `safe status`.
  const { createPeerNode, GroupMismatchError } = await import('../peers/net/node.js');
  const { findMembers } = await import('../peers/group/find-members.js');
  const node = await createPeerNode({
    identitySeed: keys.identitySeed, pnetKey: gk.pnetKey, listen: [], announce: false, bootstrap: [],
    mdnsTag: opts['no-mdns'] ? null : `_safe-${gk.rendezvous.slice(0, 16)}._udp.local`, rendezvous: gk.rendezvous,
  });
  let reachable: number;
  try {
    if (!opts['no-mdns']) await new Promise((r) => setTimeout(r, 2000)); // give mDNS a moment
    const known = await findMembers(node, opts.peer ?? [], 10_000);
    const found = node.peers().length > 0 ? await node.rendezvousNow() : [];
    reachable = new Set([...known, ...found, ...node.peers()].filter((p) => p !== node.peerId)).size;
  } catch (err) {
    if (err instanceof GroupMismatchError) throw new UserError(err.message, 1, { cause: err });
    throw err;
  } finally {
    await node.stop().catch(() => {});
  }
  const needed = membersNeeded(wanted);
  if (reachable >= needed) return { scheme: wanted, why: null };
  const short = `${formatRedundancy(wanted)} puts its shards on ${needed} members of group ${group}, but ${reachable} ${reachable === 1 ? 'is' : 'are'} reachable now`;
  if (fallback) return { scheme: fallback, why: short };
  throw new UserError(`${short}: start the others first, choose a smaller code, or add --fallback copies:2`);
}

export async function init(opts: InitOptions, out: Out): Promise<void> {
  const home = safeHome();
  if (existsSync(paths(home).config)) throw new UserError(`a host already exists in ${home} (set SAFE_HOME for another)`);
  const host = opts.host ?? (await ask('Hostname', hostname()));
  if (!/^[^\s/]{1,253}$/.test(host)) throw new UserError(`not a usable hostname: '${host}'`);
  const mount = resolve(opts.mount ?? (await ask('Mount point', join(homedir(), 'safe'))));
  const group = opts.group ?? null;
  const sheetFile = opts['recovery-sheet'] === undefined ? null : resolve(opts['recovery-sheet']);
  if (sheetFile && !group) throw new UserError('--recovery-sheet goes with --group: a host in no group has no buddies to be recovered from', 2);
  const offer = parseSize(opts.offer ?? '10G');
  // Checked now, kept as written (the config's unset keys are left out when it is saved).
  if (opts['max-upload'] !== undefined) parseRate(opts['max-upload'], '--max-upload');
  if (opts['max-download'] !== undefined) parseRate(opts['max-download'], '--max-download');
  const wanted = redundancy(opts);
  if (wanted.kind === 'rs' && !group) throw new UserError(`--redundancy ${formatRedundancy(wanted)} spreads shards over a group's members: it needs --group`, 2);
  const fallback = opts.fallback === undefined ? null : redundancy({ redundancy: opts.fallback });
  if (fallback && fallback.kind !== 'copies') throw new UserError(`--fallback takes copies:N, not ${opts.fallback}`, 2);
  const pass = await secret('SAFE_PASSPHRASE', `Passphrase for ${host}`, true);
  const groupPassword = group ? await secret('SAFE_GROUP_PASSWORD', `Password of group ${group}`, true) : null;
  // Both scrypts at once, on libuv's pool: ~0.4 s less to wait with two cores.
  const [master, gk] = await Promise.all([hostMaster(host, pass), group ? groupKeys(group, groupPassword!) : null]);
  const keys = hostKeys(master);
  const convergence = gk ? gk.convergence : keys.soloConvergence;
  const { scheme, why } = await settleRedundancy(opts, wanted, fallback, keys, gk, group);
  const cfg = { ...newConfig({ host, mount, group, offer, listen: opts.listen === undefined ? undefined : [opts.listen], peers: opts.peer ?? [], redundancy: scheme, mdns: !opts['no-mdns'] }, keys, gk), maxUpload: opts['max-upload'], maxDownload: opts['max-download'], relay: relaySlots(opts.relay) };
  const sheet: SheetFacts | null = group ? { host, group, members: cfg.peers, listen: cfg.listen } : null;
  // First, so a sheet that cannot be written leaves no host behind.
  if (sheet && sheetFile) {
    try {
      writeSheet(sheetFile, recoverySheet(sheet, groupPassword!));
    } catch (cause) {
      throw new UserError(`cannot write the recovery sheet ${sheetFile}: ${(cause as Error).message.replace(/, open .*$/, '')}`, 1, { cause });
    }
  }
  ChunkStore.open(paths(home).store, convergence, { create: true, schema: HOST_SCHEMA, key: keys.storeKey }).close();
  saveConfig(home, cfg);
  const shown = sheet ? `\n\n${recoverySheet(sheet, sheetFile ? `written in ${sheetFile}` : 'the one given to safe init')}` : '';
  out.print(
    `created host '${host}' in ${home}\n  mount point: ${mount}\n  group: ${group ?? '(none: local versioned store)'}\n  offered to the group: ${formatBytes(offer)}\n  redundancy: ${describeRedundancy(scheme)}${why ? ` (${why})` : ''}${shown}`,
    { home, host, mount, group, offer, redundancy: formatRedundancy(scheme), recoverySheet: sheet && { ...sheet, file: sheetFile } },
  );
}

export async function status(out: Out): Promise<void> {
  const home = safeHome();
  const cfg = loadConfig(home);
  const reply = await callDaemon(paths(home).socket, { cmd: 'status' }, 10_000);
  const daemon = reply?.ok ? (reply.data as { pendingChunking: number; writersOpen: number; pid: number; peers: PeerStatus | null; peersFailed?: string | null; alerts?: Alert[]; next: Upcoming; gc: (GcProgress & { started: number }) | null }) : null;
  const { store } = await openHostStore(home);
  try {
    const s = store.stats();
    const usage = diskUsage(home);
    const disk = { store: usage.entries.get(paths(home).store) ?? 0, staging: usage.entries.get(paths(home).staging) ?? 0, home: usage.total };
    const dedup = s.liveBytes > 0 ? s.referencedRaw / s.liveBytes : 1;
    const last = store.db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'snapshots'").get() ? findSnapshot(store.db, 'latest') : undefined;
    const shipWindow = cfg.group && cfg.shipWindow ? shipWindowState(cfg.shipWindow) : null;
    out.print(
      [
        `host ${cfg.host} (${home})`,
        ...(daemon?.alerts ?? []).map((a) => `ATTENTION: ${a.message}`),
        daemon
          ? `mount ${cfg.mount}: mounted (pid ${daemon.pid}); ${daemon.pendingChunking} files waiting to be chunked, ${daemon.writersOpen} open for writing`
          : `mount ${cfg.mount}: not mounted`,
        `store ${formatBytes(s.packBytes)} in ${s.packs} packs, ${s.chunks} chunks; ${formatBytes(s.referencedRaw)} referenced, dedup+compression ratio ${dedup.toFixed(2)}`,
        `on disk ${formatBytes(disk.home)} in all: store ${formatBytes(disk.store)} (packs, open packs, index), staging ${formatBytes(disk.staging)} (files not chunked yet, and room kept for deletes on a full disk)`,
        `last snapshot: ${last ? `${last.name} (${new Date(last.time).toISOString()})` : 'none yet'}`,
        ...(cfg.group ? [`redundancy ${describeRedundancy(redundancyOf(cfg))}`] : []),
        ...(shipWindow ? [shipWindowLine(shipWindow)] : []),
        ...(daemon ? [upcomingLine(daemon.next)] : []),
        ...(daemon?.gc ? [gcLine(daemon.gc)] : []),
        ...(daemon?.peersFailed ? [`peer service: not running (${daemon.peersFailed}); the folder works, nothing ships until the next mount`] : []),
        ...(daemon?.peers ? buddyLines(daemon.peers) : cfg.group ? [] : ['buddies: none (no backup group)']),
      ].join('\n'),
      { host: cfg.host, home, alerts: daemon?.alerts ?? [], mount: cfg.mount, redundancy: formatRedundancy(redundancyOf(cfg)), mounted: !!daemon, daemon, store: { ...s, ratio: dedup }, disk, lastSnapshot: last ?? null, shipWindow },
    );
  } finally {
    store.close();
  }
}

interface WindowState {
  window: string;
  open: boolean;
  /** When it opens next (ISO time); null while open or when the window is malformed. */
  opens: string | null;
  error?: string;
}

function shipWindowState(text: string): WindowState {
  try {
    const w = parseShipWindow(text);
    const opens = closedUntil(w);
    return { window: w.text, open: opens === null, opens: opens?.toISOString() ?? null };
  } catch (err) {
    if (err instanceof ShipWindowError) return { window: text, open: false, opens: null, error: `${err.message} (the daemon will not start with it)` };
    throw err;
  }
}

function gcLine(g: GcProgress): string {
  const where = g.phase === 'dropping' ? `${g.collected} unused chunks dropped` : `${g.packsDone} of ${g.packsTotal} packs compacted`;
  return `garbage collection under way: ${where}, ${formatBytes(g.bytesFreed)} freed so far`;
}

function upcomingLine(n: Upcoming): string {
  const at = (t: number): string => new Date(t).toLocaleString();
  const parts = [
    n.snapshot === null ? 'no snapshot scheduled' : `snapshot ${at(n.snapshot)}`,
    ...(n.ship === null ? [] : [n.ship === n.snapshot ? 'shipped at once' : `shipped ${at(n.ship)} (ship window)`]),
    ...(n.audit === null ? [] : [`audit ${at(n.audit)}`]),
  ];
  return `next: ${parts.join('; ')}`;
}

function shipWindowLine(s: WindowState): string {
  if (s.error) return `ship window: ${s.error}`;
  return `ship window ${s.window}: ${s.open ? 'open now' : `closed; shipments wait until ${new Date(s.opens!).toLocaleString()} (safe sync --now ships anyway)`}`;
}

function check(store: ChunkStore): { report: VerifyReport; refs: ReturnType<typeof checkReferences>; problems: (Problem | RefProblem)[] } {
  const bar = new Progress('verify');
  const report = verifyStore(store, (p) => bar.update(p.packsDone, p.packsTotal, formatBytes(p.bytes)));
  bar.done();
  const refs = checkReferences(store.db);
  return { report, refs, problems: [...report.problems, ...refs.problems] };
}

/**
 * With `repair`, our chunks found damaged or missing are fetched from the buddies (through the
 * daemon, which holds the connections) and put in place, then everything is checked again.
 */
export async function verify(out: Out, repair = false): Promise<boolean> {
  const home = safeHome();
  const { store } = await openHostStore(home);
  try {
    requireSoundIndex(store, false);
    let { report: r, refs, problems } = check(store);
    let repaired: { repaired: number } | null = null;
    const damaged = [...new Set(problems.filter((p) => p.id && p.kind !== 'refcount').map((p) => p.id!))];
    if (repair && damaged.length > 0) {
      const reply = await callDaemon(paths(home).socket, { cmd: 'repair', ids: damaged }, 3600_000);
      if (!reply) throw new UserError('safe verify --repair fetches from the buddies through the daemon: run safe mount first');
      if (!reply.ok) throw new UserError(`repair failed: ${reply.error}`);
      repaired = reply.data as { repaired: number };
      ({ report: r, refs, problems } = check(store));
    }
    const head = `checked ${r.chunks} chunks in ${r.packs} packs (${formatBytes(r.bytes)}) and the tree's references to them: ${problems.length === 0 ? 'no problems' : `${problems.length} problems`}`;
    const lines = [repaired ? `repaired ${repaired.repaired} of ${damaged.length} damaged chunks from the buddies; then ${head}` : head];
    for (const p of problems) lines.push(`  ${p.kind}: ${p.detail}${repair && p.id && !store.refOf(Buffer.from(p.id, 'hex')) ? ' (held for another host: its owner ships it again after its next audit)' : ''}`);
    out.print(lines.join('\n'), { ok: problems.length === 0, ...r, problems, referencesChecked: refs.checked, ...(repaired ? { repaired: repaired.repaired } : {}) });
    return problems.length === 0;
  } finally {
    store.close();
  }
}
