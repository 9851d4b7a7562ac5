// The bytes a channel has received and not yet cut into frames. A peer chooses how its bytes
// arrive: a frame of a megabyte in one-byte yamux frames is 10^6 chunks. Small chunks are
// therefore copied into shared slabs (a Uint8Array each would cost ~100 bytes of heap for one
// byte of data), and consumed chunks leave the list in batches: Array.shift per chunk made
// cutting that frame quadratic, and one member's stream of two-byte pieces held a buddy's
// event loop for minutes (fuzz seed 861835500).

/** Chunks below this size are copied into a slab; larger ones are kept as they came. */
const SMALL = 4096;
const SLAB = 64 * 1024;

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Index in `chunks` of the front chunk, and bytes of it already taken. */
  private first = 0;
  private head = 0;
  private slab: Uint8Array | null = null;
  private slabEnd = 0;
  length = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.length += b.length;
    if (b.length >= SMALL) {
      this.chunks.push(b);
      return;
    }
    if (this.slab === null || this.slabEnd + b.length > this.slab.length) {
      this.slab = new Uint8Array(SLAB);
      this.slabEnd = 0;
    }
    const start = this.slabEnd;
    this.slab.set(b, start);
    this.slabEnd += b.length;
    // The last chunk ends where this piece begins in the same slab: it grows instead.
    const last = this.chunks.length > this.first ? this.chunks[this.chunks.length - 1]! : null;
    if (last !== null && last.buffer === this.slab.buffer && last.byteOffset + last.length === start) {
      this.chunks[this.chunks.length - 1] = this.slab.subarray(last.byteOffset, this.slabEnd);
    } else this.chunks.push(this.slab.subarray(start, this.slabEnd));
  }

  /** Copies `n` bytes out (never a view: libp2p owns the buffers it handed us). */
  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError(`take ${n} of ${this.length} bytes`);
    // Not zeroed first: every byte is written below. Zeroed, a buddy's 4 MiB shipment messages
    // came from calloc, 3-20x the time of the copy itself (12% of its main thread).
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[this.first]!;
      const k = Math.min(c.length - this.head, n - off);
      out.set(c.subarray(this.head, this.head + k), off);
      off += k;
      this.head += k;
      if (this.head === c.length) {
        this.first++;
        this.head = 0;
      }
    }
    this.length -= n;
    // Drop the consumed chunks in one splice once they are half the list: linear overall.
    if (this.first > 32 && this.first * 2 > this.chunks.length) {
      this.chunks.splice(0, this.first);
      this.first = 0;
    }
    return out;
  }

  /** The byte at offset `i` from the front, without consuming it. */
  peek(i: number): number {
    let at = this.head + i;
    for (let j = this.first; j < this.chunks.length; j++) {
      const c = this.chunks[j]!;
      if (at < c.length) return c[at]!;
      at -= c.length;
    }
    throw new RangeError('peek past the end');
  }

  peekUint32(): number {
    return ((this.peek(0) << 24) >>> 0) + (this.peek(1) << 16) + (this.peek(2) << 8) + this.peek(3);
  }
}
