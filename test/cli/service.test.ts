// safe service: the unit it writes passes systemd's own check and runs what a boot would run;
// that command mounts with the password file, mounts again after a kill -9 (as Restart= would
// start it), and on systemd's SIGTERM unmounts cleanly. Where
// no systemd manager runs (this test's container), install says so in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logMessages, tempDir } from '../helpers.js';
import { makeHost, SAFE_BIN } from '../fs/mounted.js';

test('service install writes a unit systemd accepts; its command mounts unattended, again after a kill -9, and stops cleanly on SIGTERM', { timeout: 120_000 }, async () => {
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

  // What systemd would start, started here; its daemon killed hard (Restart=on-failure starts
  // it again, over the dead mount it left); then what systemd sends at shutdown.
  const exec = /\nExecStart=(.*)\n/.exec(text)![1]!.split(' ');
  const start = async (): Promise<{ daemon: ReturnType<typeof spawn>; err: () => string }> => {
    const daemon = spawn(exec[0]!, exec.slice(1), { env: { ...env, SAFE_HOME: h.home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    daemon.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; !h.status().mounted; i++) {
      assert.ok(i < 200, `not mounted: ${err}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    return { daemon, err: () => err };
  };
  const first = await start();
  writeFileSync(join(h.mnt, 'f'), 'written under the service\n');
  // The daemon is what dies (the kernel's OOM killer picks the biggest process): the unit's
  // process must fail with it, or systemd would not start it again.
  process.kill(h.status().daemon!.pid, 'SIGKILL');
  assert.notEqual(await new Promise((res) => first.daemon.once('exit', res)), 0, first.err());
  const { daemon, err } = await start();
  assert.equal(readFileSync(join(h.mnt, 'f'), 'utf8'), 'written under the service\n', 'the restarted service remounted the folder with what was written');
  daemon.kill('SIGTERM');
  assert.equal(await new Promise((res) => daemon.once('exit', res)), 0, err());
  assert.equal(h.status().mounted, false);
  assert.match(err(), /INFO {2}daemon: stopped cleanly\n/, 'the journal gets readable lines');
  assert.equal(logMessages(h.home).at(-1), 'stopped cleanly', 'and safe logs the same');
  h.mount();
  assert.equal(readFileSync(join(h.mnt, 'f'), 'utf8'), 'written under the service\n');

  const gone = safe('service', 'uninstall');
  assert.equal(gone.status, 0, gone.stderr);
  assert.ok(!existsSync(unit));
  assert.match(safe('service', 'status').stdout, /^not installed/);
});

test('service install --keyring keeps the passphrase in the desktop keyring; safe mount --keyring takes it from there', { timeout: 120_000 }, async () => {
  const h = makeHost();
  const config = tempDir('safe-xdg-');
  const home = tempDir('safe-keyring-home-');
  const env = { ...h.env, XDG_CONFIG_HOME: config, HOME: home, XDG_DATA_HOME: join(home, 'data'), SAFE_PASSPHRASE: undefined };
  const safe = (...args: string[]) => spawnSync(SAFE_BIN, args, { env, encoding: 'utf8' });
  assert.equal(safe('service', 'install', '--keyring', '--system').stderr, 'safe: --system starts at boot, before any keyring is unlocked: give --password-file FILE\n');
  // A desktop session of its own: a session bus and GNOME Keyring, unlocked as a login would.
  const session = (script: string): { status: number | null; stderr: string } => {
    const r = spawnSync('dbus-run-session', ['--', 'sh', '-c', `printf 'login password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && ${script}`], { env, encoding: 'utf8' });
    // The session bus's own complaint (it may not raise its fd limit here) is not ours.
    return { status: r.status, stderr: r.stderr.split('\n').filter((l) => !l.startsWith('dbus-daemon[')).join('\n') };
  };
  const missing = session(`"${SAFE_BIN}" mount --keyring`);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^safe: no passphrase for host 'testhost' in the desktop keyring, or the keyring is locked: safe service install --keyring stores it\n$/);
  const wrong = session(`SAFE_PASSPHRASE='not it' "${SAFE_BIN}" service install --keyring`);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^safe: wrong passphrase for host 'testhost'\n$/);
  // Installed with the right one (systemctl cannot enable it in this container: it says so),
  // then mounted with no passphrase given, as the unit at login would.
  const r = session(`SAFE_PASSPHRASE='test passphrase' "${SAFE_BIN}" service install --keyring; "${SAFE_BIN}" mount --keyring`);
  assert.equal(r.status, 0, r.stderr);
  const unit = readFileSync(join(config, 'systemd', 'user', 'safe.service'), 'utf8');
  assert.match(unit, / mount --foreground --keyring\n/);
  assert.equal(spawnSync('systemd-analyze', ['verify', join(config, 'systemd', 'user', 'safe.service')]).status, 0);
  assert.equal(h.status().mounted, true);
  writeFileSync(join(h.mnt, 'f'), 'mounted from the keyring\n');
  h.unmount();
});
