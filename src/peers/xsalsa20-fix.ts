// @libp2p/pnet encrypts every byte with xsalsa20 1.2.0 (the latest), whose WASM ciphers share
// one memory but each keep their own view of it. When one grows the memory (a message larger
// than the ~640 KiB it starts with), every other cipher's view is left detached, of length 0;
// its next update then grows the memory again by its whole working size, which detaches the
// first one's view, and so on: two connections taking turns grow the memory by 128 KiB per
// packet until WebAssembly's 64 MiB limit throws inside a socket handler and kills the
// daemon (seen after one 1 MiB message and ~250 alternating 64 KiB packets). Here each cipher
// picks up the current memory before it works. Import before libp2p's pnet is used.
import { createRequire } from 'node:module';

interface Cipher {
  _memory: Uint8Array;
  realloc(size: number): void;
  update(input: Uint8Array, output: Uint8Array): void;
}

// The copy pnet loads, wherever npm put it.
const load = createRequire(import.meta.resolve('@libp2p/pnet'));
const xsalsa20 = load('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { _xor: Cipher; finalize(): void };

const probe = xsalsa20(new Uint8Array(24), new Uint8Array(32));
const proto = Object.getPrototypeOf(probe._xor) as Cipher;
probe.finalize();

// Only the WASM implementation has realloc; the pure-JS fallback has no shared memory.
if (typeof proto.realloc === 'function') {
  let live: ArrayBufferLike | null = null;
  const realloc = proto.realloc;
  const update = proto.update;
  proto.realloc = function (this: Cipher, size: number): void {
    realloc.call(this, size);
    live = this._memory.buffer;
  };
  proto.update = function (this: Cipher, input: Uint8Array, output: Uint8Array): void {
    if (live !== null && this._memory.buffer !== live) this._memory = new Uint8Array(live);
    update.call(this, input, output);
  };
}

export {};
