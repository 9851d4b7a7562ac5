// The WAL's gathered writes (native/wal-batch.c): a transaction's frames go down in one system
// call, and nothing SQLite promises changes: another thread's connection sees each commit at
// once, a transaction larger than the gathering buffer or rewriting its own frames reads back
// whole, and a process killed at any moment keeps every transaction it saw committed, including
// one whose commit ended by rewriting its frames' checksums.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loaded } from '../../src/chunkstore/native.js';
import { openDb } from '../../src/chunkstore/index-db.js';

const INDEX_DB = new URL('../../src/chunkstore/index-db.js', import.meta.url).href;
const KEY = new Uint8Array(32).fill(7);
const skip = loaded.addon ? false : `native addon absent (${loaded.error})`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'safe-walbatch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const writeCalls = (): number => Number(/syscw:\s+(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))![1]);

test('a transaction of several pages is written to the WAL in one system call', { skip }, (t) => {
  const db = openDb(join(tempDir(t), 'a.db'), { key: KEY });
  t.after(() => db.close());
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE a (k INTEGER PRIMARY KEY, v BLOB); CREATE TABLE b (k INTEGER PRIMARY KEY, v BLOB); CREATE TABLE c (k INTEGER PRIMARY KEY, v BLOB)');
  const ins = ['a', 'b', 'c'].map((n) => db.prepare(`INSERT INTO ${n} (v) VALUES (?)`));
  const once = db.transaction((i: number) => ins.forEach((s) => s.run(Buffer.alloc(100, i))));
  const before = writeCalls();
  for (let i = 0; i < 200; i++) once(i);
  const calls = writeCalls() - before;
  // Three tables' pages a commit: SQLite alone makes two calls a page (header, then page).
  assert.ok(calls <= 220, `${calls} write calls for 200 commits of 3 pages`);
});

test('a thread sees each commit of another at once; large and self-rewriting transactions read back whole', { skip }, async (t) => {
  const path = join(tempDir(t), 'b.db');
  const db = openDb(path, { key: KEY });
  t.after(() => db.close());
  // A small cache spills pages to the WAL mid-transaction, and SQLite rewrites a spilled page's
  // frame in place when the page changes again: writes out of order, before the commit frame.
  db.pragma('cache_size = 8');
  db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.indexDb).then(({ openDb }) => {
      const db = openDb(workerData.path, { key: workerData.key });
      const count = db.prepare('SELECT count(*) FROM t').pluck();
      const sum = db.prepare('SELECT coalesce(sum(length(v)), 0) FROM t').pluck();
      parentPort.on('message', () => parentPort.postMessage({ count: count.get(), bytes: sum.get() }));
      parentPort.postMessage('ready');
    });
  `, { eval: true, workerData: { indexDb: INDEX_DB, path, key: KEY } });
  t.after(() => worker.terminate());
  const replies: unknown[] = [];
  let wake: (() => void) | null = null;
  worker.on('message', (m) => { replies.push(m); wake?.(); });
  const next = async (): Promise<unknown> => {
    while (replies.length === 0) await new Promise<void>((r) => (wake = r));
    return replies.shift();
  };
  assert.equal(await next(), 'ready');
  const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
  const grow = db.prepare('UPDATE t SET v = CAST(v || ? AS BLOB) WHERE k % 7 = ?');
  let count = 0;
  let bytes = 0;
  for (let round = 0; round < 40; round++) {
    // Every fourth round a transaction of ~1 MiB, past the 120 KiB gathering buffer.
    const rows = round % 4 === 3 ? 400 : 3;
    db.transaction(() => {
      for (let i = 0; i < rows; i++) ins.run(Buffer.alloc(2500, round + 1));
      const r = grow.run(Buffer.alloc(10, 1), round % 7);
      bytes += 10 * r.changes;
    })();
    count += rows;
    bytes += rows * 2500;
    worker.postMessage('ask');
    assert.deepEqual(await next(), { count, bytes }, `round ${round}`);
  }
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});

// In a process of its own: commits rows n+1, n+2... after the last one there, one per
// transaction, printing each once committed, until killed.
const WRITER = `
import { openDb } from ${JSON.stringify(INDEX_DB)};
const db = openDb(process.argv[1], { key: new Uint8Array(32).fill(7) });
db.exec('CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)');
const ins = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
const pad = db.prepare('INSERT INTO t (k, v) VALUES (?, randomblob(3000))');
for (let i = db.prepare('SELECT coalesce(max(k), 0) + 1 FROM t').pluck().get(); ; i++) {
  db.transaction(() => { ins.run(i, Buffer.alloc(200, i)); if (i % 50 === 0) for (let j = 0; j < 100; j++) pad.run(-(i * 100 + j)); })();
  process.stdout.write(i + '\\n');
}
`;

test('a writer killed mid-commit keeps every transaction it saw committed, and no other', { skip }, async (t) => {
  const path = join(tempDir(t), 'c.db');
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    // Killed once it has committed a number of rows that differs by round (so the kill finds
    // it at different points of its loop), whatever the machine's load.
    const enough = 30 + round * 70;
    const exited = new Promise((r) => child.on('exit', r));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.split('\n').length > enough) child.kill('SIGKILL');
    });
    await exited;
    const done = out.split('\n').filter(Boolean).map(Number);
    assert.ok(done.length >= enough, `the writer stopped after ${done.length} commits: ${err}`);
    const seen = done.at(-1)!;
    const check = spawnSync(process.execPath, ['--input-type=module', '-e', `
      import { openDb } from ${JSON.stringify(INDEX_DB)};
      const db = openDb(process.argv[1], { key: new Uint8Array(32).fill(7) });
      const ks = db.prepare('SELECT k FROM t WHERE k > 0 ORDER BY k').pluck().all();
      const bad = db.prepare('SELECT count(*) FROM t WHERE k > 0 AND length(v) != 200').pluck().get();
      console.log(JSON.stringify({ ks: ks.length, last: ks.at(-1) ?? 0, contiguous: ks.every((k, i) => k === i + 1), bad, integrity: db.pragma('integrity_check', { simple: true }) }));
    `, path], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    const r = JSON.parse(check.stdout) as { ks: number; last: number; contiguous: boolean; bad: number; integrity: string };
    assert.equal(r.integrity, 'ok');
    assert.equal(r.contiguous, true, 'rows 1..n without a gap');
    assert.equal(r.bad, 0);
    // The one transaction in flight when the kill came may have committed unseen.
    assert.ok(r.last === seen || r.last === seen + 1, `committed ${seen} seen, ${r.last} found after the kill`);
  }
});

// Pages spilled to the WAL by a small cache and changed again are rewritten in place, and the
// commit then rewrites the checksums of the transaction's frame headers, the commit frame's
// last. Killed right after, with nothing else written, a new process finds the transaction.
const REWRITER = `
import { openDb } from ${JSON.stringify(INDEX_DB)};
const db = openDb(process.argv[1], { key: new Uint8Array(32).fill(7) });
db.pragma('cache_size = 8');
db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)');
db.transaction(() => {
  const ins = db.prepare('INSERT INTO t (v) VALUES (randomblob(1000))');
  for (let i = 0; i < 300; i++) ins.run();
  db.prepare('UPDATE t SET v = randomblob(1000)').run();
})();
process.kill(process.pid, 'SIGKILL');
`;

test('a transaction that rewrote its own frames, killed right after its commit, is found whole', { skip }, (t) => {
  const path = join(tempDir(t), 'd.db');
  const w = spawnSync(process.execPath, ['--input-type=module', '-e', REWRITER, path], { encoding: 'utf8' });
  assert.equal(w.signal, 'SIGKILL', w.stderr);
  const db = openDb(path, { key: KEY });
  t.after(() => db.close());
  assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 300);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});
