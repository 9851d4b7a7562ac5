// What a stopped host keeps on disk is unreadable without the passphrase: neither the names
// nor the contents written through the mount appear anywhere under SAFE_HOME, whether the
// daemon stopped cleanly or was killed with files still staged; and without the passphrase
// the store does not open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SAFE_BIN, makeHost, type Host } from './mounted.js';

const SECRETS = ['ledger-of-the-secret-society', 'MARGINALIA-IN-THE-CLEAR', 'hidden-directory-name'];

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Every file under SAFE_HOME that holds one of the secrets, with the secret. */
function leaks(h: Host): string[] {
  const out: string[] = [];
  for (const f of files(h.home)) {
    if (statSync(f).size === 0) continue;
    const bytes = readFileSync(f);
    for (const s of SECRETS) if (bytes.includes(Buffer.from(s))) out.push(`${f}: ${s}`);
  }
  return out;
}

test('no name or content written through the mount is readable under SAFE_HOME; the store needs the passphrase', { timeout: 180_000 }, async () => {
  // Chunking waits long enough that the kill below finds the files still staged.
  const h = makeHost({ delayMs: 60_000 });
  h.mount();
  mkdirSync(join(h.mnt, SECRETS[2]!));
  const text = `${SECRETS[1]} `.repeat(5000);
  writeFileSync(join(h.mnt, SECRETS[2]!, `${SECRETS[0]}.txt`), text);
  writeFileSync(join(h.mnt, 'notes.txt'), `${SECRETS[1]}\n`);
  const staged = files(join(h.home, 'staging')).filter((f) => /\/\d+-\d+$/.test(f));
  assert.ok(staged.length >= 2, `files are staged: ${staged.join(' ')}`);

  // Killed with the files staged: the staging files and the database are all there is.
  const pid = h.status().daemon!.pid;
  process.kill(pid, 'SIGKILL');
  spawnSync('fusermount3', ['-uz', h.mnt]);
  assert.deepEqual(leaks(h), []);

  h.mount();
  assert.equal(readFileSync(join(h.mnt, SECRETS[2]!, `${SECRETS[0]}.txt`), 'utf8'), text);
  h.ok('snapshot');
  h.unmount();
  assert.deepEqual(leaks(h), []);

  const r = spawnSync(SAFE_BIN, ['verify'], { env: { ...h.env, SAFE_PASSPHRASE: 'not the passphrase' }, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /wrong passphrase/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(h.ok('verify'), /no problems/);
});
