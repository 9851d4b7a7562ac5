// Shipping throughput on loopback: N MiB of 64 KiB payloads through a messages.ts channel on a
// libp2p stream (with and without the group network, AES-CTR under the group key), beside raw TCP moving the same
// bytes in the same run. Sender here, receiver in a child process (two cores, like two hosts).
//   node dist/scripts/bench-p2p.js [MiB=256] [payloadKiB=64] [windowMiB=4]
import '../src/peers/polyfill.js';
import { spawn } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { createPeerNode } from '../src/peers/node.js';
import { defineMessages, openChannel, t } from '../src/peers/messages.js';

const ToReceiver = defineMessages({ chunk: { data: t.bytes({ max: 4 << 20 }) }, done: {} });
const ToSender = defineMessages({ got: { bytes: t.uint() } });
const PROTOCOL = '/safe-bench/ship/1.0.0';
const KEY = new Uint8Array(32).fill(0x42);

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'receiver') await receiver(Number(rest[0]));
else await sender(Number(mode ?? 256), Number(rest[0] ?? 64), Number(rest[1] ?? 4));

async function receiver(windowMiB: number): Promise<void> {
  const window = windowMiB << 20;
  const nodes = await Promise.all(
    [KEY, null].map((pnetKey, i) =>
      createPeerNode({ identitySeed: new Uint8Array(32).fill(10 + i), pnetKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [] }),
    ),
  );
  for (const node of nodes) {
    await node.handle(PROTOCOL, async ({ stream }) => {
      const ch = openChannel(stream, { receive: ToReceiver, send: ToSender }, { window, maxFrame: Math.min(window / 2 - 4, 4 << 20) });
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
      // The first 8 bytes say how many follow; the reply is one byte once all have come.
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

async function sender(totalMiB: number, payloadKiB: number, windowMiB: number): Promise<void> {
  const total = totalMiB << 20;
  const payload = new Uint8Array(payloadKiB << 10).map((_, i) => i);
  const count = Math.ceil(total / payload.length);
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, 'receiver', String(windowMiB)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const addrs = JSON.parse(await new Promise<string>((r) => createInterface({ input: child.stdout! }).once('line', r))) as {
    pnet: string;
    plain: string;
    port: number;
  };
  const mbps = (bytes: number, ms: number): string => `${((bytes / 1e6) / (ms / 1000)).toFixed(0)} MB/s`;
  const window = windowMiB << 20;
  const rows: string[] = [];

  const raw = async (): Promise<number> => {
    const sock: Socket = connect(addrs.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.setNoDelay(true);
    const t0 = performance.now();
    const head = Buffer.alloc(8);
    head.writeBigUInt64BE(BigInt(count * payload.length));
    sock.write(head);
    for (let i = 0; i < count; i++) {
      if (!sock.write(payload)) await new Promise((r) => sock.once('drain', r));
    }
    await new Promise((r) => sock.once('data', r));
    const ms = performance.now() - t0;
    sock.destroy();
    return ms;
  };

  const ship = async (pnet: boolean): Promise<number> => {
    const node = await createPeerNode({ identitySeed: new Uint8Array(32).fill(pnet ? 20 : 21), pnetKey: pnet ? KEY : null, listen: [], bootstrap: [] });
    const { stream } = await node.dial(pnet ? addrs.pnet : addrs.plain, PROTOCOL);
    const ch = openChannel(stream, { receive: ToSender, send: ToReceiver }, { window, maxFrame: Math.min(window / 2 - 4, 4 << 20) });
    const t0 = performance.now();
    for (let i = 0; i < count; i++) await ch.send({ type: 'chunk', data: payload });
    const got = await ch.request({ type: 'done' });
    const ms = performance.now() - t0;
    if (got.type !== 'got' || got.bytes !== count * payload.length) throw new Error(`receiver got ${JSON.stringify(got)}`);
    await ch.end();
    await node.stop();
    return ms;
  };

  // Alternate the two kinds so neither always runs on a warmer machine.
  for (let round = 0; round < 2; round++) {
    const r = await raw();
    const p = await ship(false);
    const q = await ship(true);
    rows.push(`round ${round + 1}: raw TCP ${mbps(total, r)} | channel ${mbps(total, p)} | channel+group net ${mbps(total, q)}`);
  }
  console.log(`${totalMiB} MiB in ${payloadKiB} KiB payloads, window ${windowMiB} MiB, loopback, sender and receiver in two processes`);
  for (const row of rows) console.log(row);
  child.stdin!.end();
  await new Promise((r) => child.on('exit', r));
}
