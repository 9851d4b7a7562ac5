// The baseline of every shipping figure: bytes through a messages.ts channel on a libp2p
// stream (Noise, yamux, and the group network when asked), with nothing stored at either end.
// Beside it, a plain store at both ends of the same channel, the work any shipment has to do
// and nothing else (no protocol, no index): the sender reads its messages from a file, and the
// receiver checks each box-sized piece with SHA-256 (as a buddy checks a box against its id)
// and appends it to packs through the chunkstore's own writer, synced a message at a time (a
// buddy makes a message's boxes durable before it names them).
// The receiver runs in a child process (this file, run with `receiver`), so sender and
// receiver each have a core, like two hosts.
import '../src/peers/net/polyfill.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PackWriter } from '../src/chunkstore/packs.js';
import { boxId } from '../src/chunkstore/sealer.js';
import { createPeerNode } from '../src/peers/net/node.js';
import { defineMessages, openChannel, t } from '../src/peers/wire/messages.js';

const ToReceiver = defineMessages({ chunk: { data: t.bytes({ max: 8 << 20 }) }, done: {} });
const ToSender = defineMessages({ got: { bytes: t.uint() } });
const PROTOCOL = '/safe-bench/ship/1.0.0';
const STORE_PROTOCOL = '/safe-bench/ship-store/1.0.0';
/** The piece the plain store hashes and stores as a box: the chunker's average chunk. */
const BOX = 16 << 10;
const KEY = new Uint8Array(32).fill(0x42);
const frameFor = (window: number): number => Math.min(window / 2 - 4, 8 << 20);

export interface ChannelReceiver {
  /** The receiving process. */
  pid: number;
  /** Raw TCP port: the first 8 bytes say how many follow, one byte answers once all came. */
  port: number;
  /**
   * Sends `bytes` in `payload`-byte messages; milliseconds until the receiver confirmed them all.
   * With `source` (a file of at least `bytes`), each message is read from it and the receiver
   * hashes and stores what comes (the plain store above).
   */
  channel(bytes: number, payload: number, pnet: boolean, source?: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts the receiving process; its window is what the sender may have in flight, and the
 * plain store writes into `storeDir`.
 */
export async function channelReceiver(windowBytes: number, storeDir = tmpdir()): Promise<ChannelReceiver> {
  const child: ChildProcess = spawn(process.execPath, [new URL(import.meta.url).pathname, 'receiver', String(windowBytes), storeDir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const addrs = JSON.parse(await new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r))) as { pnet: string; plain: string; port: number };
  return {
    pid: child.pid!,
    port: addrs.port,
    async channel(bytes, payloadBytes, pnet, source) {
      const payload = new Uint8Array(payloadBytes).map((_, i) => i);
      const count = Math.ceil(bytes / payload.length);
      const node = await createPeerNode({ identitySeed: new Uint8Array(32).fill(pnet ? 20 : 21), pnetKey: pnet ? KEY : null, listen: [], bootstrap: [] });
      const { stream } = await node.dial(pnet ? addrs.pnet : addrs.plain, source ? STORE_PROTOCOL : PROTOCOL);
      const ch = openChannel(stream, { receive: ToSender, send: ToReceiver }, { window: windowBytes, maxFrame: frameFor(windowBytes) });
      const fd = source ? openSync(source, 'r') : -1;
      // Buffers used again, as the shipper's are: more than the window holds, so none is read
      // into while a message in it may still be on its way.
      const ring = source ? Array.from({ length: Math.ceil(windowBytes / payloadBytes) + 2 }, () => Buffer.allocUnsafe(payloadBytes)) : [];
      const t0 = performance.now();
      const read = (i: number): Uint8Array => {
        const data = ring[i % ring.length]!;
        if (readSync(fd, data, 0, payloadBytes, i * payloadBytes) !== payloadBytes) throw new Error(`${source} is shorter than ${bytes} bytes`);
        return data;
      };
      try {
        for (let i = 0; i < count; i++) await ch.send({ type: 'chunk', data: fd < 0 ? payload : read(i) });
      } finally {
        if (fd >= 0) closeSync(fd);
      }
      const got = await ch.request({ type: 'done' });
      const ms = performance.now() - t0;
      if (got.type !== 'got' || got.bytes !== count * payload.length) throw new Error(`receiver got ${JSON.stringify(got)}`);
      await ch.end();
      await node.stop();
      return ms;
    },
    async stop() {
      child.stdin!.end();
      await new Promise((r) => child.on('exit', r));
    },
  };
}

async function receiver(window: number, storeDir: string): Promise<void> {
  const nodes = await Promise.all(
    [KEY, null].map((pnetKey, i) => createPeerNode({ identitySeed: new Uint8Array(32).fill(10 + i), pnetKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [] })),
  );
  for (const node of nodes) {
    await node.handle(STORE_PROTOCOL, async ({ stream }) => {
      const ch = openChannel(stream, { receive: ToReceiver, send: ToSender }, { window, maxFrame: frameFor(window) });
      const dir = mkdtempSync(join(storeDir, 'plain-store-'));
      let packs = 0;
      const writer = new PackWriter(dir, () => packs++, () => {});
      let bytes = 0;
      try {
        for await (const m of ch) {
          if (m.type === 'chunk') {
            for (let off = 0; off < m.data.length; off += BOX) {
              const box = m.data.subarray(off, off + BOX);
              writer.append(boxId(box), box);
            }
            writer.sync();
            bytes += m.data.length;
          } else {
            await ch.send({ type: 'got', bytes });
            bytes = 0;
          }
        }
        await ch.end();
      } finally {
        writer.discard();
        rmSync(dir, { recursive: true, force: true });
      }
    });
    await node.handle(PROTOCOL, async ({ stream }) => {
      const ch = openChannel(stream, { receive: ToReceiver, send: ToSender }, { window, maxFrame: frameFor(window) });
      let bytes = 0;
      for await (const m of ch) {
        if (m.type === 'chunk') bytes += m.data.length;
        else {
          await ch.send({ type: 'got', bytes });
          bytes = 0;
        }
      }
      await ch.end();
    });
  }
  const tcp = createServer((sock) => {
    let bytes = 0;
    let want = -1;
    sock.on('data', (b) => {
      if (want < 0) {
        want = Number(b.readBigUInt64BE(0));
        b = b.subarray(8);
      }
      bytes += b.length;
      if (bytes >= want) sock.end(Buffer.from([1]));
    });
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const port = (tcp.address() as { port: number }).port;
  process.stdout.write(JSON.stringify({ pnet: nodes[0]!.multiaddrs()[0], plain: nodes[1]!.multiaddrs()[0], port }) + '\n');
  process.stdin.resume();
  await new Promise((r) => process.stdin.on('end', r));
  tcp.close();
  await Promise.all(nodes.map((n) => n.stop()));
  process.exit(0);
}

if (process.argv[2] === 'receiver' && process.argv[1] === new URL(import.meta.url).pathname) await receiver(Number(process.argv[3]), process.argv[4]!);
