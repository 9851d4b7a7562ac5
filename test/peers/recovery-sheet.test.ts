// What a user must keep to recover is handed to them: `safe init --group` shows a recovery
// sheet and writes it, group password included, to a file only they can read; a blank machine
// points to `safe recover` as well as `safe init`; and no secret stays in a daemon's
// environment, where anyone able to read /proc/PID/environ as that user would find it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { makeHost } from '../fs/mounted.js';
import { GROUP, freePort, makeMember } from './group.js';

test('safe init --group shows the recovery sheet and writes it, with the group password, mode 0600', async () => {
  const dir = tempDir();
  const sheet = join(dir, 'sheet.txt');
  const member = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const h = makeHost({ init: false, env: { SAFE_GROUP_PASSWORD: GROUP.password } });
  const shown = h.ok('init', '--host', 'sheet-host', '--mount', h.mnt, '--group', GROUP.name, '--peer', member, '--listen', listen, '--no-mdns', '--recovery-sheet', sheet);

  assert.equal(statSync(sheet).mode & 0o777, 0o600);
  const text = readFileSync(sheet, 'utf8');
  assert.match(text, /safe recover --host sheet-host --group test-group --peer \/ip4\/127\.0\.0\.1\/tcp\/\d+/);
  assert.ok(text.includes(`password of group ${GROUP.name}: ${GROUP.password}`), text);
  assert.ok(text.includes(`    ${member}\n`), text);
  assert.ok(text.includes(`listens on ${listen}`), text);
  assert.ok(!text.includes('test passphrase'), 'the passphrase is written nowhere');

  // On the terminal: the same sheet, saying where the password is instead of showing it.
  assert.ok(shown.includes(`password of group ${GROUP.name}: written in ${sheet}`), shown);
  assert.ok(!shown.includes(GROUP.password), shown);
  assert.ok(shown.includes(`safe recover --host sheet-host --group ${GROUP.name} --peer ${member}`), shown);

  // Without a group there is nothing to recover from: one line, exit 2, nothing created.
  const solo = makeHost({ init: false });
  const r = solo.safe('init', '--host', 'solo', '--mount', solo.mnt, '--recovery-sheet', join(dir, 'solo.txt'));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^safe: --recovery-sheet goes with --group[^\n]*\n$/);
});

test('on a blank machine safe status points to safe init and safe recover, in one line', () => {
  const h = makeHost({ init: false });
  const r = h.safe('status');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^safe: no host in [^\n]*'safe init'[^\n]*'safe recover'[^\n]*\n$/);
});

test('a mounted daemon keeps neither the passphrase nor the group password in its environment', async () => {
  const m = await makeMember('env-host', { offer: '10M' });
  m.mount();
  const pid = m.status().daemon!.pid;
  const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  assert.ok(env.some((e) => e.startsWith('SAFE_HOME=')), 'read the daemon environment');
  assert.deepEqual(env.filter((e) => /^SAFE_(PASSPHRASE|GROUP_PASSWORD)=/.test(e)), []);
});
