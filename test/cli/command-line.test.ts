// The command line as a person meets it: --help on any command only helps, words and options a
// command does not take are refused in one line, a closed pipe ends it quietly, labels and
// `latest` name snapshots, and bash completes commands and options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, SAFE_BIN } from '../fs/mounted.js';

test('--help helps and does nothing else; bad words and options are one line and exit 2', { timeout: 120_000 }, () => {
  const h = makeHost();
  h.mount();
  const snaps = (): number => (JSON.parse(h.ok('snapshots', '--json')) as unknown[]).length;
  for (const cmd of ['snapshot', 'unmount', 'recover', 'forget', 'sync', 'init', 'mount']) {
    const r = h.safe(cmd, '--help');
    assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: safe ${cmd} \\[options\\]`), cmd);
    assert.match(r.stdout, /--json/, `${cmd} --help lists --json`);
  }
  assert.equal(snaps(), 0, 'snapshot --help took no snapshot');
  assert.equal(h.status().mounted, true, 'unmount --help left the mount');
  assert.ok(existsSync(join(h.home, 'config.json')), 'recover --help replaced nothing');
  const top = h.safe('help');
  assert.equal(top.status, 0);
  for (const cmd of ['init', 'mount', 'snapshot', 'restore', 'recover', 'verify', 'completion']) assert.match(top.stdout, new RegExp(`\\n  ${cmd} `), cmd);
  assert.equal(h.safe('help', 'diff').stdout, h.safe('diff', '--help').stdout);

  const refused: [string[], RegExp][] = [
    [['status', 'extra'], /^safe: too many arguments for 'status'\. Expected 0 arguments but got 1\. \(see safe status --help\)\n$/],
    [['snapshot', '--lable', 'x'], /^safe: unknown option '--lable' \(Did you mean --label\?\) \(see safe snapshot --help\)\n$/],
    [['diff', 'latest'], /^safe: missing required argument 'b' \(see safe diff --help\)\n$/],
    [['snapshts'], /^safe: unknown command 'snapshts' \(Did you mean snapshots\?\) \(see safe --help\)\n$/],
    [['restore', 'a', 'b', '--target', '/tmp/x'], /^safe: too many arguments for 'restore'/],
  ];
  for (const [args, line] of refused) {
    const r = h.safe(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, line);
  }
  assert.equal(snaps(), 0, 'nothing refused ran');
  const bare = h.safe();
  assert.equal(bare.status, 2);
  assert.match(bare.stderr, /^Usage: safe <command>/);
});

test('a closed pipe ends safe quietly; labels and latest name snapshots; bash completes', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  h.ok('snapshot', '--label', 'before');
  // More output than a pipe holds, so the writer meets the closed end.
  mkdirSync(join(h.mnt, 'many'));
  for (let i = 0; i < 3000; i++) writeFileSync(join(h.mnt, 'many', `a-file-with-a-long-name-${String(i).padStart(5, '0')}.txt`), `${i}\n`);
  await h.settle();
  h.ok('snapshot', '--label', 'after');

  const piped = spawnSync('bash', ['-c', `"${SAFE_BIN}" diff before latest | head -1; echo "status \${PIPESTATUS[0]}" >&2`], { env: h.env, encoding: 'utf8' });
  assert.equal(piped.stdout, '+ /many\n');
  assert.equal(piped.stderr, 'status 141\n', 'no stack trace, no message, the status of a closed pipe');

  // A label alone names its newest snapshot, as `latest` names the newest of all.
  const byLabel = JSON.parse(h.ok('diff', 'before', 'after', '--json')) as { from: string; to: string; added: string[] };
  const names = readdirSync(join(h.mnt, '.snapshots')).sort();
  assert.deepEqual([byLabel.from, byLabel.to], names);
  assert.equal(byLabel.added.length, 3001);
  assert.deepEqual(JSON.parse(h.ok('diff', 'after', 'latest', '--json')), { from: names[1], to: names[1], added: [], removed: [], modified: [] });
  const target = join(h.home, '..', 'restored');
  h.ok('restore', 'after:many/a-file-with-a-long-name-00007.txt', '--target', target);
  assert.deepEqual(readdirSync(target), ['a-file-with-a-long-name-00007.txt']);

  // While mounted, status says what the schedule does next (tests' hosts: 29 February only).
  const next = (JSON.parse(h.ok('status', '--json')) as { daemon: { next: { snapshot: number; ship: number | null } } }).daemon.next;
  assert.equal(new Date(next.snapshot).getDate(), 29);
  assert.equal(next.ship, null, 'a host in no group ships nothing');
  assert.match(h.ok('status'), /\nnext: snapshot [^;\n]+\n/);

  // Status counts what SAFE_HOME takes on disk, as du does, beyond the sealed packs.
  h.unmount();
  const st = JSON.parse(h.ok('status', '--json')) as { store: { packBytes: number }; disk: { home: number; store: number; staging: number } };
  const du = Number(spawnSync('du', ['-s', '-B1', h.home], { encoding: 'utf8' }).stdout.split('\t')[0]);
  assert.ok(Math.abs(st.disk.home - du) <= 64 << 10, `status ${st.disk.home}, du ${du}`);
  assert.ok(st.disk.store > st.store.packBytes, `the index counts too: ${JSON.stringify(st)}`);
  assert.match(h.ok('status'), /\non disk [\d.]+ \w+ in all: store /);

  const complete = (words: string[]): string[] => {
    const script = `eval "$("${SAFE_BIN}" completion)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _safe; echo "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', script], { env: h.env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split(/\s+/).filter(Boolean);
  };
  assert.deepEqual(complete(['safe', 'snap']), ['snapshot', 'snapshots']);
  assert.deepEqual(complete(['safe', 'sync', '--']), ['--json', '--wait', '--now', '--help']);
  assert.deepEqual(complete(['safe', 'recover', '--no-']), ['--no-mdns', '--no-mount', '--no-wait']);
});

test('restore into the live tree: a fresh name, or over the path with --overwrite after a snapshot keeps it', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  const m = h.mnt;
  writeFileSync(join(m, 'f.txt'), 'version 1\n');
  mkdirSync(join(m, 'd'));
  writeFileSync(join(m, 'd', 'x'), 'x 1\n');
  writeFileSync(join(m, 'd', 'y'), 'y 1\n');
  await h.settle();
  h.ok('snapshot', '--label', 'v1');
  writeFileSync(join(m, 'f.txt'), 'version 2\n');
  writeFileSync(join(m, 'd', 'x'), 'x 2\n');
  writeFileSync(join(m, 'd', 'z'), 'z 2\n');
  await h.settle();

  const taken = h.safe('restore', 'v1:f.txt', '--target', m);
  assert.equal(taken.status, 1);
  assert.match(taken.stderr, /f\.txt already exists: nothing was overwritten \(--overwrite replaces it, after a snapshot keeps it\)/);
  assert.equal(readFileSync(join(m, 'f.txt'), 'utf8'), 'version 2\n');

  h.ok('restore', 'v1:f.txt', '--target', join(m, 'old'));
  assert.equal(readFileSync(join(m, 'old', 'f.txt'), 'utf8'), 'version 1\n');

  const r = JSON.parse(h.ok('restore', 'v1:d', '--target', m, '--overwrite', '--json')) as { replaced: boolean; snapshotBefore: string; files: number };
  assert.ok(r.replaced && r.files === 2, JSON.stringify(r));
  assert.deepEqual(readdirSync(join(m, 'd')).sort(), ['x', 'y']);
  assert.equal(readFileSync(join(m, 'd', 'x'), 'utf8'), 'x 1\n');
  assert.deepEqual(readdirSync(m).sort(), ['.snapshots', 'd', 'f.txt', 'old'], 'nothing left beside it');
  // What was replaced is in the snapshot taken first.
  assert.match(r.snapshotBefore, /Z-before-restore$/);
  assert.deepEqual(readdirSync(join(m, '.snapshots', r.snapshotBefore, 'd')).sort(), ['x', 'y', 'z']);
  assert.equal(readFileSync(join(m, '.snapshots', r.snapshotBefore, 'd', 'x'), 'utf8'), 'x 2\n');
  // Restored files are files like any other: chunked, and in the next snapshot.
  await h.settle();
  const next = h.ok('snapshot').trim();
  assert.equal(readFileSync(join(m, '.snapshots', next, 'd', 'x'), 'utf8'), 'x 1\n');

  const whole = h.safe('restore', 'v1', '--target', m, '--overwrite');
  assert.equal(whole.status, 1);
  assert.match(whole.stderr, /^safe: a whole snapshot cannot replace the live tree/);
  h.unmount();
  const down = h.safe('restore', 'v1:f.txt', '--target', join(m, 'again'));
  assert.equal(down.status, 1);
  assert.match(down.stderr, /inside the mount .* which is not mounted: run safe mount first/);
});

test('an unattended mount takes the passphrase from a file only its owner can read', { timeout: 120_000 }, () => {
  const h = makeHost();
  const file = join(h.home, '..', 'pass');
  const noEnv = { ...h.env, SAFE_PASSPHRASE: undefined };
  const mount = (...args: string[]) => spawnSync(SAFE_BIN, ['mount', ...args], { env: noEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const oneLine = (r: ReturnType<typeof mount>, line: RegExp): void => {
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, line);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  };
  writeFileSync(file, 'test passphrase\n', { mode: 0o644 });
  chmodSync(file, 0o644);
  oneLine(mount('--password-file', file), /^safe: the password file .*pass is open to others \(mode 0644\): chmod 600 /);
  oneLine(mount('--password-file', join(h.home, 'nope')), /^safe: cannot read the password file .*nope: ENOENT/);
  chmodSync(file, 0o600);
  writeFileSync(file, 'not the passphrase\n');
  oneLine(mount('--password-file', file), /^safe: wrong passphrase for host 'testhost'/);
  assert.equal(h.status().mounted, false);
  writeFileSync(file, 'test passphrase\n');
  const r = mount('--password-file', file);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(h.status().mounted, true);
});

test('safe logs: structured lines, filtered by level and component, followed with -f', { timeout: 120_000 }, async () => {
  const h = makeHost();
  // Followed from before the first mount: the lines come as the daemon writes them.
  const follow = spawn(SAFE_BIN, ['logs', '-f', '--component', 'daemon'], { env: h.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const seen: string[] = [];
  const mounted = new Promise<void>((resolve) => {
    createInterface({ input: follow.stdout! }).on('line', (l) => {
      seen.push(l);
      if (/ INFO  daemon: mounted /.test(l)) resolve();
    });
  });
  h.mount();
  await Promise.race([mounted, new Promise((_, reject) => setTimeout(() => reject(new Error(`not followed: ${seen.join('\n')}`)), 20_000))]);
  follow.kill('SIGINT');
  assert.equal(await new Promise((r) => follow.once('exit', r)), 0);
  h.ok('snapshot');
  h.unmount();

  const lines = h.ok('logs', '--json').trim().split('\n').map((l) => JSON.parse(l) as { time: string; level: string; component: string; msg: string });
  assert.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT/.test(l.time) && ['debug', 'info', 'warn', 'error'].includes(l.level) && l.component && l.msg), JSON.stringify(lines));
  assert.deepEqual(lines.filter((l) => l.component === 'daemon').map((l) => l.msg).filter((m) => /^(mounted|unmounting|stopped cleanly)/.test(m)), [`mounted ${h.mnt}`, 'unmounting', 'stopped cleanly']);
  assert.equal(h.ok('logs', '--level', 'warn'), '', 'nothing went wrong');
  assert.match(h.ok('logs', '-n', '1'), /^\S+Z INFO  daemon: stopped cleanly\n$/);
  const bad = h.safe('logs', '--level', 'loud');
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, "safe: --level takes debug, info, warn, error, not 'loud'\n");
});

test('a log past logMaxSize is rotated at mount: the old lines in daemon.log.1, safe logs reads both', { timeout: 60_000 }, () => {
  const h = makeHost();
  const cfg = join(h.home, 'config.json');
  writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, 'utf8')), logMaxSize: '64K' }));
  const old = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ level: 'info', time: '2026-11-30T10:00:00.000Z', component: 'daemon', msg: `old line ${i}` })).join('\n') + '\n';
  writeFileSync(join(h.home, 'daemon.log'), old);
  h.mount();
  h.unmount();
  assert.equal(readFileSync(join(h.home, 'daemon.log.1'), 'utf8'), old);
  const now = readFileSync(join(h.home, 'daemon.log'), 'utf8');
  assert.ok(now.length < 10_000 && !now.includes('old line') && now.includes('log rotated'), now);
  const msgs = h.ok('logs', '-n', '2000', '--json').trim().split('\n').map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.deepEqual(msgs.slice(0, 2), ['old line 0', 'old line 1']);
  assert.equal(msgs.at(-1), 'stopped cleanly');
});
