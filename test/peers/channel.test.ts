// The message channel over real libp2p stream machinery (its in-memory connection pair): how
// a channel fails when the connection under it goes away.
import '../../src/peers/polyfill.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mockMuxer, multiaddrConnectionPair } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { ChannelClosedError, defineMessages, openChannel, t } from '../../src/peers/messages.js';

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
