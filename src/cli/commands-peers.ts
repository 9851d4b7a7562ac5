// sync and peers: the replication side of the daemon, asked over the control socket.
import { callDaemon, type Request } from './control.js';
import { formatBytes, loadConfig, paths, safeHome } from './config.js';
import { UserError } from './errors.js';
import type { Out } from './commands-store.js';
import type { AuditOutcome, SyncOutcome } from '../peers/host/replicator.js';
import type { ShipReport } from '../peers/host/shipper.js';
import type { Member } from '../peers/group/members.js';
import type { PeerStatus } from '../peers/service.js';

async function ask(req: Request, timeoutMs?: number): Promise<unknown> {
  const home = safeHome();
  const cfg = loadConfig(home);
  if (!cfg.group) throw new UserError('this host is in no backup group (safe init --group NAME): there are no buddies');
  const reply = await callDaemon(paths(home).socket, req, timeoutMs);
  if (!reply) throw new UserError('the daemon is not running: run safe mount first');
  if (!reply.ok) throw new UserError(reply.error);
  return reply.data;
}

/** Exit status: 0 when every buddy committed (or, without --wait, the shipment started). */
export async function sync(wait: boolean, now: boolean, out: Out): Promise<number> {
  if (!wait) {
    await ask({ cmd: 'sync', wait: false, now });
    out.print('shipping the latest snapshot to the buddies in the background (safe status shows progress)', { started: true });
    return 0;
  }
  const r = (await ask({ cmd: 'sync', wait: true, now }, 24 * 3600_000)) as SyncOutcome;
  if (r.epoch === null) {
    out.print('no snapshot yet: nothing to ship (safe snapshot first)', r);
    return 0;
  }
  const figures = (s: ShipReport): string =>
    `${s.chunksSent} of ${s.chunksOffered} chunks sent (${formatBytes(s.chunkBytes)}), ${s.objectsSent} metadata objects, ${s.deletes} deletions, ${formatBytes(s.bytes)} in ${(s.ms / 1000).toFixed(1)} s${s.full ? ' (full)' : ''}`;
  const lines = r.buddies.map((b) =>
    b.ok
      ? b.report.already
        ? `  ${b.peer}: held it already, nothing sent now${b.report.endedAt ? ` (shipped ${new Date(b.report.endedAt).toLocaleTimeString()}: ${figures(b.report)})` : ''}`
        : `  ${b.peer}: committed; ${figures(b.report)}`
      : b.replaced
        ? `  ${b.peer}: ${b.error}; no longer a buddy`
        : `  ${b.peer}: FAILED: ${b.error}`,
  );
  const failed = r.buddies.filter((b) => !b.ok && !b.replaced).length;
  const committed = r.buddies.filter((b) => b.ok).length;
  if (r.buddies.length === 0) lines.push('  no buddy available in the group (is anyone else online, with space offered?)');
  else if (r.short > 0) lines.push(`  ${r.short} buddy(s) short of the number wanted`);
  const fresh = r.buddies.some((b) => b.ok && !b.report.already);
  out.print(`${fresh || r.buddies.length === 0 ? 'shipped' : 'already shipped'} snapshot epoch ${r.epoch}:\n${lines.join('\n')}`, r);
  return failed > 0 || committed === 0 ? 1 : 0;
}

/** verify --remote: audit every buddy now; true when every one passed. */
export async function verifyRemote(out: Out): Promise<boolean> {
  const r = (await ask({ cmd: 'audit' }, 3600_000)) as AuditOutcome[];
  const lines = r.map((a) => {
    const rec = a.reconciled ? `; lists ${a.reconciled.held} held, ${a.reconciled.lacking} lacking, ${a.reconciled.surplus} surplus` : '';
    const what = a.verdict === 'passed' ? 'passed' : a.verdict === 'failed' ? `FAILED: ${a.error}` : `UNREACHABLE: ${a.error}`;
    return `  ${a.peer}: ${what} (${a.sampled} chunks sampled, ${a.missing} missing, ${a.ms.toFixed(0)} ms, ${formatBytes(a.bytes)})${rec}${a.action === 'kept' ? '' : `; ${a.action}`}`;
  });
  if (r.length === 0) lines.push('  no buddy holds a snapshot of ours yet');
  const ok = r.length > 0 && r.every((a) => a.verdict === 'passed');
  out.print(`audit of ${r.length} buddies:\n${lines.join('\n')}`, { ok, buddies: r });
  return ok;
}

const ago = (t: number | null): string => {
  if (t === null) return 'never';
  const s = Math.max(0, (Date.now() - t) / 1000);
  return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : s < 129600 ? `${(s / 3600).toFixed(1)} h ago` : `${(s / 86400).toFixed(1)} days ago`;
};

export async function peers(out: Out): Promise<void> {
  const r = (await ask({ cmd: 'peers' }, 120_000)) as { self: PeerStatus; members: Member[] };
  const buddies = new Set(r.self.buddies.map((b) => b.peer));
  const lines = [`this host: ${r.self.peerId}`, ...r.self.addrs.map((a) => `  ${a}`), `members seen: ${r.members.length}`];
  for (const m of r.members) {
    const cov = m.coverage === null ? '?' : `${(m.coverage * 100).toFixed(0)}%`;
    lines.push(
      `  ${m.peer}${buddies.has(m.peer) ? ' [buddy]' : ''}\n    ${m.addrs[0] ?? '(no address)'}; offers ${m.offer === null ? '?' : formatBytes(m.offer)} (${m.free === null ? '?' : formatBytes(m.free)} free); covers ${cov} of our data; rtt ${m.rtt === null ? '?' : `${m.rtt.toFixed(0)} ms`}; last seen ${ago(m.lastSeen)}`,
    );
  }
  for (const line of [unreachable(r.self), reachLine(r.self)]) if (line) lines.push(line);
  lines.push(`holding for others: ${formatBytes(r.self.used)} of ${formatBytes(r.self.offered)} offered`);
  for (const o of r.self.holding) lines.push(`  ${o.peer}: ${formatBytes(o.charged)}, ${o.chunks} chunks, ${o.objects} objects, last seen ${ago(o.lastSeen)}`);
  out.print(lines.join('\n'), r);
}

const listenPort = (p: PeerStatus): string =>
  p.addrs.filter((a) => !a.includes('/p2p-circuit')).map((a) => /\/tcp\/(\d+)/.exec(a)?.[1]).find((x) => x !== undefined) ?? '(its listen port)';

/** What to do when no member is connected: nothing ships and nobody can ship to us. */
function unreachable(p: PeerStatus): string | null {
  if (p.connected.length > 0) return null;
  return (
    'no member of the group is reachable now: give this host the address of one that is (peers in config.json, or --peer at init), ' +
    `or let them reach this host: forward TCP port ${listenPort(p)} to it on the router`
  );
}

/** Whether members can start a connection to us: directly, through a relay, or not at all. */
function reachLine(p: PeerStatus): string | null {
  const r = p.reach;
  if (r.kind === 'direct') return `reachable directly (dialed back by ${r.by})`;
  if (r.kind === 'relayed') return `behind NAT: members reach this host through the relay ${r.via}`;
  if (r.kind === 'unreachable') {
    return (
      `behind NAT, and ${r.reason}: members cannot start a connection to this host. ` +
      `Ask a member with a public address to relay (safe init --relay, or "relay" in its config.json), or forward TCP port ${listenPort(p)} to this host on the router`
    );
  }
  return null;
}

/** The buddy lines of `safe status`. */
export function buddyLines(p: PeerStatus): string[] {
  const lines = [`peer ${p.peerId}; holding ${formatBytes(p.used)} for others of ${formatBytes(p.offered)} offered`];
  if (p.fetching) {
    const f = p.backfill;
    const waiting = f && f.unreachable.length > 0 ? `; waiting for ${f.unreachable.join(', ')}` : '';
    lines.push(`recovery: fetching chunks back${f ? ` (${f.files}/${f.totalFiles} files, ${formatBytes(f.bytes)} of ${formatBytes(f.totalBytes)}${waiting}${f.error ? `; ${f.error}` : ''})` : ''}`);
  }
  for (const line of [unreachable(p), reachLine(p)]) if (line) lines.push(line);
  if (p.buddies.length === 0) lines.push('buddies: none yet');
  for (const b of p.buddies) {
    const lag = p.latest === null ? 'nothing to ship' : b.epoch === p.latest ? 'up to date' : b.epoch === 0 ? 'has nothing yet' : 'behind the latest snapshot';
    const bad = p.flagged.includes(b.peer) ? '; SERVED CHUNKS THAT ARE NOT WHAT THEIR ID SAYS' : '';
    const health = (b.lastError ? `failing (${b.fails}x): ${b.lastError}` : 'ok') + bad;
    lines.push(`buddy ${b.peer}${b.slot === null ? '' : ` (shard ${b.slot})`}: last contact ${ago(b.lastOk)}, ${lag}, ${health}`);
  }
  for (const s of p.shipping) {
    const share = s.total > 0 ? ` ${Math.floor((100 * s.done) / s.total)}% of the chunks,` : '';
    const eta = s.etaSeconds === null ? '' : `, about ${formatSeconds(s.etaSeconds)} left`;
    lines.push(`shipping epoch ${s.epoch} to ${s.peer}:${share} ${formatBytes(s.bytes)} sent at ${formatBytes(s.rate)}/s${eta}`);
  }
  return lines;
}

function formatSeconds(s: number): string {
  if (s < 90) return `${Math.ceil(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
