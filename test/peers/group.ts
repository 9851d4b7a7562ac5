// A backup group of real daemons on 127.0.0.1 for tests: each host its own SAFE_HOME, mount,
// port and process, all in one group, bootstrapped from the first host's address.
import type { Db } from '../../src/chunkstore/index-db.js';
import { openIndex } from '../helpers.js';
import { createServer } from 'node:net';
import { makeHost, type Host } from '../fs/mounted.js';

export const GROUP = { name: 'test-group', password: 'group password' };

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

export async function makeMember(name: string, o: { offer: string; buddies?: number; peers?: string[]; env?: NodeJS.ProcessEnv; group?: string }): Promise<Member> {
  const port = await freePort();
  const addr = `/ip4/127.0.0.1/tcp/${port}`;
  // No mDNS: test traffic stays on loopback.
  const initArgs = ['--group', o.group ?? GROUP.name, '--offer', o.offer, '--listen', addr, '--buddies', String(o.buddies ?? 2), '--no-mdns'];
  for (const p of o.peers ?? []) initArgs.push('--peer', p);
  const h = makeHost({ host: name, initArgs, env: { SAFE_GROUP_PASSWORD: GROUP.password, ...o.env } });
  let id: string | null = null;
  return {
    ...h,
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
