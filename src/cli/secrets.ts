// Secrets come from the environment (scripts, tests), a terminal prompt, or for an unattended
// mount a password file only its owner can read or the desktop keyring; never argv, never
// written to disk by us.
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, fstatSync, readFileSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';
import { UserError } from './errors.js';

async function promptHidden(question: string): Promise<string> {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    throw new UserError(`${question.replace(/:\s*$/, '')} is needed: set it in the environment or run at a terminal`);
  }
  const input = new ReadStream(fd);
  const output = new WriteStream(fd);
  output.write(question);
  input.setRawMode(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let answer = '';
    const done = (err?: Error): void => {
      input.setRawMode(false);
      input.pause();
      input.removeAllListeners('data');
      output.write('\n');
      input.destroy();
      output.destroy();
      try { closeSync(fd); } catch { /* closed by the streams */ }
      if (err) reject(err);
      else resolve(answer);
    };
    input.on('data', (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UserError('interrupted', 130));
        if (ch === '\u007f' || ch === '\b') answer = answer.slice(0, -1);
        else answer += ch;
      }
    });
  });
}

export async function secret(envName: string, question: string, confirm = false): Promise<string> {
  const fromEnv = process.env[envName];
  if (fromEnv !== undefined) {
    if (fromEnv === '') throw new UserError(`${envName} is set but empty`);
    return fromEnv;
  }
  const first = await promptHidden(`${question}: `);
  if (!first) throw new UserError(`${question.toLowerCase()} must not be empty`);
  if (confirm && (await promptHidden(`${question} (again): `)) !== first) throw new UserError(`the two ${question.toLowerCase()}s differ`);
  return first;
}

export async function ask(question: string, fallback: string): Promise<string> {
  if (!process.stdin.isTTY) return fallback;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = (await rl.question(`${question} [${fallback}]: `)).trim();
    return a || fallback;
  } finally {
    rl.close();
  }
}

/**
 * The passphrase in FILE (its first line), for a mount nobody types at (a service at boot).
 * Refused unless only its owner, this user, can read or write it: anyone who reads it holds
 * every file and every snapshot.
 */
export function passphraseFromFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (cause) {
    throw new UserError(`cannot read the password file ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, 1, { cause });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`the password file ${file} is not a file`);
    if ((st.mode & 0o077) !== 0) throw new UserError(`the password file ${file} is open to others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${file}`);
    if (process.getuid && st.uid !== process.getuid()) throw new UserError(`the password file ${file} belongs to another user (uid ${st.uid})`);
    const pass = readFileSync(fd, 'utf8').split(/\r?\n/)[0]!;
    if (!pass) throw new UserError(`the password file ${file} is empty`);
    return pass;
  } finally {
    closeSync(fd);
  }
}

/** Where an unattended mount takes the passphrase from. */
export type Unattended = { file: string } | { keyring: true };

// The Secret Service (GNOME Keyring, KWallet) through libsecret's secret-tool, under these
// attributes: the passphrase of one host.
const keyringAttrs = (host: string): string[] => ['service', 'safe', 'host', host];
const NO_SECRET_TOOL = '--keyring needs secret-tool (Debian: libsecret-tools) and a desktop keyring (Secret Service) in this session';

/** The passphrase `safe service install --keyring` stored, from the unlocked desktop keyring. */
export function passphraseFromKeyring(host: string): string {
  const r = spawnSync('secret-tool', ['lookup', ...keyringAttrs(host)], { encoding: 'utf8' });
  if (r.error) throw new UserError(NO_SECRET_TOOL);
  if (r.status !== 0 || r.stdout === '') {
    throw new UserError(`no passphrase for host '${host}' in the desktop keyring, or the keyring is locked: safe service install --keyring stores it`);
  }
  return r.stdout;
}

export function storeInKeyring(host: string, passphrase: string): void {
  const r = spawnSync('secret-tool', ['store', `--label=safe: the passphrase of host ${host}`, ...keyringAttrs(host)], { input: passphrase, encoding: 'utf8' });
  if (r.error) throw new UserError(NO_SECRET_TOOL);
  if (r.status !== 0) throw new UserError(`the desktop keyring did not take the passphrase: ${r.stderr.trim().split('\n')[0] || `secret-tool exited ${r.status}`}`);
}
