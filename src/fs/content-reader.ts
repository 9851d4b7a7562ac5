// Reads of chunked file content: only the chunks a read touches are fetched and decrypted,
// through a bounded cache of plaintext chunks (sequential reads hit each chunk once).
import type { ChunkStore } from '../chunkstore/store.js';
import type { Tree } from '../snapshot/tree.js';

/** Bytes of a file fetched along with a missing chunk (after a recovery): one round trip per this much of a sequential read. */
const READ_AHEAD = 4 << 20;

export class ContentReader {
  private readonly cache = new Map<string, Promise<Buffer>>();
  private bytes = 0;

  constructor(private readonly tree: Tree, private readonly store: ChunkStore, private readonly limit = 64 << 20) {}

  /** Copy up to `len` bytes of chunk list `cl` at `pos` into `out`; returns bytes copied. */
  async read(cl: number, size: number, out: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(size, pos + len);
    let at = pos;
    while (at < end) {
      const span = this.tree.chunkAt(cl, at);
      if (!span) break;
      const plain = await this.chunk(span.handle, () => this.tree.handlesFrom(cl, span.off, READ_AHEAD));
      const from = at - span.off;
      const n = Math.min(plain.length - from, end - at);
      if (n <= 0) break;
      plain.copy(out, at - pos, from, from + n);
      at += n;
    }
    return at - pos;
  }

  private chunk(handle: Buffer, ahead: () => Buffer[]): Promise<Buffer> {
    const key = handle.toString('latin1');
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const p = this.store.readAsync(handle, ahead);
    this.cache.set(key, p);
    p.then(
      (b) => {
        this.bytes += b.length;
        this.evict();
      },
      () => this.cache.delete(key),
    );
    return p;
  }

  private evict(): void {
    for (const [k, p] of this.cache) {
      if (this.bytes <= this.limit) return;
      this.cache.delete(k);
      void p.then((b) => (this.bytes -= b.length));
    }
  }
}
