// Owner signatures: a round trip, and every kind of forgery or alteration refused.
import '../../src/peers/net/polyfill.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { generateKeyPairFromSeed, privateKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { createSigner, publicKeyFromPeerId, publicKeyFromRaw, signedBytes, verify, verifyFromPeer } from '../../src/peers/wire/signing.js';
import type { Value } from '../../src/peers/wire/canonical.js';

const seedOf = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(label).digest());
const owner = createSigner(seedOf('owner'));
const CTX = 'delete-set';
const deleteSet = {
  host: 'locator-abc',
  epoch: 42,
  ids: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)],
  note: null,
};

test('a signature verifies for the same context and value, whatever the key order', () => {
  const sig = owner.sign(CTX, deleteSet);
  assert.equal(sig.length, 64);
  assert.equal(verify(owner.publicKey, CTX, deleteSet, sig), true);
  const reordered = { note: null, ids: deleteSet.ids, epoch: 42, host: 'locator-abc' };
  assert.equal(verify(owner.publicKey, CTX, reordered, sig), true);
  assert.equal(verify(publicKeyFromRaw(owner.publicKey), CTX, deleteSet, sig), true, 'a KeyObject works as well');
});

test('altered values, another context, another key or a forged signature all fail', () => {
  const sig = owner.sign(CTX, deleteSet);
  const flipped = new Uint8Array(32).fill(2);
  flipped[31] = 3;
  const altered: Value[] = [
    { ...deleteSet, epoch: 43 },
    { ...deleteSet, host: 'locator-abd' },
    { ...deleteSet, ids: [deleteSet.ids[0]!, flipped] },
    { ...deleteSet, ids: [deleteSet.ids[1]!, deleteSet.ids[0]!] },
    { ...deleteSet, ids: [deleteSet.ids[0]!] },
    { ...deleteSet, extra: true },
    { ...deleteSet, note: undefined },
    [deleteSet],
  ];
  for (const v of altered) assert.equal(verify(owner.publicKey, CTX, v, sig), false, JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? 'bytes' : x)));

  assert.equal(verify(owner.publicKey, 'metadata-overwrite', deleteSet, sig), false, 'a signature is bound to its context');

  const other = createSigner(seedOf('mallory'));
  assert.equal(verify(other.publicKey, CTX, deleteSet, sig), false, 'checked against the wrong key');
  assert.equal(verify(owner.publicKey, CTX, deleteSet, other.sign(CTX, deleteSet)), false, 'signed by the wrong key');

  for (let i = 0; i < 64; i += 7) {
    const bent = new Uint8Array(sig);
    bent[i] = bent[i]! ^ 0x01;
    assert.equal(verify(owner.publicKey, CTX, deleteSet, bent), false, `bit flipped in byte ${i}`);
  }
  assert.equal(verify(owner.publicKey, CTX, deleteSet, randomBytes(64)), false);
  assert.equal(verify(owner.publicKey, CTX, deleteSet, new Uint8Array(64)), false);
  assert.equal(verify(owner.publicKey, CTX, deleteSet, sig.subarray(0, 63)), false, 'short signature: false, not a throw');
  assert.equal(verify(owner.publicKey.subarray(0, 31), CTX, deleteSet, sig), false, 'short key: false, not a throw');
  assert.equal(verify(owner.publicKey, CTX, { x: 1.5 }, sig), false, 'unencodable value: false, not a throw');
});

test('the signing key is the one inside the libp2p PeerId of the same seed', async () => {
  const seed = seedOf('owner');
  const peerId = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed)).toString();
  assert.deepEqual(publicKeyFromPeerId(peerId), owner.publicKey);
  const sig = owner.sign(CTX, deleteSet);
  assert.equal(verifyFromPeer(peerId, CTX, deleteSet, sig), true);

  const stranger = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seedOf('stranger'))).toString();
  assert.equal(verifyFromPeer(stranger, CTX, deleteSet, sig), false);
  // privateKeyFromRaw(seed) quietly makes a secp256k1 key: not an identity here.
  const secp = peerIdFromPrivateKey(privateKeyFromRaw(seed)).toString();
  assert.throws(() => publicKeyFromPeerId(secp), /does not have an Ed25519 key/);
  assert.equal(verifyFromPeer(secp, CTX, deleteSet, sig), false);
  assert.equal(verifyFromPeer('not a peer id', CTX, deleteSet, sig), false);
});

test('known answer: what is signed, and the signature, never drift', async () => {
  // Buddies keep signed delete sets and metadata; a change here would orphan them.
  const signer = createSigner(new Uint8Array(32).fill(1));
  const v = { epoch: 7, ids: [new Uint8Array([0xaa, 0xbb])] };
  assert.equal(
    Buffer.from(signedBytes('delete-set', v)).toString('hex'),
    '0703' + '050e' + Buffer.from('safe/v1/signed').toString('hex') + '050a' + Buffer.from('delete-set').toString('hex') + '0802' + '0565706f6368' + '0307' + '03696473' + '0701' + '0602aabb',
  );
  assert.equal(Buffer.from(signer.publicKey).toString('hex'), '8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c');
  const sig = Buffer.from(signer.sign('delete-set', v)).toString('hex');
  assert.equal(sig, KNOWN_SIGNATURE);
  // Ed25519 is deterministic: libp2p's own implementation must produce the same bytes.
  const libp2pKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(1));
  assert.equal(Buffer.from(await libp2pKey.sign(signedBytes('delete-set', v))).toString('hex'), KNOWN_SIGNATURE);
  assert.throws(() => signedBytes('', v), /context/);
});

const KNOWN_SIGNATURE =
  'd78cf867e6372fcb0ee9c720a944dedd9f026ea47939160fc56c0739e7ee7b836b493d5d4cc5a012200964c7a1e54b142185125ae2b906844474a01e9b78650e';
