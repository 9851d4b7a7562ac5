// Edges of the filesystem: files over 4 GiB, deep trees, a full disk under SAFE_HOME, SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, SAFE_BIN } from './mounted.js';
import { errorCode, seededBytes, smallDisk } from '../helpers.js';

test('a sparse file over 4 GiB through the mount, chunked and read back', { timeout: 180_000 }, async () => {
  const h = makeHost();
  h.mount();
  const p = join(h.mnt, 'huge');
  const far = 4 * 1024 ** 3 + 4096 * 3 + 17;
  const fd = openSync(p, 'w');
  writeSync(fd, Buffer.from('start'), 0, 5, 0);
  writeSync(fd, Buffer.from('beyond four gigabytes'), 0, 21, far);
  closeSync(fd);
  const check = (): void => {
    assert.equal(statSync(p).size, far + 21);
    const r = openSync(p, 'r');
    const buf = Buffer.alloc(21);
    readSync(r, buf, 0, 21, far);
    assert.equal(buf.toString(), 'beyond four gigabytes');
    readSync(r, buf, 0, 5, 0);
    assert.equal(buf.subarray(0, 5).toString(), 'start');
    readSync(r, buf, 0, 21, 2 * 1024 ** 3);
    assert.ok(buf.every((b) => b === 0), 'the hole reads as zeros');
    closeSync(r);
  };
  check();
  await h.settle(150_000);
  check();
});

test('a deep tree (200 levels)', { timeout: 60_000 }, async () => {
  const h = makeHost();
  h.mount();
  const parts = Array.from({ length: 200 }, (_, i) => `d${i}`);
  const deep = join(h.mnt, ...parts);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'leaf'), 'bottom');
  await h.settle();
  h.unmount();
  h.mount();
  assert.equal(readFileSync(join(deep, 'leaf'), 'utf8'), 'bottom');
  execFileSync('rm', ['-r', join(h.mnt, 'd0')]);
  assert.ok(!existsSync(join(h.mnt, 'd0')));
});

test('disk full under SAFE_HOME: the writer gets ENOSPC, nothing is corrupted', { timeout: 120_000 }, async (t) => {
  const small = smallDisk(t, '40m');
  if (!small) return;
  const mnt = join(small, 'mnt');
  mkdirSync(mnt);
  const env = { ...process.env, SAFE_HOME: join(small, 'home'), SAFE_PASSPHRASE: 'pw', SAFE_CHUNK_DELAY_MS: '20' };
  const safe = (...a: string[]) => spawnSync(SAFE_BIN, a, { env, encoding: 'utf8' });
  assert.equal(safe('init', '--host', 'full', '--mount', mnt).status, 0);
  assert.equal(safe('mount').status, 0);
  try {
    await fillAndCheck(mnt, safe);
  } finally {
    // Before the tmpfs goes: a daemon whose SAFE_HOME vanished could not be told to stop.
    safe('unmount');
  }
});

async function fillAndCheck(mnt: string, safe: (...a: string[]) => ReturnType<typeof spawnSync>): Promise<void> {
  const keep = seededBytes(2_000_000, 9);
  writeFileSync(join(mnt, 'keep'), keep);
  let err: NodeJS.ErrnoException | undefined;
  try {
    const fd = openSync(join(mnt, 'big'), 'w');
    try {
      const block = seededBytes(1 << 20, 3);
      for (let i = 0; i < 200; i++) {
        block[0] = i;
        writeSync(fd, block);
      }
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    err = e as NodeJS.ErrnoException;
  }
  assert.equal(err?.code, 'ENOSPC', 'the writer is told the disk is full');
  execFileSync('rm', ['-f', join(mnt, 'big')]);
  assert.deepEqual(readFileSync(join(mnt, 'keep')), keep);
  for (let i = 0; i < 200; i++) {
    const s = JSON.parse(String(safe('status', '--json').stdout)) as { daemon: { pendingChunking: number } };
    if (s.daemon.pendingChunking === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(readFileSync(join(mnt, 'keep')), keep);
  const v = safe('verify');
  assert.equal(v.status, 0, String(v.stdout) + String(v.stderr));
}

test('disk full when a truncating open must copy a file a snapshot shares: ENOSPC, and the file still closes', { timeout: 120_000 }, async (t) => {
  const small = smallDisk(t, '48m');
  if (!small) return;
  const mnt = join(small, 'mnt');
  mkdirSync(mnt);
  const env = { ...process.env, SAFE_HOME: join(small, 'home'), SAFE_PASSPHRASE: 'pw', SAFE_CHUNK_DELAY_MS: '20' };
  const safe = (...a: string[]) => spawnSync(SAFE_BIN, a, { env, encoding: 'utf8' });
  const writersOpen = (): number => (JSON.parse(String(safe('status', '--json').stdout)) as { daemon: { writersOpen: number } }).daemon.writersOpen;
  assert.equal(safe('init', '--host', 'full', '--mount', mnt).status, 0);
  assert.equal(safe('mount').status, 0);
  const f = join(mnt, 'f');
  // The parent writes 4 MiB, a child that inherited the fd exits (publishing them), a snapshot
  // shares them; with the disk full, another open with O_TRUNC needs a copy of them.
  const parent = spawn('python3', ['-c', `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b'p' * (4 << 20))
if os.fork() == 0:
    os._exit(0)
os.wait()
print('ready', flush=True)
sys.stdin.readline()
os.close(fd)`, f], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      parent.stdout!.once('data', () => res());
      parent.once('exit', (c) => rej(new Error(`the parent exited (${c})`)));
    });
    assert.equal(safe('snapshot').status, 0);
    const filler = join(small, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=100']);
    try {
      assert.equal(errorCode(() => closeSync(openSync(f, 'w'))), 'ENOSPC');
    } finally {
      rmSync(filler);
    }
    assert.equal(writersOpen(), 1, 'the parent\'s open is the only one');
    const exited = new Promise((res) => parent.once('exit', res));
    parent.stdin!.end('\n');
    assert.equal(await exited, 0);
    assert.equal(writersOpen(), 0, 'closed: the failed open holds nothing');
    assert.deepEqual(readFileSync(f), Buffer.alloc(4 << 20, 'p'));
  } finally {
    parent.kill('SIGKILL');
    safe('unmount');
  }
});

test('SIGTERM unmounts cleanly and keeps what was closed', { timeout: 60_000 }, async () => {
  const h = makeHost({ delayMs: 60_000 });
  h.mount();
  writeFileSync(join(h.mnt, 'f'), 'closed before SIGTERM');
  const pid = h.status().daemon!.pid;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && existsSync(join(h.home, 'daemon.pid')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!existsSync(join(h.home, 'daemon.pid')), 'the daemon exited');
  assert.match(readFileSync(join(h.home, 'daemon.log'), 'utf8'), /stopped cleanly/);
  h.mount();
  assert.equal(readFileSync(join(h.mnt, 'f'), 'utf8'), 'closed before SIGTERM');
  assert.equal(h.status().daemon!.pendingChunking, 0, 'pending chunking was finished before exit');
});
