// mDNS discovery: two hosts with no --peer find each other on the LAN. The LAN is a network
// namespace of our own with only a multicast-enabled loopback, so no packet leaves the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SAFE_BIN } from '../fs/mounted.js';
import { GROUP } from './group.js';

const ns = `safe-mdns-${process.pid}`;
const sh = (...args: string[]) => spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });

test('two hosts in one group find each other by mDNS, with no address given', { timeout: 120_000 }, async (t) => {
  if (sh('ip', 'netns', 'add', ns).status !== 0) return t.skip('cannot create a network namespace here (needs root and iproute2)');
  const root = mkdtempSync(join(tmpdir(), 'safe-mdns-'));
  const homes: Record<string, string> = {};
  const run = (who: string, ...args: string[]) =>
    spawnSync('ip', ['netns', 'exec', ns, SAFE_BIN, ...args], {
      encoding: 'utf8',
      env: { ...process.env, SAFE_HOME: homes[who], SAFE_PASSPHRASE: 'p', SAFE_GROUP_PASSWORD: GROUP.password, SAFE_CHUNK_DELAY_MS: '50' },
    });
  try {
    assert.equal(sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up', 'multicast', 'on').status, 0);
    assert.equal(sh('ip', 'netns', 'exec', ns, 'ip', 'route', 'add', '224.0.0.0/4', 'dev', 'lo').status, 0);
    for (const [who, port] of [['a', 4811], ['b', 4812]] as const) {
      homes[who] = join(root, who, 'home');
      const mnt = join(root, who, 'mnt');
      mkdirSync(mnt, { recursive: true });
      const init = run(who, 'init', '--host', `mdns-${who}`, '--mount', mnt, '--group', GROUP.name, '--offer', '1G', '--listen', `/ip4/127.0.0.1/tcp/${port}`);
      assert.equal(init.status, 0, init.stderr);
      const m = run(who, 'mount');
      assert.equal(m.status, 0, m.stderr);
    }
    const bId = (JSON.parse(run('b', 'status', '--json').stdout) as { daemon: { peers: { peerId: string } } }).daemon.peers.peerId;
    let seen: string[] = [];
    for (let i = 0; i < 40 && !seen.includes(bId); i++) {
      await new Promise((r) => setTimeout(r, 500));
      const p = run('a', 'peers', '--json');
      assert.equal(p.status, 0, p.stderr);
      seen = (JSON.parse(p.stdout) as { members: { peer: string; coverage: number | null }[] }).members.filter((m) => m.coverage !== null).map((m) => m.peer);
    }
    assert.ok(seen.includes(bId), `A found and probed B by mDNS: ${seen.join(', ')}`);
  } finally {
    for (const who of Object.keys(homes)) run(who, 'unmount');
    sh('ip', 'netns', 'delete', ns);
    rmSync(root, { recursive: true, force: true });
  }
});
