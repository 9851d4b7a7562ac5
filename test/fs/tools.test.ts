// Real tools inside the mount: what users actually run there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost } from './mounted.js';
import { tempDir, seededBytes } from '../helpers.js';

const sh = (cmd: string, cwd?: string): string => execSync(cmd, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A source tree with the shapes tar, git and rsync care about. */
function sampleTree(dir: string): void {
  for (let d = 0; d < 6; d++) {
    mkdirSync(join(dir, `dir${d}/sub`), { recursive: true });
    for (let f = 0; f < 15; f++) writeFileSync(join(dir, `dir${d}/file${f}.c`), `/* file ${d}.${f} */\n` + 'int x;\n'.repeat(f * 40));
    writeFileSync(join(dir, `dir${d}/sub/blob.bin`), seededBytes(100_000 + d * 33_333, d + 1));
  }
  execFileSync('ln', ['-s', '../dir0/file1.c', join(dir, 'dir1/link.c')]);
  execFileSync('chmod', ['755', join(dir, 'dir2/file3.c')]);
  execFileSync('touch', ['-d', '2019-05-06 07:08:09', join(dir, 'dir3/file4.c')]);
}

test('tar x into the mount, then diff -r', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const src = tempDir();
  sampleTree(src);
  const tarball = join(tempDir(), 't.tar');
  sh(`tar cf ${tarball} -C ${src} .`);
  mkdirSync(join(h.mnt, 'x'));
  sh(`tar xf ${tarball} -C ${join(h.mnt, 'x')}`);
  sh(`diff -r ${src} ${join(h.mnt, 'x')}`);
  await h.settle();
  sh(`diff -r ${src} ${join(h.mnt, 'x')}`);
});

test('git init, add, commit, log, fsck inside the mount', { timeout: 120_000 }, () => {
  const h = makeHost();
  h.mount();
  const repo = join(h.mnt, 'repo');
  mkdirSync(repo);
  sampleTree(repo);
  const git = (args: string): string => sh(`git -c user.name=t -c user.email=t@t -c init.defaultBranch=main ${args}`, repo);
  git('init -q');
  git('add -A');
  git('commit -qm first');
  writeFileSync(join(repo, 'dir0/file0.c'), 'changed\n');
  git('commit -qam second');
  assert.equal(git('log --oneline').trim().split('\n').length, 2);
  git('fsck --strict');
  assert.equal(git('status --porcelain').trim(), '');
  git('gc -q');
  git('fsck --strict');
});

test('SQLite database with transactions inside the mount', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const db = join(h.mnt, 'app.db');
  let script = 'PRAGMA journal_mode=DELETE; CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);\n';
  for (let i = 0; i < 40; i++) {
    script += 'BEGIN;';
    for (let j = 0; j < 50; j++) script += `INSERT INTO t(v) VALUES (hex(randomblob(${20 + j})));`;
    script += i % 7 === 3 ? 'ROLLBACK;\n' : 'COMMIT;\n';
  }
  execFileSync('sqlite3', [db], { input: script });
  const count = (): string => execFileSync('sqlite3', [db, 'SELECT count(*) FROM t; PRAGMA integrity_check;'], { encoding: 'utf8' });
  assert.equal(count(), `${34 * 50}\nok\n`);
  execFileSync('sqlite3', [db], { input: 'PRAGMA journal_mode=WAL; BEGIN; DELETE FROM t WHERE k % 2 = 0; COMMIT; VACUUM;' });
  assert.equal(count(), `${17 * 50}\nok\n`);
  await h.settle();
  h.unmount();
  h.mount();
  assert.equal(count(), `${17 * 50}\nok\n`);
});

test('rsync -a in and out round-trips a tree', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const src = tempDir();
  sampleTree(src);
  sh(`rsync -a ${src}/ ${join(h.mnt, 'r')}/`);
  await h.settle();
  const out = tempDir();
  sh(`rsync -a ${join(h.mnt, 'r')}/ ${out}/`);
  sh(`diff -r ${src} ${out}`);
  // -a kept modes and times: a second rsync has nothing to transfer
  const again = sh(`rsync -ai ${src}/ ${join(h.mnt, 'r')}/`);
  assert.equal(again.trim(), '', `rsync found differences: ${again}`);
});
