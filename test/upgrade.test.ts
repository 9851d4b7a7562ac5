// Every release's store fixture (test/fixtures/stores/v*) opens with today's code: the host
// verifies, mounts and shows every snapshot as it was; its buddy, upgraded too, serves a
// recovery of the host onto a blank machine from the metadata that release shipped. Then the
// upgraded host ships once: its buddy swaps the old per-file objects for a chain of segments,
// and a second recovery reads that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeHost, type Host } from './fs/mounted.js';
import { freePort, syncWait } from './peers/group.js';
import { FIXTURE_PASSPHRASE, type FixtureManifest } from './fixtures/store-fixture.js';

const STORES = new URL('../../test/fixtures/stores/', import.meta.url).pathname;

/** A host whose SAFE_HOME is the fixture's, re-addressed to this run's mount point and port. */
async function fromFixture(dir: string, name: string, peers: string[]): Promise<Host & { addr: string }> {
  const h = makeHost({ init: false, env: { SAFE_PASSPHRASE: FIXTURE_PASSPHRASE } });
  mkdirSync(h.home, { recursive: true });
  const r = spawnSync('tar', ['-xzf', join(dir, `${name}.tar.gz`), '-C', h.home]);
  assert.equal(r.status, 0, String(r.stderr));
  const addr = `/ip4/127.0.0.1/tcp/${await freePort()}`;
  const file = join(h.home, 'config.json');
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...cfg, mount: h.mnt, listen: [addr], peers, mdns: false }));
  return { ...h, addr };
}

function checkTree(root: string, expected: FixtureManifest['snapshots'][string]): void {
  const inodes = new Map<string, number>();
  for (const [rel, e] of Object.entries(expected)) {
    const p = join(root, rel);
    const st = lstatSync(p);
    assert.equal(st.mode, e.mode, `${rel}: mode`);
    if (e.sha256) assert.equal(createHash('sha256').update(readFileSync(p)).digest('hex'), e.sha256, `${rel}: content`);
    if (e.target) assert.equal(readlinkSync(p), e.target, `${rel}: link target`);
    inodes.set(rel, st.ino);
    if (e.linkOf) assert.equal(st.ino, inodes.get(e.linkOf), `${rel}: a hard link of ${e.linkOf}`);
  }
  assert.deepEqual(readdirSync(root).filter((n) => n !== '.snapshots').sort(), Object.keys(expected).filter((k) => !k.includes('/')).sort());
}

const releases = existsSync(STORES) ? readdirSync(STORES).filter((d) => d.startsWith('v')) : [];
assert.ok(releases.length > 0, 'no store fixtures found');

for (const release of releases) {
  test(`a store written by release ${release} opens, verifies, mounts and recovers`, { timeout: 300_000 }, async () => {
    const dir = join(STORES, release);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as FixtureManifest;
    const beta = await fromFixture(dir, 'beta', []);
    const alpha = await fromFixture(dir, 'alpha', [beta.addr]);
    const groupEnv = { SAFE_GROUP_PASSWORD: manifest.group.password };

    const v = JSON.parse(alpha.ok('verify', '--json')) as { ok: boolean; chunks: number };
    assert.ok(v.ok && v.chunks > 10, JSON.stringify(v));
    alpha.mount();
    const names = Object.keys(manifest.snapshots);
    assert.deepEqual(readdirSync(join(alpha.mnt, '.snapshots')).filter((n) => n !== 'latest').sort(), names.sort());
    for (const name of names) checkTree(join(alpha.mnt, '.snapshots', name), manifest.snapshots[name]!);
    checkTree(alpha.mnt, manifest.snapshots[names.at(-1)!]!);
    alpha.unmount();

    beta.mount();
    const blank = makeHost({ init: false, env: { ...groupEnv, SAFE_PASSPHRASE: FIXTURE_PASSPHRASE } });
    const listen = `/ip4/127.0.0.1/tcp/${await freePort()}`;
    blank.ok('recover', '--host', 'alpha', '--mount', blank.mnt, '--group', manifest.group.name, '--peer', beta.addr, '--listen', listen, '--no-mdns', '--json');
    for (const name of names) checkTree(join(blank.mnt, '.snapshots', name), manifest.snapshots[name]!);
    blank.unmount();

    alpha.mount();
    alpha.ok('snapshot');
    const shipped = syncWait(alpha).buddies[0]!;
    assert.ok(shipped.ok && shipped.report, JSON.stringify(shipped));
    assert.ok(shipped.report.objectsSent >= 1 && shipped.report.deletes > 10, `a chain sent and the old objects dropped: ${JSON.stringify(shipped.report)}`);
    const held = (JSON.parse(beta.ok('peers', '--json')) as { self: { holding: { peer: string; objects: number }[] } }).self.holding;
    assert.deepEqual(held.map((o) => o.objects), [shipped.report.objectsSent], 'the buddy holds the chain and nothing else');
    alpha.unmount();
    const again = makeHost({ init: false, env: { ...groupEnv, SAFE_PASSPHRASE: FIXTURE_PASSPHRASE } });
    const r = JSON.parse(again.ok('recover', '--host', 'alpha', '--mount', again.mnt, '--group', manifest.group.name, '--peer', beta.addr, '--listen', `/ip4/127.0.0.1/tcp/${await freePort()}`, '--no-mdns', '--json')) as { objects: number; snapshots: number };
    assert.equal(r.objects, shipped.report.objectsSent);
    assert.equal(r.snapshots, names.length + 1);
    for (const name of names) checkTree(join(again.mnt, '.snapshots', name), manifest.snapshots[name]!);
    checkTree(again.mnt, manifest.snapshots[names.at(-1)!]!);
    again.unmount();
    beta.unmount();
  });
}
