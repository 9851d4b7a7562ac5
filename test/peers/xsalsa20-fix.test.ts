// pnet's cipher under several connections at once: memory stays flat, bytes stay right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import '../../src/peers/xsalsa20-fix.js';

type Stream = { update(input: Uint8Array): Uint8Array; _xor: { _memory: Uint8Array } };
const xsalsa20 = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => Stream;

test('two ciphers taking turns after one large message: memory bounded, output equals a lone cipher', () => {
  const key = randomBytes(32);
  const nonces = [randomBytes(24), randomBytes(24)];
  const [a, b] = nonces.map((n) => xsalsa20(n, key)) as [Stream, Stream];
  const big = randomBytes(1 << 20);
  const packets = Array.from({ length: 2000 }, (_, i) => randomBytes(i % 7 === 0 ? 65536 : 1000 + (i % 500)));
  const outA = [Buffer.from(a.update(big))];
  const outB: Buffer[] = [];
  for (const p of packets) {
    outA.push(Buffer.from(a.update(p)));
    outB.push(Buffer.from(b.update(p)));
  }
  const mem = Math.max(a._xor._memory.buffer.byteLength, b._xor._memory.buffer.byteLength);
  assert.ok(mem < 4 << 20, `memory grew to ${mem} bytes`);
  // The same streams, each alone: a cipher's output does not depend on the other's turns.
  const lone = (n: Buffer, parts: Buffer[]): Buffer => {
    const c = xsalsa20(n, key);
    return Buffer.concat(parts.map((p) => Buffer.from(c.update(p))));
  };
  assert.ok(Buffer.concat(outA).equals(lone(nonces[0]!, [big, ...packets])));
  assert.ok(Buffer.concat(outB).equals(lone(nonces[1]!, packets)));
});
