// The group's private network: every byte of a connection, below Noise, is XORed with an
// AES-256-CTR keystream under a key only members hold, so an outsider cannot even finish a
// handshake. The same construction as libp2p's pnet (a fresh random IV from each side, sent in
// the clear, then a stream cipher each way), with two changes, both measured here:
//
// - The cipher is node:crypto's AES-CTR (AES-NI, several GB/s) instead of pnet's xsalsa20 in
//   WebAssembly (~90 MB/s, which capped shipping to a buddy at 87 MB/s, and whose shared WASM
//   memory grows without bound when several connections take turns). The 128-bit counter
//   never wraps within a connection.
// - Right after the IVs each side sends a fixed 16-byte marker through the cipher and checks
//   the one it receives. pnet never checks that both ends hold the same key: with different
//   keys each decrypts noise and Noise may wait for a garbage frame length until the dial
//   times out (5 of 8 wrong-key dials failed fast, 3 hung for the whole budget). With the
//   marker an outsider is refused within one round trip. Under fresh IVs it reveals nothing.
import { createCipheriv, hkdfSync, randomBytes, type Cipher } from 'node:crypto';
import { ctrXor } from '../../chunkstore/native.js';
import { AbstractMultiaddrConnection, byteStream } from './libp2p.js';
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface';

/** The peer's private-network key differs from ours: it is not in this backup group. */
export class GroupMismatchError extends Error {
  override name = 'GroupMismatchError';
}

const IV_BYTES = 16;
const MARKER = new TextEncoder().encode('safe/v2/pnet-ok\n');
/** Used only when libp2p passes no signal of its own (it normally passes the dial's). */
const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Frames sent within one turn of the event loop go to the socket as one write, up to this many
 * bytes; a larger frame is written at once.
 */
const COALESCE_BYTES = 64 * 1024;
/** Writes below this are copied out of the gathering buffer (Node's own pool serves them). */
const SMALL_WRITE = 4096;

/**
 * One direction's keystream, applied at its running position. Through the addon it writes
 * where it is told (in place, or straight into the buffer a write gathers): Node's
 * `cipher.update` returns a fresh, zero-filled buffer per call, and those buffers, their zeroing
 * and copying them together again were most of what the group network cost a shipment's
 * processes beyond the cipher itself.
 */
class Keystream {
  private pos = 0;
  private readonly cipher: Cipher | null;

  constructor(private readonly key: Buffer, private readonly iv: Buffer) {
    this.cipher = ctrXor ? null : createCipheriv('aes-256-ctr', key, iv);
  }

  /** dst = src xor the next src.length bytes of the stream; dst may be src. */
  xor(src: Uint8Array, dst: Uint8Array): void {
    if (ctrXor) ctrXor(this.key, this.pos, src, dst, this.iv);
    else dst.set(this.cipher!.update(src));
    this.pos += src.length;
  }
}

/** A connection whose bytes pass through one keystream each way. */
class CipherConnection extends AbstractMultiaddrConnection {
  /** Encrypted, in order, not yet handed to the socket: the first `used` bytes of `out`. */
  private out: Buffer | null = null;
  private used = 0;
  private flushQueued = false;

  constructor(
    private readonly raw: MultiaddrConnection,
    private readonly outbound: Keystream,
    inbound: Keystream,
  ) {
    super({ log: raw.log.newScope('group-net'), remoteAddr: raw.remoteAddr, direction: raw.direction });
    // What the socket read is ours alone: it is decrypted where it lies.
    raw.addEventListener('message', (evt) => {
      const data = evt.data;
      if (data instanceof Uint8Array) {
        inbound.xor(data, data);
        this.onData(data);
      } else {
        for (const buf of data) {
          inbound.xor(buf, buf);
          this.onData(buf);
        }
      }
    });
    raw.addEventListener('drain', () => this.onMuxerDrain());
    raw.addEventListener('close', (evt) => {
      if (evt.error == null) this.onTransportClosed();
      else if (evt.local) this.abort(evt.error);
      else this.onRemoteReset();
    });
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    this.flush();
    await this.raw.close(options);
  }

  // The parameter type from the base class: two majors of uint8arraylist are installed.
  sendData(data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): { sentBytes: number; canSendMore: boolean } {
    // Every layer above writes each of its frames through at once: a yamux frame, its Noise
    // box, a window update, each was a socket write of its own (the largest self time of a
    // fuzzed buddy, and 9% of a shipping one's). They are gathered until the current turn of
    // the event loop ends, encrypted straight into the buffer that goes to the socket.
    const size = data.byteLength;
    // What is gathered goes first when this frame does not fit beside it.
    const more = this.out && this.used + size > this.out.length ? this.flush() : true;
    if (size >= COALESCE_BYTES) {
      const box = Buffer.allocUnsafe(size);
      this.encryptInto(data, box, 0);
      return { sentBytes: size, canSendMore: this.raw.status === 'open' && this.raw.send(box) && more };
    }
    this.out ??= Buffer.allocUnsafe(COALESCE_BYTES);
    this.encryptInto(data, this.out, this.used);
    this.used += size;
    if (this.used === this.out.length) return { sentBytes: size, canSendMore: this.flush() && more };
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        // Nothing may throw out of a microtask (it would take the process down): a socket
        // that refuses the bytes ends this connection instead.
        try {
          this.flush();
        } catch (err) {
          this.abort(err as Error);
        }
      });
    }
    return { sentBytes: size, canSendMore: more };
  }

  /**
   * Writes what is pending; false when the socket asks us to wait for its drain. A socket
   * closed under us (reset by the peer, aborted) has no use for it.
   */
  private flush(): boolean {
    if (!this.out || this.used === 0) return true;
    // A few small frames (a request, a window update) are copied out of the gathering buffer,
    // which stays for the next ones: a fresh 64 KiB per small write would be garbage the
    // collector counts as external memory. A full one goes to the socket as it is.
    let out: Buffer;
    if (this.used < SMALL_WRITE) out = Buffer.from(this.out.subarray(0, this.used));
    else {
      out = this.out.subarray(0, this.used);
      this.out = null;
    }
    this.used = 0;
    if (this.raw.status !== 'open') return false;
    return this.raw.send(out);
  }

  private encryptInto(data: Iterable<Uint8Array>, into: Buffer, at: number): void {
    for (const part of data) {
      this.outbound.xor(part, into.subarray(at, at + part.length));
      at += part.length;
    }
  }

  sendReset(err: Error): void {
    this.used = 0;
    this.raw.abort(err);
  }

  sendPause(): void {
    this.raw.pause();
  }

  sendResume(): void {
    this.raw.resume();
  }
}

class GroupProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = 'safe/group-net';

  constructor(private readonly key: Buffer) {}

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const opts = options?.signal ? options : { signal: AbortSignal.timeout(DEFAULT_TIMEOUT_MS) };
    try {
      const plain = byteStream(connection);
      const localIv = randomBytes(IV_BYTES);
      const [remoteIv] = await Promise.all([plain.read({ bytes: IV_BYTES, ...opts }), plain.write(localIv, opts)]);
      const boxed = new CipherConnection(
        plain.unwrap() as MultiaddrConnection,
        new Keystream(this.key, localIv),
        new Keystream(this.key, Buffer.from(remoteIv.subarray())),
      );
      const checked = byteStream(boxed);
      const [got] = await Promise.all([checked.read({ bytes: MARKER.length, ...opts }), checked.write(MARKER, opts)]);
      if (!got.subarray().every((b, i) => b === MARKER[i])) {
        throw new GroupMismatchError('the peer is not in this backup group (its private-network key differs)');
      }
      return checked.unwrap();
    } catch (err) {
      // Drop the socket now: otherwise the other end may sit in its own read until a timeout.
      connection.abort(err as Error);
      throw err;
    }
  }
}

/** A libp2p connectionProtector for the group keyed by `pnetKey` (GroupKeys.pnetKey). */
export function groupNetwork(pnetKey: Uint8Array): () => ConnectionProtector {
  if (pnetKey.length !== 32) throw new Error(`group network key must be 32 bytes, got ${pnetKey.length}`);
  const key = Buffer.from(hkdfSync('sha256', pnetKey, new Uint8Array(0), 'safe/v2/group-net/aes-256-ctr', 32));
  return () => new GroupProtector(key);
}
