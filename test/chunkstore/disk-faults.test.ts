// Disk faults under the store, each met through the CLI and the mount: one clear line (no
// stack trace, non-zero exit) for the command that hits it, and nothing else lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, type Host } from '../fs/mounted.js';
import { mountedMember } from '../peers/group.js';
import { errorCode, secret32, seededBytes, smallDisk, tempDir } from '../helpers.js';
import { ChunkStore } from '../../src/chunkstore/store.js';
import { Ingester } from '../../src/chunkstore/ingest.js';
import { cdcParams } from '../../src/chunkstore/fastcdc.js';
import { HOST_SCHEMA } from '../../src/cli/host-schema.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The command failed with one line on stderr and no stack trace. */
function oneLine(r: SpawnSyncReturns<string>, what: string): string {
  assert.notEqual(r.status, 0, `${what}: non-zero exit`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^safe: /, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, `${what}: no stack trace`);
  return lines[0]!;
}

/** SHA-256 of every pack file. */
function packSums(h: Host): Map<string, string> {
  const dir = join(h.home, 'store', 'packs');
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.set(join(d, e.name), createHash('sha256').update(readFileSync(join(d, e.name))).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

/** A host with two closed, chunked files, unmounted. */
async function hostWithFiles(): Promise<{ h: Host; files: Map<string, Buffer> }> {
  const h = makeHost({ delayMs: 20 });
  h.mount();
  const files = new Map([
    ['a.bin', seededBytes(3 << 20, 61)],
    ['b.txt', Buffer.from('a small file\n'.repeat(100))],
  ]);
  for (const [name, data] of files) writeFileSync(join(h.mnt, name), data);
  await h.settle();
  h.unmount();
  return { h, files };
}

test('a damaged database page: verify and mount say so in one line; the packs are untouched', { timeout: 120_000 }, async () => {
  const { h } = await hostWithFiles();
  const packs = packSums(h);
  const db = join(h.home, 'store', 'index.db');
  const size = statSync(db).size;
  assert.ok(size >= 8192, `index.db has pages to damage (${size} bytes)`);
  const fd = openSync(db, 'r+');
  writeSync(fd, seededBytes(4096, 5), 0, 4096, Math.floor(size / 2 / 4096) * 4096);
  closeSync(fd);
  for (const cmd of [['verify'], ['verify', '--json'], ['mount']]) assert.match(oneLine(h.safe(...cmd), cmd.join(' ')), /index database .* is damaged/);
  assert.deepEqual(packSums(h), packs, 'every pack as it was');
});

test('a truncated pack: verify names the chunks lost, the other files read back whole', { timeout: 120_000 }, async () => {
  const { h, files } = await hostWithFiles();
  const [pack] = [...packSums(h).keys()];
  // The small file went in last: its chunk is at the end of the pack.
  truncateSync(pack!, statSync(pack!).size - 40);
  const v = h.safe('verify', '--json');
  assert.equal(v.status, 1);
  const report = JSON.parse(v.stdout) as { ok: boolean; problems: { kind: string; detail: string }[] };
  assert.ok(!report.ok && report.problems.length > 0, v.stdout);
  h.mount();
  let lost = 0;
  for (const [name, data] of files) {
    try {
      assert.deepEqual(readFileSync(join(h.mnt, name)), data, name);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'EIO', `${name}: a lost chunk reads as EIO`);
      lost++;
    }
  }
  assert.ok(lost <= 1, 'only the file whose chunk was cut off');
  assert.ok(h.status().mounted, 'the daemon is still up');
  h.unmount();
});

test('a read-only SAFE_HOME: mount, verify and status each say why in one line; all is there once writable', { timeout: 120_000 }, async (t) => {
  const disk = smallDisk(t, '64m');
  if (!disk) return;
  const h = makeHost({ delayMs: 20, dir: disk });
  h.mount();
  const data = seededBytes(1 << 20, 71);
  writeFileSync(join(h.mnt, 'kept'), data);
  await h.settle();
  h.unmount();
  // Busy until the stopping daemon has closed its files.
  for (const t0 = Date.now(); errorCode(() => execFileSync('mount', ['-o', 'remount,ro', disk], { stdio: 'ignore' })); await sleep(100)) {
    assert.ok(Date.now() - t0 < 30_000, 'the small disk went read-only');
  }
  try {
    assert.match(oneLine(h.safe('mount'), 'mount'), /read-only file system at .*make it writable/);
    for (const cmd of [['verify'], ['status']]) assert.match(oneLine(h.safe(...cmd), cmd.join(' ')), /cannot open the index database .* writable/);
  } finally {
    execFileSync('mount', ['-o', 'remount,rw', disk]);
  }
  h.mount();
  assert.deepEqual(readFileSync(join(h.mnt, 'kept')), data);
  h.unmount();
  assert.match(h.ok('verify'), /no problems/);
});

test("ENOSPC on the buddy's disk mid-shipment: the shipment fails in one line, the buddy keeps running and loses nothing", { timeout: 240_000 }, async (t) => {
  const disk = smallDisk(t, '40m');
  if (!disk) return;
  const c = await mountedMember('small-c', { offer: '1G', dir: disk });
  try {
    const own = seededBytes(2 << 20, 81);
    writeFileSync(join(c.mnt, 'own.bin'), own);
    await c.settle();
    const a = await mountedMember('host-a', { offer: '500M', buddies: 1, peers: [c.addr] });
    writeFileSync(join(a.mnt, 'big.bin'), seededBytes(48 << 20, 82));
    await a.settle();
    a.ok('snapshot');
    const r = a.safe('sync', '--wait', '--json');
    assert.notEqual(r.status, 0, `the shipment did not complete: ${r.stdout}`);
    const out = JSON.parse(r.stdout) as { buddies: { ok: boolean; error?: string }[] };
    const err = out.buddies.find((b) => !b.ok)?.error ?? '';
    assert.match(err, /full|space/, `the error says the buddy's disk is full: ${r.stdout}`);
    assert.doesNotMatch(err, /\n/, 'one line');
    assert.ok(c.status().mounted, 'the buddy is still up');
    assert.deepEqual(readFileSync(join(c.mnt, 'own.bin')), own, "the buddy's own file");
    assert.match(c.ok('verify'), /no problems/);
    assert.match(a.ok('verify'), /no problems/);
  } finally {
    c.safe('unmount');
  }
});

test('a file whose read fails part-way through its ingest leaves no reference behind; the rest of the batch commits', { timeout: 120_000 }, async () => {
  // The source: a file in a mount whose pack has a damaged box half-way, so reading it
  // returns its first MiBs and then EIO, as a failing disk under the staging area would.
  const { h, files } = await hostWithFiles();
  const packs = join(h.home, 'store', 'packs');
  const biggest = readdirSync(packs, { recursive: true, encoding: 'utf8' }).map((f) => join(packs, f)).filter((f) => statSync(f).isFile())
    .sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const fd = openSync(biggest, 'r+');
  writeSync(fd, Buffer.from([0x55]), 0, 1, Math.floor(statSync(biggest).size / 2));
  closeSync(fd);
  h.mount();
  const store = ChunkStore.open(tempDir(), secret32(), { create: true, recover: true, schema: HOST_SCHEMA, key: secret32() });
  try {
    const ing = new Ingester(store, cdcParams(16384, secret32()));
    assert.throws(() => ing.ingestFile(join(h.mnt, 'a.bin')), (err: NodeJS.ErrnoException) => err.code === 'EIO', 'the damaged read fails');
    const good = ing.ingestBuffer(files.get('b.txt')!);
    ing.commit();
    const refs = store.db.prepare<[], number>('SELECT coalesce(sum(refs), 0) FROM chunks').pluck().get();
    assert.equal(refs, good.chunks.length, 'only the file that was read whole holds references');
    assert.deepEqual(Buffer.concat(good.chunks.map((c) => store.read(c))), files.get('b.txt'));
  } finally {
    store.close();
    h.unmount();
  }
});
