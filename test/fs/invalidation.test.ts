// The kernel caches what the mount shows (entries, negative lookups, attributes, pages, directory
// listings) for as long as the binding lets it. Two things change behind its back: .snapshots
// (a snapshot taken, one forgotten: the daemon must invalidate) and nothing else may leak
// between a snapshot view and the live tree (the same tree inode seen at two epochs must be two
// kernel inodes). Every check here runs with the caches warm and without sleeping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost } from './mounted.js';
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { errorCode, seededBytes, tempDir, openIndex } from '../helpers.js';


/** The name `safe snapshot --label` gives at `ms` (see snapshotName): 2026-11-22T100000Z-label. */
function nameAt(ms: number, label: string): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z-${label}`;
}

function snapshot(h: ReturnType<typeof makeHost>, label: string): string {
  const r = JSON.parse(h.ok('snapshot', '--label', label, '--json')) as { name: string };
  assert.match(r.name, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d{6}Z-${label}$`));
  return r.name;
}

test('.snapshots: a new snapshot shows at once after negative lookups; a forgotten one is gone at once', { timeout: 60_000 }, () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  const S = join(m, '.snapshots');
  writeFileSync(join(m, 'f'), 'as of one');
  mkdirSync(join(m, 'dir'));
  writeFileSync(join(m, 'dir/g'), 'g as of one');

  // Warm: .snapshots listed empty, and every name the snapshot can get looked up and missing
  // (the kernel may keep those negative entries as long as the binding allows).
  assert.deepEqual(readdirSync(S), []);
  const t0 = Date.now();
  const candidates = Array.from({ length: 12 }, (_, i) => nameAt(t0 + (i - 1) * 1000, 'one'));
  for (const c of candidates) {
    assert.equal(errorCode(() => lstatSync(join(S, c))), 'ENOENT', `${c} before the snapshot`);
    assert.equal(errorCode(() => lstatSync(join(S, c, 'f'))), 'ENOENT');
  }
  const one = snapshot(h, 'one');
  assert.ok(candidates.includes(one), `the negative lookups covered the name the snapshot got (${one}); took too long?`);
  // No sleep: the daemon invalidated before it answered.
  assert.deepEqual(readdirSync(S), [one], 'readdir(.snapshots) lists the new snapshot');
  assert.ok(lstatSync(join(S, one)).isDirectory());
  assert.equal(lstatSync(join(S, one, 'f')).size, 'as of one'.length);
  assert.equal(readFileSync(join(S, one, 'f'), 'utf8'), 'as of one');
  assert.deepEqual(readdirSync(join(S, one)).sort(), ['dir', 'f']);
  assert.equal(readFileSync(join(S, one, 'dir/g'), 'utf8'), 'g as of one');

  // The live tree moves on; the view does not (both read just before and after).
  writeFileSync(join(m, 'f'), 'as of two, and longer');
  renameSync(join(m, 'dir/g'), join(m, 'dir/h'));
  assert.equal(readFileSync(join(S, one, 'f'), 'utf8'), 'as of one');
  assert.equal(lstatSync(join(S, one, 'f')).size, 'as of one'.length);
  assert.equal(readFileSync(join(S, one, 'dir/g'), 'utf8'), 'g as of one', 'the view keeps a name renamed live');
  assert.equal(errorCode(() => lstatSync(join(S, one, 'dir/h'))), 'ENOENT');
  assert.deepEqual(readdirSync(join(m, 'dir')), ['h']);

  // A second snapshot: listed at once next to the first; warm every cache of the first.
  assert.equal(errorCode(() => lstatSync(join(S, nameAt(Date.now(), 'two')))), 'ENOENT');
  const two = snapshot(h, 'two');
  assert.deepEqual(readdirSync(S), [one, two]);
  assert.equal(readFileSync(join(S, two, 'f'), 'utf8'), 'as of two, and longer');
  assert.deepEqual(readdirSync(join(S, one, 'dir')), ['g']);
  const fd = openSync(join(S, one, 'f'), 'r');
  closeSync(fd);
  statSync(join(S, one, 'dir/g'));

  // forget --keep-last 1: the first goes, at once, from the listing and from every lookup.
  const forgot = JSON.parse(h.ok('forget', '--keep-last', '1', '--json')) as { keep: string[]; forget: string[] };
  assert.deepEqual(forgot.forget, [one]);
  assert.deepEqual(readdirSync(S), [two], 'readdir(.snapshots) after forget');
  assert.equal(errorCode(() => lstatSync(join(S, one))), 'ENOENT', 'the forgotten snapshot');
  assert.equal(errorCode(() => lstatSync(join(S, one, 'f'))), 'ENOENT', 'a file in the forgotten snapshot');
  assert.equal(errorCode(() => readFileSync(join(S, one, 'dir/g'))), 'ENOENT', 'a deeper file in the forgotten snapshot');
  assert.equal(errorCode(() => readdirSync(join(S, one))), 'ENOENT');
  assert.equal(readFileSync(join(S, two, 'f'), 'utf8'), 'as of two, and longer', 'the kept one still reads');
});

test('snapshot view and live tree never share kernel caches: same size, new bytes in the middle', { timeout: 60_000 }, async () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  const S = join(m, '.snapshots');
  const old = seededBytes(300_000, 7);
  writeFileSync(join(m, 'big'), old);
  writeFileSync(join(m, 'small'), 'small v1');
  await h.settle(); // one case chunked, one case staged below
  writeFileSync(join(m, 'staged'), 'staged v1');
  const name = snapshot(h, 'x');
  const view = (p: string): string => join(S, name, p);

  // Warm both: pages and attributes of the live files and of their snapshot views.
  for (const p of ['big', 'small', 'staged']) {
    assert.deepEqual(readFileSync(join(m, p)), readFileSync(view(p)), `${p} equal before the change`);
    lstatSync(join(m, p));
    lstatSync(view(p));
  }
  const viewMtime = lstatSync(view('big')).mtimeMs;

  // Change the live files without changing their size: only a separate inode keeps the view right.
  const patch = Buffer.alloc(5000, 0xab);
  const fd = openSync(join(m, 'big'), 'r+');
  writeSync(fd, patch, 0, patch.length, 150_000);
  // While the writer is open, and after it closed.
  const seen = Buffer.alloc(old.length);
  const vfd = openSync(view('big'), 'r');
  readSync(vfd, seen, 0, seen.length, 0);
  assert.ok(seen.equals(old), 'the view reads the old bytes while the live file is open for writing');
  closeSync(fd);
  const now = Buffer.from(old);
  patch.copy(now, 150_000);
  assert.ok(readFileSync(join(m, 'big')).equals(now), 'live: the new bytes');
  readSync(vfd, seen, 0, seen.length, 0);
  closeSync(vfd);
  assert.ok(seen.equals(old), 'view: an fd opened before the change still reads the old bytes');
  assert.ok(readFileSync(view('big')).equals(old), 'view: the old bytes');
  assert.equal(lstatSync(view('big')).mtimeMs, viewMtime, 'view: the old mtime');

  writeFileSync(join(m, 'small'), 'small v2');
  writeFileSync(join(m, 'staged'), 'staged v2');
  assert.equal(readFileSync(join(m, 'small'), 'utf8'), 'small v2');
  assert.equal(readFileSync(view('small'), 'utf8'), 'small v1');
  assert.equal(readFileSync(join(m, 'staged'), 'utf8'), 'staged v2');
  assert.equal(readFileSync(view('staged'), 'utf8'), 'staged v1');

  // And once the new content is chunked (the live row changes again behind the kernel).
  await h.settle();
  assert.ok(readFileSync(join(m, 'big')).equals(now), 'live after chunking');
  assert.ok(readFileSync(view('big')).equals(old), 'view after chunking');
  assert.equal(readFileSync(view('staged'), 'utf8'), 'staged v1');
  unlinkSync(join(m, 'small'));
  assert.equal(readFileSync(view('small'), 'utf8'), 'small v1', 'view keeps a file unlinked live');

  // Tools that find hard links by st_ino (cp -a, tar, rsync -H, du) must not take a file and its
  // snapshot view for two names of one file: a copy of the whole mount keeps both contents.
  assert.notEqual(lstatSync(view('big')).ino, lstatSync(join(m, 'big')).ino, 'view and live file: distinct st_ino');
  assert.notEqual(lstatSync(view('staged')).ino, lstatSync(join(m, 'staged')).ino);
  const copy = join(tempDir(), 'copy');
  execFileSync('cp', ['-a', m, copy]);
  assert.ok(readFileSync(join(copy, 'big')).equals(now), 'cp -a of the mount: live content');
  assert.ok(readFileSync(join(copy, '.snapshots', name, 'big')).equals(old), 'cp -a of the mount: the snapshot\'s content');
  assert.equal(readFileSync(join(copy, '.snapshots', name, 'staged'), 'utf8'), 'staged v1');
  assert.equal(lstatSync(join(copy, '.snapshots', name, 'big')).nlink, 1, 'not made a hard link of the live file');

  // A file open for writing (in another process: a close of an inherited fd would flush it) is
  // in a snapshot as of its last close; the live name shows the writer's bytes at once.
  writeFileSync(join(m, 'w'), 'closed v1');
  const writer = spawn('python3', ['-c', "import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\nos.pwrite(fd, b'OPEN', 0)\nprint('ready', flush=True)\nsys.stdin.readline()\nos.close(fd)", join(m, 'w')], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      writer.stdout!.once('data', () => res());
      writer.once('exit', (c) => rej(new Error(`the writer exited (${c})`)));
    });
    const during = snapshot(h, 'during');
    assert.equal(readFileSync(join(S, during, 'w'), 'utf8'), 'closed v1', 'the snapshot has the content of the last close');
    assert.equal(readFileSync(join(m, 'w'), 'utf8'), 'OPENed v1', 'the live name shows the open writer\'s bytes');
    const exited = new Promise((res) => writer.once('exit', res));
    writer.stdin!.end('\n');
    await exited;
    assert.equal(readFileSync(join(m, 'w'), 'utf8'), 'OPENed v1');
    assert.equal(readFileSync(join(S, during, 'w'), 'utf8'), 'closed v1', 'and keeps it after the writer closed');
  } finally {
    writer.kill('SIGKILL');
  }
});

test('a child closing an inherited fd: a snapshot keeps what was written then, the parent writes on into the file', { timeout: 60_000 }, async () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  const S = join(m, '.snapshots');
  const f = join(m, 'log');
  // The parent writes, a child that inherited the fd exits (its close flushes the open file),
  // then the parent overwrites the start, appends, fsyncs (the kernel sends the writes), and
  // closes.
  const script = `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b'a' * 100000)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print('ready', flush=True)
sys.stdin.readline()
os.pwrite(fd, b'PARENT', 0)
os.write(fd, b'b' * 100000)
os.fsync(fd)
print('written', flush=True)
sys.stdin.readline()
os.close(fd)`;
  const first = Buffer.alloc(100000, 'a');
  const last = Buffer.concat([Buffer.from('PARENT'), Buffer.alloc(99994, 'a'), Buffer.alloc(100000, 'b')]);
  const parent = spawn('python3', ['-c', script, f], { stdio: ['pipe', 'pipe', 'inherit'] });
  // Lines, not 'data' events: a pipe may hand over a line in pieces.
  const lines = createInterface({ input: parent.stdout! })[Symbol.asyncIterator]();
  const said = async (word: string): Promise<void> => {
    const next = await lines.next();
    if (next.done) throw new Error(`the parent exited (${parent.exitCode})`);
    if (next.value.trim() !== word) throw new Error(`the parent said ${JSON.stringify(next.value)}`);
  };
  let name: string;
  try {
    await said('ready');
    name = snapshot(h, 'child-closed');
    assert.ok(readFileSync(join(S, name, 'log')).equals(first), 'the snapshot has what the child\'s close published');
    parent.stdin!.write('\n');
    await said('written');
    // The snapshot's content is chunked while the parent still holds the file: it can ship.
    await h.settle();
    const ino = statSync(f).ino;
    const db = openIndex(h);
    // The live row may name the parent's working copy: its fsync published it.
    const rows = db.prepare('SELECT staged, cl, died FROM inodes WHERE ino = ?').all(ino) as { staged: number | null; cl: number | null; died: number | null }[];
    db.close();
    const old = rows.filter((r) => r.died !== null);
    assert.ok(old.length > 0 && old.every((r) => r.staged === null && r.cl !== null), `the snapshot's row is chunked: ${JSON.stringify(rows)}`);
    const exited = new Promise((res) => parent.once('exit', res));
    parent.stdin!.end('\n');
    assert.equal(await exited, 0);
  } finally {
    parent.kill('SIGKILL');
  }
  assert.ok(readFileSync(f).equals(last), 'the parent\'s writes after the child\'s close are in the file');
  // What the daemon holds, chunked, not what the kernel cached.
  await h.settle();
  h.unmount();
  h.mount();
  assert.ok(readFileSync(f).equals(last), 'the file after a remount');
  const kept = readFileSync(join(S, name, 'log'));
  assert.ok(kept.equals(first), `the snapshot after a remount: ${kept.length} bytes starting ${JSON.stringify(kept.subarray(0, 8).toString())}`);
});

test('truncate(2) by path of a file another process holds open, after a snapshot, while that process closes it: both hold', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const f = join(h.mnt, 'held');
  const data = seededBytes(96 << 20, 21);
  // The holder writes, fsyncs (the content is published), then waits with the file open.
  const holder = spawn('python3', ['-c', `import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
data = sys.stdin.buffer.read(${data.length})
os.write(fd, data)
os.fsync(fd)
print('ready', flush=True)
sys.stdin.readline()
os.close(fd)
print('closed', flush=True)`, f], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: holder.stdout! })[Symbol.asyncIterator]();
  try {
    holder.stdin!.write(data);
    assert.equal((await lines.next()).value, 'ready');
    const name = snapshot(h, 'before-truncate');
    // The truncation copies the published (snapshot-shared) content out before it resizes;
    // the holder's last close arrives while that copy runs.
    const staging = join(h.home, 'staging');
    const before = new Set(readdirSync(staging));
    const truncating = new Promise<number | null>((res) => spawn('python3', ['-c', 'import os, sys\nos.truncate(sys.argv[1], 1000)', f], { stdio: 'inherit' }).once('exit', res));
    const copying = (): boolean => readdirSync(staging).some((n) => !before.has(n) && (statSync(join(staging, n), { throwIfNoEntry: false })?.size ?? 0) > 2 << 20);
    for (const t0 = Date.now(); !copying(); await new Promise((r) => setTimeout(r, 1))) assert.ok(Date.now() - t0 < 30_000, 'the copy never began');
    holder.stdin!.end('\n');
    assert.equal((await lines.next()).value, 'closed');
    assert.equal(await truncating, 0, 'the truncate succeeded');
    assert.ok(readFileSync(f).equals(data.subarray(0, 1000)), 'the file is the first 1000 bytes');
    assert.equal(statSync(join(h.mnt, '.snapshots', name, 'held')).size, data.length, 'the snapshot keeps the whole file');
    await h.settle();
    h.unmount();
    h.mount();
    assert.ok(readFileSync(f).equals(data.subarray(0, 1000)), 'after a remount');
    assert.ok(readFileSync(join(h.mnt, '.snapshots', name, 'held')).equals(data), 'the snapshot, after a remount');
    assert.match(h.ok('verify'), /no problems/);
  } finally {
    holder.kill('SIGKILL');
  }
});
