// Reads of chunked file content: only the chunks a read touches are fetched and decrypted,
// through a bounded cache of plaintext chunks (sequential reads hit each chunk once).
import type { ChunkRef, ChunkStore } from '../chunkstore/store.js';
import type { Tree } from '../snapshot/tree.js';

/** Bytes of a file fetched along with a missing chunk (after a recovery): one round trip per this much of a sequential read. */
const READ_AHEAD = 4 << 20;

/** A chunk read or being read; its size counts against the limit once it is here. */
interface Cached {
  plain: Promise<Buffer>;
  size: number | null;
}

export class ContentReader {
  private readonly cache = new Map<string, Cached>();
  private bytes = 0;

  constructor(private readonly tree: Tree, private readonly store: ChunkStore, private readonly limit = 64 << 20) {}

  /**
   * Copy up to `len` bytes of chunk list `cl` at `pos` into `out`; returns bytes copied. The
   * chunks a read spans (a 1 MiB read spans ~64) are read at once, not one after another,
   * once the first is here: if it was missing after a recovery, its fetch brought the
   * read-ahead too, and the others do not each ask the buddies for it again.
   */
  async read(cl: number, size: number, out: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(size, pos + len);
    if (end <= pos) return 0;
    const spans = this.tree.chunksIn(cl, pos, end);
    if (spans.length === 0) return 0;
    const plains = await Promise.all(this.chunks(spans, () => this.tree.refsFrom(cl, spans[0]!.off, READ_AHEAD)));
    let at = pos;
    for (let i = 0; i < spans.length && at < end; i++) {
      const span = spans[i]!;
      const plain = plains[i]!;
      if (span.off > at) break; // a gap in the list: the rest is not there
      const from = at - span.off;
      const n = Math.min(plain.length - from, end - at);
      if (n <= 0) break;
      plain.copy(out, at - pos, from, from + n);
      at += n;
    }
    return at - pos;
  }

  /** The chunks' plaintexts: cached ones from the cache, the others read together. */
  private chunks(refs: ChunkRef[], ahead: () => ChunkRef[]): Promise<Buffer>[] {
    const keys = refs.map((ref) => ref.id.toString('latin1'));
    const misses = new Map<string, ChunkRef>();
    refs.forEach((ref, i) => {
      const key = keys[i]!;
      const hit = this.cache.get(key);
      if (hit) {
        this.cache.delete(key);
        this.cache.set(key, hit);
      } else misses.set(key, ref);
    });
    if (misses.size > 0) {
      const read = this.store.readRun([...misses.values()], ahead);
      let i = 0;
      for (const key of misses.keys()) {
        const entry: Cached = { plain: read[i++]!, size: null };
        this.cache.set(key, entry);
        entry.plain.then(
          (b) => {
            entry.size = b.length;
            this.bytes += b.length;
            this.evict();
          },
          // Not kept: the next read asks again (a buddy may be back).
          () => this.cache.delete(key),
        );
      }
    }
    return keys.map((key) => this.cache.get(key)!.plain);
  }

  /**
   * Least recently used first. Reads still in flight stay: dropping one frees nothing yet,
   * and another reader of the same chunk would fetch it a second time.
   */
  private evict(): void {
    for (const [k, e] of this.cache) {
      if (this.bytes <= this.limit) return;
      if (e.size === null) continue;
      this.cache.delete(k);
      this.bytes -= e.size;
    }
  }
}
