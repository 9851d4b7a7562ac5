// safe service install | uninstall | status: the daemon as a systemd unit that mounts at login
// (a user unit) or at boot (--system, as root), restarts after a failure, and stops cleanly:
// systemd's SIGTERM reaches `safe mount --foreground`, whose daemon unmounts, finishes
// chunking and checkpoints the index before it exits. Nobody types a passphrase at boot, so
// the unit reads it from a password file only its owner can read, or (a user unit, at login)
// from the desktop keyring, which the login unlocks.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keysOf, loadConfig, passphraseOf, safeHome } from './config.js';
import { UserError } from './errors.js';
import { passphraseFromFile, storeInKeyring } from './secrets.js';
import type { Out } from './commands-store.js';

const BIN = fileURLToPath(new URL('../../../bin/safe', import.meta.url));
const UNIT = 'safe.service';

interface Where {
  system: boolean;
  file: string;
  systemctl: string[];
}

function where(system: boolean): Where {
  if (system && process.getuid?.() !== 0) throw new UserError('--system installs a unit for the whole machine: run it as root (or leave it out for a unit of your own)', 2);
  const dir = system ? '/etc/systemd/system' : join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'systemd', 'user');
  return { system, file: join(dir, UNIT), systemctl: system ? [] : ['--user'] };
}

/** The unit's text: exported for the test that has systemd-analyze check it. */
export function unitText(o: { host: string; home: string; passwordFile: string | null; system: boolean }): string {
  const q = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1')}"`);
  return `[Unit]
Description=safe: the folder of host ${o.host}, backed up to friends
After=network-online.target
Wants=network-online.target
# At most 10 starts in 10 minutes; each restart waits 10 s.
StartLimitIntervalSec=600
StartLimitBurst=10

[Service]
Type=simple
Environment=SAFE_HOME=${q(o.home)}
ExecStart=${q(process.execPath)} ${q(BIN)} mount --foreground ${o.passwordFile === null ? '--keyring' : `--password-file ${q(o.passwordFile)}`}
Restart=on-failure
RestartSec=10
# Unmounting waits for chunking and a WAL checkpoint.
TimeoutStopSec=300
KillMode=mixed

[Install]
WantedBy=${o.system ? 'multi-user.target' : 'default.target'}
`;
}

function systemctl(w: Where, ...args: string[]): { ok: true; out: string } | { ok: false; why: string } {
  try {
    return { ok: true, out: execFileSync('systemctl', [...w.systemctl, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() };
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    return { ok: false, why: (e.stderr || e.stdout || e.message).trim().split('\n')[0]! };
  }
}

export async function install(o: { system: boolean; passwordFile?: string; keyring: boolean }, out: Out): Promise<void> {
  const home = safeHome();
  const cfg = loadConfig(home);
  if (o.keyring && o.passwordFile) throw new UserError('give --password-file or --keyring, not both', 2);
  if (!o.passwordFile && !o.keyring) throw new UserError('a service starts with nobody to type the passphrase: give --password-file FILE (the passphrase on its first line, mode 0600), or --keyring', 2);
  // At boot nobody has logged in yet, so no keyring is unlocked.
  if (o.keyring && o.system) throw new UserError('--system starts at boot, before any keyring is unlocked: give --password-file FILE', 2);
  const w = where(o.system);
  let passwordFile: string | null = null;
  if (o.passwordFile) {
    passwordFile = resolve(o.passwordFile);
    passphraseFromFile(passwordFile); // readable, private, not empty: checked now, not at the next boot
  } else {
    // Checked before it is stored: a wrong one would fail at every login.
    const passphrase = await passphraseOf(cfg);
    await keysOf(cfg, passphrase);
    storeInKeyring(cfg.host, passphrase);
  }
  mkdirSync(dirname(w.file), { recursive: true });
  writeFileSync(w.file, unitText({ host: cfg.host, home, passwordFile, system: o.system }));
  const reload = systemctl(w, 'daemon-reload');
  const enable = reload.ok ? systemctl(w, 'enable', '--now', UNIT) : reload;
  if (!enable.ok) {
    throw new UserError(`wrote ${w.file}, but systemctl ${w.systemctl.join(' ')} could not enable it (${enable.why}): where systemd runs, systemctl ${[...w.systemctl, 'enable', '--now', UNIT].join(' ')}`);
  }
  out.print(`installed ${w.file}: ${cfg.mount} mounts at ${o.system ? 'boot' : 'login'} and after a failure (safe logs shows what it does)`, { unit: w.file, enabled: true });
}

export function uninstall(o: { system: boolean }, out: Out): void {
  const w = where(o.system);
  if (!existsSync(w.file)) throw new UserError(`no unit at ${w.file}: nothing to uninstall`);
  const stop = systemctl(w, 'disable', '--now', UNIT);
  rmSync(w.file);
  systemctl(w, 'daemon-reload');
  out.print(`removed ${w.file}${stop.ok ? '' : ` (systemctl could not stop it: ${stop.why})`}`, { unit: w.file, removed: true, stopped: stop.ok });
}

export function status(o: { system: boolean }, out: Out): void {
  const w = where(o.system);
  const installed = existsSync(w.file);
  const enabled = installed ? systemctl(w, 'is-enabled', UNIT) : null;
  const active = installed ? systemctl(w, 'is-active', UNIT) : null;
  const state = (r: typeof enabled): string => (r === null ? 'no' : r.ok ? r.out : `unknown (${r.why})`);
  out.print(
    installed ? `${w.file}: enabled ${state(enabled)}, active ${state(active)}` : `not installed (safe service install --password-file FILE, or --keyring)`,
    { unit: w.file, installed, enabled: enabled?.ok ? enabled.out : null, active: active?.ok ? active.out : null },
  );
}
