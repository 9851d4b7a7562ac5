// One byte encoding for plain data, used both on the wire (messages.ts) and under signatures
// (signing.ts). It is canonical: every value has exactly one encoding and the decoder refuses
// any other (non-minimal lengths, unsorted or repeated keys, bad UTF-8, trailing bytes), so
// "same bytes" and "same value" mean the same thing and a signature over the bytes is a
// signature over the value. Binary fields travel raw, so chunk payloads cost no base64.
//
// Grammar (one tag byte, then):
//   0x00 null | 0x01 false | 0x02 true
//   0x03 uint: LEB128 of n (0 <= n <= 2^53-1)       0x04 negative int: LEB128 of -n-1
//   0x05 string: LEB128 byte length, UTF-8           0x06 bytes: LEB128 length, raw
//   0x07 array: LEB128 count, items                  0x08 map: LEB128 count, then per entry a
//        key (LEB128 length, UTF-8, keys strictly ascending by bytes) and its value.
// No floats: times and sizes are integers here, and floats have no single canonical form.

export type Value = null | boolean | number | string | Uint8Array | readonly Value[] | { readonly [key: string]: Value | undefined };

/** The input did not follow the grammar above; the message naming what and where. */
export class EncodingError extends Error {
  override name = 'EncodingError';
}

const T_NULL = 0x00;
const T_FALSE = 0x01;
const T_TRUE = 0x02;
const T_UINT = 0x03;
const T_NEG = 0x04;
const T_STR = 0x05;
const T_BYTES = 0x06;
const T_ARRAY = 0x07;
const T_MAP = 0x08;

const MAX_DEPTH = 32;
/** Byte strings at least this long are passed by reference instead of copied (payloads). */
const BY_REFERENCE = 4096;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// String.prototype.isWellFormed is ES2024, outside this project's lib setting.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function isPlainObject(v: object): v is { readonly [key: string]: Value | undefined } {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Builds the encoding as a list of parts so large byte strings are never copied. */
class Writer {
  readonly parts: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private pos: number;
  length = 0;

  /** `reserve` zero bytes start the first part, not counted in `length`, for a caller's header. */
  constructor(reserve = 0) {
    this.pos = reserve;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
    this.length++;
  }

  varint(n: number): void {
    // Division, not bit operations: those truncate to 32 bits and lengths/ints go to 2^53.
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.byte(n);
  }

  raw(b: Uint8Array): void {
    if (b.length >= BY_REFERENCE) {
      this.flush();
      this.parts.push(b);
    } else {
      this.room(b.length);
      this.buf.set(b, this.pos);
      this.pos += b.length;
    }
    this.length += b.length;
  }

  flush(): void {
    if (this.pos === 0) return;
    this.parts.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(256);
    this.pos = 0;
  }
}

function write(w: Writer, v: Value | undefined, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new EncodingError(`${path}: nested deeper than ${MAX_DEPTH}`);
  if (v === null) return w.byte(T_NULL);
  if (v === false) return w.byte(T_FALSE);
  if (v === true) return w.byte(T_TRUE);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new EncodingError(`${path}: ${v} is not a safe integer`);
    if (v >= 0) {
      w.byte(T_UINT);
      w.varint(v);
    } else {
      w.byte(T_NEG);
      w.varint(-v - 1);
    }
    return;
  }
  if (typeof v === 'string') {
    // A lone surrogate would encode as U+FFFD and decode to a different string.
    if (LONE_SURROGATE.test(v)) throw new EncodingError(`${path}: string is not well-formed UTF-16`);
    const b = utf8.encode(v);
    w.byte(T_STR);
    w.varint(b.length);
    return w.raw(b);
  }
  if (v instanceof Uint8Array) {
    w.byte(T_BYTES);
    w.varint(v.length);
    return w.raw(v);
  }
  if (Array.isArray(v)) {
    w.byte(T_ARRAY);
    w.varint(v.length);
    (v as readonly Value[]).forEach((item, i) => {
      if (item === undefined) throw new EncodingError(`${path}[${i}]: undefined`);
      write(w, item, `${path}[${i}]`, depth + 1);
    });
    return;
  }
  if (typeof v === 'object' && isPlainObject(v)) {
    // An undefined property counts as absent, so optional fields can be left undefined.
    const entries = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .map((k) => [utf8.encode(k), k] as const)
      .sort((a, b) => compareBytes(a[0], b[0]));
    w.byte(T_MAP);
    w.varint(entries.length);
    for (const [kb, k] of entries) {
      if (LONE_SURROGATE.test(k)) throw new EncodingError(`${path}: key is not well-formed UTF-16`);
      w.varint(kb.length);
      w.raw(kb);
      write(w, v[k], `${path}.${k}`, depth + 1);
    }
    return;
  }
  throw new EncodingError(`${path}: cannot encode ${v === undefined ? 'undefined' : typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v}`);
}

/**
 * The encoding as parts (large byte strings by reference): for writing to a stream. The first
 * part starts with `reserve` zero bytes (not counted in `length`) for the caller's frame header,
 * so a small message goes out as one buffer.
 */
export function encodeParts(v: Value, reserve = 0): { parts: Uint8Array[]; length: number } {
  const w = new Writer(reserve);
  write(w, v, '$', 0);
  w.flush();
  return { parts: w.parts, length: w.length };
}

/** The encoding as one buffer: for hashing and signing. */
export function encode(v: Value): Uint8Array {
  const { parts, length } = encodeParts(v);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(length);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  fail(what: string): never {
    throw new EncodingError(`${what} at byte ${this.pos}`);
  }

  byte(): number {
    if (this.pos >= this.buf.length) this.fail('truncated');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (n > Number.MAX_SAFE_INTEGER) this.fail('integer beyond 2^53-1');
      if ((b & 0x80) === 0) {
        // A zero final byte after the first means the same number had a shorter form.
        if (b === 0 && i > 0) this.fail('non-minimal integer');
        return n;
      }
      scale *= 0x80;
    }
  }

  take(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) this.fail(`length ${n} beyond the end`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  text(): string {
    const b = this.take(this.varint());
    try {
      return strictUtf8.decode(b);
    } catch {
      return this.fail('invalid UTF-8');
    }
  }
}

function read(r: Reader, depth: number): Value {
  if (depth > MAX_DEPTH) r.fail(`nested deeper than ${MAX_DEPTH}`);
  const tag = r.byte();
  switch (tag) {
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_UINT:
      return r.varint();
    case T_NEG: {
      const n = r.varint();
      if (n >= Number.MAX_SAFE_INTEGER) r.fail('integer beyond -(2^53-1)');
      return -n - 1;
    }
    case T_STR:
      return r.text();
    case T_BYTES:
      return r.take(r.varint());
    case T_ARRAY: {
      const n = r.varint();
      // Each item takes at least one byte: a lying count cannot make us allocate.
      if (n > r.buf.length - r.pos) r.fail(`array count ${n} beyond the end`);
      const out: Value[] = [];
      for (let i = 0; i < n; i++) out.push(read(r, depth + 1));
      return out;
    }
    case T_MAP: {
      const n = r.varint();
      if (n > (r.buf.length - r.pos) / 2) r.fail(`map count ${n} beyond the end`);
      // Null prototype: a key "__proto__" from the wire stays an ordinary own property.
      const out: Record<string, Value> = Object.create(null);
      let prev: Uint8Array | null = null;
      for (let i = 0; i < n; i++) {
        const at = r.pos;
        const kb = r.take(r.varint());
        if (prev && compareBytes(prev, kb) >= 0) {
          r.pos = at;
          r.fail('map keys not strictly ascending');
        }
        prev = kb;
        let key: string;
        try {
          key = strictUtf8.decode(kb);
        } catch {
          return r.fail('invalid UTF-8 in key');
        }
        out[key] = read(r, depth + 1);
      }
      return out;
    }
    default:
      return r.fail(`unknown tag 0x${tag.toString(16)}`);
  }
}

/**
 * Decodes one value that must fill `buf` exactly. Byte strings in the result are views into
 * `buf`; maps are null-prototype objects.
 */
export function decode(buf: Uint8Array): Value {
  const r = new Reader(buf);
  const v = read(r, 0);
  if (r.pos !== buf.length) r.fail(`${buf.length - r.pos} trailing bytes`);
  return v;
}
