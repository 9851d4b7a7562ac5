// Permissions are tested as an ordinary user meets them: a daemon and its callers running
// as `nobody`, driven through a shell script whose every step prints its result. The bits a
// write clears are the daemon's to clear (native/fuse/killpriv.c), and only a caller without
// CAP_FSETID has them cleared: root could not see it. A mount without allow_other admits only its owner, so the daemon must
// be nobody's own; /dev/fuse is opened to it for the test and closed again after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { SAFE_BIN } from './mounted.js';

const SCRIPT = `
set -u
safe=$1; mnt=$2
try() { if "$@" >/dev/null 2>&1; then echo "ok"; else echo "denied"; fi; }
cd "$mnt"
echo hi > f
chmod 000 f;              echo "read 000: $(try cat f)"
chmod 200 f;              echo "read 200: $(try cat f)"; echo "write 200: $(try sh -c 'echo x >> f')"
chmod 400 f;              echo "write 400: $(try sh -c 'echo x >> f')"; echo "truncate 400: $(try truncate -s 0 f)"
chmod 600 f;              echo "read 600: $(try cat f)"
echo "chown to root: $(try chown 0 f)"
echo "touch -d by owner: $(try touch -d 2001-01-01 f)"
mkdir d; chmod 500 d;     echo "create in 500 dir: $(try touch d/x)"; echo "list 500 dir: $(try ls d)"
chmod 300 d;              echo "list 300 dir: $(try ls d)"; echo "create in 300 dir: $(try touch d/y)"
chmod 600 d;              echo "enter 600 dir: $(try cd d)"; echo "stat in 600 dir: $(try stat d/y)"
chmod 700 d
echo "access R on 200: $(chmod 200 f; try test -r f)"
echo "exec 644 script: $(printf '#!/bin/sh\\ntrue\\n' > s; chmod 644 s; try ./s)"
echo "exec 755 script: $(chmod 755 s; try ./s)"
echo hi > k; chmod 6775 k; echo x >> k; echo "write clears setuid and setgid: $(stat -c %a k)"
chmod 6775 k; truncate -s 1 k;          echo "truncate clears setuid and setgid: $(stat -c %a k)"
chmod 6775 k; : > k;                     echo "O_TRUNC open clears setuid and setgid: $(stat -c %a k)"
chmod 6745 k; echo x >> k;               echo "write keeps setgid without group exec: $(stat -c %a k)"
`;

test('permissions for an ordinary user: files, directories, chown, times, access, exec, setuid and setgid cleared by writes', { timeout: 120_000 }, (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run a daemon as nobody');
  const root = tempDir('safe-perm-');
  chmodSync(root, 0o755);
  const home = join(root, 'home');
  const mnt = join(root, 'mnt');
  mkdirSync(mnt);
  chownSync(root, 65534, 65534);
  chownSync(mnt, 65534, 65534);
  const fuseMode = statSync('/dev/fuse').mode & 0o777;
  chmodSync('/dev/fuse', 0o666);
  const env = { PATH: process.env.PATH, HOME: root, SAFE_HOME: home, SAFE_PASSPHRASE: 'pw' };
  const asNobody = (...args: string[]) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...args], { env, encoding: 'utf8', cwd: root });
  try {
    const init = asNobody(SAFE_BIN, 'init', '--host', 'perm', '--mount', mnt);
    assert.equal(init.status, 0, init.stderr);
    const mount = asNobody(SAFE_BIN, 'mount');
    assert.equal(mount.status, 0, mount.stderr);
    try {
      const r = asNobody('bash', '-c', SCRIPT, 'perm', SAFE_BIN, mnt);
      assert.equal(r.status, 0, r.stderr);
      const seen = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(': ') as [string, string]));
      assert.deepEqual(seen, {
        'read 000': 'denied',
        'read 200': 'denied',
        'write 200': 'ok',
        'write 400': 'denied',
        'truncate 400': 'denied',
        'read 600': 'ok',
        'chown to root': 'denied',
        'touch -d by owner': 'ok',
        'create in 500 dir': 'denied',
        'list 500 dir': 'ok',
        'list 300 dir': 'denied',
        'create in 300 dir': 'ok',
        'enter 600 dir': 'denied',
        'stat in 600 dir': 'denied',
        'access R on 200': 'denied',
        'exec 644 script': 'denied',
        'exec 755 script': 'ok',
        // As on ext4, by the same user: the bits go for a caller without CAP_FSETID.
        'write clears setuid and setgid': '775',
        'truncate clears setuid and setgid': '775',
        'O_TRUNC open clears setuid and setgid': '775',
        'write keeps setgid without group exec': '2745',
      });
    } finally {
      asNobody(SAFE_BIN, 'unmount');
      spawnSync('fusermount3', ['-uz', mnt]);
    }
  } finally {
    chmodSync('/dev/fuse', fuseMode);
  }
});
