// Metadata objects and the root block as buddies see them: opaque ids and AES-256-GCM boxes.
// A metadata object is a segment of the tree's deltas (meta-segments.ts), already compressed;
// its id is a keyed hash of its sequence number, so a buddy cannot tell one from another or
// link it to a file. Encryption is deterministic (the nonce is a keyed hash of id and content):
// sealing a segment again gives the same box, and equal boxes only say it did not change.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { decode, encode, type Value } from '../wire/canonical.js';
import type { Policy } from '../../snapshot/retention.js';

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

function open(key: Buffer, aad: Uint8Array, box: Uint8Array, what: string): Buffer {
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

/** Release 0.2's objects, one per inode or chunk list: what buddies are told to drop on upgrade. */
export const LEGACY_INODE = 0;
export const LEGACY_CHUNK_LIST = 1;

export class MetaSealer {
  private readonly idKey: Buffer;
  private readonly key: Buffer;

  constructor(metaKey: Uint8Array) {
    this.idKey = sub(metaKey, 'safe/v1/object-id');
    this.key = sub(metaKey, 'safe/v1/object-key');
  }

  private id(kind: string, n: number): Buffer {
    return createHmac('sha256', this.idKey).update(`${kind}:${n}`).digest();
  }

  segmentId(seq: number): Buffer {
    return this.id('segment', seq);
  }

  /** The id release 0.2 gave the object of an inode or a chunk list. */
  legacyId(kind: typeof LEGACY_INODE | typeof LEGACY_CHUNK_LIST, n: number): Buffer {
    return this.id(kind === LEGACY_INODE ? 'inode' : 'clist', n);
  }

  seal(seq: number, body: Uint8Array): SealedObject {
    const id = this.segmentId(seq);
    const nonce = createHmac('sha256', this.key).update(id).update(body).digest().subarray(0, 12);
    const box = seal(this.key, nonce, id, body);
    return { id, digest: boxDigest(box), box };
  }

  /** Decrypts a release-0.2 object fetched back from a buddy (legacy-objects.ts reads it). */
  openLegacy(id: Uint8Array, box: Uint8Array): Buffer {
    return open(this.key, id, box, `metadata object ${Buffer.from(id).toString('hex').slice(0, 16)}`);
  }

  /** Decrypts a segment fetched back from a buddy (recovery): its body, or an error naming it. */
  open(seq: number, box: Uint8Array): Buffer {
    return open(this.key, this.segmentId(seq), box, `metadata segment ${seq}`);
  }
}

export interface RootBlock {
  /** The epoch of the shipped state: the live tree a recovery rebuilds. */
  epoch: number;
  nextIno: number;
  snapshots: { epoch: number; name: string; time: number; label: string | null }[];
  /** Buddies in effect when this block was written: where recovery fetches from (slot: rs:K+M's shard). */
  buddies: { peer: string; addrs: string[]; slot?: number }[];
  /** What recovery needs to set the host up as it was. */
  settings: HostSettings;
  /**
   * The metadata: the chain of segments a buddy holds for this epoch, base first. Root blocks
   * of release 0.2 (metadata format 1, one object per inode) have none.
   */
  meta?: { format: number; segments: SegmentRef[] };
  written: number;
}

export interface SegmentRef {
  seq: number;
  from: number;
  to: number;
  digest: Uint8Array;
}

export interface HostSettings {
  avgChunk: number;
  schedule: string;
  offer: number;
  buddies: number;
  /** copies:N or rs:K+M; blocks written before release 0.3 lack it (copies of `buddies`). */
  redundancy?: string;
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
  repairThreshold?: number;
}

/** The root block, sealed under the root-block key and bound to the host's locator. */
export function sealRootBlock(rootKey: Uint8Array, locator: string, block: RootBlock): Buffer {
  return seal(Buffer.from(rootKey), randomBytes(12), Buffer.from(locator), encode(block as unknown as Value));
}

export function openRootBlock(rootKey: Uint8Array, locator: string, box: Uint8Array): RootBlock {
  return decode(open(Buffer.from(rootKey), Buffer.from(locator), box, 'the root block')) as unknown as RootBlock;
}
