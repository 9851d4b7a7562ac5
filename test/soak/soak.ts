// The soak (issue 16): three hosts of one group, each the other two's buddy, real daemons on
// 127.0.0.1, under seeded random work for a while: files and directories written, rewritten,
// appended, truncated, renamed, linked and deleted, snapshots taken and forgotten, syncs,
// buddies restarted (some stay down a few steps), audits. Every snapshot is copied out right
// after it is taken (and must equal the live tree then); at the end every host is recovered on
// a blank host from hostname and passphrase, and each snapshot it kept must equal its copy.
// SAFE_SOAK_SEED replays a run (the same steps, as far as the time allows), SAFE_SOAK_SECONDS
// sets how long the random work lasts, SAFE_SOAK_ROUNDS caps its steps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, chmodSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, setConfig } from '../fs/mounted.js';
import { campaign, seededBytes, tempDir } from '../helpers.js';
import { freePort, GROUP, makeMember, type Member } from '../peers/group.js';
import { assertSameTree } from './manifest.js';

export interface SoakReport {
  seed: number;
  steps: Record<string, number>;
  snapshots: number;
  forgotten: number;
  bytesWritten: number;
  recoveries: number;
  snapshotsRecovered: number;
  seconds: number;
}

interface Soaker {
  m: Member;
  peer: string;
  up: boolean;
  /** Down until this step (a restart that leaves the host away for a while). */
  downUntil: number;
  /** Snapshot name -> its reference copy, for the snapshots the host keeps. */
  refs: Map<string, string>;
  names: number;
  /** A sync of this host has reached a buddy: an audit has something to check. */
  shipped: boolean;
}

/** Work stops adding data to a host past this much live data (deletions take over). */
const LIVE_CAP = 24 << 20;
/** Snapshots a host keeps at most; past that the next snapshot step forgets instead. */
const KEPT_CAP = 8;
/** Contents shared across hosts (same bytes, same chunks): dedup across owners on the buddies. */
const SHARED_SEEDS = [11, 22, 33, 44, 55, 66];

const WEIGHTS: [string, number][] = [
  ['write', 18], ['overwrite', 8], ['append', 6], ['truncate', 3], ['delete', 6], ['rename', 6], ['mkdir', 4], ['rmtree', 1],
  ['symlink', 2], ['link', 2], ['chmod', 3], ['snapshot', 10], ['forget', 3], ['sync', 5], ['restart', 3], ['audit', 2],
];

interface Json { [k: string]: unknown }

export async function soak(seconds: number): Promise<SoakReport> {
  const { seed, random, next } = campaign('SAFE_SOAK', 1_000_000, seconds);
  const t0 = Date.now();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const chance = (p: number): boolean => random() < p;
  const report: SoakReport = { seed, steps: {}, snapshots: 0, forgotten: 0, bytesWritten: 0, recoveries: 0, snapshotsRecovered: 0, seconds: 0 };
  const refRoot = tempDir('safe-soak-ref-');

  const hosts: Soaker[] = [];
  for (const name of ['soak-a', 'soak-b', 'soak-c']) {
    const m = await makeMember(name, { offer: '2G', buddies: 2, peers: hosts.map((h) => h.m.addr) });
    // No scheduled snapshot (its retention would forget snapshots the soak holds copies of).
    setConfig(m, { schedule: '0 0 1 1 *' });
    m.mount();
    mkdirSync(join(refRoot, name));
    hosts.push({ m, peer: m.peerId(), up: true, downUntil: 0, refs: new Map(), names: 0, shipped: false });
  }
  const json = (h: Soaker, ...args: string[]): Json => JSON.parse(h.m.ok(...args, '--json')) as Json;
  // Each host knows the other two before its first shipment chooses buddies.
  for (const h of hosts) {
    for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 500))) {
      if ((json(h, 'peers').members as unknown[]).length === 2) break;
      assert.ok(Date.now() < deadline, `${h.m.name} sees the two other members: ${h.m.ok('peers')}`);
    }
  }

  let where = '';
  const live = (h: Soaker) => {
    const files: string[] = [];
    const dirs: string[] = [''];
    const links: string[] = [];
    let bytes = 0;
    const walk = (rel: string): void => {
      for (const name of readdirSync(join(h.m.mnt, rel)).sort()) {
        if (rel === '' && name === '.snapshots') continue;
        const p = rel ? `${rel}/${name}` : name;
        const st = lstatSync(join(h.m.mnt, p));
        if (st.isDirectory()) {
          dirs.push(p);
          walk(p);
        } else if (st.isSymbolicLink()) links.push(p);
        else {
          files.push(p);
          bytes += st.size;
        }
      }
    };
    walk('');
    return { files, dirs, links, bytes };
  };
  /** Random, compressible or shared bytes: up to 128 KiB, a tenth of the time 1-4 MiB. */
  const content = (max = Infinity): Buffer => {
    const big = chance(0.1);
    const size = Math.min(max, big ? (1 << 20) + Math.floor(random() * (3 << 20)) : Math.floor(random() * (128 << 10)));
    report.bytesWritten += size;
    if (chance(0.3)) return seededBytes(size, pick(SHARED_SEEDS));
    if (chance(0.3)) return Buffer.from(`line ${Math.floor(random() * 1000)} of some text that compresses\n`.repeat(size / 40 + 1)).subarray(0, size);
    return seededBytes(size, Math.floor(random() * 2 ** 31) + 1);
  };
  const newName = (h: Soaker): string => (chance(0.1) ? `name with space é ${h.names++}` : `n${h.names++}`);

  const snapshot = (h: Soaker): void => {
    const name = json(h, 'snapshot').name as string;
    const ref = join(refRoot, h.m.name, name);
    const cp = spawnSync('cp', ['-a', join(h.m.mnt, '.snapshots', name), ref], { encoding: 'utf8' });
    assert.equal(cp.status, 0, `${where}: copying snapshot ${name} out: ${cp.stderr}`);
    // Nothing wrote since: the snapshot is the live tree.
    assertSameTree(h.m.mnt, ref, `${where}: snapshot ${name} against the live tree`);
    h.refs.set(name, ref);
    report.snapshots++;
  };
  const forget = (h: Soaker, keep: number): void => {
    const r = json(h, 'forget', '--keep-last', String(keep)) as { keep: string[]; forget: string[] };
    for (const name of r.forget) {
      assert.ok(h.refs.has(name), `${where}: forgot ${name}, a snapshot the soak did not take`);
      rmSync(h.refs.get(name)!, { recursive: true, force: true });
      h.refs.delete(name);
      report.forgotten++;
    }
    assert.deepEqual(r.keep.sort(), [...h.refs.keys()].sort(), `${where}: the snapshots kept`);
    assert.deepEqual(readdirSync(join(h.m.mnt, '.snapshots')).sort(), [...h.refs.keys()].sort(), `${where}: .snapshots after forget`);
  };
  /** Only buddies that are down may fail; with everyone up both buddies commit. */
  const sync = (h: Soaker): void => {
    const r = h.m.safe('sync', '--wait', '--json');
    let out: { epoch: number | null; buddies: { peer: string; ok: boolean; replaced?: boolean; error?: string }[] };
    try {
      out = JSON.parse(r.stdout);
    } catch {
      assert.fail(`${where}: safe sync --wait failed (${r.status}): ${r.stderr}`);
    }
    if (out.epoch === null) return;
    const down = new Set(hosts.filter((x) => !x.up).map((x) => x.peer));
    for (const b of out.buddies) assert.ok(b.ok || (down.has(b.peer) && !b.replaced), `${where}: sync: ${JSON.stringify(out)}`);
    if (out.buddies.some((b) => b.ok)) h.shipped = true;
    if (down.size === 0) {
      assert.equal(r.status, 0, `${where}: sync with everyone up: ${r.stderr}${r.stdout}`);
      assert.equal(out.buddies.filter((b) => b.ok).length, 2, `${where}: both buddies commit: ${r.stdout}`);
    }
  };
  const audit = (h: Soaker): void => {
    const r = h.m.safe('verify', '--remote', '--json');
    assert.equal(r.status, 0, `${where}: audit with everyone up: ${r.stderr}${r.stdout}`);
  };

  const step = (h: Soaker, kind: string, i: number): boolean => {
    const mnt = h.m.mnt;
    const at = (p: string): string => join(mnt, p);
    const t = live(h);
    const full = t.bytes > LIVE_CAP;
    switch (kind) {
      case 'write': {
        if (full) return false;
        writeFileSync(at(`${pick(t.dirs)}/${newName(h)}`), content());
        return true;
      }
      case 'overwrite': {
        if (t.files.length === 0 || full) return false;
        const f = at(pick(t.files));
        if (chance(0.5)) writeFileSync(f, content());
        else {
          // A write in the middle: the rest of the file stays.
          const fd = openSync(f, 'r+');
          const data = content(64 << 10);
          writeSync(fd, data, 0, data.length, Math.floor(random() * (lstatSync(f).size + 1)));
          closeSync(fd);
        }
        return true;
      }
      case 'append': {
        if (t.files.length === 0 || full) return false;
        appendFileSync(at(pick(t.files)), content(256 << 10));
        return true;
      }
      case 'truncate': {
        if (t.files.length === 0) return false;
        const f = at(pick(t.files));
        truncateSync(f, Math.floor(random() * (lstatSync(f).size + 1)));
        return true;
      }
      case 'delete': {
        const all = [...t.files, ...t.links];
        if (all.length === 0) return false;
        unlinkSync(at(pick(all)));
        return true;
      }
      case 'rename': {
        const from = pick([...t.files, ...t.links, ...t.dirs.slice(1)]);
        if (from === undefined) return false;
        const dirs = t.dirs.filter((d) => d !== from && !d.startsWith(`${from}/`));
        // A file sometimes replaces another.
        const over = !t.dirs.includes(from) && chance(0.3) ? t.files.filter((f) => f !== from) : [];
        renameSync(at(from), at(over.length > 0 ? pick(over) : `${pick(dirs)}/${newName(h)}`));
        return true;
      }
      case 'mkdir':
        mkdirSync(at(`${pick(t.dirs)}/${newName(h)}`));
        return true;
      case 'rmtree': {
        if (t.dirs.length < 2) return false;
        rmSync(at(pick(t.dirs.slice(1))), { recursive: true });
        return true;
      }
      case 'symlink':
        symlinkSync(chance(0.7) && t.files.length > 0 ? pick(t.files) : `dangling-${i}`, at(`${pick(t.dirs)}/${newName(h)}`));
        return true;
      case 'link': {
        if (t.files.length === 0) return false;
        linkSync(at(pick(t.files)), at(`${pick(t.dirs)}/${newName(h)}`));
        return true;
      }
      case 'chmod': {
        if (chance(0.7) && t.files.length > 0) chmodSync(at(pick(t.files)), pick([0o600, 0o640, 0o644, 0o755, 0o700]));
        else chmodSync(at(pick(t.dirs)), pick([0o755, 0o750, 0o700]));
        return true;
      }
      case 'snapshot':
        if (h.refs.size >= KEPT_CAP) forget(h, 1 + Math.floor(random() * 3));
        else snapshot(h);
        return true;
      case 'forget':
        if (h.refs.size === 0) return false;
        forget(h, 1 + Math.floor(random() * 3));
        return true;
      case 'sync':
        sync(h);
        return true;
      case 'restart': {
        h.m.unmount();
        h.up = false;
        // At most one host away at a time, so that every host keeps a buddy to ship to.
        const away = Math.floor(random() * 4);
        h.downUntil = hosts.some((x) => !x.up && x !== h) ? i : i + away;
        if (h.downUntil === i) {
          h.m.mount();
          h.up = true;
        }
        return true;
      }
      case 'audit':
        // Before its first shipment a host has no buddy to audit ("no buddy holds a snapshot").
        if (hosts.some((x) => !x.up) || !h.shipped) return false;
        audit(h);
        return true;
      default:
        throw new Error(`unknown step ${kind}`);
    }
  };

  const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
  for (let i = 0; next(i); i++) {
    for (const h of hosts) {
      if (!h.up && h.downUntil <= i) {
        h.m.mount();
        h.up = true;
      }
    }
    const up = hosts.filter((h) => h.up);
    const h = pick(up);
    let r = random() * total;
    const kind = WEIGHTS.find(([, w]) => (r -= w) < 0)![0];
    where = `SAFE_SOAK_SEED=${seed} step ${i} ${h.m.name} ${kind}`;
    try {
      if (step(h, kind, i)) report.steps[kind] = (report.steps[kind] ?? 0) + 1;
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  // Everyone up, the last changes in a snapshot of each, shipped to both buddies, audited.
  where = `SAFE_SOAK_SEED=${seed} at the end`;
  for (const h of hosts) {
    if (!h.up) {
      h.m.mount();
      h.up = true;
    }
  }
  for (const h of hosts) snapshot(h);
  for (const h of hosts) sync(h);
  for (const h of hosts) audit(h);

  // Each host lost and recovered on a blank one, from the other two: every kept snapshot, and
  // the live tree as of the last one, must be what it was.
  for (const h of hosts) {
    where = `SAFE_SOAK_SEED=${seed} recovering ${h.m.name}`;
    h.m.unmount();
    h.up = false;
    const blank = makeHost({ init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
    const other = hosts.find((x) => x !== h)!;
    const r = JSON.parse(
      blank.ok('recover', '--host', h.m.name, '--mount', blank.mnt, '--group', GROUP.name, '--peer', other.m.addr, '--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`, '--no-mdns', '--json'),
    ) as { missing: number; snapshots: number };
    assert.equal(r.missing, 0, `${where}: ${JSON.stringify(r)}`);
    const names = [...h.refs.keys()].sort();
    assert.deepEqual(readdirSync(join(blank.mnt, '.snapshots')).sort(), names, `${where}: the snapshots recovered`);
    for (const name of names) {
      assertSameTree(h.refs.get(name)!, join(blank.mnt, '.snapshots', name), `${where}: snapshot ${name}`);
      report.snapshotsRecovered++;
    }
    assertSameTree(h.refs.get(names.at(-1)!)!, blank.mnt, `${where}: the live tree`);
    assert.match(blank.ok('verify'), /no problems/, `${where}: verify`);
    blank.unmount();
    h.m.mount();
    h.up = true;
    report.recoveries++;
  }
  report.seconds = Math.round((Date.now() - t0) / 1000);
  return report;
}

/** The report as diagnostic lines, for the lead to quote. */
export function reportLines(r: SoakReport): string[] {
  const steps = Object.entries(r.steps).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(', ');
  const total = Object.values(r.steps).reduce((s, n) => s + n, 0);
  return [
    `SAFE_SOAK_SEED=${r.seed}: ${total} steps in ${r.seconds} s (setup and recoveries included)`,
    `steps: ${steps}`,
    `snapshots: ${r.snapshots} taken, ${r.forgotten} forgotten; ${(r.bytesWritten / 2 ** 20).toFixed(1)} MiB written`,
    `recoveries: ${r.recoveries} hosts recovered on a blank host, ${r.snapshotsRecovered} snapshots identical to their copies`,
  ];
}

/** The soak as a test of its own, `seconds` of random work unless SAFE_SOAK_SECONDS says otherwise. */
export function soakTest(seconds: number): void {
  const s = Number(process.env.SAFE_SOAK_SECONDS ?? seconds);
  // Set-up, the last syncs and three recoveries come on top of the random work.
  test(`soak: three hosts, ${s} s of random work, every kept snapshot of every host recovers identical`, { timeout: (s + 900) * 1000 }, async (t) => {
    for (const line of reportLines(await soak(s))) t.diagnostic(line);
  });
}
