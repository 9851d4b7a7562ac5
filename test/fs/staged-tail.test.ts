// A file whose last, partial cipher block happens to be all zeros in its staged file (a file
// of random size in ~4,000 is) reads back whole through the mount: after a kill -9 with the
// file still staged, and once chunked. The crash campaign saw this as a file closed and
// fsynced before the kill with its size right and its last bytes zero (seed 1137809856).
// The test makes the case on purpose: it knows the staging key (hostname and passphrase), so
// it reads the nonce of the staged file the daemon created at open and writes content whose
// last bytes encrypt to zeros.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, readSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hostKeys, hostMaster } from '../../src/keys/derive.js';
import { STAGED_HEADER } from '../../src/chunkstore/staged-file.js';
import { makeHost } from './mounted.js';

/** Where a read differs from what was written, short enough to read in a failure. */
function diff(got: Buffer, want: Buffer): string {
  if (got.length !== want.length) return `${got.length} bytes, not ${want.length}`;
  const at: string[] = [];
  for (let i = 0; i < want.length && at.length < 8; i++) if (got[i] !== want[i]) at.push(`byte ${i} is ${got[i]}, not ${want[i]}`);
  return at.join(', ');
}

test('a file whose staged last block encrypts to zeros reads back whole, staged after a kill -9 and chunked', { timeout: 120_000 }, async () => {
  const h = makeHost({ host: 'tailhost', delayMs: 60_000 });
  const { stagingKey } = hostKeys(await hostMaster('tailhost', 'test passphrase'));
  h.mount();
  const path = join(h.mnt, 'tail');
  const fd = openSync(path, 'w');
  const { ino } = statSync(path);
  const staged = readdirSync(join(h.home, 'staging')).filter((n) => n.startsWith(`${ino}-`));
  assert.equal(staged.length, 1, `one staged file for inode ${ino}: ${staged.join(' ')}`);
  const stagedPath = join(h.home, 'staging', staged[0]!);
  const head = Buffer.alloc(STAGED_HEADER);
  const sfd = openSync(stagedPath, 'r');
  readSync(sfd, head, 0, STAGED_HEADER, 0);
  closeSync(sfd);

  // 100,003 bytes: the last block holds 3, which are the keystream there (ciphertext zeros).
  const size = 100_003;
  const fileKey = createHmac('sha256', stagingKey).update(head.subarray(8, 24)).digest();
  const keystream = createCipheriv('aes-256-ctr', fileKey, Buffer.alloc(16)).update(Buffer.alloc(size));
  const data = randomBytes(size);
  keystream.copy(data, size - 3, size - 3);
  writeSync(fd, data);
  fsyncSync(fd);
  closeSync(fd);
  const onDisk = readFileSync(stagedPath);
  assert.equal(onDisk.length, STAGED_HEADER + size);
  assert.deepEqual(onDisk.subarray(-3), Buffer.alloc(3), 'the staged file ends in zeros');

  // Killed with the file staged: the next mount reads it from the staged file (or from the
  // chunks the recovery makes of it right away), not from the kernel's cache.
  process.kill(h.status().daemon!.pid, 'SIGKILL');
  h.mount();
  assert.equal(diff(readFileSync(path), data), '', 'after kill -9 and a remount');
  await h.settle();
  h.unmount();
  h.mount();
  assert.equal(diff(readFileSync(path), data), '', 'chunked');
  assert.match(h.ok('verify'), /no problems/);
  h.unmount();
});
