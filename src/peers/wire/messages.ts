// Typed messages over one long-lived libp2p stream, for request/response and for bulk payloads.
//
// Why not lpStream from @libp2p/utils: its reader buffers whatever arrives and aborts the stream
// past 4 MiB (StreamBufferError), and yamux reopens its window when bytes arrive, not when the
// application reads them, so a slow reader of a fast sender dies (seen with libp2p 3.x). Pausing the
// stream does not save it either: yamux lets the sender finish its current window, up to
// 16 MiB. So the flow control here is our own, end to end: each side announces how many bytes
// of messages it is willing to hold (its window) and grants credit back only as the
// application consumes messages. A sender waits for credit, a receiver never holds more than
// its window, and a peer that sends past its credit is cut off.
//
// Wire format. Every frame is a u32 big-endian length L, then L bytes whose first is a kind:
//   0x00 HELLO  u32 window, u32 maxFrame   first frame of each side, exactly once
//   0x01 CREDIT u32 bytes                   "you may send this many more bytes"
//   0x02 MSG    canonical encoding (canonical.ts) of { type, ...fields }
//   0x03 END    no more MSG from this side (credit frames still flow, so the other side can
//               finish sending; a stream half-close would cut those off)
// A MSG frame costs 4 + L bytes of credit; the others cost none.
//
// Any violation (bad framing, frame over the limit, unknown type or field, a value out of its
// bounds, sending past the window) aborts the stream with a ProtocolError: the peer sees a
// reset, our side sees the ProtocolError, the process and other streams carry on.
import type { Stream } from '@libp2p/interface';
import { decode, encodeParts, EncodingError, type Value } from './canonical.js';
import type { Bandwidth } from '../net/bandwidth.js';
import { ByteQueue } from './byte-queue.js';

/** The peer broke the protocol; the stream has been reset. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** A message we were asked to send does not fit its own schema; nothing was sent. */
export class InvalidMessageError extends Error {
  override name = 'InvalidMessageError';
}

/** The stream ended (cleanly or not) while a message or credit was awaited. */
export class ChannelClosedError extends Error {
  override name = 'ChannelClosedError';
}

// ---------------------------------------------------------------------------------------------
// Validators: check a decoded Value and return it as typed plain data, or throw with the path.

class SchemaError extends Error {}

export interface Check<T, Optional extends boolean = false> {
  readonly optional: Optional;
  /** Throws SchemaError naming `path` when `v` does not fit. */
  readonly check: (v: Value | undefined, path: string) => T;
}

type AnyCheck = Check<unknown, boolean>;
type Out<C> = C extends Check<infer T, boolean> ? T : never;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type Shape = Record<string, AnyCheck>;
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K] extends Check<unknown, true> ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends Check<unknown, true> ? K : never }[keyof S];
export type ObjectOf<S extends Shape> = Simplify<{ [K in RequiredKeys<S>]: Out<S[K]> } & { [K in OptionalKeys<S>]?: Out<S[K]> }>;

const fail = (path: string, what: string): never => {
  throw new SchemaError(`${path}: ${what}`);
};

const describe = (v: Value | undefined): string =>
  v === undefined ? 'missing' : v === null ? 'null' : v instanceof Uint8Array ? 'bytes' : Array.isArray(v) ? 'array' : typeof v;

const required = <T>(check: (v: Value, path: string) => T): Check<T> => ({
  optional: false,
  check: (v, path) => (v === undefined ? fail(path, 'missing') : check(v, path)),
});

const isMap = (v: Value): v is { readonly [key: string]: Value | undefined } =>
  typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && !Array.isArray(v);

/** Validator constructors. Every size has a bound, so no field can grow without limit. */
export const t = {
  bool: (): Check<boolean> => required((v, p) => (typeof v === 'boolean' ? v : fail(p, `expected boolean, got ${describe(v)}`))),

  uint: (o: { max?: number } = {}): Check<number> =>
    required((v, p) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return fail(p, `expected unsigned integer, got ${describe(v)}`);
      if (o.max !== undefined && v > o.max) fail(p, `${v} is more than ${o.max}`);
      return v;
    }),

  int: (o: { min?: number; max?: number } = {}): Check<number> =>
    required((v, p) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return fail(p, `expected integer, got ${describe(v)}`);
      if (o.min !== undefined && v < o.min) fail(p, `${v} is less than ${o.min}`);
      if (o.max !== undefined && v > o.max) fail(p, `${v} is more than ${o.max}`);
      return v;
    }),

  /** `max` counts UTF-16 code units (string length); default 1024. */
  str: (o: { max?: number; pattern?: RegExp } = {}): Check<string> =>
    required((v, p) => {
      if (typeof v !== 'string') return fail(p, `expected string, got ${describe(v)}`);
      const max = o.max ?? 1024;
      if (v.length > max) fail(p, `string of ${v.length} characters, more than ${max}`);
      if (o.pattern && !o.pattern.test(v)) fail(p, `does not match ${o.pattern}`);
      return v;
    }),

  literal: <const L extends readonly string[]>(...values: L): Check<L[number]> =>
    required((v, p) => (typeof v === 'string' && values.includes(v) ? (v as L[number]) : fail(p, `expected one of ${values.join(', ')}`))),

  bytes: (o: { max: number } | { len: number }): Check<Uint8Array> =>
    required((v, p) => {
      if (!(v instanceof Uint8Array)) return fail(p, `expected bytes, got ${describe(v)}`);
      if ('len' in o && v.length !== o.len) fail(p, `${v.length} bytes, expected exactly ${o.len}`);
      if ('max' in o && v.length > o.max) fail(p, `${v.length} bytes, more than ${o.max}`);
      return v;
    }),

  array: <T>(item: Check<T>, o: { max: number }): Check<T[]> =>
    required((v, p) => {
      if (!Array.isArray(v)) return fail(p, `expected array, got ${describe(v)}`);
      if (v.length > o.max) fail(p, `array of ${v.length} items, more than ${o.max}`);
      return (v as readonly Value[]).map((x, i) => item.check(x, `${p}[${i}]`));
    }),

  /** A map with exactly these fields: unknown ones are refused, not ignored. */
  obj: <S extends Shape>(shape: S): Check<ObjectOf<S>> =>
    required((v, p) => checkFields(shape, v, p, new Set()) as ObjectOf<S>),

  optional: <T>(c: Check<T>): Check<T, true> => ({
    optional: true,
    check: (v, path) => (v === undefined ? (undefined as T) : c.check(v, path)),
  }),

  nullable: <T>(c: Check<T>): Check<T | null> => required((v, p) => (v === null ? null : c.check(v, p))),
};

function checkFields(shape: Shape, v: Value, path: string, skip: ReadonlySet<string>): Record<string, unknown> {
  if (!isMap(v)) return fail(path, `expected map, got ${describe(v)}`);
  for (const k of Object.keys(v)) {
    if (!skip.has(k) && !Object.prototype.hasOwnProperty.call(shape, k)) fail(path, `unknown field ${JSON.stringify(k)}`);
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(shape)) {
    const x = shape[k]!.check(v[k], `${path}.${k}`);
    if (x !== undefined) out[k] = x;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Message sets: the messages one side may send, each a `type` and its fields.

export type MessageShapes = Record<string, Shape>;
export type MessageOf<M extends MessageShapes> = { [K in keyof M & string]: Simplify<{ type: K } & ObjectOf<M[K]>> }[keyof M & string];

export interface MessageSet<M extends MessageShapes> {
  readonly shapes: M;
  /** The typed message, or a SchemaError-derived Error naming the offending field. */
  validate(v: Value): MessageOf<M>;
}

const TYPE_ONLY: ReadonlySet<string> = new Set(['type']);

export function defineMessages<const M extends MessageShapes>(shapes: M): MessageSet<M> {
  for (const [type, shape] of Object.entries(shapes)) {
    if (Object.prototype.hasOwnProperty.call(shape, 'type')) throw new Error(`message ${type}: "type" is reserved`);
  }
  return {
    shapes,
    validate(v) {
      if (!isMap(v)) return fail('$', `expected map, got ${describe(v)}`);
      const type = v['type'];
      if (typeof type !== 'string') return fail('$.type', `expected string, got ${describe(type)}`);
      if (!Object.prototype.hasOwnProperty.call(shapes, type)) return fail('$.type', `unknown message type ${JSON.stringify(type.slice(0, 64))}`);
      return { type, ...checkFields(shapes[type]!, v, `$<${type}>`, TYPE_ONLY) } as MessageOf<M>;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The channel.

const K_HELLO = 0x00;
const K_CREDIT = 0x01;
const K_MSG = 0x02;
const K_END = 0x03;

/** Largest frame anyone may configure: bounds what a hostile length prefix can make us hold. */
export const HARD_MAX_FRAME = 16 * 1024 * 1024;
export const DEFAULT_MAX_FRAME = 1024 * 1024 + 4096;
export const DEFAULT_WINDOW = 4 * 1024 * 1024;

export interface ChannelOptions {
  /** Largest frame body we accept (bytes); the peer is told. Default 1 MiB + 4 KiB. */
  maxFrame?: number;
  /** Bytes of messages the peer may have in flight to us; at least 2 x maxFrame. Default 4 MiB. */
  window?: number;
  /**
   * Caps shared with the node's other channels: a message waits for the upload cap before it
   * goes, and the credit for one received waits for the download cap (the peer can still have
   * a window's worth in flight, so over a long transfer the rate holds, not over the first window).
   */
  bandwidth?: Bandwidth;
}

export interface WaitOptions {
  signal?: AbortSignal;
}

function u32Frame(kind: number, ...values: number[]): Uint8Array {
  const b = new Uint8Array(4 + 1 + 4 * values.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1 + 4 * values.length);
  b[4] = kind;
  values.forEach((x, i) => dv.setUint32(5 + 4 * i, x));
  return b;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

interface Queued<In> {
  msg: In;
  cost: number;
}

/**
 * A message channel on one stream. `In` is what the peer sends us, `Out` what we send.
 * Requests and bulk payloads share the same flow control, so `for (...) await send(chunk)`
 * is all a bulk transfer needs.
 *
 * Do not let both sides send without reading: each would wait for credit the other never
 * grants. Request/response and one-way bulk runs are fine.
 */
export class Channel<In extends { type: string }, Out extends { type: string }> implements AsyncIterable<In> {
  readonly stream: Stream;
  private readonly incoming: MessageSet<MessageShapes>;
  private readonly outgoing: MessageSet<MessageShapes>;
  private readonly maxFrame: number;
  private readonly window: number;
  private readonly bandwidth: Bandwidth | undefined;

  private readonly inBuf = new ByteQueue();
  private helloReceived = false;
  /** Bytes of MSG frames received and not yet granted back: never above our window. */
  private inFlight = 0;
  /** Bytes consumed by the application and not yet granted back. */
  private consumedUngranted = 0;
  private readonly queue: Queued<In>[] = [];
  private readers: Waiter<In | null>[] = [];
  private peerEnded = false;

  private peerMaxFrame = 0;
  private credit = 0;
  private creditWaiters: Waiter<void>[] = [];
  private sendChain: Promise<unknown> = Promise.resolve();
  private requestChain: Promise<unknown> = Promise.resolve();
  private weEnded = false;

  /** Set once the channel can no longer deliver: the reason every later call fails with. */
  private failure: Error | null = null;
  private finished = false;

  constructor(stream: Stream, sets: { receive: MessageSet<MessageShapes>; send: MessageSet<MessageShapes> }, opts: ChannelOptions = {}) {
    this.stream = stream;
    this.incoming = sets.receive;
    this.outgoing = sets.send;
    this.maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
    this.window = opts.window ?? Math.max(DEFAULT_WINDOW, 2 * (this.maxFrame + 4));
    this.bandwidth = opts.bandwidth;
    if (!Number.isInteger(this.maxFrame) || this.maxFrame < 64 || this.maxFrame > HARD_MAX_FRAME) {
      throw new RangeError(`maxFrame must be an integer in 64..${HARD_MAX_FRAME}`);
    }
    if (!Number.isInteger(this.window) || this.window < 2 * (this.maxFrame + 4) || this.window > 0xffffffff) {
      throw new RangeError('window must be at least twice maxFrame + 4 and fit in 32 bits');
    }

    // Listeners must never throw: EventTarget reports a throwing listener as an uncaught
    // exception, which would take the whole process down for one bad peer.
    stream.addEventListener('message', (evt) => {
      try {
        const data = evt.data;
        if (data instanceof Uint8Array) this.inBuf.push(data);
        else for (const c of data) this.inBuf.push(c);
        this.parse();
      } catch (err) {
        this.protocolError(err instanceof ProtocolError ? err : new ProtocolError(String(err)));
      }
    });
    // Only END means "done". A stream that closes without it (a lost or killed connection:
    // libp2p closes the streams of a dead transport without an error) fails the channel, so a
    // cut-off transfer can never pass for a complete one.
    // 'end', not 'remoteCloseWrite': libp2p announces the peer's half-close as it arrives, even
    // before bytes still waiting for a 'message' listener, so a channel opened a moment late
    // never heard of it. 'end' follows those bytes, and readableEnded tells a late listener.
    const onEnd = (): void => {
      // A stream gone for good (transport lost, reset) ends too: 'close' below says why.
      if (this.stream.status !== 'open' && this.stream.status !== 'closing') return;
      if (this.inBuf.length > 0) this.protocolError(new ProtocolError('stream closed in the middle of a frame'));
      else if (!this.peerEnded) {
        this.fail(new ChannelClosedError('the peer closed the stream without ending the channel'));
        // Our side may be done already (a handler that ended and returned): nobody would close
        // the stream then, and it would stay open until libp2p's idle timeout.
        if (this.weEnded) this.stream.close().catch(() => {});
      }
    };
    stream.addEventListener('end', onEnd);
    if (stream.readableEnded) queueMicrotask(onEnd);
    stream.addEventListener('close', (evt) => {
      this.finished = true;
      if (evt.error) this.fail(evt.error);
      else if (!this.peerEnded) this.fail(new ChannelClosedError('stream closed before the peer ended the channel (connection lost?)'));
      else this.fail(new ChannelClosedError('stream closed'));
    });

    this.write([u32Frame(K_HELLO, this.window, this.maxFrame)]);
  }

  private parse(): void {
    while (this.failure === null && this.inBuf.length >= 4) {
      const len = this.inBuf.peekUint32();
      if (len === 0) throw new ProtocolError('empty frame');
      if (len > this.maxFrame) throw new ProtocolError(`frame of ${len} bytes, more than the limit of ${this.maxFrame}`);
      if (this.inBuf.length < 4 + len) {
        // Check the budget as soon as the header is here, before the body is buffered.
        if (this.inBuf.length > 4 && this.inBuf.peek(4) === K_MSG && this.helloReceived) this.checkBudget(len);
        return;
      }
      this.inBuf.take(4);
      const body = this.inBuf.take(len);
      this.frame(body);
    }
  }

  private checkBudget(len: number): void {
    // Peek only: the body may still be arriving. A MSG frame that would exceed the window is
    // refused now rather than after it has been held in memory.
    if (this.inFlight + 4 + len > this.window) {
      throw new ProtocolError(`peer has ${this.inFlight + 4 + len} bytes in flight, beyond the ${this.window}-byte window it was granted`);
    }
  }

  private frame(body: Uint8Array): void {
    const kind = body[0];
    const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (!this.helloReceived && kind !== K_HELLO) throw new ProtocolError('first frame is not HELLO');
    switch (kind) {
      case K_HELLO: {
        if (this.helloReceived) throw new ProtocolError('second HELLO');
        if (body.length !== 9) throw new ProtocolError('malformed HELLO');
        const window = dv.getUint32(1);
        const maxFrame = dv.getUint32(5);
        if (maxFrame < 64 || window < maxFrame + 4) throw new ProtocolError(`unusable HELLO: window ${window}, maxFrame ${maxFrame}`);
        this.helloReceived = true;
        this.peerMaxFrame = maxFrame;
        this.addCredit(window);
        return;
      }
      case K_CREDIT: {
        if (body.length !== 5) throw new ProtocolError('malformed CREDIT');
        this.addCredit(dv.getUint32(1));
        return;
      }
      case K_END: {
        if (body.length !== 1) throw new ProtocolError('malformed END');
        this.onPeerEnd();
        return;
      }
      case K_MSG: {
        if (this.peerEnded) throw new ProtocolError('message after END');
        this.checkBudget(body.length);
        this.inFlight += 4 + body.length;
        let msg: In;
        try {
          msg = this.incoming.validate(decode(body.subarray(1))) as unknown as In;
        } catch (err) {
          if (err instanceof SchemaError || err instanceof EncodingError) throw new ProtocolError(`bad message: ${err.message}`);
          throw err;
        }
        this.deliver({ msg, cost: 4 + body.length });
        return;
      }
      default:
        throw new ProtocolError(`unknown frame kind ${kind}`);
    }
  }

  private addCredit(n: number): void {
    this.credit += n;
    // Sends are serialized, so only the head waiter can be waiting; wake it to re-check.
    const ws = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of ws) w.resolve();
  }

  private deliver(q: Queued<In>): void {
    const r = this.readers.shift();
    if (r) {
      this.consume(q.cost);
      r.resolve(q.msg);
    } else this.queue.push(q);
  }

  private consume(cost: number): void {
    const down = this.bandwidth?.down;
    if (down) void down.take(cost).then(() => this.consumed(cost));
    else this.consumed(cost);
  }

  private consumed(cost: number): void {
    this.consumedUngranted += cost;
    // Grant in batches of a quarter window: enough to keep a sender busy, few CREDIT frames.
    // A blocked sender has more than window - maxFrame >= window / 2 outstanding, so once the
    // application has read everything this always fires and nobody waits forever.
    // After the peer's END no message can follow, so it needs no more credit.
    if (this.consumedUngranted >= this.window / 4 && this.failure === null && !this.finished && !this.peerEnded) {
      const n = this.consumedUngranted;
      this.consumedUngranted = 0;
      this.inFlight -= n;
      try {
        this.write([u32Frame(K_CREDIT, n)]);
      } catch (err) {
        this.fail(err as Error);
      }
    }
  }

  private onPeerEnd(): void {
    if (this.peerEnded) return;
    this.peerEnded = true;
    if (this.queue.length === 0) for (const r of this.readers.splice(0)) r.resolve(null);
    // The peer will grant no more credit once its side is gone for good, but END alone
    // still lets credit through; only a closed stream strands senders (see 'close').
    this.maybeCloseStream();
  }

  private maybeCloseStream(): void {
    if (this.peerEnded && this.weEnded && !this.finished && this.failure === null) {
      this.stream.close().catch(() => {});
    }
  }

  private protocolError(err: ProtocolError): void {
    if (this.failure) return;
    this.fail(err);
    // abort() resets the stream: the peer learns at once instead of waiting for a timeout.
    this.stream.abort(err);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    // Messages already validated stay readable; only waiting beyond them fails.
    if (this.queue.length === 0) for (const r of this.readers.splice(0)) r.reject(err);
    for (const w of this.creditWaiters.splice(0)) w.reject(err);
  }

  private write(parts: Uint8Array[]): boolean {
    let ok = true;
    for (const p of parts) ok = this.stream.send(p);
    return ok;
  }

  /** Sends one message once the peer has room for it; resolves when it is handed to libp2p. */
  send(msg: Out, opts: WaitOptions = {}): Promise<void> {
    const run = this.sendChain.then(() => this.sendNow(msg, opts));
    this.sendChain = run.catch(() => {});
    return run;
  }

  private async sendNow(msg: Out, opts: WaitOptions): Promise<void> {
    let parts: Uint8Array[];
    let length: number;
    try {
      this.outgoing.validate(msg as unknown as Value);
      ({ parts, length } = encodeParts(msg as unknown as Value, 5));
    } catch (err) {
      if (err instanceof SchemaError || err instanceof EncodingError) throw new InvalidMessageError(`cannot send ${msg.type}: ${err.message}`);
      throw err;
    }
    if (this.weEnded) throw new InvalidMessageError('send after end()');
    const cost = 4 + 1 + length;
    while (this.failure === null && (!this.helloReceived || this.credit < cost)) {
      if (this.helloReceived && 1 + length > this.peerMaxFrame) {
        throw new InvalidMessageError(`${msg.type} is ${1 + length} bytes, more than the peer's frame limit of ${this.peerMaxFrame}`);
      }
      await this.wait(this.creditWaiters, opts);
    }
    if (this.failure) throw this.failure;
    if (1 + length > this.peerMaxFrame) throw new InvalidMessageError(`${msg.type} is ${1 + length} bytes, more than the peer's frame limit of ${this.peerMaxFrame}`);
    const up = this.bandwidth?.up;
    if (up) {
      await up.take(cost, opts.signal);
      if (this.failure) throw this.failure;
    }
    this.credit -= cost;
    const head = parts[0]!;
    new DataView(head.buffer, head.byteOffset, 5).setUint32(0, 1 + length);
    head[4] = K_MSG;
    if (!this.write(parts)) {
      // libp2p rejects a pending drain with a bare StreamClosedError (no message) when the
      // stream goes; the channel's own failure says why.
      await this.stream.onDrain({ signal: opts.signal }).catch((err: unknown) => {
        if (opts.signal?.aborted) throw err;
        throw this.failure ?? new ChannelClosedError(`stream closed while sending ${msg.type}`);
      });
    }
  }

  private wait<T>(list: Waiter<T>[], opts: WaitOptions): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const signal = opts.signal;
      if (signal?.aborted) return reject(signal.reason as Error);
      const onAbort = (): void => {
        const i = list.indexOf(w);
        if (i >= 0) list.splice(i, 1);
        reject(signal!.reason as Error);
      };
      const w: Waiter<T> = {
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      list.push(w);
    });
  }

  /** The next message, or null once the peer has ended cleanly. */
  async receive(opts: WaitOptions = {}): Promise<In | null> {
    const q = this.queue.shift();
    if (q) {
      this.consume(q.cost);
      return q.msg;
    }
    if (this.peerEnded) return null;
    if (this.failure) throw this.failure;
    return this.wait(this.readers, opts);
  }

  /** Messages received and not read yet, taken without waiting: what the peer said before a failure. */
  unread(): In[] {
    return this.queue.splice(0).map((q) => q.msg);
  }

  /** Sends `msg` and returns the next message; concurrent calls queue up in call order. */
  request(msg: Out, opts: WaitOptions = {}): Promise<In> {
    const run = this.requestChain.then(async () => {
      await this.send(msg, opts);
      const res = await this.receive(opts);
      if (res === null) throw new ChannelClosedError(`peer ended before answering ${msg.type}`);
      return res;
    });
    this.requestChain = run.catch(() => {});
    return run;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<In> {
    for (;;) {
      const m = await this.receive();
      if (m === null) return;
      yield m;
    }
  }

  /** No more messages from us (after the queued ones); the stream closes once both ends did. */
  async end(): Promise<void> {
    await this.sendChain;
    if (this.weEnded || this.failure) return;
    this.weEnded = true;
    this.write([new Uint8Array([0, 0, 0, 1, K_END])]);
    this.maybeCloseStream();
  }

  /** Resets the stream: the peer sees the reset, pending calls here fail with `err`. */
  abort(err: Error): void {
    this.fail(err);
    this.stream.abort(err);
  }

  /** Bytes of received messages waiting for receive(): bounded by the window we announced. */
  get heldBytes(): number {
    let n = 0;
    for (const q of this.queue) n += q.cost;
    return n;
  }

  /** The window we announced: the most the peer may have in flight to us. */
  get windowBytes(): number {
    return this.window;
  }

  /** Why the channel stopped, or null while it works or after a clean end. */
  get error(): Error | null {
    return this.peerEnded && this.failure instanceof ChannelClosedError ? null : this.failure;
  }
}

export function openChannel<R extends MessageShapes, S extends MessageShapes>(
  stream: Stream,
  sets: { receive: MessageSet<R>; send: MessageSet<S> },
  opts?: ChannelOptions,
): Channel<MessageOf<R>, MessageOf<S>> {
  return new Channel(stream, sets as unknown as { receive: MessageSet<MessageShapes>; send: MessageSet<MessageShapes> }, opts);
}

/**
 * Answers each request with what `handler` returns, until the peer ends. A ProtocolError or a
 * handler error resets the stream and rejects; the caller (node.ts handle) contains it.
 */
export async function serve<In extends { type: string }, Out extends { type: string }>(
  ch: Channel<In, Out>,
  handler: (req: In, ch: Channel<In, Out>) => Out | Promise<Out>,
): Promise<void> {
  try {
    for await (const req of ch) await ch.send(await handler(req, ch));
    await ch.end();
  } catch (err) {
    ch.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}
