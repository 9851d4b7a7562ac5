// Shipping throughput on loopback: N MiB of 64 KiB payloads through a messages.ts channel on a
// libp2p stream (with and without the group network, AES-CTR under the group key), beside raw TCP moving the same
// bytes in the same run. Sender here, receiver in a child process (two cores, like two hosts).
//   node dist/scripts/bench-p2p.js [MiB=256] [payloadKiB=64] [windowMiB=4]
import { connect, type Socket } from 'node:net';
import { channelReceiver } from './channel-baseline.js';

const [totalMiB, payloadKiB, windowMiB] = [Number(process.argv[2] ?? 256), Number(process.argv[3] ?? 64), Number(process.argv[4] ?? 4)];
await sender(totalMiB, payloadKiB, windowMiB);

async function sender(totalMiB: number, payloadKiB: number, windowMiB: number): Promise<void> {
  const total = totalMiB << 20;
  const payload = new Uint8Array(payloadKiB << 10).map((_, i) => i);
  const count = Math.ceil(total / payload.length);
  const window = windowMiB << 20;
  const receiver = await channelReceiver(window);
  const mbps = (bytes: number, ms: number): string => `${((bytes / 1e6) / (ms / 1000)).toFixed(0)} MB/s`;
  const rows: string[] = [];

  const raw = async (): Promise<number> => {
    const sock: Socket = connect(receiver.port, '127.0.0.1');
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

  // Alternate the two kinds so neither always runs on a warmer machine.
  for (let round = 0; round < 2; round++) {
    const r = await raw();
    const p = await receiver.channel(total, payload.length, false);
    const q = await receiver.channel(total, payload.length, true);
    rows.push(`round ${round + 1}: raw TCP ${mbps(total, r)} | channel ${mbps(total, p)} | channel+group net ${mbps(total, q)}`);
  }
  console.log(`${totalMiB} MiB in ${payloadKiB} KiB payloads, window ${windowMiB} MiB, loopback, sender and receiver in two processes`);
  for (const row of rows) console.log(row);
  await receiver.stop();
}
