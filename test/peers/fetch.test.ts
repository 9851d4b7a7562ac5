// Chunks that are not local come back from buddies: reads through the mount, restores of a
// path (one buddy serving damaged chunks: caught by tag, fetched from the other, flagged), and
// a recovery whose mount is up before its chunks are. Real daemons on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes, tempDir, openIndex } from '../helpers.js';
import { GROUP, mountedMember } from './group.js';

/** Reads a file through the mount from another process (never from ours: FUSE deadlock). */
const cat = (path: string): { status: number | null; out: Buffer } => {
  const r = spawnSync('cat', [path], { maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout };
};

/** Every byte of every pack of a member replaced: each box it serves fails its tag. */
function damagePacks(h: { home: string }): void {
  const dir = join(h.home, 'store', 'packs');
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, f);
    if (statSync(p).isFile()) writeFileSync(p, seededBytes(statSync(p).size, 99));
  }
}

test('missing chunks are fetched from buddies on read and on restore; a buddy with a damaged disk serves nothing wrong; recovery mounts before its chunks are back', { timeout: 300_000 }, async () => {
  const c = await mountedMember('buddy-c', { offer: '1G' });
  const d = await mountedMember('buddy-d', { offer: '1G', peers: [c.addr] });
  const a = await mountedMember('host-a', { offer: '200M', buddies: 2, peers: [c.addr] });
  const big = seededBytes(6 << 20, 21);
  const small = Array.from({ length: 30 }, (_, i) => seededBytes(5000 + i * 700, 100 + i));
  writeFileSync(join(a.mnt, 'big.bin'), big);
  mkdirSync(join(a.mnt, 'dir'));
  small.forEach((b, i) => writeFileSync(join(a.mnt, 'dir', `s${i}`), b));
  await a.settle();
  a.ok('snapshot');
  a.ok('sync', '--wait');

  // The local store loses every chunk (their index rows: as good as gone), and C's disk
  // returns garbage for every one of its chunks.
  a.unmount();
  c.unmount();
  damagePacks(c);
  c.mount();
  const db = openIndex(a, { readonly: false });
  const lost = db.prepare('DELETE FROM chunks WHERE handle IS NOT NULL').run().changes;
  db.close();
  assert.ok(lost > 300, `${lost} chunks dropped`);
  a.mount();

  const read = cat(join(a.mnt, 'big.bin'));
  assert.equal(read.status, 0);
  assert.ok(read.out.equals(big), 'read through the mount: fetched from the buddy');
  const target = tempDir('safe-restore-');
  const r = JSON.parse(a.ok('restore', 'latest:/dir', '--target', target, '--json')) as { fetched: number; files: number };
  assert.equal(r.files, 30);
  assert.ok(r.fetched >= 30, `restore fetched ${r.fetched} chunks`);
  small.forEach((b, i) => assert.ok(readFileSync(join(target, 'dir', `s${i}`)).equals(b), `s${i}`));
  assert.match(a.ok('verify'), /no problems/, 'fetched chunks carry the right reference counts');
  // C checks each box against its id before serving it: its damaged disk sent nothing wrong.
  const flagged = (JSON.parse(a.ok('status', '--json')) as { daemon: { peers: { flagged: string[] } } }).daemon.peers.flagged;
  assert.deepEqual(flagged, []);

  // With the buddies away, what is not here fails clearly, and nothing is half-restored.
  a.unmount();
  const db2 = openIndex(a, { readonly: false });
  db2.prepare('DELETE FROM chunks WHERE handle IS NOT NULL').run();
  db2.close();
  c.unmount();
  d.unmount();
  a.mount();
  assert.notEqual(cat(join(a.mnt, 'dir', 's3')).status, 0, 'read of a chunk nobody has fails');
  const target2 = tempDir('safe-restore-');
  const bad = a.safe('restore', 'latest:/dir', '--target', target2);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^safe: \d+ chunks of latest:\/dir are neither here nor on any reachable buddy: nothing was restored\n$/);
  assert.equal(spawnSync('ls', ['-A', target2], { encoding: 'utf8' }).stdout, '');
  assert.match(a.ok('status'), /mounted/, 'the daemon is fine');

  // Recovery with --no-wait: the mount is usable at once, reads fetch what they need while the
  // rest comes back in the background.
  c.mount();
  d.mount();
  a.unmount();
  spawnSync('rm', ['-rf', a.home]);
  const rec = JSON.parse(
    a.ok('recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--no-wait', '--json'),
  ) as { mounted: boolean; mountedAfter: number };
  assert.ok(rec.mounted);
  const early = cat(join(a.mnt, 'big.bin'));
  assert.ok(early.out.equals(big), 'read right after the recovery mounted');
  const t0 = Date.now();
  for (;;) {
    const s = JSON.parse(a.ok('status', '--json')) as { daemon: { peers: { fetching: boolean } } };
    if (!s.daemon.peers.fetching) break;
    assert.ok(Date.now() - t0 < 60_000, 'every chunk back within a minute');
    await new Promise((res) => setTimeout(res, 200));
  }
  small.forEach((b, i) => assert.ok(cat(join(a.mnt, 'dir', `s${i}`)).out.equals(b), `s${i} after recovery`));
  assert.match(a.ok('verify'), /no problems/);
});
