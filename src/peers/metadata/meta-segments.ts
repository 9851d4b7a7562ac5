// A metadata segment: the plain text of one sealed metadata object, holding pages of a tree
// delta (snapshot/deltas.ts) and, for a host striping its data, of its stripe map (stripes.ts). Layout: a header frame, then one frame per page; each frame is a
// u32 little-endian length and a zstd frame of the page's canonical encoding. Pages are stored
// by column (all inode numbers, then all modes...), with sorted numbers and times as differences
// from the row before: neighbouring files share owners, modes and times, and zstd finds runs
// in a column that row tuples interleave away. Handles and chunk ids are random: they travel
// as one byte string per page, not as 64-byte fields.
import { Compressor, Decompressor } from 'zstd-napi';
import { decode, encode, type Value } from '../wire/canonical.js';
import type { ChunkListRow, DeltaPage, EntryDeath, EntryRow, InodeDeath, InodeRow } from '../../snapshot/deltas.js';
import type { StripeBox, StripePage, StripeRow } from './stripes.js';

/** What a segment carries: the tree's delta pages, and the stripe map's (rs:K+M hosts). */
export type MetaPage = DeltaPage | StripePage;

/** Version of the segment layout; root blocks name it too (format 1 was one object per inode). */
export const SEGMENT_FORMAT = 2;
/** A segment is cut once its frames reach this: one object fits a backup message with room to spare. */
export const SEGMENT_BYTES = 3 * 1024 * 1024;
/** Level 3: a base of a large tree seals on the JS thread a page at a time, a millisecond or two each. */
const ZSTD_LEVEL = 3;

export interface SegmentHeader {
  format: number;
  seq: number;
  /** The delta (from, to] this segment is part of; from 0: a base. */
  from: number;
  to: number;
}

export class SegmentError extends Error {
  override name = 'SegmentError';
}

type N = number;
const us = (ms: number): number => Math.round(ms * 1000);

function diffs(xs: number[]): number[] {
  const out = new Array<number>(xs.length);
  let prev = 0;
  for (let i = 0; i < xs.length; i++) {
    out[i] = xs[i]! - prev;
    prev = xs[i]!;
  }
  return out;
}

function sums(xs: number[]): number[] {
  const out = new Array<number>(xs.length);
  let acc = 0;
  for (let i = 0; i < xs.length; i++) out[i] = acc += xs[i]!;
  return out;
}

const col = <T, V>(rows: T[], f: (r: T) => V): V[] => rows.map(f);
const blob = (x: string | Buffer | Uint8Array | null): Value => (x === null || typeof x === 'string' ? x : new Uint8Array(x));
const toBuf = (x: Value): Buffer | null => (x === null ? null : Buffer.from(x as Uint8Array));
const toXattrs = (x: Value): string | null => (x === null ? null : typeof x === 'string' ? x : Buffer.from(x as Uint8Array).toString());

function pageValue(p: MetaPage): Value {
  switch (p.kind) {
    case 'inodes': {
      const r = p.rows;
      return {
        k: 'inodes', ino: diffs(col(r, (x) => x.ino)), born: diffs(col(r, (x) => x.born)), died: col(r, (x) => x.died),
        kind: col(r, (x) => x.kind), mode: col(r, (x) => x.mode), uid: col(r, (x) => x.uid), gid: col(r, (x) => x.gid),
        nlink: col(r, (x) => x.nlink), size: col(r, (x) => x.size),
        atime: diffs(col(r, (x) => us(x.atime))), mtime: diffs(col(r, (x) => us(x.mtime))), ctime: diffs(col(r, (x) => us(x.ctime))),
        target: col(r, (x) => blob(x.target)), cl: col(r, (x) => x.cl), xattrs: col(r, (x) => blob(x.xattrs)),
      };
    }
    case 'inodeDeaths':
      return { k: 'inodeDeaths', ino: col(p.rows, (x) => x.ino), born: col(p.rows, (x) => x.born), died: diffs(col(p.rows, (x) => x.died)) };
    case 'entries': {
      const r = p.rows;
      return {
        k: 'entries', parent: diffs(col(r, (x) => x.parent)), name: col(r, (x) => new Uint8Array(x.name)), born: diffs(col(r, (x) => x.born)),
        died: col(r, (x) => x.died), ino: diffs(col(r, (x) => x.ino)),
      };
    }
    case 'entryDeaths':
      return {
        k: 'entryDeaths', parent: col(p.rows, (x) => x.parent), name: col(p.rows, (x) => new Uint8Array(x.name)),
        born: col(p.rows, (x) => x.born), died: diffs(col(p.rows, (x) => x.died)),
      };
    case 'clists': {
      const spans = p.rows.flatMap((l) => l.spans);
      return {
        k: 'clists', cl: diffs(col(p.rows, (x) => x.cl)), size: col(p.rows, (x) => x.size), spans: col(p.rows, (x) => x.spans.length),
        off: col(spans, (s) => s.off), raw: col(spans, (s) => s.raw),
        handles: Buffer.concat(spans.map((s) => s.handle)), ids: Buffer.concat(spans.map((s) => s.id)),
      };
    }
    case 'stripes': {
      // Boxes lie end to end in a stripe: their offsets follow from their lengths.
      const boxes = p.rows.flatMap((r) => r.boxes);
      return {
        k: 'stripes', stripe: diffs(col(p.rows, (x) => x.stripe)), epoch: col(p.rows, (x) => x.epoch), data: col(p.rows, (x) => x.k),
        parity: col(p.rows, (x) => x.m), shardSize: col(p.rows, (x) => x.shardSize), length: col(p.rows, (x) => x.length),
        shards: Buffer.concat(p.rows.map((x) => x.shards)), boxes: col(p.rows, (x) => x.boxes.length),
        len: col(boxes, (b) => b.len), ids: Buffer.concat(boxes.map((b) => b.id)),
      };
    }
    case 'stripeDeaths':
      return { k: 'stripeDeaths', stripe: diffs(col(p.rows, (x) => x.stripe)), died: col(p.rows, (x) => x.died) };
  }
}

function pageOf(v: Record<string, Value>): MetaPage {
  const nums = (k: string): N[] => {
    const x = v[k];
    if (!Array.isArray(x)) throw new SegmentError(`page field ${k} is missing`);
    return x as N[];
  };
  const any = (k: string): Value[] => nums(k) as unknown as Value[];
  switch (v['k']) {
    case 'inodes': {
      const ino = sums(nums('ino')), born = sums(nums('born')), died = nums('died') as (N | null)[];
      const atime = sums(nums('atime')), mtime = sums(nums('mtime')), ctime = sums(nums('ctime'));
      const [kind, mode, uid, gid, nlink, size, cl] = ['kind', 'mode', 'uid', 'gid', 'nlink', 'size', 'cl'].map(nums) as N[][];
      const target = any('target'), xattrs = any('xattrs');
      const rows: InodeRow[] = ino.map((_, i) => ({
        ino: ino[i]!, born: born[i]!, died: died[i]!, kind: kind![i]!, mode: mode![i]!, uid: uid![i]!, gid: gid![i]!, nlink: nlink![i]!, size: size![i]!,
        atime: atime[i]! / 1000, mtime: mtime[i]! / 1000, ctime: ctime[i]! / 1000, target: toBuf(target[i]!), cl: cl![i]!, xattrs: toXattrs(xattrs[i]!),
      }));
      return { kind: 'inodes', rows };
    }
    case 'inodeDeaths': {
      const ino = nums('ino'), born = nums('born'), died = sums(nums('died'));
      return { kind: 'inodeDeaths', rows: ino.map((_, i): InodeDeath => ({ ino: ino[i]!, born: born[i]!, died: died[i]! })) };
    }
    case 'entries': {
      const parent = sums(nums('parent')), name = any('name'), born = sums(nums('born')), died = nums('died') as (N | null)[], ino = sums(nums('ino'));
      return { kind: 'entries', rows: parent.map((_, i): EntryRow => ({ parent: parent[i]!, name: toBuf(name[i]!)!, born: born[i]!, died: died[i]!, ino: ino[i]! })) };
    }
    case 'entryDeaths': {
      const parent = nums('parent'), name = any('name'), born = nums('born'), died = sums(nums('died'));
      return { kind: 'entryDeaths', rows: parent.map((_, i): EntryDeath => ({ parent: parent[i]!, name: toBuf(name[i]!)!, born: born[i]!, died: died[i]! })) };
    }
    case 'clists': {
      const cl = sums(nums('cl')), size = nums('size'), counts = nums('spans'), off = nums('off'), raw = nums('raw');
      const handles = Buffer.from(v['handles'] as Uint8Array), ids = Buffer.from(v['ids'] as Uint8Array);
      if (handles.length !== off.length * 32 || ids.length !== off.length * 32) throw new SegmentError('chunk list page: handles or ids do not match its spans');
      let j = 0;
      const rows = cl.map((_, i): ChunkListRow => {
        const spans = [];
        for (let n = 0; n < counts[i]!; n++, j++) {
          spans.push({ off: off[j]!, raw: raw[j]!, handle: handles.subarray(j * 32, j * 32 + 32), id: ids.subarray(j * 32, j * 32 + 32) });
        }
        return { cl: cl[i]!, size: size[i]!, spans };
      });
      return { kind: 'clists', rows };
    }
    case 'stripes': {
      const stripe = sums(nums('stripe')), epoch = nums('epoch'), k = nums('data'), m = nums('parity'), shardSize = nums('shardSize'), length = nums('length');
      const counts = nums('boxes'), len = nums('len');
      const shards = Buffer.from(v['shards'] as Uint8Array), ids = Buffer.from(v['ids'] as Uint8Array);
      if (ids.length !== len.length * 32) throw new SegmentError('stripe page: box ids do not match its boxes');
      let j = 0;
      let at = 0;
      const rows = stripe.map((_, i): StripeRow => {
        const n = (k[i]! + m[i]!) * 32;
        if (at + n > shards.length) throw new SegmentError('stripe page: shard ids do not match its stripes');
        const boxes: StripeBox[] = [];
        for (let b = 0, off = 0; b < counts[i]!; b++, j++) {
          boxes.push({ id: ids.subarray(j * 32, j * 32 + 32), off, len: len[j]! });
          off += len[j]!;
        }
        const row = { stripe: stripe[i]!, epoch: epoch[i]!, k: k[i]!, m: m[i]!, shardSize: shardSize[i]!, length: length[i]!, shards: shards.subarray(at, at + n), boxes };
        at += n;
        return row;
      });
      return { kind: 'stripes', rows };
    }
    case 'stripeDeaths': {
      const stripe = sums(nums('stripe')), died = nums('died');
      return { kind: 'stripeDeaths', rows: stripe.map((_, i) => ({ stripe: stripe[i]!, died: died[i]! })) };
    }
    default:
      throw new SegmentError(`unknown page kind ${String(v['k'])}`);
  }
}

/** Builds one segment's plain text a page at a time. */
export class SegmentBuilder {
  private readonly frames: Buffer[] = [];
  bytes = 0;
  rows = 0;

  constructor(private readonly compressor: Compressor, header: SegmentHeader) {
    this.frame(header as unknown as Value);
  }

  static compressor(): Compressor {
    const c = new Compressor();
    c.setParameters({ compressionLevel: ZSTD_LEVEL, checksumFlag: false, contentSizeFlag: true });
    return c;
  }

  private frame(v: Value): void {
    const z = this.compressor.compress(encode(v));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(z.length);
    this.frames.push(len, z);
    this.bytes += 4 + z.length;
  }

  add(page: MetaPage): void {
    this.frame(pageValue(page));
    this.rows += page.rows.length;
  }

  full(): boolean {
    return this.bytes >= SEGMENT_BYTES;
  }

  body(): Buffer {
    return Buffer.concat(this.frames);
  }
}

/** The header and pages of a segment's plain text; throws SegmentError on anything malformed. */
export function readSegment(body: Buffer): { header: SegmentHeader; pages: Generator<MetaPage> } {
  const d = new Decompressor();
  let pos = 0;
  const next = (): Record<string, Value> | null => {
    if (pos === body.length) return null;
    if (pos + 4 > body.length) throw new SegmentError('segment ends inside a frame length');
    const len = body.readUInt32LE(pos);
    if (pos + 4 + len > body.length) throw new SegmentError('segment ends inside a frame');
    const z = body.subarray(pos + 4, pos + 4 + len);
    pos += 4 + len;
    let v: Value;
    try {
      v = decode(d.decompress(z));
    } catch (err) {
      throw new SegmentError(`segment frame does not decode: ${(err as Error).message}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) throw new SegmentError('segment frame is not a map');
    return v as Record<string, Value>;
  };
  const h = next();
  if (!h) throw new SegmentError('empty segment');
  if (h['format'] !== SEGMENT_FORMAT) throw new SegmentError(`segment format ${String(h['format'])}, this release reads format ${SEGMENT_FORMAT}`);
  const header: SegmentHeader = { format: h['format'] as number, seq: h['seq'] as number, from: h['from'] as number, to: h['to'] as number };
  function* pages(): Generator<MetaPage> {
    for (let v = next(); v; v = next()) yield pageOf(v);
  }
  return { header, pages: pages() };
}
