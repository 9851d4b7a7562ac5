// Disaster recovery end to end: host A ships three snapshots to two buddies, loses its whole
// SAFE_HOME, and gets the live tree and every snapshot back from the hostname, passphrase and
// group credentials alone; then again with one buddy down. Real daemons, loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes, tempDir } from '../helpers.js';
import { SAFE_BIN } from '../fs/mounted.js';
import { GROUP, mountedMember, sameTree } from './group.js';


test('recover from hostname + passphrase: live tree and every snapshot identical; again with a buddy down; wrong passphrase writes nothing', { timeout: 300_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const d = await mountedMember('buddy-d', { offer: '1G', peers: [c.addr] });
  const a = await mountedMember('host-a', { offer: '200M', peers: [c.addr] });

  // Three snapshots with edits between them.
  const m = a.mnt;
  mkdirSync(join(m, 'src/deep/er'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(m, 'src', `f${i}.c`), `/* file ${i} */\n` + 'int x;\n'.repeat(50 + i * 30));
  writeFileSync(join(m, 'src/deep/er/big.bin'), seededBytes(3 << 20, 1));
  writeFileSync(join(m, 'empty'), '');
  symlinkSync('src/f1.c', join(m, 'link'));
  linkSync(join(m, 'src/f2.c'), join(m, 'hard'));
  chmodSync(join(m, 'src/f3.c'), 0o600);
  utimesSync(join(m, 'src/f4.c'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
  await a.settle();
  a.ok('snapshot', '--label', 'one');
  writeFileSync(join(m, 'src/f5.c'), 'rewritten\n');
  rmSync(join(m, 'src/f6.c'));
  writeFileSync(join(m, 'src/deep/new.bin'), seededBytes(1 << 20, 2));
  await a.settle();
  a.ok('snapshot', '--label', 'two');
  rmSync(join(m, 'src/deep/er'), { recursive: true });
  chmodSync(join(m, 'src'), 0o700);
  writeFileSync(join(m, 'after'), 'three');
  await a.settle();
  a.ok('snapshot', '--label', 'three');
  const r = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { ok: boolean }[] };
  assert.equal(r.buddies.filter((b) => b.ok).length, 2, JSON.stringify(r));

  // The reference: the live tree and each snapshot as A sees them before the disaster.
  const ref = tempDir('safe-ref-');
  const names = readdirSync(join(m, '.snapshots')).sort();
  assert.equal(names.length, 3);
  spawnSync('cp', ['-a', join(m, '.'), join(ref, 'live')]);
  for (const n of names) assert.equal(spawnSync('cp', ['-a', join(m, '.snapshots', n), join(ref, n)]).status, 0);
  rmSync(join(ref, 'live', '.snapshots'), { recursive: true, force: true });

  const disaster = (): void => {
    a.unmount();
    rmSync(a.home, { recursive: true, force: true });
  };
  const recoverArgs = ['recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--json'];
  const check = (what: string): void => {
    sameTree(join(ref, 'live'), a.mnt, `${what}: live tree`);
    assert.deepEqual(readdirSync(join(a.mnt, '.snapshots')).sort(), names);
    for (const n of names) sameTree(join(ref, n), join(a.mnt, '.snapshots', n), `${what}: snapshot ${n}`);
    assert.match(a.ok('verify'), /no problems/);
  };

  // Wrong passphrase: a clear line, nothing written.
  disaster();
  const wrong = spawnSync(SAFE_BIN, recoverArgs, { env: { ...a.env, SAFE_PASSPHRASE: 'not the passphrase' }, encoding: 'utf8' });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^safe: no root block found for this host/);
  assert.equal(wrong.stderr.trim().split('\n').length, 1);
  assert.ok(!existsSync(a.home) || readdirSync(a.home).length === 0, 'nothing written');

  const rec = JSON.parse(a.ok(...recoverArgs)) as { missing: number; fetched: number; root: { snapshots: unknown[] } };
  assert.equal(rec.missing, 0);
  assert.ok(rec.fetched > 200, `fetched ${rec.fetched} chunks`);
  check('from two buddies');
  // The recovered host carries on: same identity, its buddies take increments.
  writeFileSync(join(a.mnt, 'life goes on'), 'yes');
  await a.settle();
  a.ok('snapshot');
  const inc = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { ok: boolean; report?: { full: boolean } }[] };
  assert.ok(inc.buddies.length === 2 && inc.buddies.every((b) => b.ok && b.report && !b.report.full), JSON.stringify(inc));
  // Back to the reference live tree for the second round; the three snapshots stay.
  rmSync(join(a.mnt, 'life goes on'));
  await a.settle();
  a.ok('snapshot', '--label', 'again');

  // One buddy down: everything comes from the other.
  d.unmount();
  // C alone commits; sync --wait says D failed and exits 1.
  const partial = a.safe('sync', '--wait', '--json');
  assert.equal(partial.status, 1, partial.stderr);
  const pj = JSON.parse(partial.stdout) as { buddies: { ok: boolean }[] };
  assert.equal(pj.buddies.filter((b) => b.ok).length, 1, partial.stdout);
  disaster();
  const rec2 = JSON.parse(a.ok(...recoverArgs)) as { missing: number };
  assert.equal(rec2.missing, 0);
  sameTree(join(ref, 'live'), a.mnt, 'with D down: live tree');
  for (const n of names) sameTree(join(ref, n), join(a.mnt, '.snapshots', n), `with D down: snapshot ${n}`);
  assert.match(a.ok('verify'), /no problems/);
});
