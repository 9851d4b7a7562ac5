// Metadata objects and the root block as buddies see them: opaque ids and AES-256-GCM boxes.
// Encryption is deterministic (the nonce is a keyed hash of id and content): the same version
// of an object gives the same box, so a resumed shipment can ask "do you have this digest?"
// instead of sending it again. Equal boxes only reveal that an object did not change.
// Objects are zstd-compressed inside the box when that helps: a directory's entries repeat
// field names and name prefixes, and after a tree-wide rewrite (rsync of a new release)
// metadata was 85% of the bytes shipped.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { Compressor, Decompressor } from 'zstd-napi';
import { decode, encode, type Value } from './canonical.js';
import type { ChunkListRecord, InodeRecord, InodeVersion } from '../snapshot/records.js';
import { handleDigest } from '../chunkstore/sealer.js';
import type { Policy } from '../snapshot/retention.js';

export interface SealedObject {
  id: Buffer;
  digest: Buffer;
  box: Buffer;
}

const sub = (key: Uint8Array, label: string): Buffer => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), label, 32));

export const boxDigest = (box: Uint8Array): Buffer => createHash('sha256').update(box).digest().subarray(0, 16);

function seal(key: Buffer, nonce: Buffer, aad: Uint8Array, plain: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([nonce, ct, c.getAuthTag()]);
}

function open(key: Buffer, aad: Uint8Array, box: Uint8Array, what: string): Uint8Array {
  if (box.length < 28) throw new Error(`${what} is too short to be sealed`);
  const d = createDecipheriv('aes-256-gcm', key, box.subarray(0, 12));
  d.setAAD(aad);
  d.setAuthTag(box.subarray(box.length - 16));
  try {
    return Buffer.concat([d.update(box.subarray(12, box.length - 16)), d.final()]);
  } catch (cause) {
    throw new Error(`${what} does not decrypt: wrong key, or damaged or substituted`, { cause });
  }
}

// Times are REAL milliseconds in the tree; the canonical encoding has no floats: microseconds.
const us = (ms: number): number => Math.round(ms * 1000);

// Versions and entries are positional arrays, not maps: most objects hold one or two versions,
// too little for zstd to take the repeated field names back out.
function inodeValue(r: InodeRecord): Value {
  return {
    k: 'inode',
    ino: r.ino,
    versions: r.versions.map((v) => [v.born, v.died, v.kind, v.mode, v.uid, v.gid, v.nlink, v.size, us(v.atime), us(v.mtime), us(v.ctime), v.target, v.cl, v.xattrs]),
    entries: r.entries.map((e) => [e.name, e.born, e.died, e.ino]),
  };
}

type N = number;
type VersionTuple = [N, N | null, N, N, N, N, N, N, N, N, N, Uint8Array | null, N | null, string | null];

function versionOf(x: VersionTuple): InodeVersion {
  const [born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, xattrs] = x;
  return { born, died, kind, mode, uid, gid, nlink, size, atime: atime / 1000, mtime: mtime / 1000, ctime: ctime / 1000, target: target === null ? null : Buffer.from(target), cl, xattrs };
}

function chunkListValue(r: ChunkListRecord): Value {
  return { k: 'clist', cl: r.cl, size: r.size, spans: r.spans.map((s) => [s.off, s.handle, s.raw, s.id]) };
}

export type OpenedObject = { kind: 'inode'; record: InodeRecord } | { kind: 'clist'; record: ChunkListRecord };

const RAW = 0;
const ZSTD = 1;
/** Level 3: objects are small, so the better ratio costs little time. */
const OBJECT_ZSTD_LEVEL = 3;

export class ObjectSealer {
  private readonly idKey: Buffer;
  private readonly key: Buffer;
  private readonly compressor = new Compressor();
  private readonly decompressor = new Decompressor();

  constructor(metaKey: Uint8Array) {
    this.idKey = sub(metaKey, 'safe/v1/object-id');
    this.key = sub(metaKey, 'safe/v1/object-key');
    this.compressor.setParameters({ compressionLevel: OBJECT_ZSTD_LEVEL, checksumFlag: false, contentSizeFlag: true });
  }

  private id(kind: string, n: number): Buffer {
    return createHmac('sha256', this.idKey).update(`${kind}:${n}`).digest();
  }

  inodeId(ino: number): Buffer {
    return this.id('inode', ino);
  }

  chunkListId(cl: number): Buffer {
    return this.id('clist', cl);
  }

  private sealValue(id: Buffer, v: Value): SealedObject {
    const encoded = encode(v);
    const z = this.compressor.compress(encoded);
    const plain = z.length < encoded.length ? Buffer.concat([Buffer.of(ZSTD), z]) : Buffer.concat([Buffer.of(RAW), encoded]);
    const nonce = createHmac('sha256', this.key).update(id).update(plain).digest().subarray(0, 12);
    const box = seal(this.key, nonce, id, plain);
    return { id, digest: boxDigest(box), box };
  }

  sealInode(r: InodeRecord): SealedObject {
    return this.sealValue(this.inodeId(r.ino), inodeValue(r));
  }

  sealChunkList(r: ChunkListRecord): SealedObject {
    return this.sealValue(this.chunkListId(r.cl), chunkListValue(r));
  }

  /** Decrypts and checks an object fetched back from a buddy (recovery). */
  open(id: Uint8Array, box: Uint8Array): OpenedObject {
    const what = `metadata object ${Buffer.from(id).toString('hex').slice(0, 16)}`;
    const body = open(this.key, id, box, what);
    if (body[0] !== RAW && body[0] !== ZSTD) throw new Error(`${what}: unknown codec ${body[0]}`);
    const encoded = body[0] === ZSTD ? this.decompressor.decompress(Buffer.from(body.subarray(1))) : body.subarray(1);
    const v = decode(encoded) as Record<string, Value>;
    if (v['k'] === 'inode') {
      const versions = (v['versions'] as unknown as VersionTuple[]).map(versionOf);
      const entries = (v['entries'] as unknown as [Uint8Array, N, N | null, N][]).map(([name, born, died, ino]) => ({ name: Buffer.from(name), born, died, ino }));
      return { kind: 'inode', record: { ino: v['ino'] as number, versions, entries } };
    }
    // Release 0.1.0 shipped spans without the box id: its chunks are asked for by their old id.
    const spans = (v['spans'] as [number, Uint8Array, number, Uint8Array?][]).map(([off, handle, raw, id]) => ({
      off, handle: Buffer.from(handle), raw, id: id ? Buffer.from(id) : handleDigest(handle),
    }));
    return { kind: 'clist', record: { cl: v['cl'] as number, size: v['size'] as number, spans } };
  }
}

export interface RootBlock {
  /** The epoch of the shipped state: the live tree a recovery rebuilds. */
  epoch: number;
  nextIno: number;
  snapshots: { epoch: number; name: string; time: number; label: string | null }[];
  /** Buddies in effect when this block was written: where recovery fetches from. */
  buddies: { peer: string; addrs: string[] }[];
  /** What recovery needs to set the host up as it was. */
  settings: HostSettings;
  written: number;
}

export interface HostSettings {
  avgChunk: number;
  schedule: string;
  offer: number;
  buddies: number;
  // The rest of the host's config, so a recovered host is set up as it was; root blocks
  // written before these were carried lack them (recovery falls back to the defaults).
  listen?: string[];
  mdns?: boolean;
  /** Members' addresses the host was given (--peer). */
  peers?: string[];
  mount?: string;
  retention?: Policy;
  auditSchedule?: string;
  buddySilence?: string;
  ownerSilence?: string;
}

/** The root block, sealed under the root-block key and bound to the host's locator. */
export function sealRootBlock(rootKey: Uint8Array, locator: string, block: RootBlock): Buffer {
  return seal(Buffer.from(rootKey), randomBytes(12), Buffer.from(locator), encode(block as unknown as Value));
}

export function openRootBlock(rootKey: Uint8Array, locator: string, box: Uint8Array): RootBlock {
  return decode(open(Buffer.from(rootKey), Buffer.from(locator), box, 'the root block')) as unknown as RootBlock;
}
