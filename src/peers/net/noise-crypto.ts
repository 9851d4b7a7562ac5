// Noise's ChaCha20-Poly1305 through the chunkstore's addon (native/chacha.c). Noise's own, for
// a message of 1,200 bytes or more, makes a Node cipher object per message, a zero-filled
// buffer per update, and concatenates text and tag; a shipment seals and opens ~8,200 messages
// of 64 KiB each way per 512 MiB. Here a message is one call into a buffer allocated without
// zeroing, and an opened one lands where Noise asks (in place, when the frame came in one piece).
// The handshake, hashing and X25519 stay Noise's.
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { chacha } from '../../chunkstore/native.js';
import { defaultNoiseCrypto } from './libp2p.js';

const TAG = 16;
/** Pieces the addon takes in one call; a message in more is joined first. */
const MAX_PARTS = 64;

type Message = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0];

function parts(data: Message): Uint8Array[] {
  if (data instanceof Uint8Array) return [data];
  const list = [...data];
  return list.length <= MAX_PARTS ? list : [data.subarray()];
}

function through(addon: NonNullable<typeof chacha>): ICryptoInterface {
  return {
    ...defaultNoiseCrypto,
    chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
      const out = Buffer.allocUnsafe(plaintext.byteLength + TAG);
      addon.chachaSeal(k, nonce, ad, parts(plaintext), out);
      return out;
    },
    chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
      const len = ciphertext.byteLength - TAG;
      if (len < 0) throw new Error('Invalid chacha20poly1305 decryption');
      const out = dst !== undefined && dst.byteLength === len ? dst : Buffer.allocUnsafe(len);
      if (!addon.chachaOpen(k, nonce, ad, parts(ciphertext), out)) throw new Error('Invalid chacha20poly1305 decryption');
      return out;
    },
  };
}

export const noiseCrypto: ICryptoInterface = chacha ? through(chacha) : defaultNoiseCrypto;
