// Convergent encryption of one chunk (docs/security.md):
//   handle H = HMAC-SHA256(convergence secret, plaintext)
//   key    K = HKDF-Expand(PRK = H, "safe/v1/chunk-key"), i.e. HMAC(H, info || 0x01): H is
//            already a uniform key, so the Extract step adds nothing (and cost 5x the time)
//   box    B = AES-256-GCM(K, nonce 0, aad SHA-256(H), codec byte || body)
//   id     I = SHA-256(B)
// K is used for exactly one plaintext, so a fixed nonce is safe, and the box is deterministic:
// a host can recompute what a buddy must hold (audits), and the same chunk gets the same id on
// every host of a group (dedup). The id is a hash of the box, so whoever holds a box checks it
// against its id without any key: nobody can park other bytes under a chunk's id.
// Release 0.1.0 named a chunk by SHA-256(H), its aad: boxes are unchanged, only ids moved.
import { createCipheriv, createDecipheriv, createHash, createHmac, hash } from 'node:crypto';
import { Compressor, Decompressor } from 'zstd-napi';

export const HANDLE_BYTES = 32;
export const ID_BYTES = 32;
export const TAG_BYTES = 16;
const NONCE = Buffer.alloc(12);
const KEY_INFO = Buffer.from('safe/v1/chunk-key\x01', 'latin1');

const enum Codec { Raw = 0, Zstd = 1 }

/**
 * zstd level 1: on 200 MB of linux source in 16 KiB chunks, level 1 keeps 31.5% at 248 MB/s,
 * level 3 30.2% at 200 MB/s; on random data 1130 vs 890 MB/s (docs/performance.md, "Compression").
 */
export const ZSTD_LEVEL = 1;

/** Compression must save at least this fraction of the chunk to be kept. */
const MIN_SAVING = 1 / 32;
/** Bytes of a chunk tried first to decide whether the whole is worth compressing. */
const SAMPLE = 2048;
const RAW = Buffer.of(0);
const ZSTD = Buffer.of(1);

export class ChunkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChunkError';
  }
}

/** SHA-256 of the handle: the box's aad, and the chunk's id in release 0.1.0. */
export function handleDigest(handle: Uint8Array): Buffer {
  return createHash('sha256').update(handle).digest();
}

/** A chunk's public id: the hash of its box, given whole or as the parts a sealer returns. */
export function boxId(box: Uint8Array | Uint8Array[]): Buffer {
  // One call for one buffer: a Hash object per box added a fifth (18 KB: 16.2 against 13.7 µs).
  if (!Array.isArray(box)) return hash('sha256', box, 'buffer');
  const h = createHash('sha256');
  for (const part of box) h.update(part);
  return h.digest();
}

function chunkKey(handle: Uint8Array): Buffer {
  return createHmac('sha256', handle).update(KEY_INFO).digest();
}

export interface Sealed {
  handle: Buffer;
  id: Buffer;
  /** ciphertext || GCM tag */
  box: Buffer;
  raw: number;
}

/** One per thread: zstd contexts are reused across chunks. */
export class Sealer {
  private readonly compressor = new Compressor();
  private readonly decompressor = new Decompressor();

  /** Without a convergence secret a sealer can only open chunks (verify, status, buddies). */
  constructor(private readonly convergence: Uint8Array | null, private readonly level = ZSTD_LEVEL) {
    this.compressor.setParameters({ compressionLevel: level, checksumFlag: false, contentSizeFlag: true });
  }

  handleOf(plain: Uint8Array): Buffer {
    if (!this.convergence) throw new Error('this chunkstore was opened without its convergence secret: it cannot write');
    return createHmac('sha256', this.convergence).update(plain).digest();
  }


  /**
   * The box as its parts (codec byte, body, tag), so a pack writer copies them once instead
   * of twice. Incompressible chunks are detected on a sample first: compressing a whole
   * random chunk only to throw the result away cost a third of ingest time on such data.
   */
  sealParts(plain: Uint8Array, handle: Buffer): Buffer[] {
    let codec = Codec.Raw;
    let body: Uint8Array = plain;
    if (this.level > 0 && plain.length >= 64 && this.worthCompressing(plain)) {
      const z = this.compressor.compress(plain);
      if (z.length <= plain.length * (1 - MIN_SAVING)) {
        codec = Codec.Zstd;
        body = z;
      }
    }
    const cipher = createCipheriv('aes-256-gcm', chunkKey(handle), NONCE);
    cipher.setAAD(handleDigest(handle));
    const head = cipher.update(codec === Codec.Raw ? RAW : ZSTD);
    const mid = cipher.update(body);
    cipher.final();
    return [head, mid, cipher.getAuthTag()];
  }

  /** Deterministic (a function of the chunk), so the same chunk seals the same on every host. */
  private worthCompressing(plain: Uint8Array): boolean {
    if (plain.length < 4 * SAMPLE) return true;
    const z = this.compressor.compress(plain.subarray(0, SAMPLE));
    return z.length <= SAMPLE * (1 - MIN_SAVING);
  }

  seal(plain: Uint8Array): Sealed {
    const handle = this.handleOf(plain);
    const box = Buffer.concat(this.sealParts(plain, handle));
    return { handle, id: boxId(box), box, raw: plain.length };
  }

  /** Decrypt and check a stored chunk; throws ChunkError on any tampering. `id` names it in errors. */
  open(handle: Uint8Array, box: Uint8Array, id: Uint8Array = handleDigest(handle)): Buffer {
    if (box.length < TAG_BYTES + 1) throw new ChunkError(`chunk ${hexId(id)} is truncated (${box.length} bytes)`);
    const plain = openBox(chunkKey(handle), handleDigest(handle), id, box);
    const body = plain.subarray(1);
    switch (plain[0]) {
      case Codec.Raw:
        return body;
      case Codec.Zstd:
        try {
          return this.decompressor.decompress(body);
        } catch (cause) {
          throw new ChunkError(`chunk ${hexId(id)}: bad compressed body`, { cause });
        }
      default:
        throw new ChunkError(`chunk ${hexId(id)}: unknown codec ${plain[0]}`);
    }
  }
}

function openBox(key: Buffer, aad: Uint8Array, id: Uint8Array, box: Uint8Array): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, NONCE);
  decipher.setAAD(aad);
  decipher.setAuthTag(box.subarray(box.length - TAG_BYTES));
  const out = decipher.update(box.subarray(0, box.length - TAG_BYTES));
  try {
    decipher.final();
  } catch (cause) {
    throw new ChunkError(`chunk ${hexId(id)} failed authentication (corrupt or substituted)`, { cause });
  }
  return out;
}

export const hexId = (id: Uint8Array): string => Buffer.from(id).toString('hex');
