import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, SAFE_BIN } from './mounted.js';
import { seededBytes } from '../helpers.js';

test('kill -9 of the daemon mid-write loses nothing closed and fsynced', { timeout: 180_000 }, async () => {
  const h = makeHost({ delayMs: 20 });
  for (let round = 0; round < 3; round++) {
    h.mount();
    const dir = join(h.mnt, `round${round}`);
    mkdirSync(dir);
    const pid = h.status().daemon!.pid;
    const child = spawn(process.execPath, [new URL('../fixtures/write-loop.js', import.meta.url).pathname, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const target = 20 + round * 25;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (out.split('\n').length > target) {
          clearInterval(t);
          process.kill(pid, 'SIGKILL');
          resolve();
        }
      }, 5);
    });
    await new Promise((r) => child.once('exit', r));
    const done = out.split('\n').filter(Boolean).map(Number);
    assert.ok(done.length >= target);
    // The next mount clears the stale mount and chunks leftover staging files.
    h.mount();
    for (let r = 0; r <= round; r++) {
      const files = r === round ? done : null;
      if (files) for (const i of files) assert.deepEqual(readFileSync(join(h.mnt, `round${r}`, `f${i}`)), seededBytes(1000 + (i % 13) * 40_000, i), `round ${r} file f${i}`);
      else assert.ok(readdirSync(join(h.mnt, `round${r}`)).length > 0);
    }
    await h.settle();
    assert.match(h.ok('verify'), /no problems/);
    h.unmount();
  }
});

test('bad input: second daemon, busy mount point, missing store, wrong passphrase, a chunk delay that is not one', { timeout: 60_000 }, () => {
  const h = makeHost();
  h.mount();
  const again = h.safe('mount');
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /^safe: already mounted/);
  assert.equal(again.stderr.trim().split('\n').length, 1, 'one line');
  h.unmount();
  const unm = h.safe('unmount');
  assert.notEqual(unm.status, 0);
  assert.match(unm.stderr, /not mounted/);

  writeFileSync(join(h.mnt, 'stray'), 'x');
  const busy = h.safe('mount');
  assert.notEqual(busy.status, 0);
  assert.match(busy.stderr, /not empty/);
  spawnSync('rm', [join(h.mnt, 'stray')]);

  const bad = spawnSync(SAFE_BIN, ['mount'], { env: { ...h.env, SAFE_PASSPHRASE: 'not it' }, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim(), "safe: wrong passphrase for host 'testhost'");

  const delay = spawnSync(SAFE_BIN, ['mount'], { env: { ...h.env, SAFE_CHUNK_DELAY_MS: 'soon' }, encoding: 'utf8' });
  assert.equal(delay.status, 1);
  assert.equal(delay.stderr, "safe: SAFE_CHUNK_DELAY_MS is not a number of milliseconds: 'soon'\n");

  spawnSync('mv', [join(h.home, 'store'), join(h.home, 'store.away')]);
  const missing = h.safe('mount');
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /store/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
  spawnSync('mv', [join(h.home, 'store.away'), join(h.home, 'store')]);
  h.mount();
  h.unmount();
});

test('kill -9: a file fsynced but never closed keeps what was fsynced; a snapshot taken between an fsync and the next write keeps the fsynced bytes', { timeout: 120_000 }, async () => {
  const h = makeHost({ delayMs: 20 });
  h.mount();
  const first = seededBytes(300_000, 41);
  const more = seededBytes(200_000, 42);
  const holder = spawn(process.execPath, [new URL('../fixtures/fsync-holder.js', import.meta.url).pathname, join(h.mnt, 'db')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const step = (seed: number, size: number, at: number): Promise<void> =>
    new Promise((resolve) => {
      holder.stdout.once('data', () => resolve());
      holder.stdin.write(`${seed} ${size} ${at}\n`);
    });
  await step(41, first.length, 0);
  const snap = (JSON.parse(h.ok('snapshot', '--json')) as { name: string }).name;
  await step(42, more.length, 100_000); // over the snapshot's bytes
  process.kill(h.status().daemon!.pid, 'SIGKILL');
  holder.kill('SIGKILL');
  h.mount();
  assert.deepEqual(readFileSync(join(h.mnt, 'db')), Buffer.concat([first.subarray(0, 100_000), more]), 'the live file holds both fsynced writes');
  assert.deepEqual(readFileSync(join(h.mnt, '.snapshots', snap, 'db')), first, 'the snapshot holds the file as of its first fsync');
  await h.settle();
  assert.match(h.ok('verify'), /no problems/);
  h.unmount();
});

test('kill -9: the next mount clears the stale mount while the kernel still caches the mount point', { timeout: 60_000 }, () => {
  const h = makeHost();
  h.mount();
  statSync(h.mnt); // its attributes now cached for a day: stat of the dead mount still answers
  process.kill(h.status().daemon!.pid, 'SIGKILL');
  h.mount();
  writeFileSync(join(h.mnt, 'after'), 'remounted');
  h.unmount();
});
