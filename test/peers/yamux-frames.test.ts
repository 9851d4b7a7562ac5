// yamux data frames stay at 64 KiB however much a stream has queued (src/peers/net/yamux-frames.ts):
// a relay passes on none of a frame before its last byte, so a frame the size of the window
// made the two hops of a relayed shipment take turns. Checked on the wire of libp2p's in-memory
// connection pair, beside plain js-yamux, which still sends bigger frames (when it stops, the
// hook can go).
import '../../src/peers/net/polyfill.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multiaddrConnectionPair } from '@libp2p/utils';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Stream } from '@libp2p/interface';
import { cappedYamux, MAX_DATA_FRAME } from '../../src/peers/net/yamux-frames.js';

const HEADER = 12;
const DATA = 0;

/** The largest data frame one 2 MiB send becomes, read off the wire, and the bytes delivered. */
async function largestFrame(factory: ReturnType<typeof yamux>): Promise<{ largest: number; delivered: Buffer }> {
  const [outConn, inConn] = multiaddrConnectionPair();
  let wire = Buffer.alloc(0);
  let largest = 0;
  inConn.addEventListener('message', (evt) => {
    const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
    wire = Buffer.concat([wire, data]);
    while (wire.length >= HEADER) {
      const type = wire[1]!;
      const length = wire.readUInt32BE(8);
      const size = type === DATA ? HEADER + length : HEADER;
      if (wire.length < size) break;
      if (type === DATA) largest = Math.max(largest, length);
      wire = wire.subarray(size);
    }
  });
  const local = factory().createStreamMuxer(outConn);
  const remote = factory().createStreamMuxer(inConn);
  const inbound = new Promise<Stream>((resolve) => remote.addEventListener('stream', (evt) => resolve(evt.detail), { once: true }));
  const [stream, peer] = await Promise.all([local.createStream(), inbound]);
  const payload = Buffer.alloc(2 << 20, 7);
  const got: Buffer[] = [];
  const received = new Promise<void>((resolve) => {
    let n = 0;
    peer.addEventListener('message', (evt) => {
      const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
      got.push(Buffer.from(data));
      if ((n += data.byteLength) >= payload.length) resolve();
    });
  });
  stream.send(payload);
  await received;
  await Promise.all([local.close(), remote.close()]);
  return { largest, delivered: Buffer.concat(got) };
}

test('yamux data frames stay at 64 KiB, where plain js-yamux sends a frame as big as its window', async () => {
  const capped = await largestFrame(cappedYamux());
  assert.ok(capped.largest > 0 && capped.largest <= MAX_DATA_FRAME, `largest data frame ${capped.largest}`);
  assert.ok(capped.delivered.equals(Buffer.alloc(2 << 20, 7)), 'every byte arrives, in order');
  const plain = await largestFrame(yamux());
  assert.ok(plain.largest > MAX_DATA_FRAME, `plain js-yamux's largest frame: ${plain.largest}`);
});

// A stream's write queue drops each buffer it passes with Array#shift. Capping the bytes the
// stream takes off that queue at a time (the first way this cap was built) made each window's
// worth of a queue of many small writes cost a shift per buffer: a fuzzer's byte-at-a-time
// frames stalled its connection for minutes (68 s for 250,000 writes here). Plain js-yamux
// shifts too, what a window did not take, at every window update: 100,000 writes took 0.5 s,
// 200,000 took 2 s. Small writes are now copied together as they are queued.

/** Milliseconds for `small` one-byte writes queued behind a shut window to arrive once it opens. */
async function drainQueued(factory: ReturnType<typeof yamux>, small: number): Promise<number> {
  const [outConn, inConn] = multiaddrConnectionPair();
  const local = factory().createStreamMuxer(outConn);
  const remote = factory().createStreamMuxer(inConn);
  try {
    const inbound = new Promise<Stream>((resolve) => remote.addEventListener('stream', (evt) => resolve(evt.detail), { once: true }));
    const [stream, peer] = await Promise.all([local.createStream(), inbound]);
    const bulk = 256 * 1024 - 64;
    const expected = Buffer.concat([Buffer.alloc(bulk, 1), Buffer.from(Array.from({ length: small }, (_, i) => i & 0xff))]);
    const got: Buffer[] = [];
    let n = 0;
    const received = new Promise<void>((resolve) => {
      peer.addEventListener('message', (evt) => {
        const data = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
        got.push(Buffer.from(data));
        if ((n += data.byteLength) >= expected.length) resolve();
      });
    });
    // Paused, the peer grants no more window: after the bulk send, what is left of its 256 KiB
    // window goes in one-byte frames and the rest of the writes queue up.
    peer.pause();
    stream.send(expected.subarray(0, bulk));
    for (let i = 0; i < small; i++) stream.send(expected.subarray(bulk + i, bulk + i + 1));
    assert.ok(stream.writeBufferLength > small / 2, `queued behind the shut window: ${stream.writeBufferLength} bytes`);
    const t0 = performance.now();
    peer.resume();
    await received;
    const ms = performance.now() - t0;
    assert.ok(Buffer.concat(got).equals(expected), 'every byte arrives, in order');
    return ms;
  } finally {
    // Open muxers keep their timers, and with them the test file's process, alive after a failure.
    await Promise.all([local.close(), remote.close()]);
  }
}

test('many small writes queued behind a shut window go out in linear time once it opens', { timeout: 300_000 }, async () => {
  // A ratio, not a bound in seconds: the suite's other files load the machine (one run took
  // 37 s for what took 5 s alone). Ten times the writes: ~10x the time if linear, ~100x if
  // quadratic (plain js-yamux here: 48 ms for 25,000, 6.3 s for 250,000).
  const few = await drainQueued(cappedYamux(), 25_000);
  const many = await drainQueued(cappedYamux(), 250_000);
  assert.ok(many < 40 * few + 500, `25,000 one-byte writes went out in ${Math.round(few)} ms, 250,000 in ${Math.round(many)} ms`);
});
