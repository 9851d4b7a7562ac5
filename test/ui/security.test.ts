// What the dashboard's server answers to requests it must refuse: no token, a wrong one, a page
// on another site (Origin), another host name (DNS rebinding), paths that leave their view
// (.., a symlink on the way, a symlink asked for as a file), and a restore over something
// that exists. One real daemon; the server is the one `safe ui` starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { makeHost } from '../fs/mounted.js';
import { tempDir } from '../helpers.js';

interface Answer {
  status: number;
  body: string;
}

/** A raw request (fetch would not let a test set Host). */
function ask(base: URL, path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: base.port, path, method: o.method ?? 'GET', headers: { host: base.host, ...o.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

test('the dashboard refuses what it must: tokens, origins, hosts, paths out of their view', { timeout: 120_000 }, async () => {
  const h = makeHost();
  h.mount();
  mkdirSync(join(h.mnt, 'docs'));
  writeFileSync(join(h.mnt, 'docs', 'plan.txt'), 'the plan\n');
  symlinkSync('/etc', join(h.mnt, 'etc-link'));
  symlinkSync('/etc/passwd', join(h.mnt, 'passwd-link'));
  await h.settle();
  const snap = h.ok('snapshot').trim();
  const url = new URL((JSON.parse(h.ok('ui', '--no-open', '--json')) as { url: string }).url);
  assert.equal(url.hostname, '127.0.0.1');
  const token = url.searchParams.get('token')!;
  const auth = { 'x-safe-token': token };
  const origin = `http://127.0.0.1:${url.port}`;

  // Nothing without the token, not even the page or its script.
  for (const path of ['/', '/app.js', '/api/state', `/api/file?snapshot=${snap}&path=docs/plan.txt`]) {
    assert.equal((await ask(url, path)).status, 403, path);
    assert.equal((await ask(url, path, { headers: { 'x-safe-token': `${token.slice(1)}x` } })).status, 403, `${path}, wrong token`);
  }
  assert.equal((await ask(url, `/?token=${token}`)).status, 200);
  assert.match((await ask(url, `/?token=${token}`)).body, /src="app\.js\?token=[\w-]+"/);
  assert.equal((await ask(url, `/app.js?token=${token}`)).status, 200);
  // A name that resolves to 127.0.0.1 is not this server's (DNS rebinding).
  assert.equal((await ask(url, '/api/state', { headers: { ...auth, host: `evil.example:${url.port}` } })).status, 403);
  // Changes only from its own page.
  assert.equal((await ask(url, '/api/snapshot', { method: 'POST', headers: { ...auth, origin: 'http://evil.example' } })).status, 403);
  assert.equal((await ask(url, '/api/snapshot', { method: 'POST', headers: auth })).status, 403, 'no Origin');
  const taken = await ask(url, '/api/snapshot', { method: 'POST', headers: { ...auth, origin } });
  assert.equal(taken.status, 200, taken.body);
  assert.equal((JSON.parse(h.ok('snapshots', '--json')) as unknown[]).length, 2);

  // Reads stay inside the view they name, and follow no symlink.
  const get = (path: string): Promise<Answer> => ask(url, path, { headers: auth });
  assert.equal((await get(`/api/file?snapshot=${snap}&path=docs/plan.txt`)).body, 'the plan\n');
  const outside = await get(`/api/file?snapshot=${snap}&path=../../../../etc/passwd`);
  assert.equal(outside.status, 404, 'a .. path is taken inside the snapshot, where there is no etc/passwd');
  for (const [path, status] of [
    [`/api/ls?snapshot=live&path=etc-link`, 400],
    [`/api/file?snapshot=live&path=etc-link/passwd`, 400],
    [`/api/file?snapshot=${snap}&path=passwd-link`, 400],
    [`/api/ls?snapshot=..&path=`, 400],
    [`/api/ls?snapshot=live&path=.snapshots`, 400],
    [`/api/file?snapshot=live&path=docs%00/plan.txt`, 400],
  ] as const) {
    const r = await get(path);
    assert.equal(r.status, status, `${path}: ${r.body}`);
    assert.doesNotMatch(r.body, /root:/, 'nothing of /etc/passwd');
  }

  // A restore never writes over what exists; to a new place it copies the snapshot's bytes.
  const dir = tempDir('safe-ui-sec-');
  const post = (body: unknown): Promise<Answer> => ask(url, '/api/restore', { method: 'POST', headers: { ...auth, origin, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  writeFileSync(join(dir, 'taken'), 'mine');
  const state = async (): Promise<{ restores: { target: string; done: boolean; error: string | null }[] }> => JSON.parse((await get('/api/state')).body);
  const settled = async (target: string): Promise<{ done: boolean; error: string | null }> => {
    for (let i = 0; i < 100; i++) {
      const r = (await state()).restores.find((x) => x.target === target);
      if (r?.done) return r;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`restore to ${target} did not finish`);
  };
  assert.equal((await post({ snapshot: snap, path: 'docs', target: join(dir, 'taken') })).status, 200);
  assert.match((await settled(join(dir, 'taken'))).error ?? '', /exists/);
  assert.equal(readFileSync(join(dir, 'taken'), 'utf8'), 'mine');
  assert.equal((await post({ snapshot: snap, path: 'docs', target: 'relative/place' })).status, 200);
  assert.match((await settled('relative/place')).error ?? '', /absolute/);
  assert.equal((await post({ snapshot: snap, path: 'docs' })).status, 400);
  assert.equal((await post({ snapshot: snap, path: 'docs', target: join(dir, 'docs') })).status, 200);
  assert.equal((await settled(join(dir, 'docs'))).error, null);
  assert.equal(readFileSync(join(dir, 'docs', 'plan.txt'), 'utf8'), 'the plan\n');

  // The dashboard leaves with its daemon.
  h.unmount();
  await new Promise((r) => setTimeout(r, 1500));
  await assert.rejects(get('/api/state'), /ECONNREFUSED/);
});
