// POSIX behaviours through the real mount that a path-based binding got wrong or never
// offered: hard links as one inode, the times link/unlink/rename/chmod/create must touch, open
// files that lost their last name, special files (fifo, unix socket, device nodes), renameat2
// flags, copies that keep every attribute (cp -a, cp -p, rsync -a, tar -p), setgid directories,
// POSIX ACL xattrs and fallocate. Each check is
// made with the kernel's caches warm (the other name stat'ed and read first), so a binding
// that hands the kernel two inodes for one file, or forgets to invalidate, is caught.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, chownSync, closeSync, fstatSync, linkSync, lchownSync, lstatSync, mkdirSync, openSync,
  readdirSync, readFileSync, readlinkSync, readSync, renameSync, symlinkSync, unlinkSync, utimesSync, writeFileSync,
  writeSync, type BigIntStats,
} from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { makeHost, SAFE_BIN, type Host } from './mounted.js';
import { errorCode, tempDir } from '../helpers.js';

// ---- helpers ----

const lst = (p: string): BigIntStats => lstatSync(p, { bigint: true });


/** Sleep without yielding: the filesystem keeps times in milliseconds, so 20 ms moves any clock. */
function tick(ms = 20): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** a > b for the mtime and ctime of `now` vs `before`, with a message naming the operation. */
function touched(before: BigIntStats, now: BigIntStats, what: string, fields: ('mtime' | 'ctime')[] = ['mtime', 'ctime']): void {
  for (const f of fields) {
    const [b, a] = f === 'mtime' ? [before.mtimeNs, now.mtimeNs] : [before.ctimeNs, now.ctimeNs];
    assert.ok(a > b, `${what}: ${f} must change (was ${b}, now ${a})`);
  }
}

function pread(fd: number, len = 1 << 16, pos = 0): string {
  const buf = Buffer.alloc(len);
  const n = readSync(fd, buf, 0, len, pos);
  return buf.subarray(0, n).toString();
}

/** glibc's makedev. */
const makedev = (major: number, minor: number): number => ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;

/** %t %T %F of stat(1): major and minor in hex, and the type in words. */
const statType = (p: string): string => execFileSync('stat', ['-c', '%t %T %F', p], { encoding: 'utf8' }).trim();

/** renameat2(2) through libc: '' on success, else the errno name. */
const RENAMEAT2 = `import ctypes, errno, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), int(sys.argv[3]))
print('' if r == 0 else errno.errorcode[ctypes.get_errno()])`;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
function renameat2(from: string, to: string, flags: number): string {
  return execFileSync('python3', ['-c', RENAMEAT2, from, to, String(flags)], { encoding: 'utf8' }).trim();
}

/** A real bind(2) that leaves the socket node behind (python does not unlink on close). */
function bindAndLeave(path: string): void {
  execFileSync('python3', ['-c', 'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.close()', path]);
}

/** Runs `safe restore` with a short timeout: a restore that opens a fifo would hang. */
function restore(host: Host, spec: string, target: string): void {
  const r = spawnSync(SAFE_BIN, ['restore', spec, '--target', target], { env: host.env, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `safe restore ${spec} did not finish within 30 s (a fifo opened for its content?)`);
  assert.equal(r.status, 0, `safe restore ${spec} failed: ${r.stderr}${r.stdout}`);
}

// One host for the whole file (starting a daemon costs seconds on a small machine); each test
// works in a directory of its own, and one unmount + mount at the end runs the checks every
// test registered for after a remount.
const h = makeHost();
before(() => h.mount());
const afterRemount: [string, () => void][] = [];

function area(name: string): string {
  const d = join(h.mnt, name);
  mkdirSync(d);
  return d;
}

// ---- hard links ----

test('hard links: one inode under two names, attributes and data shared at once, times of the inode and its parents', { timeout: 60_000 }, () => {
  const m = area('links');
  const d1 = join(m, 'd1'), d2 = join(m, 'd2');
  mkdirSync(d1);
  mkdirSync(d2);
  const a = join(d1, 'a'), b = join(d2, 'b');
  writeFileSync(a, 'one\n');

  // link: same inode, nlink 2 under both names; the inode's ctime and the new parent's times move.
  let a0 = lst(a);
  let p0 = lst(d2);
  assert.equal(errorCode(() => lst(b)), 'ENOENT');
  tick();
  linkSync(a, b);
  let sa = lst(a), sb = lst(b);
  assert.equal(sb.ino, sa.ino, 'both names report one st_ino');
  assert.equal(sa.nlink, 2n, 'nlink through the old name');
  assert.equal(sb.nlink, 2n, 'nlink through the new name');
  assert.equal(readFileSync(b, 'utf8'), 'one\n');
  touched(a0, sa, 'link: the inode', ['ctime']);
  touched(p0, lst(d2), 'link: the parent of the new name');

  // Attributes through one name, seen at once through the other (both stat'ed just before).
  a0 = lst(b);
  tick();
  chmodSync(a, 0o640);
  sb = lst(b);
  assert.equal(Number(sb.mode & 0o7777n), 0o640, 'chmod through a, mode seen through b');
  touched(a0, sb, 'chmod: the inode (through the other name)', ['ctime']);
  lst(a);
  a0 = lst(a);
  tick();
  chownSync(b, 1234, 5678);
  sa = lst(a);
  assert.equal([sa.uid, sa.gid].join(':'), '1234:5678', 'chown through b, owner seen through a');
  touched(a0, sa, 'chown: the inode', ['ctime']);
  lst(b);
  a0 = lst(b);
  tick();
  // Fractions a double holds exactly: Node passes the times as seconds in a double.
  utimesSync(a, new Date('2003-04-05T06:07:08.500Z'), new Date('2002-03-04T05:06:07.250Z'));
  sb = lst(b);
  assert.equal(sb.mtime.toISOString(), '2002-03-04T05:06:07.250Z', 'utimes through a, mtime seen through b');
  assert.equal(sb.atime.toISOString(), '2003-04-05T06:07:08.500Z', 'utimes through a, atime seen through b');
  touched(a0, sb, 'utimes: the inode', ['ctime']);

  // Data: both names open at once, appends through one read through the other.
  const wa = openSync(a, 'a');
  const rb = openSync(b, 'r');
  try {
    assert.equal(pread(rb), 'one\n', 'b read before the append (page cache warm)');
    a0 = lst(b);
    tick();
    writeSync(wa, 'two\n');
    assert.equal(pread(rb), 'one\ntwo\n', 'append through a, read through the open b at once');
    assert.equal(fstatSync(rb).size, 8, 'fstat of the open b sees the new size');
    assert.equal(readFileSync(b, 'utf8'), 'one\ntwo\n', 'and a fresh open of b');
    assert.equal(lst(b).size, 8n);
    touched(a0, lst(b), 'write through a: the inode seen through b');
    const wb = openSync(b, 'r+');
    const ra = openSync(a, 'r');
    try {
      assert.equal(pread(ra), 'one\ntwo\n');
      writeSync(wb, 'three\n', 8);
      assert.equal(pread(ra), 'one\ntwo\nthree\n', 'write through b, read through the open a at once');
      writeSync(wa, 'four\n');
      assert.equal(pread(rb), 'one\ntwo\nthree\nfour\n', 'both writers at once: one content');
    } finally {
      closeSync(wb);
      closeSync(ra);
    }
  } finally {
    closeSync(wa);
    closeSync(rb);
  }
  assert.equal(readFileSync(a, 'utf8'), 'one\ntwo\nthree\nfour\n', 'after the last close, through a');
  assert.equal(readFileSync(b, 'utf8'), 'one\ntwo\nthree\nfour\n', 'after the last close, through b');

  // unlink one name: nlink 1 on the other; the inode's ctime and the parent's times move.
  a0 = lst(b);
  p0 = lst(d1);
  lst(a);
  tick();
  unlinkSync(a);
  sb = lst(b);
  assert.equal(sb.nlink, 1n, 'unlink a: nlink 1 through b');
  touched(a0, sb, 'unlink: the inode', ['ctime']);
  touched(p0, lst(d1), 'unlink: the parent');
  assert.equal(errorCode(() => lst(a)), 'ENOENT');
  assert.equal(readFileSync(b, 'utf8'), 'one\ntwo\nthree\nfour\n');

  // rename: the inode's ctime, the times of both parents.
  linkSync(b, a);
  const ino = lst(a).ino;
  a0 = lst(a);
  p0 = lst(d1);
  let q0 = lst(d2);
  tick();
  renameSync(b, join(d1, 'b2'));
  const sb2 = lst(join(d1, 'b2'));
  assert.equal(sb2.ino, ino, 'the moved name still names the inode');
  assert.equal(sb2.nlink, 2n);
  touched(a0, lst(a), 'rename: the inode (through its other name)', ['ctime']);
  touched(p0, lst(d1), 'rename: the new parent');
  touched(q0, lst(d2), 'rename: the old parent');
  q0 = lst(d1);
  tick();
  renameSync(join(d1, 'b2'), join(d1, 'b3'));
  touched(q0, lst(d1), 'rename within one directory: the parent');

  // create: the parent's mtime and ctime.
  p0 = lst(d2);
  tick();
  writeFileSync(join(d2, 'new'), 'n');
  touched(p0, lst(d2), 'create: the parent');
  p0 = lst(d2);
  tick();
  mkdirSync(join(d2, 'sub'));
  touched(p0, lst(d2), 'mkdir: the parent');
  p0 = lst(d2);
  tick();
  symlinkSync('new', join(d2, 'sym'));
  touched(p0, lst(d2), 'symlink: the parent');

  // A shared mapping through one name: its stores are read through the other before msync.
  writeFileSync(join(m, 'm1'), Buffer.alloc(8192, 'x'));
  linkSync(join(m, 'm1'), join(m, 'm2'));
  assert.equal(readFileSync(join(m, 'm2'), 'latin1').slice(0, 5), 'xxxxx');
  const out = execFileSync('python3', ['-c', `import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
mm = mmap.mmap(fd, 8192)
mm[4096:4101] = b'MMAP!'
with open(sys.argv[2], 'rb') as f:
    f.seek(4096)
    print(f.read(5).decode())
mm.flush(); mm.close(); os.close(fd)`, join(m, 'm1'), join(m, 'm2')], { encoding: 'utf8' });
  assert.equal(out.trim(), 'MMAP!', 'a store through the mapping of m1, read through m2 before msync');
  afterRemount.push(['hard links: the mapped store reached the file', () => {
    assert.equal(readFileSync(join(m, 'm2'), 'latin1').slice(4096, 4101), 'MMAP!');
    assert.equal(lst(join(m, 'm1')).ino, lst(join(m, 'm2')).ino);
  }]);
});

test('hard links survive a snapshot (one inode number, nlink 2 in the view) and a remount', { timeout: 60_000 }, async () => {
  const m = area('links-kept');
  mkdirSync(join(m, 'x'));
  mkdirSync(join(m, 'y'));
  writeFileSync(join(m, 'x/pair'), 'pair v1');
  linkSync(join(m, 'x/pair'), join(m, 'y/pair2'));
  writeFileSync(join(m, 'x/t1'), 'triple');
  linkSync(join(m, 'x/t1'), join(m, 'x/t2'));
  linkSync(join(m, 'x/t1'), join(m, 't3'));
  writeFileSync(join(m, 'single'), 'alone');
  await h.settle();

  const sameInode = (root: string, names: string[], nlink: number, content: string, what: string): bigint => {
    const sts = names.map((n) => lst(join(root, n)));
    for (let i = 0; i < names.length; i++) {
      assert.equal(sts[i]!.ino, sts[0]!.ino, `${what}: ${names[i]} and ${names[0]} share st_ino`);
      assert.equal(sts[i]!.nlink, BigInt(nlink), `${what}: nlink of ${names[i]}`);
      assert.equal(readFileSync(join(root, names[i]!), 'utf8'), content, `${what}: content of ${names[i]}`);
    }
    return sts[0]!.ino;
  };
  const name = h.ok('snapshot').trim();
  const view = join(h.mnt, '.snapshots', name, 'links-kept');
  const checkView = (what: string, root = view): void => {
    const pair = sameInode(root, ['x/pair', 'y/pair2'], 2, 'pair v1', `${what}: pair`);
    const triple = sameInode(root, ['x/t1', 'x/t2', 't3'], 3, 'triple', `${what}: triple`);
    const single = lst(join(root, 'single'));
    assert.equal(single.nlink, 1n, `${what}: single`);
    assert.equal(new Set([pair, triple, single.ino]).size, 3, `${what}: distinct files have distinct inode numbers`);
  };
  checkView('snapshot view');
  // And restored as hard links.
  const out = join(tempDir(), 'restored');
  restore(h, `${name}:/links-kept`, out);
  checkView('restored', join(out, 'links-kept'));

  // The live tree moves on; the view keeps its nlink and content (stat'ed just before).
  unlinkSync(join(m, 'y/pair2'));
  writeFileSync(join(m, 'x/pair'), 'pair v2, longer');
  assert.equal(lst(join(m, 'x/pair')).nlink, 1n, 'live: one name left');
  checkView('view after live unlink and rewrite');
  sameInode(m, ['x/t1', 'x/t2', 't3'], 3, 'triple', 'live triple');

  afterRemount.push(['hard links: the snapshot view and the live names', () => {
    checkView('view after remount');
    sameInode(m, ['x/t1', 'x/t2', 't3'], 3, 'triple', 'live triple after remount');
    assert.equal(lst(join(m, 'x/pair')).nlink, 1n, 'live pair after remount');
    assert.equal(readFileSync(join(m, 'x/pair'), 'utf8'), 'pair v2, longer');
    // Still one inode after the remount: a change through one name shows through the others.
    lst(join(m, 't3'));
    chmodSync(join(m, 'x/t2'), 0o600);
    assert.equal(Number(lst(join(m, 't3')).mode & 0o7777n), 0o600, 'chmod through t2 after remount, seen through t3');
    writeFileSync(join(m, 'x/t1'), 'triple v2');
    assert.equal(readFileSync(join(m, 't3'), 'utf8'), 'triple v2');
    // Link count drops as names go, and the last unlink frees nothing the others still need.
    unlinkSync(join(m, 'x/t1'));
    assert.equal(lst(join(m, 'x/t2')).nlink, 2n);
  }]);
});

test('the mtime stat shows after writes is the one kept: in a snapshot and after a remount', { timeout: 60_000 }, () => {
  const m = area('write-times');
  const writes: [string, (f: string) => void][] = [
    ['rewritten', (f) => writeFileSync(f, 'second, shorter')],
    ['written in the middle', (f) => {
      const fd = openSync(f, 'r+');
      writeSync(fd, 'mid', 1000);
      closeSync(fd);
    }],
    ['appended', (f) => writeFileSync(f, 'more', { flag: 'a' })],
  ];
  for (const [name] of writes) writeFileSync(join(m, name), 'first'.repeat(1000));
  // Several rounds: the kernel's clock and the daemon's differ by a few ms only some of the time.
  for (let round = 0; round < 5; round++) for (const [name, write] of writes) write(join(m, name));
  // To the ms: the tree keeps times in ms.
  const ms = (f: string): bigint => lst(f).mtimeNs / 1_000_000n;
  const shown = new Map(writes.map(([name]) => [name, ms(join(m, name))]));
  const snap = h.ok('snapshot').trim();
  for (const [name, t] of shown) assert.equal(ms(join(h.mnt, '.snapshots', snap, 'write-times', name)), t, `${name}: the snapshot's mtime`);
  afterRemount.push(['write times', () => {
    for (const [name, t] of shown) assert.equal(ms(join(m, name)), t, `${name}: the mtime after a remount`);
  }]);
});

test('times are whole milliseconds, a new file\'s never ahead of its first write, and the same to the ns after a remount', { timeout: 60_000 }, () => {
  const m = area('time-grain');
  // A time given to the nanosecond is kept to the millisecond, and stat says so at once.
  const set = join(m, 'set');
  writeFileSync(set, 'x');
  execFileSync('touch', ['-m', '-d', '2021-03-04 05:06:07.123456789', set]);
  assert.equal(lst(set).mtimeNs % 1_000_000_000n, 123_000_000n, 'a time set to the ns is shown to the ms');
  // The folder stamps a create from the clock the kernel stamps writes with: the directory's
  // mtime is the create's, and the write right after it cannot be earlier.
  const d = join(m, 'fresh');
  mkdirSync(d);
  for (let i = 0; i < 50; i++) {
    const f = join(d, `f${i}`);
    writeFileSync(f, 'data');
    const [dt, ft] = [lst(d).mtimeNs, lst(f).mtimeNs];
    assert.ok(ft >= dt, `f${i}: written at ${ft}, before its create at ${dt}`);
  }
  const shown = new Map([set, ...readdirSync(d).map((n) => join(d, n))].map((f) => [f, [lst(f).mtimeNs, lst(f).ctimeNs]]));
  for (const [f, [mt, ct]] of shown) assert.ok(mt! % 1_000_000n === 0n && ct! % 1_000_000n === 0n, `${f}: times in whole ms (${mt}, ${ct})`);
  afterRemount.push(['times to the ns', () => {
    for (const [f, t] of shown) assert.deepEqual([lst(f).mtimeNs, lst(f).ctimeNs], t, `${f}: mtime and ctime after a remount`);
  }]);
});

// ---- open files that lost their names ----

test('an open file outlives its last name: fstat (nlink 0), read, write and close through the fd', { timeout: 60_000 }, async (t) => {
  const m = area('orphans');
  await t.test('unlink while open for writing and for reading', () => {
    const p = join(m, 'u');
    writeFileSync(p, 'hello unlinked');
    const rw = openSync(p, 'r+');
    const ro = openSync(p, 'r');
    let closed: (string | undefined)[] = [];
    try {
      unlinkSync(p);
      assert.equal(errorCode(() => lstatSync(p)), 'ENOENT', 'the name is gone');
      assert.equal(errorCode(() => fstatSync(rw)), undefined, 'fstat of the open file still works');
      assert.equal(fstatSync(rw).nlink, 0, 'no links left');
      assert.equal(fstatSync(rw).size, 14);
      assert.equal(pread(rw), 'hello unlinked', 'read through the fd');
      writeSync(rw, ' and more', 14);
      assert.equal(pread(ro), 'hello unlinked and more', 'written through one fd, read through the other');
      assert.equal(fstatSync(ro).size, 23);
    } finally {
      // (closed here, checked below: a failure above is the one to report)
      closed = [errorCode(() => closeSync(rw)), errorCode(() => closeSync(ro))];
    }
    assert.deepEqual(closed, [undefined, undefined], 'close of the writer and of the reader succeed');
    assert.deepEqual(readdirSync(m).filter((n) => n === 'u'), []);
  });
  await t.test('rename over a file a reader has open: the reader keeps the old content', () => {
    const p = join(m, 'target');
    writeFileSync(p, 'old content');
    const ro = openSync(p, 'r');
    let closed: string | undefined;
    try {
      assert.equal(pread(ro, 3), 'old');
      writeFileSync(join(m, 'target.tmp'), 'new content, longer');
      renameSync(join(m, 'target.tmp'), p);
      assert.equal(readFileSync(p, 'utf8'), 'new content, longer');
      assert.equal(pread(ro), 'old content', 'the replaced file through the old fd');
      assert.equal(errorCode(() => fstatSync(ro)), undefined, 'fstat of the replaced file works');
      assert.equal(fstatSync(ro).nlink, 0);
      assert.equal(fstatSync(ro).size, 11);
    } finally {
      closed = errorCode(() => closeSync(ro));
    }
    assert.equal(closed, undefined, 'close of the reader succeeds');
  });
  await t.test('unlink one of two names of an open file: fstat says one link', () => {
    writeFileSync(join(m, 'h1'), 'linked');
    linkSync(join(m, 'h1'), join(m, 'h2'));
    const fd = openSync(join(m, 'h1'), 'r');
    try {
      unlinkSync(join(m, 'h1'));
      assert.equal(fstatSync(fd).nlink, 1);
      assert.equal(pread(fd), 'linked');
    } finally {
      closeSync(fd);
    }
    assert.equal(lst(join(m, 'h2')).nlink, 1n);
  });
  afterRemount.push(['orphans: nothing left of the unlinked files', () => {
    assert.deepEqual(readdirSync(m).sort(), ['h2', 'target']);
    assert.equal(readFileSync(join(m, 'target'), 'utf8'), 'new content, longer');
  }]);
});

// ---- special files ----

test('special files: fifo, unix socket and device nodes; through a snapshot, a remount and a restore', { timeout: 60_000 }, async (t) => {
  const m = area('special');
  const fifo = join(m, 'fifo');
  const through = (p: string, what: string): void => {
    // Reader and writer are both children with a time limit: a broken fifo must not hang us.
    const writer = spawn('sh', ['-c', 'echo hi > "$1"', 'sh', p], { stdio: 'ignore' });
    try {
      const r = spawnSync('cat', [p], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.signal, null, `${what}: the reader got no writer within 10 s`);
      assert.equal(r.stdout, 'hi\n', `${what}: the reader gets the writer's line`);
    } finally {
      writer.kill('SIGKILL');
    }
  };

  await t.test('fifo: mkfifo, then a writer and a reader through it', () => {
    execFileSync('mkfifo', ['-m', '0620', fifo]);
    const st = lstatSync(fifo);
    assert.ok(st.isFIFO(), `a fifo (mode ${st.mode.toString(8)})`);
    assert.equal(st.mode & 0o7777, 0o620);
    assert.equal(statType(fifo), '0 0 fifo');
    through(fifo, 'fifo');
    through(fifo, 'fifo, second time');
    assert.ok(lstatSync(fifo).isFIFO(), 'still a fifo');
    assert.equal(lstatSync(fifo).size, 0, 'nothing was stored in it');
    chownSync(fifo, 1234, 5678);
    assert.equal(`${lstatSync(fifo).uid}:${lstatSync(fifo).gid}`, '1234:5678');
    // A second name for the fifo: one inode, and one pipe through either name.
    linkSync(fifo, join(m, 'fifo-link'));
    assert.equal(lstatSync(join(m, 'fifo-link')).ino, lstatSync(fifo).ino);
    assert.equal(lstatSync(fifo).nlink, 2);
    const writer = spawn('sh', ['-c', 'echo linked > "$1"', 'sh', join(m, 'fifo-link')], { stdio: 'ignore' });
    try {
      const r = spawnSync('cat', [fifo], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.stdout, 'linked\n', 'written through fifo-link, read through fifo');
    } finally {
      writer.kill('SIGKILL');
    }
  });

  await t.test('unix socket: bind(2) in the mount, connect, bytes both ways', async () => {
    const path = join(m, 'live.sock');
    const server = net.createServer((c) => c.on('data', (d) => c.end(`pong:${d}`)));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(path, res);
    });
    try {
      const st = lstatSync(path);
      assert.ok(st.isSocket(), `a socket (mode ${st.mode.toString(8)})`);
      assert.equal(statType(path), '0 0 socket');
      const reply = await new Promise<string>((res, rej) => {
        const c = net.connect(path);
        let got = '';
        c.on('data', (d) => (got += d));
        c.on('end', () => res(got));
        c.on('error', rej);
        c.write('ping');
      });
      assert.equal(reply, 'pong:ping');
    } finally {
      await new Promise((res) => server.close(res));
    }
    bindAndLeave(join(m, 'kept.sock'));
    assert.ok(lstatSync(join(m, 'kept.sock')).isSocket(), 'a bound socket node stays after its socket closed');
  });

  await t.test('device nodes: mknod c 1 3, b 7 0, c 240 300: type and rdev', () => {
    execFileSync('mknod', ['-m', '0640', join(m, 'null'), 'c', '1', '3']);
    execFileSync('mknod', [join(m, 'loop'), 'b', '7', '0']);
    execFileSync('mknod', [join(m, 'big'), 'c', '240', '300']);
    assert.equal(statType(join(m, 'null')), '1 3 character special file');
    assert.equal(statType(join(m, 'loop')), '7 0 block special file');
    assert.equal(statType(join(m, 'big')), 'f0 12c character special file', 'a minor above 255 (the wide dev_t encoding)');
    assert.equal(lstatSync(join(m, 'null')).rdev, makedev(1, 3));
    assert.equal(lstatSync(join(m, 'loop')).rdev, makedev(7, 0));
    assert.equal(lstatSync(join(m, 'big')).rdev, makedev(240, 300));
    assert.equal(lstatSync(join(m, 'null')).mode & 0o7777, 0o640);
    assert.equal(lstatSync(join(m, 'null')).size, 0);
  });

  const expectSpecial = (root: string, what: string): void => {
    const f = lstatSync(join(root, 'fifo'));
    assert.ok(f.isFIFO(), `${what}: fifo is a fifo`);
    assert.equal(f.mode & 0o7777, 0o620, `${what}: fifo mode`);
    assert.equal(`${f.uid}:${f.gid}`, '1234:5678', `${what}: fifo owner`);
    assert.equal(statType(join(root, 'null')), '1 3 character special file', `${what}: null`);
    assert.equal(lstatSync(join(root, 'null')).mode & 0o7777, 0o640, `${what}: null mode`);
    assert.equal(statType(join(root, 'loop')), '7 0 block special file', `${what}: loop`);
    assert.equal(statType(join(root, 'big')), 'f0 12c character special file', `${what}: big`);
    const l = lstatSync(join(root, 'fifo-link'));
    assert.ok(l.ino === f.ino && l.nlink === 2 && f.nlink === 2, `${what}: fifo and fifo-link are one inode with two links`);
  };
  let name = '';
  await t.test('in a snapshot', () => {
    name = h.ok('snapshot').trim();
    const view = join(h.mnt, '.snapshots', name, 'special');
    assert.deepEqual(readdirSync(view).sort(), ['big', 'fifo', 'fifo-link', 'kept.sock', 'loop', 'null']);
    expectSpecial(view, 'snapshot view');
    assert.ok(lstatSync(join(view, 'kept.sock')).isSocket(), 'snapshot view: kept.sock is a socket');
    afterRemount.push(['special files: live and in the snapshot view', () => {
      expectSpecial(m, 'after remount');
      assert.ok(lstatSync(join(m, 'kept.sock')).isSocket(), 'after remount: kept.sock is a socket');
      expectSpecial(view, 'snapshot view after remount');
      through(fifo, 'fifo after remount');
    }]);
  });

  const out = join(tempDir(), 'restored', 'special');
  await t.test('safe restore recreates the fifo and the device nodes', () => {
    assert.ok(name, 'a snapshot was taken');
    restore(h, `${name}:/special`, join(out, '..'));
    expectSpecial(out, 'restored');
    through(join(out, 'fifo'), 'restored fifo');
  });
  await t.test('safe restore recreates the socket node (as rsync -a does)', () => {
    const st = lstatSync(join(out, 'kept.sock'));
    assert.ok(st.isSocket(), `restored kept.sock is a socket (mode ${st.mode.toString(8)})`);
  });
});

// ---- renameat2 flags, directories over directories ----

test('rename: RENAME_NOREPLACE, RENAME_EXCHANGE, a directory over an empty one, ENOTEMPTY', { timeout: 60_000 }, async (t) => {
  const m = area('rename');
  const ref = tempDir('safe-ref-');
  // Every step runs on the mount and on a directory on disk: same result, same link counts.
  // They run in a subdirectory: the mount's root also counts .snapshots in its link count.
  const steps = (base: string): Record<string, unknown> => {
    const root = join(base, 'w');
    mkdirSync(root);
    const r: Record<string, unknown> = {};
    const P = (p: string): string => join(root, p);
    writeFileSync(P('x'), 'X');
    writeFileSync(P('y'), 'Y');
    mkdirSync(P('e'));
    r.noreplaceFile = renameat2(P('x'), P('y'), RENAME_NOREPLACE);
    r.afterNoreplace = [readFileSync(P('x'), 'utf8'), readFileSync(P('y'), 'utf8')];
    r.noreplaceDir = renameat2(P('x'), P('e'), RENAME_NOREPLACE);
    r.noreplaceNew = renameat2(P('x'), P('z'), RENAME_NOREPLACE);
    r.afterNoreplaceNew = [errorCode(() => lstatSync(P('x'))), readFileSync(P('z'), 'utf8')];
    r.exchangeMissing = renameat2(P('z'), P('nope'), RENAME_EXCHANGE);
    r.bothFlags = renameat2(P('z'), P('y'), RENAME_EXCHANGE | RENAME_NOREPLACE);
    r.fileOverDir = errorCode(() => renameSync(P('z'), P('e')));
    r.dirOverFile = errorCode(() => renameSync(P('e'), P('z')));
    // A directory over an empty one: the empty one goes, the parent has one subdirectory fewer.
    mkdirSync(P('s/inner'), { recursive: true });
    writeFileSync(P('s/inner/f'), 'in s');
    r.nlinkBefore = lstatSync(root).nlink;
    r.dirOverEmpty = errorCode(() => renameSync(P('s'), P('e')));
    r.nlinkAfter = lstatSync(root).nlink;
    r.afterDirOverEmpty = [errorCode(() => lstatSync(P('s'))), readFileSync(P('e/inner/f'), 'utf8'), readdirSync(P('e'))];
    // Over a non-empty one: ENOTEMPTY, both intact.
    mkdirSync(P('n1'));
    writeFileSync(P('n1/a'), 'a');
    r.dirOverNonEmpty = errorCode(() => renameSync(P('n1'), P('e')));
    r.afterNonEmpty = [readdirSync(P('n1')), readdirSync(P('e'))];
    r.dirIntoItself = errorCode(() => renameSync(P('e'), P('e/inner/deeper')));
    // Exchange a directory in one parent with a file in another: link counts of both parents.
    mkdirSync(P('p1'));
    mkdirSync(P('p2'));
    mkdirSync(P('p1/dd'));
    writeFileSync(P('p1/dd/child'), 'child');
    writeFileSync(P('p2/ff'), 'ff');
    r.parentsBefore = [lstatSync(P('p1')).nlink, lstatSync(P('p2')).nlink];
    r.exchangeDirFile = renameat2(P('p1/dd'), P('p2/ff'), RENAME_EXCHANGE);
    r.parentsAfter = [lstatSync(P('p1')).nlink, lstatSync(P('p2')).nlink];
    r.afterExchangeDirFile = [lstatSync(P('p1/dd')).isFile(), readFileSync(P('p1/dd'), 'utf8'), readdirSync(P('p2/ff')), readFileSync(P('p2/ff/child'), 'utf8')];
    return r;
  };
  const want = steps(ref);
  // The helper itself works (on disk): the test cannot pass by a broken renameat2 call.
  assert.equal(want.noreplaceFile, 'EEXIST');
  assert.equal(want.noreplaceNew, '');
  assert.equal(want.exchangeDirFile, '');
  assert.equal(want.dirOverNonEmpty, 'ENOTEMPTY');
  assert.equal(want.dirOverEmpty, undefined);

  await t.test('the same results and link counts as a directory on disk', () => {
    assert.deepEqual(steps(m), want);
  });

  await t.test('RENAME_EXCHANGE of two files with warm caches: contents and inode numbers swap', () => {
    writeFileSync(join(m, 'p'), 'content of p');
    mkdirSync(join(m, 'q-dir'));
    writeFileSync(join(m, 'q-dir/q'), 'content of q, longer');
    const ip = lst(join(m, 'p')).ino, iq = lst(join(m, 'q-dir/q')).ino;
    assert.notEqual(ip, iq);
    // warm: attributes, pages and dentries of both
    assert.equal(readFileSync(join(m, 'p'), 'utf8'), 'content of p');
    assert.equal(readFileSync(join(m, 'q-dir/q'), 'utf8'), 'content of q, longer');
    assert.equal(renameat2(join(m, 'p'), join(m, 'q-dir/q'), RENAME_EXCHANGE), '');
    assert.equal(readFileSync(join(m, 'p'), 'utf8'), 'content of q, longer', 'p has q\'s content');
    assert.equal(readFileSync(join(m, 'q-dir/q'), 'utf8'), 'content of p', 'q has p\'s content');
    assert.equal(lst(join(m, 'p')).ino, iq, 'p has q\'s inode number');
    assert.equal(lst(join(m, 'q-dir/q')).ino, ip, 'q has p\'s inode number');
    assert.equal(lst(join(m, 'p')).size, BigInt('content of q, longer'.length));
    afterRemount.push(['rename: exchanged files and directories', () => {
      assert.equal(readFileSync(join(m, 'p'), 'utf8'), 'content of q, longer', 'after remount');
      assert.equal(readFileSync(join(m, 'q-dir/q'), 'utf8'), 'content of p', 'after remount');
      assert.equal(lst(join(m, 'p')).ino, iq, 'p has q\'s inode number after remount');
      assert.equal(readFileSync(join(m, 'w/p2/ff/child'), 'utf8'), 'child', 'the exchanged directory after remount');
    }]);
  });
});

// ---- readdir while the directory changes ----

/**
 * Python lists `dir` with one scandir stream (getdents in 32 KiB slices, several READDIRs
 * each): `first` names, then unlinks those and creates as many new ones, then reads on. JSON:
 * the names read before and after the change. The new names sort after the old ones, so a
 * listing taken afresh mid-stream would put every old name 300 places earlier: read on at the
 * same position, it would skip 300 of them.
 */
const LIST_ACROSS_CHANGE = `import json, os, sys
d, first = sys.argv[1], int(sys.argv[2])
it = os.scandir(d)
before = [next(it).name for _ in range(first)]
for n in before:
    os.unlink(os.path.join(d, n))
for i in range(first):
    open(os.path.join(d, 'pnew-%05d' % i + 'n' * 90), 'w').close()
after = [e.name for e in it]
print(json.dumps({'before': before, 'after': after}))`;

test('readdir while the directory changes: every entry that stayed is listed once, then a fresh listing shows the change', { timeout: 60_000 }, () => {
  const d = area('listing');
  const names = Array.from({ length: 3000 }, (_, i) => `old-${String(i).padStart(5, '0')}${'o'.repeat(90)}`);
  for (const n of names) writeFileSync(join(d, n), '');
  const out = JSON.parse(execFileSync('python3', ['-c', LIST_ACROSS_CHANGE, d, '300'], { encoding: 'utf8' })) as { before: string[]; after: string[] };
  const seen = [...out.before, ...out.after].filter((n) => n.startsWith('old-'));
  assert.equal(new Set(seen).size, seen.length, 'no entry listed twice');
  assert.deepEqual([...seen].sort(), names, 'every entry that was there when the listing began, exactly once');
  const now = readdirSync(d);
  assert.equal(now.length, 3000);
  assert.equal(now.filter((n) => n.startsWith('pnew-')).length, 300, 'a listing begun after the change shows it');
  assert.ok(!now.some((n) => out.before.includes(n)), 'and not the names unlinked');
});

/**
 * Python lists `dir` with one scandir stream: `first` names, then reads every file of `dir`
 * from the daemon (its pages dropped first) and waits for the daemon to go idle (it then
 * drops the directory's cached listing), then reads on: the rest of the stream comes from
 * the daemon, from where it stood. JSON: the names read, and each file's size as the
 * stream's lstat saw it.
 */
const LIST_ACROSS_READS = `import json, os, sys, time
d, first = sys.argv[1], int(sys.argv[2])
it = os.scandir(d)
seen = [next(it) for _ in range(first)]
for n in os.listdir(d):
    with open(os.path.join(d, n), 'rb') as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        f.read()
time.sleep(0.2)
seen += list(it)
print(json.dumps({e.name: e.stat(follow_symlinks=False).st_size for e in seen}))`;

test('reading files drops their directory\'s cached listing: a listing under way reads on, and the next is whole and current', { timeout: 60_000 }, () => {
  const d = area('listing-reads');
  const sizes = new Map(Array.from({ length: 2000 }, (_, i) => [`f-${String(i).padStart(5, '0')}${'x'.repeat(90)}`, i % 97]));
  for (const [n, size] of sizes) writeFileSync(join(d, n), 'y'.repeat(size));
  assert.equal(readdirSync(d).length, sizes.size, 'listed once, so the kernel caches it');
  const seen = JSON.parse(execFileSync('python3', ['-c', LIST_ACROSS_READS, d, '500'], { encoding: 'utf8' })) as Record<string, number>;
  assert.deepEqual(Object.keys(seen).sort(), [...sizes.keys()], 'every entry once, across the drop');
  for (const [n, size] of sizes) assert.equal(seen[n], size, `${n}: its size through the listing`);
  // A change after the drop shows in the next listing and in stat, through the new listing's attributes.
  writeFileSync(join(d, 'f-00001' + 'x'.repeat(90)), 'longer than before');
  unlinkSync(join(d, 'f-00002' + 'x'.repeat(90)));
  const now = readdirSync(d, { withFileTypes: true });
  assert.equal(now.length, sizes.size - 1);
  assert.equal(lst(join(d, 'f-00001' + 'x'.repeat(90))).size, BigInt('longer than before'.length));
});

// ---- copies that keep attributes ----

interface Entry { type: string; mode: number; uid: number; gid: number; mtimeMs: string; size?: number; hash?: string; target?: string; xattrs: string }

/** Every entry under root (root itself as '.'): type, mode, owner, mtime to the ms, content, target, xattrs. */
function manifest(root: string): Record<string, Entry> {
  const xattrs = new Map<string, string>();
  {
    const dump = spawnSync('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'utf8' });
    for (const block of dump.stdout.split('\n\n')) {
      const lines = block.split('\n').filter(Boolean);
      if (!lines[0]?.startsWith('# file: ')) continue;
      const file = lines[0].slice('# file: '.length);
      const rel = file === root ? '.' : file.slice(root.length + 1);
      xattrs.set(rel, lines.slice(1).sort().join(' '));
    }
  }
  const out: Record<string, Entry> = {};
  const walk = (rel: string): void => {
    const p = rel === '.' ? root : join(root, rel);
    const st = lst(p);
    const e: Entry = {
      type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other',
      mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeMs: String(st.mtimeNs / 1_000_000n), xattrs: xattrs.get(rel) ?? '',
    };
    if (st.isSymbolicLink()) {
      e.target = readlinkSync(p);
      e.mode = 0;
    }
    if (st.isFile()) {
      e.size = Number(st.size);
      e.hash = createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16);
    }
    out[rel] = e;
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(rel === '.' ? n : `${rel}/${n}`);
  };
  walk('.');
  return out;
}

/** A time the tool does not keep (a symlink's, for some tools) is the copy's own: not compared. */
function kept(mf: Record<string, Entry>, disk: Record<string, Entry>, source: Record<string, Entry>): Record<string, Entry> {
  return Object.fromEntries(Object.entries(mf).map(([p, e]) => [p, disk[p]?.mtimeMs === source[p]?.mtimeMs ? e : { ...e, mtimeMs: 'not kept by the tool' }]));
}

/** Mixed modes, owners, a setgid directory, xattrs, a symlink, times in the past. */
function buildSource(src: string): void {
  const P = (p: string): string => join(src, p);
  mkdirSync(src);
  const file = (p: string, mode: number, data: string): void => {
    writeFileSync(P(p), data);
    chmodSync(P(p), mode);
  };
  file('f600', 0o600, 'private\n');
  file('f644', 0o644, 'public\n');
  file('f755', 0o755, '#!/bin/sh\necho hi\n');
  file('f750', 0o750, 'group exec\n');
  mkdirSync(P('d700'));
  file('d700/inner', 0o644, 'inside a private dir\n');
  chmodSync(P('d700'), 0o700);
  mkdirSync(P('dsg'));
  chownSync(P('dsg'), 0, 5678);
  chmodSync(P('dsg'), 0o2775);
  file('dsg/g', 0o664, 'in a setgid dir\n');
  mkdirSync(P('dsg/sub'));
  file('xa', 0o644, 'has xattrs\n');
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'hello world', P('xa')]);
  execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x00ff10', P('xa')]);
  execFileSync('setfattr', ['-n', 'user.dir', '-v', 'on a dir', P('d700')]);
  file('owned', 0o640, 'someone else\n');
  chownSync(P('owned'), 1234, 5678);
  symlinkSync('f644', P('ln'));
  lchownSync(P('ln'), 1234, 5678);
  mkdirSync(P('empty'), 0o755);
  file('zero', 0o444, '');
  // Times in the past, to the millisecond exactly (touch parses the decimal; a Date through
  // utimes goes through a double and can land a nanosecond short), children before their parents.
  const when = (i: number): string => {
    const ms = Date.UTC(2001, 1, 3, 4, 5, 6) + i * 86_400_123;
    return `@${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
  };
  const all = ['f600', 'f644', 'f755', 'f750', 'd700/inner', 'dsg/g', 'dsg/sub', 'xa', 'owned', 'empty', 'zero', 'ln', 'd700', 'dsg', '.'];
  all.forEach((p, i) => execFileSync('touch', ['-h', '-d', when(i), P(p)]));
}

test('cp -a, cp -Rp, rsync -a and tar -p into the mount keep modes, owners, mtimes, symlinks (and xattrs with cp -a)', { timeout: 60_000 }, async (t) => {
  const m = area('copies');
  const tmp = tempDir('safe-src-');
  const src = join(tmp, 'src');
  buildSource(src);
  const source = manifest(src);
  // The source is what we think it is (a wrong fixture would make the comparisons vacuous).
  assert.equal(source['dsg']!.mode, 0o2775);
  assert.equal(source['dsg']!.gid, 5678);
  assert.match(source['xa']!.xattrs, /user\.comment=0x68656c6c6f20776f726c64/);
  assert.equal(source['ln']!.target, 'f644');
  assert.equal(source['ln']!.uid, 1234);

  const sh = (cmd: string, a: string, b: string): void => {
    const r = spawnSync('sh', ['-c', cmd, 'sh', a, b], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${cmd} ${a} ${b}: ${r.stderr}`);
  };
  const tools: [string, string, boolean][] = [
    // name, command ($1 source, $2 destination), keeps xattrs
    ['cp -a', 'cp -a "$1" "$2"', true],
    ['cp -Rp', 'cp -Rp "$1" "$2"', false],
    ['rsync -a', 'rsync -a "$1/" "$2/"', false],
    ['tar -p', 'mkdir "$2" && tar --format=posix -C "$1" -cf - . | tar -C "$2" -xpf -', false],
  ];
  for (const [name, cmd, keepsXattrs] of tools) {
    await t.test(name, () => {
      const slug = name.replace(/[^a-z]/g, '');
      const onDisk = join(tmp, `disk-${slug}`);
      const inMount = join(m, slug);
      sh(cmd, src, onDisk);
      sh(cmd, src, inMount);
      const disk = manifest(onDisk);
      // What the tool itself keeps on a disk filesystem is what it must keep in the mount.
      assert.deepEqual(kept(manifest(inMount), disk, source), kept(disk, disk, source), `${name}: the mount differs from the same copy on disk`);
      // And every regular file and directory has the source's mode, owner and mtime.
      for (const [p, e] of Object.entries(source)) {
        const got = disk[p];
        assert.ok(got, `${name}: ${p} copied`);
        if (e.type === 'symlink') {
          assert.equal(got.target, e.target, `${name}: ${p} symlink target`);
          continue;
        }
        assert.deepEqual({ ...got, xattrs: keepsXattrs ? got.xattrs : '' }, { ...e, xattrs: keepsXattrs ? e.xattrs : '' }, `${name}: ${p} as on the source`);
      }
    });
  }
  await t.test('cp -a: the mount copy equals the source in everything, symlink owner and time too', () => {
    assert.deepEqual(manifest(join(m, 'cpa')), source);
  });
  // (The copies on disk go with this test's temp dir: keep what they showed.)
  const rsyncDisk = manifest(join(tmp, 'disk-rsynca'));
  afterRemount.push(['copies: cp -a and rsync -a', () => {
    assert.deepEqual(manifest(join(m, 'cpa')), source);
    assert.deepEqual(kept(manifest(join(m, 'rsynca')), rsyncDisk, source), kept(rsyncDisk, rsyncDisk, source));
  }]);
});

test('setgid directory: new entries take its group, new subdirectories its setgid bit', { timeout: 60_000 }, () => {
  const m = area('setgid');
  const ref = tempDir('safe-ref-');
  const run = (root: string): Record<string, string> => {
    const d = join(root, 'shared');
    mkdirSync(d);
    chownSync(d, 0, 5678);
    chmodSync(d, 0o2775);
    writeFileSync(join(d, 'f'), 'f');
    mkdirSync(join(d, 'sub'), 0o755);
    symlinkSync('f', join(d, 'ln'));
    execFileSync('mkfifo', [join(d, 'fifo')]);
    const show = (p: string): string => {
      const st = lstatSync(join(d, p));
      return `gid ${st.gid} setgid ${(st.mode & 0o2000) !== 0}`;
    };
    return { f: show('f'), sub: show('sub'), ln: show('ln'), fifo: show('fifo') };
  };
  const want = run(ref);
  assert.equal(want.f, 'gid 5678 setgid false', 'on disk: the file takes the directory\'s group');
  assert.equal(want.sub, 'gid 5678 setgid true', 'on disk: the subdirectory takes group and setgid bit');
  assert.deepEqual(run(m), want);
});

test('chown clears setuid and setgid (setgid only with group exec) as on disk; directories keep theirs', { timeout: 60_000 }, () => {
  const m = area('killpriv');
  const ref = tempDir('safe-ref-');
  const run = (root: string): string[] => {
    // The last two change neither owner (chown(-1, -1)): the kernel then asks the daemon to
    // clear the bits with a setattr that sets nothing.
    const made: [string, number, boolean, number][] = [['suid', 0o4755, false, 1234], ['sgid', 0o2755, false, 1234], ['sgid-noexec', 0o2745, false, 1234],
      ['both', 0o6711, false, 1234], ['dir', 0o2755, true, 1234], ['same-owner', 0o6755, false, -1], ['same-owner-dir', 0o2775, true, -1]];
    return made.map(([n, mode, dir, owner]) => {
      const p = join(root, n);
      if (dir) mkdirSync(p);
      else writeFileSync(p, 'x');
      chmodSync(p, mode);
      chownSync(p, owner, owner === -1 ? -1 : 5678);
      return `${n} ${(lstatSync(p).mode & 0o7777).toString(8)}`;
    });
  };
  const want = run(ref);
  assert.ok(want.includes('suid 755'), `on disk: chown clears setuid (${want})`);
  assert.deepEqual(run(m), want);
});

// ---- POSIX ACL xattrs ----

test('POSIX ACL xattrs: absent ones fail cleanly; a set one works or is refused, never stored as junk', { timeout: 60_000 }, async (t) => {
  const m = area('acl');
  writeFileSync(join(m, 'f'), 'f');
  chmodSync(join(m, 'f'), 0o644);
  mkdirSync(join(m, 'd'));
  await t.test('getfattr of an absent ACL: "Operation not supported" or "No such attribute"', () => {
    for (const [p, name] of [['f', 'system.posix_acl_access'], ['d', 'system.posix_acl_access'], ['d', 'system.posix_acl_default']] as const) {
      const r = spawnSync('getfattr', ['-n', name, '-e', 'hex', join(m, p)], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `${name} of ${p}: no value expected, got ${r.stdout}`);
      assert.match(r.stderr, /Operation not supported|No such attribute/, `${name} of ${p}: ${r.stderr}`);
    }
    const list = spawnSync('getfattr', ['-d', '-m', '-', join(m, 'f')], { encoding: 'utf8' });
    assert.doesNotMatch(list.stdout, /posix_acl/, 'no ACL listed on a plain file');
  });
  await t.test('setxattr of an ACL with a named user and a mask: refused with EOPNOTSUPP, or applied (mask in the group bits)', () => {
    // version 2; USER_OBJ rw-, USER 1234 rwx, GROUP_OBJ r--, MASK r-x, OTHER ---
    const py = `import os, struct, sys, errno
e = [(0x01, 6, 0xffffffff), (0x02, 7, 1234), (0x04, 4, 0xffffffff), (0x10, 5, 0xffffffff), (0x20, 0, 0xffffffff)]
blob = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *x) for x in e)
try:
    os.setxattr(sys.argv[1], 'system.posix_acl_access', blob)
except OSError as err:
    print('refused', 'EOPNOTSUPP' if err.errno == errno.EOPNOTSUPP else errno.errorcode[err.errno]); sys.exit(0)
got = os.getxattr(sys.argv[1], 'system.posix_acl_access')
print('set', oct(os.stat(sys.argv[1]).st_mode & 0o7777), got == blob)`;
    // On disk first: the blob is a valid ACL (ext4 takes it and puts the mask in the mode).
    const disk = join(tempDir(), 'f');
    writeFileSync(disk, 'f');
    chmodSync(disk, 0o644);
    assert.equal(execFileSync('python3', ['-c', py, disk], { encoding: 'utf8' }).trim(), 'set 0o650 True');
    const got = execFileSync('python3', ['-c', py, join(m, 'f')], { encoding: 'utf8' }).trim();
    assert.ok(['refused EOPNOTSUPP', 'set 0o650 True'].includes(got), `mount: ${got} (an ACL the mode does not reflect is stored, not applied)`);
  });
});

// ---- fallocate ----

test('fallocate: zeros of the asked length or EOPNOTSUPP, and the file stays consistent', { timeout: 60_000 }, () => {
  const m = area('fallocate');
  const fa = (...args: string[]): boolean => {
    const r = spawnSync('fallocate', args, { encoding: 'utf8' });
    if (r.status === 0) return true;
    // util-linux words EOPNOTSUPP as "keep size mode is unsupported" for -n and -p.
    assert.match(r.stderr, /Operation not supported|keep size mode is unsupported/, `fallocate ${args.join(' ')}: only EOPNOTSUPP may fail it: ${r.stderr}`);
    return false;
  };
  const consistent = (p: string, what: string): Buffer => {
    const data = readFileSync(p);
    assert.equal(data.length, Number(lst(p).size), `${what}: stat size equals what reads back`);
    return data;
  };
  const expected = new Map<string, Buffer>();

  const f = join(m, 'new');
  if (fa('-l', '1M', f)) expected.set('new', Buffer.alloc(1 << 20));
  else expected.set('new', Buffer.alloc(0));
  assert.deepEqual(consistent(f, 'fallocate of a new file'), expected.get('new'));

  const g = join(m, 'grow');
  writeFileSync(g, 'hello');
  expected.set('grow', fa('-l', '1M', g) ? Buffer.concat([Buffer.from('hello'), Buffer.alloc((1 << 20) - 5)]) : Buffer.from('hello'));
  assert.deepEqual(consistent(g, 'fallocate growing a file'), expected.get('grow'));
  const before = lst(g).size;
  fa('-n', '-o', '0', '-l', '2M', g);
  assert.equal(lst(g).size, before, 'fallocate --keep-size keeps the size');
  assert.deepEqual(consistent(g, 'after --keep-size'), expected.get('grow'));

  const p = join(m, 'punch');
  writeFileSync(p, Buffer.alloc(3 * 4096, 'x'));
  const punched = Buffer.alloc(3 * 4096, 'x');
  if (fa('-p', '-o', '4096', '-l', '4096', p)) punched.fill(0, 4096, 8192);
  expected.set('punch', punched);
  assert.deepEqual(consistent(p, 'punch hole'), punched, 'the hole reads as zeros, the rest is untouched');

  // Ordinary writes still work on top, and everything holds after chunking and a remount.
  const fd = openSync(f, 'r+');
  writeSync(fd, 'abc', 0);
  closeSync(fd);
  const nf = Buffer.from(expected.get('new')!);
  if (nf.length >= 3) nf.write('abc', 0);
  expected.set('new', nf.length >= 3 ? nf : Buffer.from('abc'));
  afterRemount.push(['fallocate: every file as it was', () => {
    for (const [n, want] of expected) assert.deepEqual(consistent(join(m, n), `${n} after remount`), want, `${n} after remount`);
  }]);
});

// ---- one remount for all of the above ----

test('everything above survives chunking and one unmount + mount', { timeout: 60_000 }, async (t) => {
  await h.settle();
  h.unmount();
  h.mount();
  for (const [name, check] of afterRemount) await t.test(name, check);
  assert.match(h.ok('verify'), /no problems/);
});
