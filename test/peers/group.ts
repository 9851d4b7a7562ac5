// A backup group of real daemons on 127.0.0.1 for tests: each host its own SAFE_HOME, mount,
// port and process, all in one group, bootstrapped from the first host's address.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Db } from '../../src/chunkstore/index-db.js';
import type { ShipReport } from '../../src/peers/host/shipper.js';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { makeHost, type Host } from '../fs/mounted.js';
import { openIndex, seededBytes } from '../helpers.js';
import { assertSameTree } from '../soak/manifest.js';

export const GROUP = { name: 'test-group', password: 'group password' };

const PEERS_READY = new URL('../fixtures/peers-ready.js', import.meta.url).pathname;

/** What `safe sync --wait --json` prints, as tests read it. */
export interface SyncJson {
  epoch: number;
  buddies: { peer: string; ok: boolean; error?: string; report?: ShipReport }[];
}

export const syncWait = (h: { ok(...a: string[]): string }): SyncJson => JSON.parse(h.ok('sync', '--wait', '--json')) as SyncJson;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Member extends Host {
  name: string;
  port: number;
  addr: string;
  peerId(): string;
}

export async function makeMember(
  name: string,
  o: {
    offer: string; buddies?: number; redundancy?: string; peers?: string[]; env?: NodeJS.ProcessEnv; group?: string; dir?: string; initArgs?: string[];
    /** In a network namespace, listening on this IPv4 address (port 4747). */
    netns?: { name: string; ip: string };
  },
): Promise<Member> {
  const port = o.netns ? 4747 : await freePort();
  const addr = `/ip4/${o.netns?.ip ?? '127.0.0.1'}/tcp/${port}`;
  // No mDNS: test traffic stays on loopback.
  const spread = o.redundancy ? ['--redundancy', o.redundancy] : ['--buddies', String(o.buddies ?? 2)];
  const initArgs = ['--group', o.group ?? GROUP.name, '--offer', o.offer, '--listen', addr, ...spread, '--no-mdns'];
  for (const p of o.peers ?? []) initArgs.push('--peer', p);
  initArgs.push(...(o.initArgs ?? []));
  const h = makeHost({ host: name, initArgs, env: { SAFE_GROUP_PASSWORD: GROUP.password, ...o.env }, dir: o.dir, netns: o.netns?.name });
  let id: string | null = null;
  return {
    ...h,
    // `safe mount` returns once the folder is up; the peer service follows. Members in tests
    // are dialled at once by the next one: status answers once the service listens.
    mount() {
      h.mount();
      const ready = spawnSync(process.execPath, [PEERS_READY], { env: h.env, encoding: 'utf8' });
      assert.equal(ready.status, 0, `${name}: the daemon did not answer once mounted: ${ready.stderr}`);
    },
    name,
    port,
    addr,
    peerId() {
      id ??= (h.status() as unknown as { daemon: { peers: { peerId: string } } }).daemon.peers.peerId;
      return id;
    },
  };
}

/** A member with its daemon up. */
export async function mountedMember(name: string, o: Parameters<typeof makeMember>[1]): Promise<Member> {
  const m = await makeMember(name, o);
  m.mount();
  return m;
}

/** What `safe status --json` says of a recovery's background fetch. */
export interface Fetching {
  daemon: { pid: number; peers: { fetching: boolean; backfill: { chunksFetched: number } | null } } | null;
}

/**
 * A host ships `size` bytes of data.bin to a buddy that serves slowly, loses its disk, and
 * recovers with --no-wait: the mount is up, most chunks are still on the buddy. The buddy sends
 * at most `maxUpload` (its `safe init --max-upload`): at the default 8M (8 MB/s) each 4 MiB page
 * of chunks takes half a second, whichever of the recovery's two streams asked for it.
 */
export async function recoveringFromSlowBuddy(size: number, seed: number, maxUpload = '8M'): Promise<{ a: Member; data: Buffer; total: number }> {
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: ['--max-upload', maxUpload] });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 1, peers: [c.addr] });
  const data = seededBytes(size, seed);
  writeFileSync(join(a.mnt, 'data.bin'), data);
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');
  const total = (a.status() as unknown as { store: { chunks: number } }).store.chunks;
  a.unmount();
  spawnSync('rm', ['-rf', a.home]);
  a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--no-wait');
  return { a, data, total };
}

/** Read-only look at a host's index (fine while its daemon runs: WAL readers do not block). */
export function withDb<T>(h: Host, fn: (db: Db) => T): T {
  const db = openIndex(h);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Chunk ids (hex) every row born by the latest snapshot names: what buddies must hold. */
export function shippedIds(h: Host): Set<string> {
  return withDb(h, (db) => {
    const e = db.prepare('SELECT max(epoch) FROM snapshots').pluck().get() as number;
    const ids = db.prepare('SELECT DISTINCT c.id FROM crefs c JOIN inodes i ON i.cl = c.cl WHERE i.born <= ?').pluck().all(e) as Buffer[];
    return new Set(ids.map((x) => x.toString('hex')));
  });
}

/** Chunk ids (hex) buddy `b` holds for the host with PeerId `owner`. */
export function heldIds(b: Host, owner: string): Set<string> {
  return withDb(b, (db) => {
    const ids = db.prepare('SELECT r.id FROM owner_refs r JOIN held_owners o ON o.owner = r.owner WHERE o.peer = ?').pluck().all(owner) as Buffer[];
    return new Set(ids.map((x) => x.toString('hex')));
  });
}

/** Writes to a host's index while its daemon is down: what a faulty or dishonest disk does. */
export function tamper(h: Host, fn: (db: Db) => void): void {
  const db = openIndex(h, { readonly: false });
  try {
    fn(db);
  } finally {
    db.close();
  }
}

/** One buddy's line of `safe verify --remote --json`, as tests read it. */
export interface Audit {
  peer: string;
  verdict: 'passed' | 'failed' | 'unreachable';
  sampled: number;
  missing: number;
  action: string;
  reconciled?: { held: number; lacking: number; surplus: number };
}

/** `safe verify --remote --json` on host `h`: its exit status and each buddy's audit. */
export function remoteAudit(h: Host): { status: number | null; audits: Audit[]; out: string } {
  const r = h.safe('verify', '--remote', '--json');
  return { status: r.status, audits: (JSON.parse(r.stdout) as { remote: { buddies: Audit[] } }).remote.buddies, out: r.stdout + r.stderr };
}

/** Two trees are the same: `diff -r` of contents, then modes, times and links. */
export function sameTree(a: string, b: string, what: string): void {
  const d = spawnSync('diff', ['-r', '--no-dereference', '-x', '.snapshots', a, b], { encoding: 'utf8' });
  assert.equal(d.status, 0, `${what}: ${d.stdout}${d.stderr}`);
  assertSameTree(a, b, what);
}
