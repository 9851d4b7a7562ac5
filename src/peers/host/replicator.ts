// Keeps our snapshots on r buddies: chooses them among the members (best coverage of our
// data first, then free space, then round-trip time; no network holding more than the scheme
// allows, see redundancy/placement.ts), ships the latest snapshot to each after every
// snapshot, retries with backoff while one is away, replaces one that refuses us, and drains
// the delete-set and drop logs once every buddy has been told.
import { prepared, type Db } from '../../chunkstore/index-db.js';
import type { ChunkStore } from '../../chunkstore/store.js';
import { BuddyRefusedError, shipSnapshot, type BuddyCursor, type ShipContext, type ShipProgress, type ShipReport } from './shipper.js';
import { closedUntil, type ShipWindow } from './ship-window.js';
import { fingerprint, listMembers, networkOf, noteMember, probe, type Member } from '../group/members.js';
import type { RootBlock } from '../metadata/sealed-objects.js';
import { auditBuddy, boxChallenge, type AuditChallenge, type AuditResult } from './audit.js';
import { boxesUpTo, reconcile } from './reconcile.js';
import { DEFAULT_SILENCE_MS, isSilent, networkCaps, pickHolders, vacancies } from '../../redundancy/placement.js';
import { membersNeeded, type Redundancy } from '../../redundancy/scheme.js';
import { RestoreClient } from './restore-client.js';
import type { Log } from '../../log/logger.js';

export interface BuddyState {
  peer: string;
  chosen: number;
  epoch: number;
  releasedSeq: number;
  droppedSeq: number;
  lastOk: number | null;
  lastTry: number | null;
  lastError: string | null;
  fails: number;
  retired: number;
  shipped: number;
  /** rs:K+M: which shard of every stripe it holds (0..K+M-1); null for whole copies. */
  slot: number | null;
  /** Digest of the snapshot list its root block holds (BuddyCursor.snapshots). */
  snapshots: string | null;
}




/** Audit results kept: enough for weeks of daily audits of every buddy. */
const AUDITS_KEPT = 1000;

export interface AuditRecord {
  peer: string;
  time: number;
  verdict: AuditOutcome['verdict'];
  sampled: number;
  missing: number;
  error: string | null;
}

/** How far back status (and its alerts) looks at audits. */
const RECENT_AUDITS_MS = 7 * 86400_000;

/** The audits of the last week, newest first. */
export function recentAudits(db: Db): AuditRecord[] {
  return prepared<[number], AuditRecord>(db, 'SELECT peer, time, verdict, sampled, missing, error FROM audits WHERE time >= ? ORDER BY time DESC').all(Date.now() - RECENT_AUDITS_MS);
}


/**
 * After recovery: the buddies the root block names already hold `epoch`; ship increments.
 * Every member the recovery reached is noted at the addresses it announced then; the root
 * block's (as old as its last shipment: ports and leases change) only for the others.
 */
export function adoptBuddies(db: Db, buddies: RootBlock['buddies'], epoch: number, reached: RootBlock['buddies']): void {
  const now = Date.now();
  for (const b of buddies) prepared(db, 'INSERT OR REPLACE INTO buddies (peer, chosen, epoch, slot) VALUES (?, ?, ?, ?)').run(b.peer, now, epoch, b.slot ?? null);
  const unreached = buddies.filter((b) => !reached.some((r) => r.peer === b.peer));
  for (const m of [...reached, ...unreached]) noteMember(db, m.peer, { addrs: m.addrs, network: m.addrs.map(networkOf).find((n) => n !== null) ?? null });
}

export interface ReplicatorOptions {
  ship: ShipContext;
  /** How our data is spread: whole copies on N buddies, or stripes over K+M. */
  scheme: Redundancy;
  /** Latest snapshot epoch (null: none yet). */
  latest: () => number | null;
  /** The root block for a shipped epoch, with the buddy list filled in by us. */
  rootBlock: (epoch: number) => Omit<RootBlock, 'buddies'>;
  /** Waits until every closed file is chunked (a snapshot ships whole or not at all). */
  flush: () => Promise<void>;
  /** Members known from config, to probe even before anything connected. */
  knownPeers: () => string[];
  /** A buddy failing for longer than this is replaced (default DEFAULT_SILENCE_MS). */
  silenceMs?: number;
  /** Replace lost buddies once fewer than K + this many are left (default M: at the first loss). */
  repairThreshold?: number;
  /** When automatic shipments may run; null: at any time. */
  window?: ShipWindow | null;
  log: Log;
}

export interface AuditOutcome extends AuditResult {
  /** What the buddy listed against what it should hold (passed audits of up-to-date buddies). */
  reconciled?: { held: number; lacking: number; surplus: number };
  /** replaced: failed, or silent too long; reshipped: it lacked or kept too much, now fixed. */
  action: 'kept' | 'replaced' | 'reshipped' | 'retry later';
}

export interface SyncOutcome {
  epoch: number | null;
  /** replaced: it refused us and is no longer a buddy (another took its place if one could). */
  buddies: ({ peer: string; ok: true; report: ShipReport } | { peer: string; ok: false; error: string; replaced: boolean })[];
  /** Fewer buddies than wanted could be found. */
  short: number;
}

/**
 * Stripes challenged per audit round: a slot's holder that lost a tenth of its shards fails
 * with probability 1 - 0.9^32 = 97%; each is coded once, for every slot.
 */
const STRIPE_AUDIT_SAMPLE = 32;
const BACKOFF_MIN = 15_000;
const BACKOFF_MAX = 3600_000;
/** How long after a failed try buddy `b` is tried again by the background. */
const backoff = (b: BuddyState): number => (b.fails === 0 ? 0 : Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (b.fails - 1)));

export interface Shipment extends ShipProgress {
  peer: string;
  epoch: number;
  startedAt: number;
  /** When `bytes` was counted. */
  updatedAt: number;
  /** Bytes a second from its start to its last count. */
  rate: number;
  /** Estimated from the share of chunks settled so far; null until there is one. */
  etaSeconds: number | null;
}

export class Replicator {
  private readonly db: Db;
  private readonly store: ChunkStore;
  private running: Promise<SyncOutcome> | null = null;
  /** Shipments and audits take turns: a reconciliation must not race a shipment's commit. */
  private turn: Promise<unknown> = Promise.resolve();
  private runningEpoch: number | null = null;
  private again = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Aborted by stop(): what is under way gives up at its next step, writing nothing more. */
  private readonly halt = new AbortController();
  /** The last shipment that did the work, per buddy: what a sync that finds it done reports. */
  private readonly lastWork = new Map<string, ShipReport>();
  private readonly underway = new Map<string, Omit<Shipment, 'rate' | 'etaSeconds'>>();
  /** Outcomes of patient runs that left a buddy out for its backoff. */
  private readonly leftOut = new WeakSet<SyncOutcome>();
  private windowTimer: NodeJS.Timeout | null = null;

  private readonly wanted: number;

  constructor(private readonly o: ReplicatorOptions) {
    this.db = o.ship.db;
    this.store = o.ship.store;
    this.wanted = membersNeeded(o.scheme);
    if (o.scheme.kind === 'rs' && !o.ship.striping) throw new Error('rs redundancy needs the stripe map in the shipping context');
  }

  buddies(includeRetired = false): BuddyState[] {
    return prepared<[number], BuddyState>(
      this.db,
      `SELECT peer, chosen, epoch, released_seq AS releasedSeq, dropped_seq AS droppedSeq, last_ok AS lastOk, last_try AS lastTry,
              last_error AS lastError, fails, retired, shipped, slot, snapshots FROM buddies WHERE retired <= ? ORDER BY chosen, peer`,
    ).all(includeRetired ? 1 : 0);
  }

  /**
   * Ship now (joining a sync already running, then running once more for what came after).
   * A patient sync (the background's, after each snapshot) leaves a buddy that failed alone
   * until its backoff is over: a thousand snapshots in a row were a thousand tries of a
   * buddy that was away.
   */
  sync(patient = false): Promise<SyncOutcome> {
    if (this.halt.signal.aborted) return Promise.reject(this.halt.signal.reason as Error);
    if (this.running) {
      // Already shipping the latest snapshot: that run is the answer, unless it left out
      // buddies in their backoff and this sync must try every one.
      if (this.runningEpoch === this.o.latest()) return this.running.then((o) => (!patient && this.leftOut.has(o) ? this.sync(false) : o));
      this.again = true;
      return this.running.then(() => this.sync(patient));
    }
    this.again = false;
    this.runningEpoch = this.o.latest();
    this.running = this.exclusive(() => this.run(patient)).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const go = (): Promise<T> => {
      this.halt.signal.throwIfAborted();
      return fn();
    };
    const next = this.turn.then(go, go);
    this.turn = next.catch(() => {});
    return next;
  }

  /**
   * Challenges every buddy (after bringing them up to date), reconciles the ones that pass,
   * replaces the ones that fail or stayed silent too long, and ships to the replacements.
   */
  audit(): Promise<AuditOutcome[]> {
    return this.exclusive(async () => {
      // Outside the ship window the audit checks what buddies hold already and ships nothing
      // big: a replacement waits for the window (a reconcile's few missing chunks do not).
      const open = closedUntil(this.o.window ?? null) === null;
      if (open) await this.run().catch((err: Error) => {
        this.halt.signal.throwIfAborted();
        this.o.log.warn(`sync before audit failed: ${err.message}`);
      });
      const latest = this.o.latest();
      // Settled, all of them, before this turn ends: stop() waits for the turn.
      // Stripes: one sample of stripes for every slot, so each is coded once for all buddies.
      const striped = this.o.ship.striping ? this.o.ship.striping.stripes.sample(STRIPE_AUDIT_SAMPLE, latest ?? 0) : [];
      const settled = await Promise.allSettled(this.buddies().filter((b) => b.epoch > 0).map((b) => this.auditOne(b, latest, striped)));
      const outcomes = settled.map((r) => {
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      });
      if (outcomes.some((o) => o.action === 'replaced')) {
        if (open) await this.run();
        else setImmediate(() => this.kick());
      }
      return outcomes;
    });
  }

  /** What buddy `b` should hold, in id order: our boxes, or its slot's shards. */
  private async *expected(b: BuddyState): AsyncGenerator<Buffer> {
    const striping = this.o.ship.striping;
    if (!striping) return yield* boxesUpTo(this.store, b.epoch);
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const page = striping.stripes.shardIdsUpTo(b.slot ?? -1, b.epoch, b.droppedSeq, after, 4096);
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1]!;
    }
  }

  private challenge(b: BuddyState, striped: number[]): AuditChallenge {
    const striping = this.o.ship.striping;
    if (!striping) return boxChallenge(this.store, b.epoch);
    return { ids: striping.stripes.shardsIn(striped, b.slot ?? -1, b.epoch), box: (id) => striping.stripes.shard(id) };
  }

  private async auditOne(b: BuddyState, latest: number | null, striped: number[]): Promise<AuditOutcome> {
    const node = this.o.ship.node;
    const r = await auditBuddy(node, b.peer, b.epoch, this.challenge(b, striped));
    this.halt.signal.throwIfAborted();
    (r.verdict === 'passed' ? this.o.log : this.o.log.warn)(`audit of ${b.peer} at epoch ${b.epoch}: ${r.verdict}, ${r.sampled} sampled, ${r.missing} missing${r.error ? `: ${r.error}` : ''} (${r.ms.toFixed(0)} ms)`);
    prepared(this.db, 'INSERT INTO audits (peer, time, verdict, sampled, missing, error) VALUES (?, ?, ?, ?, ?, ?)').run(b.peer, Date.now(), r.verdict, r.sampled, r.missing, r.error ?? null);
    prepared(this.db, 'DELETE FROM audits WHERE rowid <= (SELECT max(rowid) FROM audits) - ?').run(AUDITS_KEPT);
    if (r.verdict === 'failed') {
      this.retire(b.peer, `failed an audit: ${r.error}`);
      return { ...r, action: 'replaced' };
    }
    if (r.verdict === 'unreachable') {
      prepared(this.db, 'UPDATE buddies SET last_error = ?, fails = fails + 1 WHERE peer = ?').run(`audit: ${r.error}`, b.peer);
      return { ...r, action: this.retireSilent().includes(b.peer) ? 'replaced' : 'retry later' };
    }
    prepared(this.db, 'UPDATE buddies SET last_ok = ? WHERE peer = ?').run(Date.now(), b.peer);
    if (b.epoch !== latest) return { ...r, action: 'kept' };
    let client: RestoreClient | null = null;
    try {
      client = await RestoreClient.open(node, b.peer, AbortSignal.timeout(30_000));
      const rec = await reconcile(client, this.expected(b));
      await client.close();
      client = null;
      const reconciled = { held: rec.held, lacking: rec.lacking, surplus: rec.surplus.length };
      if (rec.lacking === 0 && rec.surplus.length === 0) return { ...r, reconciled, action: 'kept' };
      this.o.log(`reconciling ${b.peer}: it lacks ${rec.lacking} chunks and keeps ${rec.surplus.length} we no longer name`);
      // Lacking chunks: a full shipment offers every id again and it takes what it lacks.
      const fixed = await this.shipTo({ ...b, epoch: rec.lacking > 0 ? 0 : b.epoch }, b.epoch, { ...this.o.rootBlock(b.epoch), buddies: await this.rootBuddies() }, rec.surplus);
      return { ...r, reconciled, action: fixed.ok ? 'reshipped' : 'retry later' };
    } catch (err) {
      await client?.close();
      this.halt.signal.throwIfAborted();
      this.o.log.warn(`reconciling ${b.peer} failed: ${(err as Error).message}`);
      return { ...r, action: 'retry later' };
    }
  }

  private retire(peer: string, why: string): void {
    prepared(this.db, 'UPDATE buddies SET retired = 1, last_error = ? WHERE peer = ?').run(why, peer);
    this.o.log.warn(`buddy ${peer} replaced: ${why}`);
  }

  /** Retires buddies that have failed for longer than the silence threshold; returns them. */
  private retireSilent(): string[] {
    const now = Date.now();
    const silent = this.buddies().filter((b) => isSilent(b, now, this.o.silenceMs ?? DEFAULT_SILENCE_MS));
    for (const b of silent) this.retire(b.peer, `silent since ${new Date(b.lastOk ?? b.chosen).toISOString()}`);
    return silent.map((b) => b.peer);
  }

  /** In the background: after a snapshot, or when a retry is due; outside the ship window, once it opens. */
  kick(): void {
    if (this.halt.signal.aborted) return;
    const opens = closedUntil(this.o.window ?? null);
    if (opens) {
      if (this.windowTimer) return;
      this.o.log(`shipping waits for the ship window ${this.o.window!.text} (opens ${opens.toLocaleString()})`);
      this.windowTimer = setTimeout(() => {
        this.windowTimer = null;
        this.kick();
      }, opens.getTime() - Date.now() + 1000);
      this.windowTimer.unref();
      return;
    }
    this.sync(true).catch((err: Error) => this.o.log.warn(`sync ${this.halt.signal.aborted ? 'stopped' : 'failed'}: ${err.message}`));
  }

  /**
   * No sync or audit starts any more, and the one under way gives up at its next step (its
   * streams end with the node): resolves once it has, so the store can close after.
   */
  stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.halt.abort(new Error('the daemon is stopping'));
    return this.turn.then(() => {});
  }

  /** Probes every member we know (and the ones they name): coverage, space, latency. */
  async refreshMembers(): Promise<Member[]> {
    const ids = fingerprint(this.db);
    const seen = new Set<string>();
    const failed = new Set<string>();
    let queue = [...new Set([...listMembers(this.db).map((m) => m.peer), ...this.o.knownPeers()])];
    const node = this.o.ship.node;
    while (queue.length > 0) {
      const next: string[] = [];
      await Promise.all(
        queue.map(async (target) => {
          if (seen.has(target)) return;
          seen.add(target);
          try {
            const peer = target.startsWith('/') ? await node.connect(target) : target;
            if (peer === node.peerId) return;
            seen.add(peer);
            const r = await probe(node, peer, ids, AbortSignal.any([this.halt.signal, AbortSignal.timeout(10_000)]));
            this.halt.signal.throwIfAborted();
            const addrs = await node.addressesOf(peer);
            noteMember(this.db, peer, {
              addrs, offer: r.offer, free: r.free, coverage: ids.length ? r.covered / ids.length : 0, rtt: r.rtt, lastSeen: Date.now(),
              network: addrs.map(networkOf).find((n) => n !== null) ?? null,
            });
            for (const m of r.members) {
              if (m.peer === node.peerId) continue;
              // Addresses change (a member behind NAT gets a relayed one): learn them every time.
              noteMember(this.db, m.peer, { addrs: m.addrs });
              await node.learn(m.peer, m.addrs);
              // A member we had not heard of, or one we could not reach this round with what
              // we knew: what this member knows of it may reach it.
              if (seen.has(m.peer) && !failed.delete(m.peer)) continue;
              seen.delete(m.peer);
              next.push(m.peer);
            }
          } catch (err) {
            if (!target.startsWith('/')) failed.add(target);
            if (!this.halt.signal.aborted) this.o.log.warn(`probe of ${target} failed: ${(err as Error).message}`);
          }
        }),
      );
      queue = next;
    }
    return listMembers(this.db);
  }

  /** Places to fill now (a lazy repair threshold leaves some empty until it is crossed). */
  private vacant(): boolean {
    return vacancies(this.o.scheme, this.buddies().length, this.o.repairThreshold) > 0;
  }

  /** Keeps healthy buddies, fills vacancies with the best candidates, spread over networks. */
  private choose(members: Member[]): BuddyState[] {
    const current = this.buddies();
    const scheme = this.o.scheme;
    const need = vacancies(scheme, current.length, this.o.repairThreshold);
    if (need <= 0) return current;
    const taken = new Set(current.map((b) => b.peer));
    const retired = new Set(this.buddies(true).filter((b) => b.retired).map((b) => b.peer));
    const network = new Map(members.map((m) => [m.peer, m.network]));
    const node = this.o.ship.node;
    const relayed = (m: Member): number => Number(node.peers().includes(m.peer) && !node.directTo(m.peer));
    const candidates = members
      .filter((m) => !taken.has(m.peer) && !retired.has(m.peer) && m.peer !== this.o.ship.node.peerId && m.coverage !== null && (m.free ?? 0) > 0)
      // At equal coverage a member we reach directly beats one behind a relay, whose every
      // byte the relay's owner pays for twice.
      .sort((a, b) => (b.coverage ?? 0) - (a.coverage ?? 0) || relayed(a) - relayed(b) || (b.free ?? 0) - (a.free ?? 0) || (a.rtt ?? Infinity) - (b.rtt ?? Infinity) || a.peer.localeCompare(b.peer));
    const placed = current.map((b) => network.get(b.peer) ?? null);
    const picks = pickHolders(candidates, need, (m) => m.network, placed, networkCaps(scheme));
    const now = Date.now();
    // Stripes: each new buddy takes a slot no current buddy holds (a replacement, its
    // predecessor's), and a full shipment gives it that slot's shard of every stripe.
    const used = new Set(current.map((b) => b.slot));
    let free = 0;
    for (const p of picks) {
      let slot: number | null = null;
      if (scheme.kind === 'rs') {
        while (used.has(free)) free++;
        slot = free++;
      }
      prepared(this.db, 'INSERT INTO buddies (peer, chosen, slot) VALUES (?, ?, ?) ON CONFLICT (peer) DO UPDATE SET retired = 0, chosen = excluded.chosen, fails = 0, slot = excluded.slot, epoch = 0')
        .run(p.peer, now, slot);
      this.o.log(`chose buddy ${p.peer} (coverage ${((p.coverage ?? 0) * 100).toFixed(0)}%, free ${p.free})`);
    }
    return this.buddies();
  }

  private async run(patient = false): Promise<SyncOutcome> {
    const epoch = this.o.latest();
    if (epoch === null) return { epoch: null, buddies: [], short: 0 };
    await this.o.flush();
    await this.o.ship.node.configuredDialed;
    this.halt.signal.throwIfAborted();
    this.retireSilent();
    let members = listMembers(this.db);
    if (this.vacant() || members.length === 0) members = await this.refreshMembers();
    this.halt.signal.throwIfAborted();
    const outcome: SyncOutcome = { epoch, buddies: [], short: 0 };
    const done = new Set<string>();
    if (patient) {
      const now = Date.now();
      for (const b of this.buddies()) if (b.lastTry !== null && now - b.lastTry < backoff(b)) done.add(b.peer);
      if (done.size > 0) this.leftOut.add(outcome);
    }
    // A buddy that refuses is replaced and the replacement shipped to, a few rounds at most.
    for (let round = 0; round < 4; round++) {
      const set = this.choose(members).filter((b) => !done.has(b.peer));
      if (set.length === 0) break;
      const root = { ...this.o.rootBlock(epoch), buddies: await this.rootBuddies() };
      const results = await Promise.all(set.map((b) => this.shipTo(b, epoch, root)));
      this.halt.signal.throwIfAborted();
      let refused = false;
      for (const r of results) {
        done.add(r.peer);
        outcome.buddies.push(r);
        if (!r.ok && r.replaced) refused = true;
      }
      if (!refused) break;
      members = await this.refreshMembers();
      this.halt.signal.throwIfAborted();
    }
    outcome.short = Math.max(0, this.wanted - this.buddies().length);
    this.drainLogs();
    this.scheduleRetry();
    if (this.again) setImmediate(() => this.kick());
    return outcome;
  }

  private async rootBuddies(): Promise<RootBlock['buddies']> {
    return Promise.all(this.buddies().map(async (b) => ({ peer: b.peer, addrs: await this.o.ship.node.addressesOf(b.peer), ...(b.slot === null ? {} : { slot: b.slot }) })));
  }

  private async shipTo(b: BuddyState, epoch: number, root: RootBlock, drop?: Buffer[]): Promise<SyncOutcome['buddies'][number]> {
    const cursor: BuddyCursor = { epoch: b.epoch, releasedSeq: b.releasedSeq, droppedSeq: b.droppedSeq, snapshots: b.snapshots };
    prepared(this.db, 'UPDATE buddies SET last_try = ? WHERE peer = ?').run(Date.now(), b.peer);
    const startedAt = Date.now();
    try {
      const report = await shipSnapshot(this.o.ship, b.peer, epoch, cursor, root, {
        signal: AbortSignal.any([this.halt.signal, AbortSignal.timeout(6 * 3600_000)]), drop, slot: b.slot ?? undefined,
        onProgress: (p) => this.underway.set(b.peer, { peer: b.peer, epoch, startedAt, updatedAt: Date.now(), ...p }),
      });
      const earlier = this.lastWork.get(b.peer);
      if (report.already && earlier?.epoch === epoch) return { peer: b.peer, ok: true, report: { ...earlier, already: true } };
      this.lastWork.set(b.peer, report);
      const c = report.cursor;
      prepared(this.db, 'UPDATE buddies SET epoch = ?, released_seq = ?, dropped_seq = ?, snapshots = ?, last_ok = ?, last_error = NULL, fails = 0, shipped = shipped + ? WHERE peer = ?')
        .run(c.epoch, c.releasedSeq, c.droppedSeq, c.snapshots, Date.now(), report.bytes, b.peer);
      this.o.log(`shipped epoch ${epoch} to ${b.peer}: ${report.chunksSent}/${report.chunksOffered} chunks, ${report.objectsSent} objects, ${report.deletes} deletes, ${report.bytes} bytes in ${report.ms.toFixed(0)} ms${report.full ? ' (full)' : ''}`);
      return { peer: b.peer, ok: true, report };
    } catch (err) {
      // Cut off by our own stop: not the buddy's failure, and the store may be closing.
      if (this.halt.signal.aborted) return { peer: b.peer, ok: false, error: 'stopped', replaced: false };
      const msg = (err as Error).message;
      const refused = err instanceof BuddyRefusedError;
      prepared(this.db, 'UPDATE buddies SET last_error = ?, fails = fails + 1, retired = ? WHERE peer = ?').run(msg, refused ? 1 : 0, b.peer);
      this.o.log.warn(`shipping epoch ${epoch} to ${b.peer} failed: ${msg}${refused ? ' (replacing it)' : ''}`);
      return { peer: b.peer, ok: false, error: refused ? `refused: ${msg}` : msg, replaced: refused };
    } finally {
      this.underway.delete(b.peer);
    }
  }

  /** Shipments under way: how far, how fast since they began, and about how long until done. */
  shipments(): Shipment[] {
    const now = Date.now();
    return [...this.underway.values()].map((s) => {
      // Up to the last count, not up to now: between counts (a message every few seconds
      // under a cap) the bytes would seem to stand still.
      const seconds = Math.max(0.001, (s.updatedAt - s.startedAt) / 1000);
      const left = s.done > 0 && s.total > s.done ? Math.max(0, (seconds * (s.total - s.done)) / s.done - (now - s.updatedAt) / 1000) : null;
      return { ...s, rate: s.bytes / seconds, etaSeconds: left };
    });
  }

  /** Log entries every active buddy was told can go. */
  private drainLogs(): void {
    const b = this.buddies();
    if (b.length === 0) return;
    // Dead stripes: dropped once every buddy committed a state without them (one behind could
    // still be the newest root block a recovery finds enough holders of).
    this.o.ship.striping?.stripes.logDrops(Math.min(...b.map((x) => x.epoch)), (stripe) => this.o.ship.meta.logStripeDrop(stripe));
    const released = Math.min(...b.map((x) => x.releasedSeq));
    const dropped = Math.min(...b.map((x) => x.droppedSeq));
    this.db.transaction(() => {
      this.store.drainReleased(released);
      this.o.ship.meta.drain(dropped);
    }).immediate();
  }

  private scheduleRetry(): void {
    if (this.halt.signal.aborted) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const latest = this.o.latest();
    const behind = this.buddies().filter((b) => b.epoch !== latest);
    if (latest === null || (behind.length === 0 && !this.vacant())) return;
    // When the first buddy behind is due, counted from its last try: patient runs in between
    // must not push the retry further out. A vacancy alone: the shortest backoff.
    const now = Date.now();
    const due = behind.map((b) => (b.lastTry ?? now) + Math.max(BACKOFF_MIN, backoff(b)) - now);
    const delay = Math.max(1000, due.length > 0 ? Math.min(...due) : BACKOFF_MIN);
    this.retryTimer = setTimeout(() => this.kick(), delay);
    this.retryTimer.unref();
  }
}

