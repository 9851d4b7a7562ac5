// The chunkstore's C addon (native/): FastCDC cut points, page-cache-only reads, AES-CTR (staged
// files, and the group network's connections), Noise's ChaCha20-Poly1305, the WAL's gathered
// writes. Loaded once; where it is missing, each caller has a TS twin (chunker.ts, store.ts,
// staged-file.ts) or keeps what it used before (index-db.ts, the peers layer).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  cuts(gear: Uint32Array, buf: Uint8Array, start: number, end: number, min: number, avg: number,
       max: number, maskS: number, maskL: number, eof: boolean): Uint32Array;
  preadCached(fd: number, buf: Buffer, offset: number): number;
  trimHeap(): boolean;
  reduceV8Heap(): void;
  /** AES-256-CTR at byte `pos` of a stream whose counter starts at `iv` (zero when absent). */
  ctrXor(key: Buffer, pos: number, src: Uint8Array, dst: Uint8Array, iv?: Uint8Array): void;
  /** ChaCha20-Poly1305 of `parts` (at most 64) into `out`: their text, then the 16-byte tag. */
  chachaSeal(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, parts: Uint8Array[], out: Uint8Array): void;
  /** The text of `parts` (ending with the tag) into `out` (it may be the first part); false if the tag fails. */
  chachaOpen(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, parts: Uint8Array[], out: Uint8Array): boolean;
}

// Compiled JS runs from dist/src/chunkstore, sources from src/chunkstore:
// the addon's place is fixed relative to the package root, not to this file.
function repoRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

function loadNative(): { addon: NativeAddon | null; path: string | null; error: string | null } {
  const root = repoRoot();
  if (!root) return { addon: null, path: null, error: 'package.json not found above the chunkstore module' };
  const path = join(root, 'native', 'build', 'Release', 'safe_native.node');
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    if (typeof addon?.cuts !== 'function' || typeof addon.preadCached !== 'function' || typeof addon.trimHeap !== 'function' || typeof addon.ctrXor !== 'function' || typeof addon.reduceV8Heap !== 'function' || typeof addon.chachaSeal !== 'function') return { addon: null, path: null, error: `${path} is from another build (run npm run build)` };
    return { addon, path, error: null };
  } catch (e) {
    return { addon: null, path: null, error: `${path}: ${(e as Error).message}` };
  }
}

export const loaded = loadNative();

/**
 * Fills `buf` from `fd` at `offset` if every byte is in the page cache: bytes read (fewer at
 * the end of the file), or -1 when that would wait for the disk. Without the addon, always -1.
 */
export const preadCached: (fd: number, buf: Buffer, offset: number) => number = loaded.addon ? loaded.addon.preadCached : () => -1;

/**
 * Hands the C heap's free pages back to the system (glibc's malloc_trim); true if any went.
 * Without the addon, or off glibc, nothing to do.
 */
export const trimHeap: () => boolean = loaded.addon ? loaded.addon.trimHeap : () => false;

/**
 * Collects this thread's V8 heap in full and shrinks its young generation back to its first
 * size (native/v8-heap.cc): after a burst, before trimHeap. Without the addon, nothing to do.
 */
export const reduceV8Heap: () => void = loaded.addon ? loaded.addon.reduceV8Heap : () => {};

/**
 * `dst` = `src` xor the AES-256-CTR keystream of `key` at byte `pos` (staged files' layout;
 * `dst` may be `src`). Null without the addon: staged-file.ts has the TS twin.
 */
export const ctrXor: NativeAddon['ctrXor'] | null = loaded.addon ? loaded.addon.ctrXor : null;

/**
 * Noise's ChaCha20-Poly1305 in one call a message, into buffers the caller gives (native/chacha.c).
 * Null without the addon: the peers layer keeps Noise's own.
 */
export const chacha: Pick<NativeAddon, 'chachaSeal' | 'chachaOpen'> | null = loaded.addon;

/**
 * The addon's file, which is also an SQLite extension (native/wal-batch.c: a transaction's WAL
 * frames written with one system call). Null without the addon: SQLite then writes them itself.
 */
export const walBatchExtension: string | null = loaded.path;
