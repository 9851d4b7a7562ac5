// A staging file sealed at rest: the plaintext of a file written through the mount, kept until
// it is chunked, must not be readable from the disk without the passphrase.
//
// Layout: a 32-byte header (magic, version, a random 16-byte nonce), then the content under
// AES-256-CTR with a key of its own, HMAC(staging key, nonce). CTR keeps the file's length and
// random access at any byte, so a FUSE write costs one cipher call, not a read-modify-write of
// blocks (measured here: AES-XTS in 4 KiB units ran at 186 MiB/s, one CTR call per write at the
// cipher's full speed). What this does not hide: which bytes changed between two copies of the
// disk taken while one generation was open for writing (docs/security.md).
//
// Holes: a region never written (a sparse file, a truncate that grows) holds zeros on disk,
// which would decrypt to keystream. A whole 16-byte cipher block that is all zero on disk
// therefore reads as zeros; writes keep every block they touch either such a hole or wholly
// encrypted. The last block of the content is usually shorter: k bytes of ciphertext are all
// zero with probability 256^-k, far from negligible (a random-sized file in ~4,000), so it is
// never a hole: writes and truncations leave it encrypted, zeros included. Version 1 files
// (release 0.2.0) took an all-zero last block for a hole, and a truncation could leave one
// there: they are still read that way.
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { fdatasync, fstatSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { ctrXor } from './native.js';

const MAGIC = Buffer.from('safestg\x02', 'latin1');
/** Its last block, when shorter than a cipher block, may be a hole. */
const MAGIC_V1 = Buffer.from('safestg\x01', 'latin1');
export const STAGED_HEADER = 32;
const B = 16;
/**
 * Bytes per cipher call of the TS twin. Each call returns a fresh buffer, and one over glibc's
 * mmap threshold is a fresh mapping whose page faults cost more than the cipher: in one
 * process here AES-CTR ran at ~1.1 GB/s in 1 MiB calls, ~0.4 GB/s in 4 MiB calls and ~3 GB/s
 * in 64 KiB calls.
 */
const SLICE = 64 << 10;

/** AES-256-CTR at byte `pos` of a staged file's content: C where the addon is built. */
const xorAt: (key: Buffer, pos: number, src: Uint8Array, dst: Uint8Array) => void = ctrXor ?? ctrXorTs;

/**
 * What writes are encrypted into before they go to the disk, used again (writes are
 * synchronous): a fresh buffer per write was zeroed, then faulted in, then collected.
 */
let sealed = Buffer.alloc(0);

function sealBuffer(len: number): Buffer {
  if (sealed.length < len) sealed = Buffer.allocUnsafe(Math.max(len, 64 << 10));
  return sealed.subarray(0, len);
}

export class StagedFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StagedFileError';
  }
}

const down = (n: number): number => n - (n % B);
const up = (n: number): number => Math.ceil(n / B) * B;

export class StagedFile {
  private constructor(readonly fd: number, private readonly key: Buffer, private readonly v1 = false) {}

  /** Starts a new, empty staged file on `fd` (opened for reading and writing). */
  static create(fd: number, stagingKey: Uint8Array): StagedFile {
    const nonce = freshNonce();
    const head = Buffer.alloc(STAGED_HEADER);
    MAGIC.copy(head, 0);
    nonce.copy(head, MAGIC.length);
    writeSync(fd, head, 0, head.length, 0);
    return new StagedFile(fd, fileKey(stagingKey, nonce));
  }

  /** Whether the file on `fd` starts with a staged file's header. */
  static isSealed(fd: number): boolean {
    const head = Buffer.alloc(MAGIC.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && (head.equals(MAGIC) || head.equals(MAGIC_V1));
  }

  static open(fd: number, stagingKey: Uint8Array): StagedFile {
    const head = Buffer.alloc(STAGED_HEADER);
    const n = readSync(fd, head, 0, head.length, 0);
    const magic = head.subarray(0, MAGIC.length);
    const v1 = magic.equals(MAGIC_V1);
    if (n < STAGED_HEADER || !(v1 || magic.equals(MAGIC))) throw new StagedFileError('not a staged file of this release (bad header)');
    return new StagedFile(fd, fileKey(stagingKey, head.subarray(MAGIC.length, MAGIC.length + 16)), v1);
  }

  /** Bytes of content (the file's length less the header). */
  size(): number {
    return Math.max(0, fstatSync(this.fd).size - STAGED_HEADER);
  }

  /** Plaintext of [pos, pos + len), clipped to `size`; bytes past what the disk holds are zeros. */
  read(out: Buffer, len: number, pos: number, size: number): number {
    const n = Math.min(len, size - pos);
    if (n <= 0) return 0;
    // Straight into `out` where the range starts on a block and `out` has room for its last
    // block: ingest reads whole files so, and a fresh buffer per file was garbage V8 collects
    // only after tens of MB of it (32 MB in the ingest workers during an untar).
    if (pos % B === 0 && out.length >= up(n)) {
      this.decryptInto(out.subarray(0, up(n)), pos);
      return n;
    }
    const plain = this.plain(pos, pos + n);
    plain.copy(out, 0, pos - down(pos), pos - down(pos) + n);
    return n;
  }

  /** Writes `data` at `pos` of content `size` bytes long; returns the new size. */
  write(data: Buffer, pos: number, size: number): number {
    if (data.length === 0) return size;
    if (pos > size) this.sealTail(size, pos);
    let from = pos;
    let body = data;
    // An edge in a hole (or past the end, a hole to be): the rest of its block must be written
    // as encrypted zeros too.
    if (from % B !== 0 && (down(from) >= size || this.isHole(down(from), size))) {
      body = Buffer.concat([Buffer.alloc(from - down(from)), body]);
      from = down(from);
    }
    const end = pos + data.length;
    const tail = Math.min(up(end), size);
    if (end % B !== 0 && tail > end && this.isHole(down(end), size)) body = Buffer.concat([body, Buffer.alloc(tail - end)]);
    this.writeSealed(body, from);
    return Math.max(size, end);
  }

  truncate(to: number, size: number): void {
    if (to > size) this.sealTail(size, to);
    // A hole cut short, or opened by the growth, as the last block: encrypted zeros instead.
    const last = down(to);
    const zeros = to % B !== 0 && (last >= up(size) || (to < size && this.isHole(last, size)));
    ftruncateSync(this.fd, STAGED_HEADER + to);
    if (zeros) this.writeSealed(Buffer.alloc(to - last), last);
  }

  datasync(): Promise<void> {
    return new Promise((res, rej) => fdatasync(this.fd, (err) => (err ? rej(err) : res())));
  }

  /** The last, partial block gains zeros up to `to` (or its end), encrypted, before a gap opens past it. */
  private sealTail(size: number, to: number): void {
    if (size % B === 0) return;
    const start = down(size);
    const plain = this.plain(start, size);
    const grown = Buffer.alloc(Math.min(up(size), to) - start);
    plain.copy(grown, 0, 0, size - start);
    this.writeSealed(grown, start);
  }

  /** Whether the block at `block` of content `size` bytes long is a hole (reads as zeros). */
  private isHole(block: number, size: number): boolean {
    const len = Math.min(B, size - block);
    if (len < B && !this.v1) return false;
    const raw = Buffer.alloc(len);
    const got = readSync(this.fd, raw, 0, raw.length, STAGED_HEADER + block);
    for (let i = 0; i < got; i++) if (raw[i] !== 0) return false;
    return true;
  }

  /**
   * Plaintext of the blocks spanning [from, to), starting at down(from). Whole blocks are read
   * from the disk, however the range cuts them: only a whole block of zeros is a hole. A slice
   * that is zeros throughout on the disk (most of a sparse file) is a hole throughout: it is
   * neither decrypted nor looked at block by block (a 4 GiB hole took 27 s of that, 16 bytes
   * at a time).
   */
  private plain(from: number, to: number): Buffer {
    const start = down(from);
    return this.decryptInto(Buffer.allocUnsafe(up(to) - start), start).subarray(0, to - start);
  }

  /** `raw` filled with the plaintext of the whole blocks from `start` (a block boundary) on. */
  private decryptInto(raw: Buffer, start: number): Buffer {
    let got = 0;
    while (got < raw.length) {
      const n = readSync(this.fd, raw, got, raw.length - got, STAGED_HEADER + start + got);
      if (n === 0) break;
      got += n;
    }
    // Past what the disk holds: zeros.
    raw.fill(0, got);
    for (let at = 0; at < got; at += SLICE) {
      const end = Math.min(at + SLICE, got);
      if (((end - at) % B === 0 || this.v1) && isZero(raw, at, end)) continue;
      const holes: number[] = [];
      for (let b = at; b < end; b += B) {
        const e = Math.min(b + B, end);
        if ((e - b === B || this.v1) && isZeroBlock(raw, b, e)) holes.push(b);
      }
      xorAt(this.key, start + at, raw.subarray(at, end), raw.subarray(at, end));
      for (const b of holes) raw.fill(0, b, Math.min(b + B, end));
    }
    return raw;
  }

  /** `data`, the content at byte `pos`, encrypted and written there. */
  private writeSealed(data: Buffer, pos: number): void {
    const out = sealBuffer(data.length);
    xorAt(this.key, pos, data, out);
    for (let done = 0; done < out.length; ) done += writeSync(this.fd, out, done, out.length - done, STAGED_HEADER + pos + done);
  }
}

/** The TS twin of the addon's ctrXor, in SLICE-sized cipher calls. */
export function ctrXorTs(key: Buffer, pos: number, src: Uint8Array, dst: Uint8Array): void {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(pos / B)), 8);
  const c = createCipheriv('aes-256-ctr', key, iv);
  if (pos % B) c.update(Buffer.alloc(pos % B));
  for (let at = 0; at < src.length; at += SLICE) dst.set(c.update(src.subarray(at, at + SLICE)), at);
}

/**
 * Nonces come from the CSPRNG 4 KiB at a time: one call per 256 files, not one per file (in a
 * profile of the small-file cycle each call cost as much as the header's write).
 */
let nonces = Buffer.alloc(0);
let nextNonce = 0;

function freshNonce(): Buffer {
  if (nextNonce + 16 > nonces.length) {
    nonces = randomBytes(4096);
    nextNonce = 0;
  }
  nextNonce += 16;
  return nonces.subarray(nextNonce - 16, nextNonce);
}

function fileKey(stagingKey: Uint8Array, nonce: Uint8Array): Buffer {
  return createHmac('sha256', stagingKey).update(nonce).digest();
}

const ZEROS = Buffer.alloc(SLICE);

/** Whether buf[from, to) is all zeros (at most SLICE bytes): a memcmp. */
function isZero(buf: Buffer, from: number, to: number): boolean {
  return buf.compare(ZEROS, 0, to - from, from, to) === 0;
}

/** The same for one cipher block: a loop that stops at the first byte of data costs less than a call. */
function isZeroBlock(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false;
  return true;
}
