// snapshot, snapshots, forget, diff, restore.
import { existsSync, lstatSync, readdirSync, realpathSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { ChunkStore } from '../chunkstore/store.js';
import type { StoreKeys } from './open-store.js';
import { ROOT, type Tree } from '../snapshot/tree.js';
import { resolveSnapshot, snapshotHistory, validLabel, type SnapshotInfo } from '../snapshot/snapshots.js';
import { diffEpochs } from '../snapshot/diff.js';
import type { Policy } from '../snapshot/retention.js';
import { Staging } from '../fs/staging.js';
import { formatBytes, loadConfig, paths, safeHome } from './config.js';
import { callDaemon, type Request } from './control.js';
import { UserError } from './errors.js';
import { Progress } from './progress.js';
import { Restorer } from './restore.js';
import type { Out } from './commands-store.js';

async function daemon(req: Request): Promise<unknown> {
  const home = safeHome();
  loadConfig(home);
  const reply = await callDaemon(paths(home).socket, req);
  if (!reply) throw new UserError('the daemon is not running: run safe mount first');
  if (!reply.ok) throw new UserError(reply.error);
  return reply.data;
}

// The store (SQLite, its cipher, the keys) loads only for commands that read it here; the ones
// the daemon answers (snapshot, forget) start in a third of the time without it.
async function withTree<T>(fn: (tree: Tree, store: ChunkStore, keys: StoreKeys) => T | Promise<T>): Promise<T> {
  const [{ openHostStore }, { Tree }] = await Promise.all([import('./open-store.js'), import('../snapshot/tree.js')]);
  const { store, keys } = await openHostStore(safeHome());
  try {
    return await fn(new Tree(store.db, store), store, keys);
  } finally {
    store.close();
  }
}

function mustFind(tree: Tree, name: string): SnapshotInfo {
  const s = resolveSnapshot(tree.db, name);
  if (!s) throw new UserError(`no snapshot named '${name}' (see safe snapshots)`);
  return s;
}

export async function snapshot(label: string | undefined, out: Out): Promise<void> {
  if (label !== undefined && !validLabel(label)) throw new UserError(`bad label '${label}': letters, digits, '.', '_' and '-' only, up to 64`);
  const r = (await daemon({ cmd: 'snapshot', label })) as { name: string; ms: number };
  out.print(r.name, r);
}

export async function snapshots(out: Out): Promise<void> {
  await withTree((tree) => {
    const rows = snapshotHistory(tree.db);
    const human = rows.length === 0 ? 'no snapshots yet (safe snapshot takes one)' :
      rows.map((r) => `${r.name.padEnd(40)} ${new Date(r.time).toISOString()}  ${(r.label ?? '').padEnd(16)} ${formatBytes(r.changedBytes)} changed`).join('\n');
    out.print(human, rows);
  });
}

export async function forget(policy: Policy, dryRun: boolean, allowAll: boolean, out: Out): Promise<void> {
  if (Object.values(policy).every((v) => v === undefined)) throw new UserError('say what to keep: --keep-last, --keep-hourly, --keep-daily, --keep-weekly or --keep-monthly');
  for (const [k, v] of Object.entries(policy)) if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new UserError(`--keep-${k} takes a whole number`);
  const r = (await daemon({ cmd: 'forget', policy, dryRun, allowAll })) as { keep: string[]; forget: string[]; gc?: { bytesFreed: number } | null };
  const lines = [...r.keep.map((n) => `keep   ${n}`), ...r.forget.map((n) => `${dryRun ? 'would forget' : 'forget'} ${n}`)];
  if (r.gc) lines.push(`freed ${formatBytes(r.gc.bytesFreed)}`);
  out.print(lines.join('\n'), r);
}

export async function diff(a: string, b: string, out: Out): Promise<void> {
  await withTree((tree) => {
    const sa = mustFind(tree, a);
    const sb = mustFind(tree, b);
    const forward = sa.epoch <= sb.epoch;
    const d = forward ? diffEpochs(tree.db, sa.epoch, sb.epoch) : diffEpochs(tree.db, sb.epoch, sa.epoch);
    const r = forward ? d : { added: d.removed, removed: d.added, modified: d.modified };
    const lines = [...r.added.map((p) => `+ ${p}`), ...r.removed.map((p) => `- ${p}`), ...r.modified.map((p) => `M ${p}`)].sort((x, y) => (x.slice(2) < y.slice(2) ? -1 : 1));
    out.print(lines.length ? lines.join('\n') : 'no changes', { from: sa.name, to: sb.name, ...r });
  });
}

/** Where a path is relative to the mount: outside it, in the live tree, or under .snapshots. */
function placeOf(path: string, mount: string): 'outside' | 'live' | 'snapshots' {
  // Resolve what exists of the path (a symlink may lead in or out), then add the rest.
  let known = path;
  const rest: string[] = [];
  while (!existsSync(known) && dirname(known) !== known) {
    rest.unshift(basename(known));
    known = dirname(known);
  }
  const real = join(realpathSync(known), ...rest);
  const root = existsSync(mount) ? realpathSync(mount) : resolve(mount);
  if (real !== root && !real.startsWith(root + sep)) return 'outside';
  const inner = real.slice(root.length + 1);
  return inner === '.snapshots' || inner.startsWith('.snapshots' + sep) ? 'snapshots' : 'live';
}

export async function restore(spec: string, target: string | undefined, overwrite: boolean, out: Out): Promise<void> {
  if (!target) throw new UserError('restore needs --target DIR');
  const home = safeHome();
  const cfg = loadConfig(home);
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const inner = colon < 0 ? '/' : spec.slice(colon + 1) || '/';
  const dest = resolve(target);
  const place = placeOf(dest, cfg.mount);
  if (place === 'snapshots') throw new UserError(`the restore target ${dest} is under .snapshots, which is read-only: restore into the live tree or outside the mount`);
  if (place === 'live' && !(await callDaemon(paths(home).socket, { cmd: 'status' }, 10_000))?.ok) {
    throw new UserError(`the restore target ${dest} is inside the mount ${cfg.mount}, which is not mounted: run safe mount first`);
  }
  const where = await withTree((tree) => {
    const snap = mustFind(tree, name);
    let ino = ROOT;
    for (const part of inner.split('/').filter(Boolean)) {
      const next = tree.lookup(ino, Buffer.from(part), snap.epoch);
      if (next === undefined) throw new UserError(`${inner} is not in snapshot ${snap.name}`);
      ino = next;
    }
    const whole = ino === ROOT;
    const to = whole ? dest : resolve(dest, basename(inner));
    if (whole && place === 'live' && overwrite) throw new UserError('a whole snapshot cannot replace the live tree: restore a path in it (SNAPSHOT:PATH), or into a new directory');
    mkdirSync(dest, { recursive: true });
    if (whole && readdirSync(dest).length > 0) throw new UserError(`the restore target ${dest} is not empty`);
    if (!whole && existsSync(to) && !overwrite) throw new UserError(`${to} already exists: nothing was overwritten (--overwrite replaces it${place === 'live' ? ', after a snapshot keeps it' : ''})`);
    return { snap, ino, to };
  });
  // Chunks no longer here (a recovery still fetching, a damaged store) come from the buddies,
  // through the daemon, which holds the connections.
  const fetched = await callDaemon(paths(home).socket, { cmd: 'fetch', ino: where.ino, epoch: where.snap.epoch }, 24 * 3600_000);
  if (fetched && !fetched.ok) throw new UserError(`fetching the chunks of ${spec} from the buddies failed: ${fetched.error}`);
  const got = fetched?.data as { fetched: number; missing: number } | undefined;
  if (got && got.missing > 0) throw new UserError(`${got.missing} chunks of ${spec} are neither here nor on any reachable buddy: nothing was restored`);
  // What is replaced is kept first: in the live tree by a snapshot, in both cases by writing
  // the restored copy beside it and swapping it in only once it is whole.
  const replacing = existsSync(where.to) || isSymlink(where.to);
  const before = replacing && place === 'live' ? ((await daemon({ cmd: 'snapshot', label: 'before-restore' })) as { name: string }).name : null;
  await withTree((tree, store, keys) => {
    const staging = new Staging(paths(home).staging, 0, keys.stagingKey);
    const bar = new Progress('restore');
    const r = new Restorer(tree, store, staging, where.snap.epoch, (st) => bar.update(st.files, st.files + 1, `${st.files} files ${formatBytes(st.bytes)}`));
    const fresh = replacing ? join(dirname(where.to), `.${basename(where.to)}.safe-restore-${process.pid}`) : where.to;
    r.restore(where.ino, Buffer.from(fresh));
    if (replacing) {
      const old = join(dirname(where.to), `.${basename(where.to)}.safe-replaced-${process.pid}`);
      renameSync(where.to, old);
      renameSync(fresh, where.to);
      rmSync(old, { recursive: true, force: true });
    }
    bar.done();
    out.print(
      `restored ${where.snap.name}:${inner} to ${where.to}${replacing ? ' over what was there' : ''}: ${r.stats.files} files, ${r.stats.dirs} directories, ${r.stats.links} symlinks, ${formatBytes(r.stats.bytes)}${got?.fetched ? ` (${got.fetched} chunks fetched from buddies)` : ''}${before ? `; what it replaced is in snapshot ${before}` : ''}`,
      { snapshot: where.snap.name, path: inner, target: where.to, replaced: replacing, snapshotBefore: before, ...r.stats, fetched: got?.fetched ?? 0 },
    );
  });
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
