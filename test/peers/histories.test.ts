// Metadata as deltas, end to end: a host lives through random histories (files created,
// rewritten, appended, renamed across directories, hard-linked, deleted; directories made and
// removed; modes and times changed; now and then a tree-wide rewrite, as rsync of a new release
// does), snapshots and ships after each, and forgets old snapshots. After every history its
// disk "dies": a blank host recovers it from the buddies and must show the live tree and every
// kept snapshot as they were. Tree-wide rewrites make the deltas outgrow the base, so the chain
// is compacted mid-way. At the end one buddy is rolled back to an old root block and chain (a
// replay): the recovery takes the newest root block. Then every other segment is damaged on each
// buddy: a recovery fails its tags part-way on one, resumes on the other without fetching again
// what it applied, and gets the whole tree. SAFE_HISTORY_SEED replays a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, linkSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { campaign, openIndex, seededBytes, tempDir } from '../helpers.js';
import { makeHost } from '../fs/mounted.js';
import { GROUP, mountedMember, syncWait, withDb, type Member } from './group.js';
import { assertSameTree } from '../soak/manifest.js';

const HISTORIES = Number(process.env.SAFE_HISTORIES ?? 20);

test(`${HISTORIES} random histories, each recovered on a blank host; compaction mid-way; a replayed root block and a damaged chain`, { timeout: 1_500_000 }, async (t) => {
  const { seed, random } = campaign('SAFE_HISTORY', HISTORIES, 3600);
  t.diagnostic(`seed ${seed}: replay with SAFE_HISTORY_SEED=${seed}`);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const d = await mountedMember('buddy-d', { offer: '1G', peers: [c.addr] });
  const a = await mountedMember('host-a', { offer: '200M', peers: [c.addr], buddies: 2 });
  const refRoot = tempDir('safe-hist-ref-');
  const refs = new Map<string, string>();
  let n = 0;

  const walk = (): { files: string[]; dirs: string[]; links: string[] } => {
    const out = { files: [] as string[], dirs: [''], links: [] as string[] };
    const go = (rel: string): void => {
      for (const name of readdirSync(join(a.mnt, rel))) {
        if (rel === '' && name === '.snapshots') continue;
        const p = rel ? `${rel}/${name}` : name;
        const st = lstatSync(join(a.mnt, p));
        if (st.isDirectory()) {
          out.dirs.push(p);
          go(p);
        } else (st.isSymbolicLink() ? out.links : out.files).push(p);
      }
    };
    go('');
    return out;
  };
  const bytes = (): Buffer => seededBytes(random() < 0.1 ? 100_000 + Math.floor(random() * 200_000) : Math.floor(random() * 20_000), Math.floor(random() * 2 ** 31));
  const time = (): Date => new Date(946684800000 + Math.floor(random() * 8e11));
  const op = (): string => {
    const t = walk();
    const at = (p: string): string => join(a.mnt, p);
    const kind = pick(['create', 'create', 'create', 'rewrite', 'append', 'rename', 'link', 'delete', 'mkdir', 'rmdir', 'chmod', 'utimes', 'symlink']);
    const file = t.files.length > 0 ? pick(t.files) : null;
    switch (kind) {
      case 'create':
        writeFileSync(at(`${pick(t.dirs)}/f${n++}`), bytes());
        break;
      case 'rewrite':
        if (file) writeFileSync(at(file), bytes());
        break;
      case 'append':
        if (file) appendFileSync(at(file), bytes().subarray(0, 5000));
        break;
      case 'rename': {
        // A file or a directory, into another directory (never into itself).
        const from = random() < 0.7 || t.dirs.length < 3 ? file : pick(t.dirs.slice(1));
        if (!from) break;
        const into = pick(t.dirs.filter((x) => x !== from && !x.startsWith(`${from}/`)));
        renameSync(at(from), at(`${into}/r${n++}`));
        break;
      }
      case 'link':
        if (file) linkSync(at(file), at(`${pick(t.dirs)}/h${n++}`));
        break;
      case 'delete':
        if (file) unlinkSync(at(file));
        else if (t.links.length > 0) unlinkSync(at(pick(t.links)));
        break;
      case 'mkdir':
        mkdirSync(at(`${pick(t.dirs)}/d${n++}`));
        break;
      case 'rmdir':
        if (t.dirs.length > 1) rmSync(at(pick(t.dirs.slice(1))), { recursive: true });
        break;
      case 'chmod':
        if (file) chmodSync(at(file), pick([0o600, 0o644, 0o755, 0o640, 0o444]));
        else if (t.dirs.length > 1) chmodSync(at(pick(t.dirs.slice(1))), pick([0o700, 0o755, 0o750]));
        break;
      case 'utimes':
        if (file) utimesSync(at(file), time(), time());
        break;
      case 'symlink':
        symlinkSync(file ?? 'dangling', at(`${pick(t.dirs)}/s${n++}`));
        break;
    }
    return kind;
  };
  /** What rsync of a new release does: every file gets a new mtime, some a new content. */
  const rewriteAll = (): void => {
    const when = time();
    for (const f of walk().files) {
      if (random() < 0.2) writeFileSync(join(a.mnt, f), bytes());
      utimesSync(join(a.mnt, f), when, when);
    }
  };
  const snapshot = (): void => {
    const name = (JSON.parse(a.ok('snapshot', '--json')) as { name: string }).name;
    const ref = join(refRoot, name);
    assert.equal(spawnSync('cp', ['-a', join(a.mnt, '.snapshots', name), ref]).status, 0);
    refs.set(name, ref);
  };
  /** The reference of the live tree, without .snapshots: copying every kept snapshot again each time was most of it. */
  const refreshLive = (): void => {
    rmSync(join(refRoot, 'live'), { recursive: true, force: true });
    assert.equal(spawnSync('rsync', ['-aHX', '--exclude=/.snapshots', `${a.mnt}/`, join(refRoot, 'live')]).status, 0);
  };
  const chain = (): { from: number; to: number }[] =>
    withDb(a, (db) => db.prepare('SELECT from_epoch AS "from", to_epoch AS "to" FROM meta_segments WHERE live = 1 ORDER BY seq').all() as { from: number; to: number }[]);
  const recoverOnBlank = (what: string, peers: string[]): { objects: number; reusedObjects: number; rootFrom: string } => {
    const b = makeHost({ init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
    const args = ['recover', '--host', 'host-a', '--mount', b.mnt, '--group', GROUP.name, '--listen', a.addr, '--no-mdns', '--json'];
    for (const p of peers) args.push('--peer', p);
    const r = JSON.parse(b.ok(...args)) as { objects: number; reusedObjects: number; rootFrom: string; missing: number };
    try {
      assert.equal(r.missing, 0, `${what}: ${JSON.stringify(r)}`);
      assertSameTree(join(refRoot, 'live'), b.mnt, `${what}: the live tree`);
      assert.deepEqual(readdirSync(join(b.mnt, '.snapshots')).sort(), [...refs.keys()].sort(), `${what}: the snapshots kept`);
      for (const [name, ref] of refs) assertSameTree(ref, join(b.mnt, '.snapshots', name), `${what}: snapshot ${name}`);
      // The import drops the tree's indexes and builds them again at its end.
      assert.deepEqual(schemaOf(b), schemaOf(a), `${what}: the recovered index has the tables and indexes of the host's`);
    } finally {
      b.unmount();
      rmSync(b.home, { recursive: true, force: true });
    }
    return r;
  };

  // Epochs the chain's base was written at: more than one means it was compacted.
  const bases = new Set<number>();
  const ship = (what: string): void => {
    const r = syncWait(a);
    assert.ok(r.buddies.length === 2 && r.buddies.every((b) => b.ok), `${what}: sync: ${JSON.stringify(r)}`);
    bases.add(chain()[0]!.to);
  };
  let saved: { root: unknown[]; objects: unknown[]; owner: unknown[] } | null = null;
  // A tree much larger than one history's changes: deltas stay small beside the base, so the
  // chain grows deltas (deaths and all) and only tree-wide rewrites outgrow the base.
  for (let i = 0; i < 12; i++) {
    mkdirSync(join(a.mnt, `src${i}`));
    for (let j = 0; j < 25; j++) writeFileSync(join(a.mnt, `src${i}`, `base${j}.c`), seededBytes(Math.floor(random() * 3000), i * 100 + j));
  }
  for (let h = 0; h < HISTORIES; h++) {
    const what = `history ${h + 1} (seed ${seed})`;
    for (let s = 0; s < 3; s++) {
      if (random() < 0.15) rewriteAll();
      for (let i = 0, k = 3 + Math.floor(random() * 10); i < k; i++) op();
      await a.settle();
      snapshot();
      if (s === 2 || random() < 0.5) ship(what);
    }
    // Half-way, whatever the dice say: two tree-wide rewrites, then all but the last snapshot
    // forgotten. The chain then holds far more rows than the tree: the next change compacts it.
    const midway = h === Math.floor(HISTORIES / 2);
    if (midway) {
      for (let i = 0; i < 2; i++) {
        rewriteAll();
        await a.settle();
        snapshot();
        ship(what);
      }
      op();
      await a.settle();
      snapshot();
    }
    if (midway || (random() < 0.5 && refs.size > 4)) {
      const r = JSON.parse(a.ok('forget', '--keep-last', midway ? '1' : '4', '--json')) as { forget: string[] };
      for (const name of r.forget) {
        rmSync(refs.get(name)!, { recursive: true, force: true });
        refs.delete(name);
      }
      ship(what);
    }
    refreshLive();
    a.unmount();
    recoverOnBlank(what, [c.addr]);
    a.mount();
    if (h === HISTORIES - 2) {
      // Buddy C as it is now: replayed after the last history.
      saved = withDb(c, (db) => ({
        root: db.prepare('SELECT * FROM root_blocks').all(),
        objects: db.prepare('SELECT * FROM held_objects').all(),
        owner: db.prepare('SELECT owner, epoch FROM held_owners').all(),
      }));
    }
  }
  t.diagnostic(`bases written at epochs ${[...bases].join(', ')}; chain at the end: ${JSON.stringify(chain())}`);
  assert.ok(bases.size > 1, 'the chain was compacted at least once');

  // A replay: C serves the state of one history ago (its root block and chain, consistent with
  // each other). The recovery takes D's newer root block and the chain it names.
  c.unmount();
  withWritableDb(c, (db) => {
    db.exec('DELETE FROM root_blocks; DELETE FROM held_objects');
    for (const [table, rows] of [['root_blocks', saved!.root], ['held_objects', saved!.objects]] as const) {
      for (const r of rows as Record<string, unknown>[]) db.prepare(`INSERT INTO ${table} (${Object.keys(r).join(', ')}) VALUES (${Object.keys(r).map(() => '?').join(', ')})`).run(...Object.values(r));
    }
    for (const o of saved!.owner as { owner: number; epoch: number }[]) db.prepare('UPDATE held_owners SET epoch = ? WHERE owner = ?').run(o.epoch, o.owner);
  });
  c.mount();
  a.unmount();
  const replayed = recoverOnBlank('C replays an old root block and chain', [c.addr, d.addr]);
  assert.equal(replayed.rootFrom, d.peerId(), 'the newest root block wins');

  // C catches up (a whole shipment: it lost track of us), with changes until the chain ends in
  // a delta after its base whatever the dice did: an extension may write a new base alone (the
  // last history's did with seed 684220349, the change after it with seed 1695328849); the one
  // after a new base is a delta. Then each buddy damages every other segment, alternating:
  // whichever is asked first fails a tag part-way, and the other gives the rest while what the
  // first gave whole is kept.
  a.mount();
  for (let round = 0; round < 3 && (round === 0 || chain().length < 2); round++) {
    writeFileSync(join(a.mnt, `last${n++}`), bytes());
    await a.settle();
    snapshot();
    assert.ok(syncWait(a).buddies.every((b) => b.ok));
  }
  refreshLive();
  a.unmount();
  const digests = withDb(a, (db) => db.prepare('SELECT digest FROM meta_segments WHERE live = 1 ORDER BY seq').pluck().all() as Buffer[]);
  assert.ok(digests.length >= 2, `a chain of ${digests.length} segments`);
  for (const [m, parity] of [[c, 0], [d, 1]] as const) {
    m.unmount();
    withWritableDb(m, (db) => {
      digests.forEach((digest, i) => {
        if (i % 2 === parity) db.prepare("UPDATE held_objects SET box = CAST(substr(box, 1, length(box) - 1) || x'00' AS BLOB) WHERE digest = ?").run(digest);
      });
    });
    m.mount();
  }
  const healed = recoverOnBlank('every other segment damaged on each buddy', [c.addr, d.addr]);
  assert.equal(healed.objects, digests.length);
  assert.ok(healed.reusedObjects > 0, `the segments the first buddy gave whole are not fetched again: ${JSON.stringify(healed)}`);
});

function schemaOf(h: { home: string; env: NodeJS.ProcessEnv }): unknown[] {
  const db = openIndex(h);
  try {
    return db.prepare("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name").all();
  } finally {
    db.close();
  }
}

function withWritableDb(m: Member, fn: (db: ReturnType<typeof openIndex>) => void): void {
  const db = openIndex(m, { readonly: false });
  try {
    db.transaction(() => fn(db))();
  } finally {
    db.close();
  }
}
