// Snapshots through the real mount on random histories: each snapshot shows exactly the tree
// of its time, refuses writes, restores byte for byte with modes and times, diffs match a
// brute-force comparison, and forget + GC gives every chunk reference back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execSync } from 'node:child_process';
import { join } from 'node:path';
import { makeHost, setConfig } from './mounted.js';
import { tempDir, openIndex, storeKeyOf } from '../helpers.js';
import { HOST_SCHEMA } from '../../src/cli/host-schema.js';

interface Node { kind: 'dir' | 'file' | 'link'; mode: number; data?: string; mtime?: number }

function scan(root: string, withTimes = false): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      if (rel === '' && name === '.snapshots') continue;
      const p = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(join(root, p));
      const mtime = withTimes ? Math.floor(st.mtimeMs) : undefined;
      if (st.isDirectory()) {
        out.set(p, { kind: 'dir', mode: st.mode & 0o7777, mtime });
        walk(p);
      } else if (st.isSymbolicLink()) out.set(p, { kind: 'link', mode: 0, data: fs.readlinkSync(join(root, p)) });
      else out.set(p, { kind: 'file', mode: st.mode & 0o7777, data: fs.readFileSync(join(root, p)).toString('base64'), mtime });
    }
  };
  walk('');
  return out;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
}

test('snapshots of a random history: views, EROFS, restore, diff, forget', { timeout: 300_000 }, async () => {
  const seed = Number(process.env.SAFE_FUZZ_SEED ?? Date.now() % 100000);
  const h = makeHost({ delayMs: 30 });
  h.mount();
  const ref = tempDir('safe-ref-');
  const copies = tempDir('safe-copies-');
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const names = ['a', 'b', 'c', 'd'];
  const randPath = (): string => Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pick(names)).join('/');
  const snaps: { name: string; copy: string; touched: Set<string> }[] = [];
  try {
    for (let round = 0; round < 5; round++) {
      const touched = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const p = randPath();
        const q = randPath();
        const both = (f: (root: string) => void): void => {
          let e1: unknown, e2: unknown;
          try { f(ref); } catch (e) { e1 = (e as NodeJS.ErrnoException).code; }
          try { f(h.mnt); } catch (e) { e2 = (e as NodeJS.ErrnoException).code; }
          assert.equal(e2, e1, `op on ${p} (seed ${seed})`);
        };
        const r = rand();
        if (r < 0.35) {
          const data = `${p} round ${round} op ${i} `.repeat(1 + Math.floor(rand() * 3000));
          both((root) => fs.writeFileSync(join(root, p), data));
          touched.add(p);
        } else if (r < 0.45) {
          both((root) => fs.appendFileSync(join(root, p), 'more'));
          touched.add(p);
        } else if (r < 0.55) {
          const st = fs.existsSync(join(ref, p)) ? fs.lstatSync(join(ref, p)) : null;
          if (st?.isFile()) {
            both((root) => fs.renameSync(join(root, p), join(root, q)));
            touched.add(q);
          }
        } else if (r < 0.65) both((root) => fs.unlinkSync(join(root, p)));
        else if (r < 0.78) both((root) => fs.mkdirSync(join(root, p)));
        else if (r < 0.85) both((root) => fs.rmdirSync(join(root, p)));
        else if (r < 0.92) {
          const mode = pick([0o600, 0o640, 0o755]);
          both((root) => fs.chmodSync(join(root, p), mode));
          touched.add(p);
        } else {
          both((root) => fs.symlinkSync(`target-${i}`, join(root, p)));
        }
      }
      if (round % 2 === 1) await h.settle();
      const copy = join(copies, String(round));
      execSync(`cp -a ${ref} ${copy}`);
      const name = h.ok('snapshot').trim();
      snaps.push({ name, copy, touched });
    }
    // Every snapshot shows exactly its own time's tree (modes, content, links).
    const strip = (m: Map<string, Node>): Map<string, Node> => new Map([...m].map(([k, v]) => [k, { ...v, mtime: undefined }]));
    for (const s of snaps) assert.deepEqual(strip(scan(join(h.mnt, '.snapshots', s.name))), strip(scan(s.copy)), `snapshot ${s.name} (seed ${seed})`);
    assert.deepEqual(strip(scan(h.mnt)), strip(scan(ref)));

    // Read-only, whatever the write.
    const view = join(h.mnt, '.snapshots', snaps[0]!.name);
    assert.throws(() => fs.writeFileSync(join(view, 'new'), 'x'), /EROFS/);
    assert.throws(() => fs.mkdirSync(join(view, 'newdir')), /EROFS/);
    const anyFile = [...scan(view)].find(([, n]) => n.kind === 'file');
    if (anyFile) {
      assert.throws(() => fs.appendFileSync(join(view, anyFile[0]), 'x'), /EROFS/);
      assert.throws(() => fs.chmodSync(join(view, anyFile[0]), 0o777), /EROFS/);
      assert.throws(() => fs.unlinkSync(join(view, anyFile[0])), /EROFS/);
      assert.throws(() => fs.renameSync(join(view, anyFile[0]), join(h.mnt, 'stolen')), /EROFS|EXDEV/);
    }
    assert.ok(!fs.readdirSync(view).includes('.snapshots'), 'no .snapshots inside a snapshot');

    // Restore: byte for byte, with modes and times, equal to the view.
    for (const s of [snaps[1]!, snaps[4]!]) {
      const out = join(tempDir(), 'restored');
      h.ok('restore', s.name, '--target', out);
      assert.deepEqual(scan(out, true), scan(join(h.mnt, '.snapshots', s.name), true), `restore of ${s.name}`);
    }

    // Diff against brute force between consecutive snapshots.
    for (let i = 1; i < snaps.length; i++) {
      const a = scan(snaps[i - 1]!.copy), b = scan(snaps[i]!.copy);
      const expAdded = [...b.keys()].filter((k) => !a.has(k)).map((k) => '/' + k).sort();
      const expRemoved = [...a.keys()].filter((k) => !b.has(k)).map((k) => '/' + k).sort();
      const d = JSON.parse(h.ok('diff', snaps[i - 1]!.name, snaps[i]!.name, '--json')) as { added: string[]; removed: string[]; modified: string[] };
      // A name deleted and created again counts as modified in our diff.
      const changedKind = new Set(d.modified);
      assert.deepEqual(d.added, expAdded.filter((p) => !changedKind.has(p)), `added ${i} (seed ${seed})`);
      assert.deepEqual(d.removed, expRemoved.filter((p) => !changedKind.has(p)), `removed ${i} (seed ${seed})`);
      for (const [k, n] of b) {
        const o = a.get(k);
        if (o && n.kind === 'file' && (o.data !== n.data || o.mode !== n.mode || o.kind !== n.kind)) assert.ok(d.modified.includes('/' + k), `modified ${k} missing in diff ${i} (seed ${seed})`);
      }
    }

    // Forget everything, delete everything: every reference goes back, GC empties the packs.
    await h.settle();
    execSync(`rm -rf ${h.mnt}/*`);
    h.ok('forget', '--keep-last', '0', '--allow-empty');
    await h.settle();
    h.ok('forget', '--keep-last', '0', '--allow-empty');
    const db = openIndex(h);
    try {
      assert.equal(db.prepare('SELECT count(*) FROM snapshots').pluck().get(), 0);
      assert.equal(db.prepare('SELECT count(*) FROM clists').pluck().get(), 0, 'no chunk lists left');
      assert.equal(db.prepare('SELECT count(*) FROM chunks').pluck().get(), 0, 'every chunk collected');
      assert.equal(db.prepare('SELECT count(*) FROM inodes').pluck().get(), 1, 'only the root is left');
    } finally {
      db.close();
    }
    assert.match(h.ok('verify'), /no problems/);
  } catch (err) {
    (err as Error).message += ` (rerun with SAFE_FUZZ_SEED=${seed})`;
    throw err;
  }
});

test('snapshot errors: unknown names, daemon not running, forget everything refused', { timeout: 60_000 }, () => {
  const h = makeHost();
  const off = h.safe('snapshot');
  assert.equal(off.status, 1);
  assert.equal(off.stderr, 'safe: the daemon is not running: run safe mount first\n');
  h.mount();
  const a = h.ok('snapshot').trim();
  const b = h.ok('snapshot').trim();
  assert.notEqual(a, b, 'two snapshots in one second get distinct names');
  assert.match(a, /^\d{4}-\d\d-\d\dT\d{6}Z(-\d+)?$/);
  const bad = h.safe('diff', a, 'nope');
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, "safe: no snapshot named 'nope' (see safe snapshots)\n");
  const all = h.safe('forget', '--keep-last', '0');
  assert.equal(all.status, 1);
  assert.match(all.stderr, /every snapshot/);
  assert.equal((JSON.parse(h.ok('snapshots', '--json')) as unknown[]).length, 2, 'nothing was forgotten');
  const none = h.safe('forget');
  assert.equal(none.status, 1);
  assert.match(none.stderr, /say what to keep/);
  const label = h.safe('snapshot', '--label', 'bad/label');
  assert.equal(label.status, 1);
  assert.match(h.ok('snapshot', '--label', 'before-upgrade'), /Z-before-upgrade$/m);
  const restoreUnknown = h.safe('restore', 'nope', '--target', '/tmp/x');
  assert.equal(restoreUnknown.status, 1);
  const frozen = h.safe('restore', a, '--target', join(h.mnt, '.snapshots', a, 'back'));
  assert.equal(frozen.status, 1);
  assert.match(frozen.stderr, /^safe: the restore target .* is under \.snapshots, which is read-only/);
});

test('the schedule takes snapshots and applies retention', { timeout: 60_000 }, async () => {
  const h = makeHost();
  setConfig(h, { schedule: '* * * * * *', retention: { last: 2 } });
  h.mount();
  fs.writeFileSync(join(h.mnt, 'f'), 'scheduled');
  await new Promise((r) => setTimeout(r, 4500));
  // Each scheduled snapshot commits before its retention does: a listing can fall between.
  let list: { name: string }[] = [];
  for (let tries = 0; tries < 20; tries++) {
    list = JSON.parse(h.ok('snapshots', '--json')) as { name: string }[];
    if (list.length === 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(list.length, 2, `retention keeps the last 2 (${list.map((s) => s.name).join(', ')})`);
  assert.equal(fs.readFileSync(join(h.mnt, '.snapshots', list[1]!.name, 'f'), 'utf8'), 'scheduled');
  h.unmount();
  setConfig(h, { schedule: 'every tuesday' });
  const bad = h.safe('mount');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not a cron expression/);
});

test('add set matches brute force, deltas rebuild the tree; forgotten chunks enter the delete set', { timeout: 120_000 }, async () => {
  const { addSet } = await import('../../src/snapshot/changes.js');
  const deltas = await import('../../src/snapshot/deltas.js');
  const { migrate } = await import('../../src/chunkstore/migrations.js');
  const { default: Database } = await import('better-sqlite3-multiple-ciphers');
  const h = makeHost({ delayMs: 10 });
  h.mount();
  const names: string[] = [];
  const write = (p: string, s: string): void => fs.writeFileSync(join(h.mnt, p), s.repeat(20_000));
  fs.mkdirSync(join(h.mnt, 'd'));
  write('a', 'alpha');
  write('d/b', 'beta');
  await h.settle();
  names.push(h.ok('snapshot').trim());
  write('c', 'gamma');
  write('a', 'alpha2');
  fs.unlinkSync(join(h.mnt, 'd/b'));
  fs.chmodSync(join(h.mnt, 'd'), 0o700);
  await h.settle();
  names.push(h.ok('snapshot').trim());
  h.unmount();
  const db = openIndex(h, { readonly: false });
  try {
    const epoch = (n: string): number => db.prepare<[string], number>('SELECT epoch FROM snapshots WHERE name = ?').pluck().get(n)!;
    const [e1, e2] = [epoch(names[0]!), epoch(names[1]!)];
    const idsAt = (e: number): Set<string> =>
      new Set(
        db.prepare<[number, number], Buffer>('SELECT c.id FROM crefs c JOIN inodes i ON i.cl = c.cl WHERE i.born <= ? AND (i.died IS NULL OR i.died > ?)').pluck().all(e, e)
          .map((id) => id.toString('hex')),
      );
    const brute = [...idsAt(e2)].filter((id) => !idsAt(e1).has(id)).sort();
    const got = addSet(db, e1, e2);
    assert.equal(got.pending, 0);
    assert.deepEqual(got.ids.map((b) => b.toString('hex')).sort(), brute);
    assert.ok(brute.length > 0);
    assert.deepEqual(addSet(db, 0, e1).ids.map((b) => b.toString('hex')).sort(), [...idsAt(e1)].sort(), 'first shipment: everything');
    assert.equal(addSet(db, e2, e2).ids.length, 0, 'no change, nothing to add');
    // The base (0, e1] and the delta (e1, e2], imported into an empty tree, give the state at e2.
    assert.deepEqual([...deltas.deltaPages(db, e2, e2)], [], 'no change, empty delta');
    const small = [...deltas.deltaPages(db, e1, e2, 2)];
    assert.ok(small.some((p) => p.kind === 'inodeDeaths') && small.some((p) => p.kind === 'entryDeaths'), 'the unlink and the rewrite travel as deaths');
    const copy = new Database(':memory:');
    try {
      migrate({ db: copy, packsDir: tempDir('packs') }, HOST_SCHEMA);
      deltas.beginImport(copy);
      copy.transaction(() => {
        for (const p of deltas.deltaPages(db, 0, e1, 3)) deltas.importPage(copy, p);
        for (const p of small) deltas.importPage(copy, p);
      })();
      const snaps = db.prepare('SELECT epoch, name, time, label FROM snapshots ORDER BY epoch').all() as { epoch: number; name: string; time: number; label: string | null }[];
      copy.transaction(() => deltas.finishImport(copy, e2, 1000, snaps))();
      const rows = (d: typeof db, sql: string): unknown[] => d.prepare(sql).all(e2, e2);
      const inodes = 'SELECT ino, born, CASE WHEN died > ? THEN NULL ELSE died END AS died, kind, mode, uid, gid, nlink, size, round(atime * 1000), round(mtime * 1000), round(ctime * 1000), target, cl, xattrs FROM inodes WHERE born <= ? ORDER BY ino, born';
      const entries = 'SELECT parent, name, born, CASE WHEN died > ? THEN NULL ELSE died END AS died, ino FROM entries WHERE born <= ? ORDER BY parent, name, born';
      assert.deepEqual(rows(copy, inodes), rows(db, inodes));
      assert.deepEqual(rows(copy, entries), rows(db, entries));
      const refs = 'SELECT c.cl, c.off, c.handle, c.id, c.raw FROM crefs c WHERE ? = ? AND c.cl IN (SELECT cl FROM inodes) ORDER BY c.cl, c.off';
      assert.deepEqual(rows(copy, refs), rows(db, refs));
      assert.ok((rows(copy, refs) as unknown[]).length > 0);
    } finally {
      copy.close();
    }
  } finally {
    db.close();
  }
  // Forget inside one transaction, as the daemon does, but without its drain (a host alone
  // drains at once; in a group the replicator drains once every buddy was told).
  const { ChunkStore } = await import('../../src/chunkstore/store.js');
  const { forgetSnapshots } = await import('../../src/snapshot/snapshots.js');
  const store = ChunkStore.open(join(h.home, 'store'), null, { schema: HOST_SCHEMA, key: storeKeyOf('testhost', 'test passphrase') });
  try {
    forgetSnapshots(store.db, store, [names[0]!]);
    const released = store.released().map((b) => b.toString('hex'));
    assert.ok(released.length > 0, 'the old alpha and beta chunks are in the delete set');
    for (const id of released) assert.ok(!(store.refs(Buffer.from(id, 'hex')) ?? 0), `released chunk ${id} is unreferenced`);
  } finally {
    store.close();
  }
  h.mount();
  h.ok('forget', '--keep-last', '1');
  h.unmount();
  const drained = ChunkStore.open(join(h.home, 'store'), null, { schema: HOST_SCHEMA, key: storeKeyOf('testhost', 'test passphrase') });
  try {
    assert.deepEqual(drained.released(), [], 'a host alone drains the delete set: nobody needs it');
  } finally {
    drained.close();
  }
});
