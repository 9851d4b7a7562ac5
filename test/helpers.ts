import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';

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
