// Picks the C addon for FastCDC when it was built (about 1.7x the JS speed),
// else the TS twin; both give the same cut points, so the choice never
// changes what gets stored. SAFE_CHUNKER=ts forces TS, SAFE_CHUNKER=native
// makes a missing addon an error instead of a silent slowdown.

import { type CdcParams, cdcMasks, checkParams, checkRange, cutsTs } from './fastcdc.js';
import { BufferPool } from './buffer-pool.js';
import { loaded, type NativeAddon } from './native.js';

export type { CdcParams } from './fastcdc.js';
export { cdcParams, gearTable, cutsTs } from './fastcdc.js';

export type CutFn = (p: CdcParams, buf: Uint8Array, start: number, end: number, eof: boolean) => number[];

const mode = process.env.SAFE_CHUNKER;
if (mode === 'native' && !loaded.addon) {
  throw new Error(`SAFE_CHUNKER=native but the addon did not load (${loaded.error}); run npm run build`);
}
const addon = mode === 'ts' ? null : loaded.addon;

/** Why the addon is unavailable (null when it loaded, even if SAFE_CHUNKER=ts). */
export const nativeLoadError: string | null = loaded.error;

/** True when cuts() uses the C addon. */
export const nativeLoaded: boolean = addon !== null;

/** Native cuts regardless of SAFE_CHUNKER, or null if the addon is absent (for tests and benchmarks). */
export const cutsNative: CutFn | null = loaded.addon
  ? ((na: NativeAddon): CutFn => (p, buf, start, end, eof) => {
      checkParams(p);
      checkRange(buf, start, end);
      const { maskS, maskL } = cdcMasks(p.avg);
      return Array.from(na.cuts(p.gear, buf, start, end, p.min, p.avg, p.max, maskS, maskL, eof));
    })(loaded.addon)
  : null;

/** Same contract as cutsTs (see fastcdc.ts), with the fastest available implementation. */
export const cuts: CutFn = addon && cutsNative ? cutsNative : cutsTs;

/**
 * Incremental chunking of a byte stream: push() blocks of any size, then
 * finish(). Yields exactly the chunks of cuts(p, whole, 0, len, true).
 *
 * Returned chunks are subarray views, either of the `data` passed to the same
 * push() call or of a buffer this object has let go of; never of memory it
 * will write again. A caller that overwrites `data` after push() returns must
 * first be done with (or copy) the chunks.
 *
 * Memory: at most max bytes are held between calls (pending < max). Bytes
 * that arrive while the held bytes plus the new data stay below max are only
 * appended, not scanned, so tiny pushes don't rescan the held bytes each time.
 * When a push completes the held bytes to max, the chunk straddling the seam
 * is decided there; the rest of the push is cut in place, without copying.
 *
 * With `buffers`, the caller promises more: it is done with the chunks of a
 * call before it makes the next call to any chunker sharing them, so buffers
 * let go of are used again instead.
 */
export class StreamChunker {
  readonly params: CdcParams;
  private readonly cut: CutFn;
  private buf: Buffer | null = null;
  private len = 0;

  constructor(p: CdcParams, cut: CutFn = cuts, private readonly buffers?: ChunkBuffers) {
    checkParams(p);
    this.params = p;
    this.cut = cut;
  }

  /** Bytes held back waiting for more data (always < max). */
  get pending(): number {
    return this.len;
  }

  push(data: Uint8Array): Uint8Array[] {
    this.buffers?.settle();
    const out: Uint8Array[] = [];
    const max = this.params.max;
    const L = data.length;
    let off = 0;
    while (this.len > 0) {
      if (off === L) return out;
      const buf = this.buf!;
      const take = Math.min(L - off, max - this.len);
      buf.set(data.subarray(off, off + take), this.len);
      const old = this.len;
      this.len += take;
      off += take;
      if (this.len < max) return out;
      // max bytes always hold at least one decided chunk.
      const lens = this.cut(this.params, buf, 0, max, false);
      let c = 0;
      for (const n of lens) {
        out.push(buf.subarray(c, c + n));
        c += n;
      }
      // Views of buf are out now, so it is not written again during this call.
      this.letGo(buf);
      if (c >= old) {
        // Past the seam: the bytes after c are still in `data`; cut them
        // there (they get scanned twice, but that is < max bytes).
        off -= max - c;
        this.len = 0;
      } else {
        // Held bytes that were appended unscanned may hold several chunks
        // and leave the seam undecided: carry the tail and top up again.
        this.buf = this.alloc(max);
        this.buf.set(buf.subarray(c, max), 0);
        this.len = max - c;
      }
    }
    if (L - off >= max) {
      const lens = this.cut(this.params, data, off, L, false);
      for (const n of lens) {
        out.push(data.subarray(off, off + n));
        off += n;
      }
    }
    if (off < L) {
      this.buf ??= this.alloc(max);
      this.buf.set(data.subarray(off), 0);
      this.len = L - off;
    }
    return out;
  }

  /** The remaining chunks; the chunker is then empty and may be reused. */
  finish(): Uint8Array[] {
    this.buffers?.settle();
    const out: Uint8Array[] = [];
    if (this.len === 0) return out;
    const buf = this.buf!;
    const lens = this.cut(this.params, buf, 0, this.len, true);
    let c = 0;
    for (const n of lens) {
      out.push(buf.subarray(c, c + n));
      c += n;
    }
    this.letGo(buf);
    this.len = 0;
    return out;
  }

  private alloc(n: number): Buffer {
    return this.buffers ? this.buffers.take(n) : alloc(n);
  }

  private letGo(buf: Buffer): void {
    this.buf = null;
    this.buffers?.lend(buf);
  }
}

/**
 * Buffers chunkers let go of, taken again once their chunks are done with. Without them, each
 * small file cost a fresh buffer of `max` bytes, garbage that V8 collects only after tens of
 * MB of it: 26-32 MB of an ingest worker's memory during an untar.
 */
export class ChunkBuffers {
  private readonly pool: BufferPool;
  /** Let go during the current call: their chunks may still be in use until the next call. */
  private readonly lent: Buffer[] = [];

  /** `size`: the chunkers' max chunk length, the size of every buffer they take. */
  constructor(size: number) {
    this.pool = new BufferPool(size, 4);
  }

  take(n: number): Buffer {
    return this.pool.take(n);
  }

  lend(b: Buffer): void {
    this.lent.push(b);
  }

  /** A new call began: the chunks of earlier calls are done with. */
  settle(): void {
    for (const b of this.lent) this.pool.give(b);
    this.lent.length = 0;
  }
}

// Every byte gets overwritten before it is read; skip the zero fill.
function alloc(n: number): Buffer {
  return Buffer.allocUnsafeSlow(n);
}
