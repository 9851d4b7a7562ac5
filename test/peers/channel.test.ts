// The message channel over real libp2p stream machinery (its in-memory connection pair): how
// a channel fails when the connection under it goes away, and how caps on bandwidth pace it.
import '../../src/peers/net/polyfill.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mockMuxer, multiaddrConnectionPair } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { ChannelClosedError, defineMessages, openChannel, t } from '../../src/peers/wire/messages.js';
import { RateLimit } from '../../src/peers/net/bandwidth.js';

const msgs = defineMessages({ blob: { data: t.bytes({ max: 1 << 20 }) } });

test('a send waiting for the connection to drain fails with a reason when the connection closes', async () => {
  const [outConn, inConn] = multiaddrConnectionPair({ delay: 50 });
  const local = mockMuxer().createStreamMuxer(outConn);
  const remote = mockMuxer().createStreamMuxer(inConn);
  const inbound = new Promise<Stream>((resolve) => remote.addEventListener('stream', (evt) => resolve(evt.detail), { once: true }));
  const [stream, peerStream] = await Promise.all([local.createStream(), inbound]);
  const ch = openChannel(stream, { receive: msgs, send: msgs });
  openChannel(peerStream, { receive: msgs, send: msgs }); // its hello grants the credit
  await new Promise((r) => setTimeout(r, 500));
  // The peer stops reading the connection: our sends soon wait for a drain that never comes.
  inConn.pause();
  const sent = (async () => {
    for (let i = 0; i < 64; i++) await ch.send({ type: 'blob', data: new Uint8Array(1024) });
  })();
  const settled = sent.then(() => null, (err: unknown) => err);
  await new Promise((r) => setTimeout(r, 500));
  await inConn.close();
  const err = await settled;
  assert.ok(err instanceof ChannelClosedError, `a ChannelClosedError, not ${String(err)}`);
  assert.match(err.message, /\w/, 'the error says something');
});

async function pair(): Promise<[Stream, Stream]> {
  const [outConn, inConn] = multiaddrConnectionPair();
  const local = mockMuxer().createStreamMuxer(outConn);
  const remote = mockMuxer().createStreamMuxer(inConn);
  const inbound = new Promise<Stream>((resolve) => remote.addEventListener('stream', (evt) => resolve(evt.detail), { once: true }));
  return Promise.all([local.createStream(), inbound]);
}

/** Milliseconds to move `total` bytes in 64 KiB messages from `up`'s side to `down`'s, read as they come. */
async function timed(total: number, caps: { up?: RateLimit; down?: RateLimit }): Promise<number> {
  const [a, b] = await pair();
  const sender = openChannel(a, { receive: msgs, send: msgs }, { bandwidth: { up: caps.up ?? null, down: null } });
  const receiver = openChannel(b, { receive: msgs, send: msgs }, { bandwidth: { up: null, down: caps.down ?? null } });
  const t0 = performance.now();
  const got = (async () => {
    let n = 0;
    for await (const m of receiver) if ((n += m.data.length) >= total) return;
  })();
  for (let sent = 0; sent < total; sent += 64 << 10) await sender.send({ type: 'blob', data: new Uint8Array(64 << 10) });
  await got;
  return performance.now() - t0;
}

test('an upload cap holds from the first byte; a download cap holds past the first window', { timeout: 60_000 }, async () => {
  // A fresh bucket has saved nothing up: every byte pays.
  const up = await timed(4 << 20, { up: new RateLimit(1e6) });
  const due = ((4 << 20) / 1e6) * 1000;
  assert.ok(Math.abs(up - due) / due < 0.05, `4 MiB at 1 MB/s up took ${up.toFixed(0)} ms, expected ~${due.toFixed(0)}`);
  // The window (4 MiB by default) arrives at once: the cap paces the credit for the rest.
  const down = await timed(8 << 20, { down: new RateLimit(2e6) });
  const paced = (((8 << 20) - (4 << 20)) / 2e6) * 1000;
  assert.ok(down >= paced * 0.95 && down <= paced * 1.3, `8 MiB at 2 MB/s down took ${down.toFixed(0)} ms, expected ~${paced.toFixed(0)}`);
  const free = await timed(8 << 20, {});
  assert.ok(free < paced / 4, `uncapped: ${free.toFixed(0)} ms`);
});
