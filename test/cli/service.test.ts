// safe service: the unit it writes passes systemd's own check and runs what a boot would run;
// that command mounts with the password file and, on systemd's SIGTERM, unmounts cleanly. Where
// no systemd manager runs (this test's container), install says so in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logMessages, tempDir } from '../helpers.js';
import { makeHost, SAFE_BIN } from '../fs/mounted.js';

test('service install writes a unit systemd accepts; its command mounts unattended and stops cleanly on SIGTERM', { timeout: 120_000 }, async () => {
  const h = makeHost();
  const config = tempDir('safe-xdg-');
  const env = { ...h.env, XDG_CONFIG_HOME: config, SAFE_PASSPHRASE: undefined };
  const safe = (...args: string[]) => spawnSync(SAFE_BIN, args, { env, encoding: 'utf8' });
  const pass = join(h.home, '..', 'pass');
  writeFileSync(pass, 'test passphrase\n', { mode: 0o600 });

  const none = safe('service', 'install');
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^safe: a service starts with nobody to type the passphrase: give --password-file FILE/);
  const unit = join(config, 'systemd', 'user', 'safe.service');
  assert.ok(!existsSync(unit));

  const r = safe('service', 'install', '--password-file', pass);
  const manager = spawnSync('systemctl', ['--user', 'show-environment']).status === 0;
  if (manager) assert.equal(r.status, 0, r.stderr);
  else {
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^safe: wrote ${unit}, but systemctl --user could not enable it \\(.+\\): where systemd runs, systemctl --user enable --now safe.service\\n$`));
  }
  const text = readFileSync(unit, 'utf8');
  assert.match(text, new RegExp(`\\nEnvironment=SAFE_HOME=${h.home}\\n`));
  assert.match(text, /\nRestart=on-failure\n/);
  assert.match(text, /\nWantedBy=default.target\n/);
  const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stderr);
  assert.match(safe('service', 'status').stdout, new RegExp(`^${unit}: enabled `));

  // What systemd would start, started here; then what systemd sends at shutdown.
  const exec = /\nExecStart=(.*)\n/.exec(text)![1]!.split(' ');
  const daemon = spawn(exec[0]!, exec.slice(1), { env: { ...env, SAFE_HOME: h.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  daemon.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; !h.status().mounted; i++) {
    assert.ok(i < 200, `not mounted: ${err}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  writeFileSync(join(h.mnt, 'f'), 'written under the service\n');
  daemon.kill('SIGTERM');
  assert.equal(await new Promise((res) => daemon.once('exit', res)), 0, err);
  assert.equal(h.status().mounted, false);
  assert.match(err, /INFO {2}daemon: stopped cleanly\n/, 'the journal gets readable lines');
  assert.equal(logMessages(h.home).at(-1), 'stopped cleanly', 'and safe logs the same');
  h.mount();
  assert.equal(readFileSync(join(h.mnt, 'f'), 'utf8'), 'written under the service\n');

  const gone = safe('service', 'uninstall');
  assert.equal(gone.status, 0, gone.stderr);
  assert.ok(!existsSync(unit));
  assert.match(safe('service', 'status').stdout, /^not installed/);
});
