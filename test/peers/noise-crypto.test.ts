// Noise's ChaCha20-Poly1305 through the addon: the same bytes as Noise's own crypto (so a peer
// of either kind agrees), in place where Noise asks, across pieces, and a wrong tag refused.
import '../../src/peers/net/polyfill.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { chacha } from '../../src/chunkstore/native.js';
import { defaultNoiseCrypto } from '../../src/peers/net/libp2p.js';
import { noiseCrypto } from '../../src/peers/net/noise-crypto.js';

const bytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
// Both sides of Noise's 1,200-byte switch, and up to a whole Noise message.
const message = fc.oneof(fc.uint8Array({ maxLength: 2000 }), fc.nat(65_519).map((n) => Buffer.alloc(n, n & 0xff)));

/** `data` cut at the given points (sorted, deduplicated, inside it). */
function cut(data: Uint8Array, at: number[]): Uint8Array[] {
  const points = [...new Set(at.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, data.length]) {
    out.push(data.subarray(from, p));
    from = p;
  }
  return out;
}

test("sealing and opening give Noise's own bytes, in place too; a changed byte is refused", () => {
  assert.ok(chacha, 'the native addon is built');
  assert.notEqual(noiseCrypto, defaultNoiseCrypto);
  fc.assert(
    fc.property(bytes(32), bytes(12), fc.uint8Array({ maxLength: 40 }), message, fc.nat(), (k, nonce, ad, text, flip) => {
      const sealed = Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(text, nonce, ad, k).subarray());
      assert.deepEqual(sealed, Buffer.from(defaultNoiseCrypto.chaCha20Poly1305Encrypt(text, nonce, ad, k).subarray()));
      assert.deepEqual(Buffer.from(noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k).subarray()), Buffer.from(text));
      // As Noise decrypts a frame that came in one piece: into the frame itself.
      const frame = Buffer.from(sealed);
      const opened = noiseCrypto.chaCha20Poly1305Decrypt(frame, nonce, ad, k, frame.subarray(0, text.length));
      assert.deepEqual(Buffer.from(opened.subarray()), Buffer.from(text));
      const bad = Buffer.from(sealed);
      bad[flip % bad.length]! ^= 1 << (flip % 8);
      assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(bad, nonce, ad, k), /Invalid chacha20poly1305 decryption/);
    }),
    { numRuns: 200 },
  );
});

test('a message in pieces seals and opens as one, the tag cut anywhere too; more than 64 pieces are refused', () => {
  const addon = chacha!;
  fc.assert(
    fc.property(bytes(32), bytes(12), message, fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 8 }), (k, nonce, text, cuts, tagCuts) => {
      const whole = Buffer.allocUnsafe(text.length + 16);
      addon.chachaSeal(k, nonce, new Uint8Array(0), [text], whole);
      const pieces = Buffer.allocUnsafe(text.length + 16);
      addon.chachaSeal(k, nonce, new Uint8Array(0), cut(text, cuts), pieces);
      assert.deepEqual(pieces, whole);
      const out = Buffer.alloc(text.length);
      // Cut points near the end land in the tag.
      const at = [...cuts, ...tagCuts.map((c) => Math.max(0, whole.length - 1 - (c % 17)))];
      assert.equal(addon.chachaOpen(k, nonce, new Uint8Array(0), cut(whole, at), out), true);
      assert.deepEqual(out, Buffer.from(text));
    }),
    { numRuns: 200 },
  );
  const k = new Uint8Array(32);
  const nonce = new Uint8Array(12);
  const many = Array.from({ length: 65 }, () => new Uint8Array(1));
  assert.throws(() => addon.chachaSeal(k, nonce, new Uint8Array(0), many, Buffer.alloc(65 + 16)), TypeError);
  assert.throws(() => addon.chachaOpen(k, nonce, new Uint8Array(0), [new Uint8Array(15)], Buffer.alloc(0)), TypeError);
  assert.throws(() => addon.chachaSeal(new Uint8Array(16), nonce, new Uint8Array(0), [], Buffer.alloc(16)), TypeError);
});
