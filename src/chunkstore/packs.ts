// Append-only pack files. A record is [u32 box length][32-byte id][box]; the index names
// (pack, offset of box, length). Records are only ever appended; dead ones are dropped by
// compaction (gc.ts), which rewrites live records into a new pack.
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, writeSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ID_BYTES } from './sealer.js';

export const PACK_MAGIC = Buffer.from('SAFEPK01');
export const RECORD_HEAD = 4 + ID_BYTES;
/** Largest box a record may hold: a max-size chunk that did not compress, plus framing. */
export const MAX_BOX = 64 * 1024 * 1024;

export function packPath(dir: string, pack: number): string {
  return join(dir, (pack & 0xff).toString(16).padStart(2, '0'), `${pack}.pack`);
}

export interface Placed {
  pack: number;
  off: number;
  len: number;
}

/**
 * Writes one pack at a time; the owner rotates it past `target` bytes. Bytes are buffered
 * in memory and reach the file on flush(); sync() makes them durable, and only then may
 * the index name them.
 */
export class PackWriter {
  private fd = -1;
  private pack = -1;
  private size = 0;
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;

  constructor(
    private readonly dir: string,
    private readonly allocate: () => number,
    private readonly onSealed: (pack: number, size: number) => void,
    private readonly target = 16 << 20,
  ) {}

  /** A pack is open for the next append (its row allocated now, not by that append). */
  ready(): void {
    if (this.fd < 0) this.open();
  }

  append(id: Uint8Array, box: Uint8Array): Placed {
    return this.appendParts(id, [box]);
  }

  /** Append a record whose box comes in parts (sealer output), copied once into the buffer. */
  appendParts(id: Uint8Array, parts: Uint8Array[]): Placed {
    let len = 0;
    for (const p of parts) len += p.length;
    if (len > MAX_BOX) throw new Error(`chunk box of ${len} bytes exceeds the pack record limit`);
    this.ready();
    const need = RECORD_HEAD + len;
    if (this.used + need > this.buf.length) {
      this.flush();
      if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
    }
    this.buf.writeUInt32LE(len, this.used);
    this.buf.set(id, this.used + 4);
    let at = this.used + RECORD_HEAD;
    for (const p of parts) {
      this.buf.set(p, at);
      at += p.length;
    }
    this.used += need;
    const placed = { pack: this.pack, off: this.size + RECORD_HEAD, len };
    this.size += need;
    return placed;
  }

  /** Pack bytes durable; rotates to a new pack once past the target size. */
  sync(): void {
    if (this.fd < 0) return;
    this.flush();
    fsyncSync(this.fd);
    if (this.size >= this.target) this.seal();
  }

  /** Finish the current pack (after sync): it becomes eligible for compaction. */
  seal(): void {
    if (this.fd < 0) return;
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.onSealed(this.pack, this.size);
    this.fd = -1;
  }

  /**
   * Give up the current pack after a failed write (disk full): its bytes may be torn, so
   * nothing more is appended to it. Rows naming it were never committed; its bytes are dead.
   */
  discard(): void {
    this.used = 0;
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      closeSync(fd);
      this.onSealed(this.pack, statSync(packPath(this.dir, this.pack)).size);
    } catch {
      // Still unsealed in the index: the next recovering open seals it at its real size.
    }
  }

  private open(): void {
    this.pack = this.allocate();
    const path = packPath(this.dir, this.pack);
    mkdirSync(join(path, '..'), { recursive: true });
    this.fd = openSync(path, 'wx');
    writeSync(this.fd, PACK_MAGIC);
    this.size = PACK_MAGIC.length;
  }

  private flush(): void {
    let done = 0;
    while (done < this.used) done += writeSync(this.fd, this.buf, done, this.used - done);
    this.used = 0;
  }
}

export interface PackRecord {
  id: Buffer;
  off: number;
  len: number;
}

export interface PackScan {
  records: PackRecord[];
  /** Bytes past the last whole record (a torn tail from a crash), or a bad header. */
  problem?: string;
  size: number;
  data: Buffer;
}

/** Walks a pack's records without trusting the index: used by verify and compaction. */
export function scanPack(path: string): PackScan {
  const data = readFileSync(path);
  const records: PackRecord[] = [];
  if (data.length < PACK_MAGIC.length || !data.subarray(0, PACK_MAGIC.length).equals(PACK_MAGIC)) {
    return { records, problem: 'bad pack header', size: data.length, data };
  }
  let at = PACK_MAGIC.length;
  while (at < data.length) {
    if (at + RECORD_HEAD > data.length) return { records, problem: `torn record header at offset ${at}`, size: data.length, data };
    const len = data.readUInt32LE(at);
    if (len > MAX_BOX || at + RECORD_HEAD + len > data.length) {
      return { records, problem: `torn or oversized record at offset ${at}`, size: data.length, data };
    }
    records.push({ id: Buffer.from(data.subarray(at + 4, at + RECORD_HEAD)), off: at + RECORD_HEAD, len });
    at += RECORD_HEAD + len;
  }
  return { records, size: data.length, data };
}

/**
 * Positional read of exactly len bytes, into the start of `into` when given (a buffer used
 * again); a short read means the pack was truncated.
 */
export function readExact(fd: number, off: number, len: number, what: string, into?: Buffer): Buffer {
  if (into && into.length < len) throw new RangeError(`${what}: ${len} bytes do not fit a buffer of ${into.length}`);
  const out = into ? into.subarray(0, len) : Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, out, got, len - got, off + got);
    if (n === 0) throw new Error(`${what}: pack ends before the chunk (truncated pack)`);
    got += n;
  }
  return out;
}
