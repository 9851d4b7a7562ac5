import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { randomBytes, scryptSync } from 'node:crypto';
import { openDb, type Db } from '../src/chunkstore/index-db.js';
import { SCRYPT, hostKeys, hostSalt } from '../src/keys/derive.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { seededRandom } from '../scripts/seeded-random.js';
import { parseLine } from '../src/log/logger.js';

/** A temp dir removed when the test file ends. */
export function tempDir(prefix = 'safe-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The errno code a call fails with, or undefined when it succeeds. */
export function errorCode(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function seededBytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export { seededRandom };

/**
 * A campaign: its seed, and whether to run round `i`: at most `rounds` rounds, and none
 * started after `seconds` (a loaded machine runs fewer; the seed replays the same ones).
 * `${prefix}_SEED`, `${prefix}_ROUNDS` and `${prefix}_SECONDS` set them; the seed is printed
 * so that a failure can be replayed.
 */
export function campaign(prefix: string, rounds: number, seconds: number): { seed: number; rounds: number; random: () => number; next(round: number): boolean } {
  const env = (k: string, d: number): number => (process.env[`${prefix}_${k}`] ? Number(process.env[`${prefix}_${k}`]) : d);
  const seed = env('SEED', Math.floor(Math.random() * 2 ** 31));
  const n = env('ROUNDS', rounds);
  const deadline = Date.now() + env('SECONDS', seconds) * 1000;
  process.stderr.write(`${prefix}_SEED=${seed} ${prefix}_ROUNDS=${n}\n`);
  return {
    seed,
    rounds: n,
    random: seededRandom(seed),
    next(round) {
      if (round < n && Date.now() < deadline) return true;
      process.stderr.write(`${prefix}_SEED=${seed}: ${round} rounds done\n`);
      return false;
    },
  };
}

export const secret32 = (): Buffer => randomBytes(32);

/**
 * A small tmpfs of its own for disk-full tests, unmounted when the test ends; null (and the
 * test skipped) where mounting is not allowed.
 */
export function smallDisk(t: { skip(msg: string): void; after(fn: () => void): void }, size: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'safe-small-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true });
    t.skip('needs root to mount a small tmpfs');
    return null;
  }
  t.after(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const storeKeys = new Map<string, Buffer>();

/** A host's store key, derived as the CLI derives it (scrypt, so cached per host and passphrase). */
export function storeKeyOf(host: string, passphrase: string): Buffer {
  const k = `${host}\0${passphrase}`;
  let key = storeKeys.get(k);
  if (!key) storeKeys.set(k, (key = Buffer.from(hostKeys(new Uint8Array(scryptSync(passphrase.normalize('NFC'), hostSalt(host), 32, SCRYPT))).storeKey)));
  return key;
}

/**
 * A look at a host's sealed index (fine while its daemon runs: WAL readers do not block), with
 * the key of its passphrase (`env.SAFE_PASSPHRASE`, else the one makeHost gives).
 */
export function openIndex(h: { home: string; env: NodeJS.ProcessEnv }, opts: { readonly?: boolean } = {}): Db {
  const host = (JSON.parse(readFileSync(join(h.home, 'config.json'), 'utf8')) as { host: string }).host;
  return openDb(join(h.home, 'store', 'index.db'), { readonly: opts.readonly ?? true, key: storeKeyOf(host, h.env.SAFE_PASSPHRASE ?? 'test passphrase') });
}

/** The messages of a host's daemon log, one per entry (a message may span lines). */
export function logMessages(home: string): string[] {
  return readFileSync(join(home, 'daemon.log'), 'utf8').split('\n').map(parseLine).filter((l) => l !== null).map((l) => l.msg);
}
