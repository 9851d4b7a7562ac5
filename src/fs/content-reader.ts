// Reads of chunked file content. Most go to native/fuse's reader threads: `boxes` says where
// a read's boxes lie and they open them. The rest (a box to fetch after a recovery, one that
// failed to open there) are read here: only the chunks a read touches are fetched and
// decrypted, through a bounded cache of plaintext chunks (sequential reads hit each chunk
// once). Either way a reader going through a file in order gets its next window of chunks
// looked up at once: the kernel asks in 128 KiB reads, and a lookup for each of them cost
// about what decrypting their bytes does.
import type { BoxPlace, ChunkRef, ChunkStore, Location } from '../chunkstore/store.js';
import type { ChunkSpan, Tree } from '../snapshot/tree.js';

/** Bytes of a file fetched along with a missing chunk (after a recovery): one round trip per this much of a sequential read. */
const READ_AHEAD = 4 << 20;
/** Bytes of a file read ahead of a sequential reader: ~64 chunks at the default size. */
const WINDOW = 1 << 20;
/** Files whose sequential readers are followed at once. */
const STREAMS = 64;

/** A chunk read or being read; its size counts against the limit once it is here. */
interface Cached {
  plain: Promise<Buffer>;
  size: number | null;
}

/**
 * A file read in order: where its next read would start, and the chunks of its current window
 * (contiguous from their first offset to `to`). A chunk list never changes once written.
 */
interface Stream {
  next: number;
  spans: ChunkSpan[];
  to: number;
}

export class ContentReader {
  private readonly cache = new Map<string, Cached>();
  private bytes = 0;

  private readonly streams = new Map<number, Stream>();
  /**
   * Where the boxes of the windows' chunks lie, looked up a window at a time: a lookup per
   * 128 KiB read was most of what the JS thread did for a cold read. A place gone stale
   * (compaction moved the box) fails to open and the read takes the JS path.
   */
  private readonly places = new WeakMap<ChunkSpan, Location>();

  /**
   * `limit`: plaintext bytes kept. Every file is opened with keep_cache, so the kernel's page
   * cache already holds what was read; this cache needs room for the read-ahead windows (two
   * MiB a reader) and chunks shared by the reads on either side of them. At 64 MiB it held
   * ~60 MB of plaintext nobody would ask again after an md5sum of the linux tree.
   */
  constructor(private readonly tree: Tree, private readonly store: ChunkStore, private readonly limit = 16 << 20) {}

  /**
   * The chunks holding [pos, end) of list `cl`. A read that starts where the last one of the
   * same list ended (or at 0) keeps a window of one to two MiB ahead of it: each MiB of chunks
   * is looked up in one statement and, with `prefetch`, read in the background while the
   * reader is still in the one before.
   */
  private spansFor(cl: number, pos: number, end: number, prefetch: boolean): ChunkSpan[] {
    let s = this.streams.get(cl);
    if (s) this.streams.delete(cl); // most recent last
    // Reads inside a window handed to native/fuse are answered there: the next one seen here
    // may lie anywhere up to the window's end.
    const sequential = pos === 0 || (s !== undefined && s.next <= pos && pos <= s.to);
    if (!s) s = { next: end, spans: [], to: 0 };
    s.next = end;
    this.streams.set(cl, s);
    if (this.streams.size > STREAMS) this.streams.delete(this.streams.keys().next().value!);
    const inWindow = s.spans.length > 0 && s.spans[0]!.off <= pos && end <= s.to;
    if (!sequential) return inWindow ? within(s.spans, pos, end) : this.tree.chunksIn(cl, pos, end);
    if (!inWindow) {
      s.spans = [];
      s.to = pos;
    }
    while (s.to < end + WINDOW) {
      const more = this.tree.chunksIn(cl, s.spans.length === 0 ? pos : s.to, s.to + WINDOW);
      const first = s.spans.length;
      let to = s.spans.length === 0 ? (more[0]?.off ?? pos) : s.to;
      for (const span of more) {
        // A gap (chunks still missing after a recovery): the window ends there.
        if (span.off < to) continue;
        if (span.off !== to) break;
        s.spans.push(span);
        to += span.raw;
      }
      if (s.spans.length === first) break; // the end of the file, or a gap
      s.to = to;
      const added = s.spans.slice(first);
      if (prefetch) void this.chunks(added, () => this.tree.refsFrom(cl, added[0]!.off, READ_AHEAD));
    }
    // What the reader has left behind.
    const behind = within(s.spans, pos, pos + 1)[0];
    if (behind) s.spans = s.spans.slice(s.spans.indexOf(behind));
    return end <= s.to ? within(s.spans, pos, end) : this.tree.chunksIn(cl, pos, end);
  }

  /**
   * Copy up to `len` bytes of chunk list `cl` at `pos` into `out`; returns bytes copied. The
   * chunks a read spans (a 1 MiB read spans ~64) are read at once, not one after another,
   * once the first is here: if it was missing after a recovery, its fetch brought the
   * read-ahead too, and the others do not each ask the buddies for it again.
   */
  async read(cl: number, size: number, out: Buffer, len: number, pos: number): Promise<number> {
    const end = Math.min(size, pos + len);
    if (end <= pos) return 0;
    const spans = this.spansFor(cl, pos, end, true);
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

  /**
   * The chunks of list `cl` (a file of `size` bytes) from the one holding `pos` through the
   * reader's window ahead, and where their boxes lie, handed to `use`: for a reader that
   * opens boxes itself (native/fuse's reader threads, which also answer the reads that fall
   * inside the window without asking here). Its result, or null when the list has a gap in
   * [pos, pos + len) or a box there is not stored here (after a recovery): `read` then
   * fetches it. The window ends before the first box not stored here.
   */
  boxes<T>(cl: number, size: number, pos: number, len: number, use: (spans: ChunkSpan[], places: BoxPlace[]) => T): T | null {
    const end = Math.min(size, pos + len);
    if (end <= pos) return null;
    const spans = this.spansFor(cl, pos, end, false);
    let at = pos;
    for (const span of spans) {
      if (span.off > at) return null;
      at = Math.max(at, span.off + span.raw);
    }
    if (at < end) return null;
    const window = this.streams.get(cl)?.spans ?? [];
    const start = window.indexOf(spans[0]!);
    const ahead = start >= 0 ? window.slice(start) : spans;
    const unknown = ahead.filter((span) => !this.places.has(span));
    if (unknown.length > 0) {
      const locs = this.store.locations(unknown.map((span) => span.id));
      unknown.forEach((span, i) => locs[i] && this.places.set(span, locs[i]!));
    }
    let n = 0;
    while (n < ahead.length && this.places.has(ahead[n]!)) n++;
    const last = ahead[n - 1];
    if (last === undefined || last.off + last.raw < end) return null;
    const kept = ahead.slice(0, n);
    return this.store.withBoxes(kept.map((span) => this.places.get(span)!), (places) => use(kept, places));
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

/** The spans of a sorted, contiguous list that hold bytes [pos, end). */
function within(spans: ChunkSpan[], pos: number, end: number): ChunkSpan[] {
  let lo = 0;
  let hi = spans.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (spans[mid]!.off <= pos) lo = mid;
    else hi = mid - 1;
  }
  let stop = lo;
  while (stop < spans.length && spans[stop]!.off < end) stop++;
  return spans.slice(lo, stop);
}
