// Files with the same content share one chunk list: a copy, or rsync's temp file renamed over
// the original, adds no list and no references; counts stay exact through forget and GC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost } from './mounted.js';
import { seededBytes, openIndex } from '../helpers.js';

test('identical contents share a chunk list; references stay exact through rewrite, forget and GC', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const body = seededBytes(300_000, 4);
  writeFileSync(join(h.mnt, 'a.bin'), body);
  await h.settle();
  writeFileSync(join(h.mnt, 'b.bin'), body);
  // rsync's way: a temp file with the same bytes, renamed over the original.
  writeFileSync(join(h.mnt, '.a.bin.tmp'), body);
  await h.settle();
  renameSync(join(h.mnt, '.a.bin.tmp'), join(h.mnt, 'a.bin'));
  writeFileSync(join(h.mnt, 'c.bin'), Buffer.concat([body, Buffer.from('x')]));
  await h.settle();
  const lists = (): { cl: number; users: number }[] => {
    const db = openIndex(h);
    try {
      return db.prepare('SELECT cl, users FROM clists ORDER BY cl').all() as { cl: number; users: number }[];
    } finally {
      db.close();
    }
  };
  const l = lists();
  assert.equal(l.length, 2, `one list for a and b, one for c: ${JSON.stringify(l)}`);
  assert.equal(l[0]!.users, 2, 'a (renamed temp file) and b share the first');
  assert.match(h.ok('verify'), /no problems/);

  h.ok('snapshot');
  rmSync(join(h.mnt, 'b.bin'));
  await h.settle();
  h.ok('snapshot');
  h.ok('forget', '--keep-last', '1');
  assert.ok(readFileSync(join(h.mnt, 'a.bin')).equals(body), 'a still reads after b and its snapshot went');
  assert.match(h.ok('verify'), /no problems/);
  rmSync(join(h.mnt, 'a.bin'));
  await h.settle();
  h.ok('snapshot');
  h.ok('forget', '--keep-last', '1');
  assert.equal(lists().length, 1, 'the shared list went with its last user');
  assert.match(h.ok('verify'), /no problems/);
  assert.equal(spawnSync('cmp', [join(h.mnt, 'c.bin'), '-'], { input: Buffer.concat([body, Buffer.from('x')]) }).status, 0);
});
