// Every key of a host and of its backup group, derived deterministically from what a
// user can remember: hostname + passphrase, and group name + group password.
// Same inputs give the same keys on any machine: that is what makes recovery possible.
import { scrypt, createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

/** scrypt N=2^17, r=8: 128 MiB of memory, ~0.4 s with node:crypto on a 2-vCPU VM (noble's takes 0.6-0.9 s). */
export const SCRYPT = { N: 1 << 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 } as const;

export interface HostKeys {
  /** 32-byte Ed25519 seed: the host's signing key and libp2p PeerId. */
  identitySeed: Uint8Array;
  /** Encrypts the root block. */
  rootKey: Uint8Array;
  /** Public name under which buddies file the root block; reveals nothing about the host. */
  locator: string;
  /** Encrypts metadata objects and the local config's secrets. */
  metaKey: Uint8Array;
  /** Stored in the config to tell a wrong passphrase apart from a damaged store. */
  verifier: string;
  /** Convergence secret of a host that belongs to no group (its chunks dedup only locally). */
  soloConvergence: Uint8Array;
  /** Encrypts the local index database at rest. */
  storeKey: Uint8Array;
  /** Keys the staging files (plaintext of files not chunked yet) at rest. */
  stagingKey: Uint8Array;
}

export interface GroupKeys {
  /** libp2p private-network key: only members can connect. */
  pnetKey: Uint8Array;
  /** Rendezvous id for discovery. */
  rendezvous: string;
  /** Keys chunk handles: same content in the same group gives the same chunk. */
  convergence: Uint8Array;
}

function memoryHard(secret: string, salt: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    scrypt(secret.normalize('NFC'), salt, 32, SCRYPT, (err, key) => (err ? reject(err) : resolve(new Uint8Array(key))));
  });
}

const label = (master: Uint8Array, info: string, len = 32): Uint8Array =>
  hkdf(sha256, master, undefined, new TextEncoder().encode(info), len);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export const hostSalt = (hostname: string): string => 'safe/v1/' + hostname;

export async function hostMaster(hostname: string, passphrase: string): Promise<Uint8Array> {
  if (!hostname) throw new Error('hostname must not be empty');
  if (!passphrase) throw new Error('passphrase must not be empty');
  return memoryHard(passphrase, hostSalt(hostname));
}

export function hostKeys(master: Uint8Array): HostKeys {
  const locatorSecret = label(master, 'safe/v1/root-locator');
  return {
    identitySeed: label(master, 'safe/v1/identity'),
    rootKey: label(master, 'safe/v1/root-key'),
    locator: createHash('sha256').update(locatorSecret).digest('hex'),
    metaKey: label(master, 'safe/v1/metadata'),
    verifier: hex(label(master, 'safe/v1/verifier', 16)),
    soloConvergence: label(master, 'safe/v1/solo-convergence'),
    storeKey: label(master, 'safe/v1/store'),
    stagingKey: label(master, 'safe/v1/staging'),
  };
}

export async function groupKeys(name: string, password: string): Promise<GroupKeys> {
  if (!name) throw new Error('group name must not be empty');
  if (!password) throw new Error('group password must not be empty');
  const secret = await memoryHard(password, 'safe/v1/group/' + name);
  return {
    pnetKey: label(secret, 'safe/v1/pnet'),
    rendezvous: hex(label(secret, 'safe/v1/rendezvous')),
    convergence: label(secret, 'safe/v1/convergence'),
  };
}

/** The host's Ed25519 key pair from its seed, as node:crypto KeyObjects (fast signing). */
export function ed25519FromSeed(seed: Uint8Array): { privateKey: KeyObject; publicKey: KeyObject; publicRaw: Uint8Array } {
  // PKCS#8 prefix for a raw Ed25519 seed: lets node:crypto import it without a JWK round trip.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seed)]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey, publicRaw: new Uint8Array(spki.subarray(spki.length - 32)) };
}
