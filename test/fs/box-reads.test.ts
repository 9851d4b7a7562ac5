// Reads of chunked content, answered by native/fuse's reader threads from the boxes in the
// packs. O_DIRECT sends every read to the daemon at the caller's offset and size, so none is
// answered from the kernel's page cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants, openSync, readdirSync, readSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { makeHost, type Host } from './mounted.js';
import { seededBytes } from '../helpers.js';

/** Text that zstd shrinks (its chunks are stored compressed), different in every line. */
function compressible(bytes: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line = `line ${i}: the quick brown fox ${(i * 7919) % 1000} jumps over ${i % 13} lazy dogs\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

function sparse(): Buffer {
  const b = Buffer.alloc(5_000_000);
  seededBytes(300_000, 9).copy(b, 0);
  seededBytes(300_000, 10).copy(b, 4_700_000);
  return b;
}

/** A small pseudo-random sequence, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed;
  return () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

function preadDirect(path: string, len: number, pos: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  try {
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, b, got, len - got, pos + got);
      if (n === 0) break;
      got += n;
    }
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

const FILES: Record<string, Buffer> = {
  'raw.bin': seededBytes(6_000_000, 3),
  'text.txt': compressible(3_000_000),
  'sparse.bin': sparse(),
  'small.txt': Buffer.from('a file of one small chunk\n'),
};

async function chunkedHost(): Promise<Host> {
  const h = makeHost();
  h.mount();
  for (const [name, data] of Object.entries(FILES)) writeFileSync(join(h.mnt, name), data);
  await h.settle();
  // A new mount: nothing of these files is in the kernel's cache.
  h.unmount();
  h.mount();
  return h;
}

test('chunked files read back at any offset and size: raw and compressed chunks, holes, chunk and pack boundaries, the end of the file', { timeout: 120_000 }, async () => {
  const h = await chunkedHost();
  const next = rng(42);
  const sizes = [1, 100, 4096, 16_385, 65_536, 131_072, 1 << 20];
  for (const [name, data] of Object.entries(FILES)) {
    const path = join(h.mnt, name);
    for (let i = 0; i < 120; i++) {
      const len = sizes[Math.floor(next() * sizes.length)]!;
      const pos = Math.floor(next() * (data.length + 1000));
      const want = data.subarray(Math.min(pos, data.length), Math.min(pos + len, data.length));
      const got = preadDirect(path, len, pos);
      assert.ok(got.equals(want), `${name}: ${len} bytes at ${pos} differ (got ${got.length}, want ${want.length})`);
    }
    // Whole, in the kernel's own read sizes.
    const fd = openSync(path, 'r');
    const whole = Buffer.alloc(data.length);
    let at = 0;
    for (let n; (n = readSync(fd, whole, at, Math.min(131_072, data.length - at), at)) > 0; ) at += n;
    closeSync(fd);
    assert.equal(at, data.length, name);
    assert.ok(whole.equals(data), `${name} read whole`);
  }
});

test('a damaged box is never served: reads over it fail with EIO, every other read gets its bytes', { timeout: 120_000 }, async () => {
  const h = await chunkedHost();
  h.unmount();
  // One byte flipped in the middle of the biggest pack.
  const packs = join(h.home, 'store', 'packs');
  const files = readdirSync(packs, { recursive: true, encoding: 'utf8' }).map((f) => join(packs, f)).filter((f) => statSync(f).isFile());
  const biggest = files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const at = Math.floor(statSync(biggest).size / 2);
  const fd = openSync(biggest, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, at);
  byte[0] ^= 0xff;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
  h.mount();

  let failed = 0;
  let served = 0;
  for (const [name, data] of Object.entries(FILES)) {
    for (let pos = 0; pos < data.length; pos += 131_072) {
      let got: Buffer;
      try {
        got = preadDirect(join(h.mnt, name), 131_072, pos);
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'EIO', `${name} at ${pos}`);
        failed++;
        continue;
      }
      assert.ok(got.equals(data.subarray(pos, pos + 131_072)), `${name} at ${pos}: wrong bytes served`);
      served++;
    }
  }
  assert.ok(failed >= 1, 'the damaged chunk was read');
  assert.ok(served > failed * 10, `the other reads were answered (${served} served, ${failed} failed)`);
});

test('reads through one handle, answered from the window of chunks ahead of it, see every change made through another', { timeout: 120_000 }, async () => {
  const h = await chunkedHost();
  const path = join(h.mnt, 'raw.bin');
  const data = Buffer.from(FILES['raw.bin']!);
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
  const read = (len: number, pos: number): Buffer => {
    const b = Buffer.alloc(len);
    let got = 0;
    for (let n; got < len && (n = readSync(fd, b, got, len - got, pos + got)) > 0; ) got += n;
    return b.subarray(0, got);
  };
  const same = (len: number, pos: number, what: string): void =>
    assert.ok(read(len, pos).equals(data.subarray(pos, pos + len)), `${what}: ${len} bytes at ${pos} differ`);
  try {
    // In order: the first read hands the addon a window of more than a MiB ahead, which
    // answers the reads after it; then back and forth inside and beyond it.
    for (let pos = 0; pos < 1 << 20; pos += 131_072) same(131_072, pos, 'in order');
    const next = rng(7);
    for (let i = 0; i < 200; i++) same(1 + Math.floor(next() * 200_000), Math.floor(next() * data.length), 'at random');

    // Rewind and read into the window again, then change bytes inside it through another
    // handle: the next read through this one sees them, before and after they are chunked.
    for (let pos = 0; pos < 1 << 20; pos += 131_072) same(131_072, pos, 'in order again');
    const patch = seededBytes(5_000, 11);
    const w = openSync(path, 'r+');
    writeSync(w, patch, 0, patch.length, 1_100_000);
    closeSync(w);
    patch.copy(data, 1_100_000);
    same(131_072, 1_048_576, 'after a write through another handle');
    await h.settle();
    for (let pos = 0; pos < 2 << 20; pos += 131_072) same(131_072, pos, 'once the write is chunked');

    // Shortened through another name for it: the read ends at the new end.
    truncateSync(path, 1_200_000);
    assert.equal(read(131_072, 1_179_648).length, 1_200_000 - 1_179_648, 'after a truncation');
    assert.ok(read(131_072, 1_179_648).equals(data.subarray(1_179_648, 1_200_000)));
  } finally {
    closeSync(fd);
  }
});

/** A child process that runs `script` with `path` as argv[1] and answers each line sent to it with one line. */
function helper(script: string, path: string): { child: ChildProcess; ask(line: string): Promise<string>; next(): Promise<string> } {
  const child = spawn(process.execPath, ['-e', script, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => (waiting.length > 0 ? waiting.shift()!(l) : lines.push(l)));
  const next = (): Promise<string> => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise((r) => waiting.push(r)));
  return { child, next, ask: (line) => (child.stdin!.write(`${line}\n`), next()) };
}

// Reads through one O_DIRECT handle, on command: "read <pos>" answers with 131,072 bytes at pos, base64.
const READER = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], fs.constants.O_RDONLY | fs.constants.O_DIRECT);
console.log('open');
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const pos = Number(l.split(' ')[1]);
  const b = Buffer.alloc(131072);
  let got = 0;
  for (let n; got < b.length && (n = fs.readSync(fd, b, got, b.length - got, pos + got)) > 0; ) got += n;
  console.log(b.subarray(0, got).toString('base64'));
});`;

test('a window the daemon makes for a read is refused when the file was truncated by an open decoded in the same batch', { timeout: 120_000 }, async (t) => {
  const h = await chunkedHost();
  const path = join(h.mnt, 'raw.bin');
  const data = FILES['raw.bin']!;
  const pid = (h.status() as { daemon: { pid: number } }).daemon.pid;
  const reader = helper(READER, path);
  t.after(() => reader.child.kill('SIGKILL'));
  assert.equal(await reader.next(), 'open');
  // With the daemon stopped, the kernel queues the reader's first read and then a truncating
  // open for writing: the daemon reads both at once when it goes on, and answers the read
  // (with a window of the old content) before it has run the open.
  process.kill(pid, 'SIGSTOP');
  let first: Promise<string>;
  let writer: ReturnType<typeof helper>;
  try {
    first = reader.ask('read 0');
    await new Promise((r) => setTimeout(r, 300));
    // Writes one byte 2 MiB in and keeps the file open: the byte stays in the kernel's cache.
    writer = helper(`const fs = require('node:fs'); const fd = fs.openSync(process.argv[1], 'w'); fs.writeSync(fd, 'x', 2097152); console.log('written'); process.stdin.resume();`, path);
    t.after(() => writer.child.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.ok(Buffer.from(await first, 'base64').equals(data.subarray(0, 131_072)), 'the first read, before the open, got the old content');
  assert.equal(await writer.next(), 'written');
  // The file is now a hole up to 2 MiB: the next read must not come from the old content.
  const second = Buffer.from(await reader.ask('read 131072'), 'base64');
  assert.ok(!second.equals(data.subarray(131_072, 262_144)), 'the read after the truncating open was answered from the old content');
  assert.ok(second.every((b) => b === 0), `the read after the truncating open got ${second.length} bytes, not all zeros`);
});
