// Owner signatures for requests that drop or overwrite what a buddy holds (delete sets,
// metadata overwrites): a buddy obeys them only when signed by the host that shipped the data.
// The key is the host's identity key, the one behind its PeerId, so a buddy checks a request
// against the PeerId that Noise already authenticated, and a recovered host (same seed, same
// key) is obeyed again.
//
// What is signed is the canonical encoding (canonical.ts) of [DOMAIN, context, value]: the
// domain keeps these signatures from ever being valid as anything else signed by the same key
// (libp2p signs with it too), and the context keeps a signature made for one purpose (say a
// delete set) from being replayed as another (a metadata overwrite).
import { createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { peerIdFromString } from '../net/libp2p.js';
import { encode, type Value } from './canonical.js';
import { ed25519FromSeed } from '../../keys/derive.js';

const DOMAIN = 'safe/v1/signed';
// SPKI DER prefix of a raw 32-byte Ed25519 public key: lets node:crypto import it directly.
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

export interface Signer {
  /** Raw 32-byte Ed25519 public key: the key inside this host's PeerId. */
  readonly publicKey: Uint8Array;
  /** 64-byte Ed25519 signature over the canonical bytes of (context, value). */
  sign(context: string, value: Value): Uint8Array;
}

/** The bytes actually signed: exposed so tests and audits can see exactly what is covered. */
export function signedBytes(context: string, value: Value): Uint8Array {
  if (!context) throw new Error('signing context must not be empty');
  return encode([DOMAIN, context, value]);
}

/** A signer for the host whose identity seed this is (HostKeys.identitySeed). */
export function createSigner(identitySeed: Uint8Array): Signer {
  if (identitySeed.length !== 32) throw new Error(`identity seed must be 32 bytes, got ${identitySeed.length}`);
  const { privateKey, publicRaw } = ed25519FromSeed(identitySeed);
  return {
    publicKey: publicRaw,
    sign: (context, value) => new Uint8Array(edSign(null, signedBytes(context, value), privateKey)),
  };
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error(`Ed25519 public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

/** The Ed25519 public key a PeerId string embeds; throws for ids of other key types. */
export function publicKeyFromPeerId(peerId: string): Uint8Array {
  const id = peerIdFromString(peerId);
  if (id.type !== 'Ed25519') throw new Error(`peer ${peerId} does not have an Ed25519 key (${id.type})`);
  return id.publicKey.raw;
}

/**
 * True only if `signature` was made by the holder of `publicKey` over exactly this context and
 * value. Malformed input (wrong lengths, a value that cannot be encoded) is false, not a throw:
 * these bytes come from peers.
 */
export function verify(publicKey: Uint8Array | KeyObject, context: string, value: Value, signature: Uint8Array): boolean {
  try {
    if (signature.length !== 64) return false;
    const key = publicKey instanceof Uint8Array ? publicKeyFromRaw(publicKey) : publicKey;
    return edVerify(null, signedBytes(context, value), key, signature);
  } catch {
    return false;
  }
}

/** verify() against the key of an authenticated remote PeerId (PeerStream.remotePeer). */
export function verifyFromPeer(peerId: string, context: string, value: Value, signature: Uint8Array): boolean {
  let key: Uint8Array;
  try {
    key = publicKeyFromPeerId(peerId);
  } catch {
    return false;
  }
  return verify(key, context, value, signature);
}
