import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync, existsSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync,
  renameSync, rmdirSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync, writeSync, chmodSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { makeHost } from './mounted.js';
import { seededBytes, openIndex } from '../helpers.js';

test('files, directories, links and attributes survive chunking and a remount', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  const big = seededBytes(3_000_000, 5);
  writeFileSync(join(m, 'big.bin'), big);
  writeFileSync(join(m, 'empty'), '');
  mkdirSync(join(m, 'a/b/c'), { recursive: true });
  writeFileSync(join(m, 'a/b/c/deep.txt'), 'deep');
  symlinkSync('a/b/c/deep.txt', join(m, 'link'));
  linkSync(join(m, 'a/b/c/deep.txt'), join(m, 'hard'));
  chmodSync(join(m, 'big.bin'), 0o640);
  utimesSync(join(m, 'big.bin'), new Date('2020-01-02T03:04:05Z'), new Date('2021-02-03T04:05:06Z'));
  const odd = Buffer.concat([Buffer.from('weird-'), Buffer.from([0xff, 0xfe, 0x01, 0x7f]), Buffer.from('-name')]);
  const oddPath = Buffer.concat([Buffer.from(m + '/'), odd]);
  writeFileSync(oddPath, 'bytes in the name');
  const long = 'n'.repeat(255);
  writeFileSync(join(m, long), 'long name');
  assert.throws(() => writeFileSync(join(m, 'n'.repeat(256)), 'x'), /ENAMETOOLONG/);
  execFileSync('setfattr', ['-n', 'user.color', '-v', 'blue', join(m, 'big.bin')]);
  // sparse file with a hole and a tail
  const fd = openSync(join(m, 'sparse'), 'w');
  writeSync(fd, Buffer.from('head'), 0, 4, 0);
  writeSync(fd, Buffer.from('tail'), 0, 4, 10_000_000);
  closeSync(fd);

  const check = (): void => {
    assert.deepEqual(readFileSync(join(m, 'big.bin')), big);
    assert.equal(readFileSync(join(m, 'empty')).length, 0);
    assert.equal(readFileSync(join(m, 'a/b/c/deep.txt'), 'utf8'), 'deep');
    assert.equal(readlinkSync(join(m, 'link')), 'a/b/c/deep.txt');
    assert.equal(readFileSync(join(m, 'link'), 'utf8'), 'deep');
    assert.equal(statSync(join(m, 'hard')).nlink, 2);
    assert.equal(statSync(join(m, 'big.bin')).mode & 0o777, 0o640);
    assert.equal(statSync(join(m, 'big.bin')).mtime.toISOString(), '2021-02-03T04:05:06.000Z');
    assert.equal(readFileSync(oddPath, 'utf8'), 'bytes in the name');
    assert.ok(readdirSync(m, { encoding: 'buffer' }).some((n) => n.equals(odd)), 'the raw name is listed byte for byte');
    assert.equal(readFileSync(join(m, long), 'utf8'), 'long name');
    assert.match(execFileSync('getfattr', ['-n', 'user.color', '--only-values', join(m, 'big.bin')], { encoding: 'utf8' }), /blue/);
    const sp = readFileSync(join(m, 'sparse'));
    assert.equal(sp.length, 10_000_004);
    assert.equal(sp.subarray(0, 4).toString(), 'head');
    assert.equal(sp.subarray(10_000_000).toString(), 'tail');
    assert.ok(sp.subarray(4, 10_000_000).every((b) => b === 0));
  };
  check();
  await h.settle();
  check();
  const st = h.status();
  assert.ok(st.store.chunks > 100, `content is in the chunkstore (${st.store.chunks} chunks)`);
  h.unmount();
  assert.equal(readdirSync(m).length, 0, 'unmounted: the mount point is empty again');
  h.mount();
  check();
  assert.match(h.ok('verify'), /no problems/);
  h.unmount();
  // verify also holds the refcounts against the tree: a wrong one is named.
  const db = openIndex(h, { readonly: false });
  const victim = db.prepare('SELECT id FROM chunks WHERE refs > 0 LIMIT 1').pluck().get() as Buffer;
  db.prepare('UPDATE chunks SET refs = refs + 1 WHERE id = ?').run(victim);
  db.close();
  const v = h.safe('verify');
  assert.equal(v.status, 1);
  assert.match(v.stdout, new RegExp(`refcount: chunk ${victim.toString('hex')} has refcount \\d+, the tree names it \\d+ times`));
});

test('rename over files and directories, unlink, rmdir, truncate', { timeout: 60_000 }, async () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  writeFileSync(join(m, 'x'), 'old x');
  writeFileSync(join(m, 'y'), 'new y');
  renameSync(join(m, 'y'), join(m, 'x'));
  assert.equal(readFileSync(join(m, 'x'), 'utf8'), 'new y');
  assert.ok(!existsSync(join(m, 'y')));
  mkdirSync(join(m, 'd1/sub'), { recursive: true });
  writeFileSync(join(m, 'd1/sub/f'), 'f');
  mkdirSync(join(m, 'd2'));
  renameSync(join(m, 'd1'), join(m, 'd2'));
  assert.equal(readFileSync(join(m, 'd2/sub/f'), 'utf8'), 'f');
  mkdirSync(join(m, 'd3/inner'), { recursive: true });
  assert.throws(() => renameSync(join(m, 'd2'), join(m, 'd3')), /ENOTEMPTY|EEXIST/);
  assert.throws(() => renameSync(join(m, 'd2'), join(m, 'd2/sub/into')), /EINVAL/);
  assert.throws(() => rmdirSync(join(m, 'd2')), /ENOTEMPTY/);
  unlinkSync(join(m, 'd2/sub/f'));
  rmdirSync(join(m, 'd2/sub'));
  rmdirSync(join(m, 'd2'));
  await h.settle();
  truncateSync(join(m, 'x'), 3);
  assert.equal(readFileSync(join(m, 'x'), 'utf8'), 'new');
  truncateSync(join(m, 'x'), 6);
  assert.deepEqual(readFileSync(join(m, 'x')), Buffer.from('new\0\0\0'));
  const fd = openSync(join(m, 'x'), 'r+');
  writeSync(fd, Buffer.from('NEW'), 0, 3, 0);
  fsyncSync(fd);
  closeSync(fd);
  assert.deepEqual(readFileSync(join(m, 'x')), Buffer.from('NEW\0\0\0'));
  assert.throws(() => mkdirSync(join(m, '.snapshots')), /EEXIST/);
  assert.throws(() => writeFileSync(join(m, '.snapshots/x'), 'no'), /EROFS|ENOENT/);
  assert.equal(lstatSync(join(m, '.snapshots')).isDirectory(), true);
});

test('truncate to 0 while another open for writing still copies the old content: the truncation holds', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const f = join(h.mnt, 'big');
  writeFileSync(f, seededBytes(128 << 20, 6));
  await h.settle();
  // The open makes its working copy (128 MiB of chunks decrypted into a staging file): the
  // truncate comes in once that copy has begun.
  const staging = join(h.home, 'staging');
  const before = new Set(readdirSync(staging));
  let opened = false;
  const opening = open(f, 'r+').then((fh) => ((opened = true), fh));
  for (const t0 = Date.now(); readdirSync(staging).every((n) => before.has(n)); ) {
    assert.ok(Date.now() - t0 < 30_000, 'the open never began its working copy');
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.ok(!opened, 'the truncate comes while the open still copies');
  // truncate(2) on the path (node's truncateSync opens the file and ftruncates it instead).
  execFileSync('python3', ['-c', 'import os, sys\nos.truncate(sys.argv[1], 0)', f]);
  const fh = await opening;
  assert.equal((await fh.stat()).size, 0);
  await fh.write(Buffer.from('after'), 0, 5, 0);
  await fh.close();
  assert.equal(readFileSync(f, 'utf8'), 'after');
  // What the daemon holds, not what the kernel cached.
  await h.settle();
  h.unmount();
  h.mount();
  assert.equal(statSync(f).size, 5);
  assert.equal(readFileSync(f, 'utf8'), 'after');
});
