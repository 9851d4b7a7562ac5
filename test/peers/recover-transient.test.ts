// A recovery rides out its only reachable buddy going away for a while: the other buddy is
// stopped, and the one left is stopped too just as the recovered daemon starts fetching, then
// started again. `safe recover` waits for it and exits 0 with every chunk back. Real daemons on
// 127.0.0.1; the buddy serves slowly (an upload cap) so the outage lands before the fetch is
// done, and comes back without its cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededBytes } from '../helpers.js';
import { SAFE_BIN, setConfig } from '../fs/mounted.js';
import { GROUP, mountedMember, type Member } from './group.js';

interface Fetching {
  daemon: { peers: { fetching: boolean; backfill: { unreachable: string[]; chunksFetched: number } | null } } | null;
}

/** The recovering host's status, or null while there is none to read yet. */
function fetching(a: Member): Fetching['daemon'] {
  const r = a.safe('status', '--json');
  return r.status === 0 ? (JSON.parse(r.stdout) as Fetching).daemon : null;
}

async function until<T>(what: string, deadlineMs: number, probe: () => T | null | undefined | false): Promise<T> {
  for (const t0 = Date.now(); ; ) {
    const v = probe();
    if (v) return v;
    assert.ok(Date.now() - t0 < deadlineMs, `${what} within ${deadlineMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('recovery from the one buddy left, which drops out as the fetch starts and comes back, completes with exit 0', { timeout: 300_000 }, async () => {
  // C sends at most 1 MB/s: its first 4 MiB page of chunks takes 4 s, more than seeing the fetch
  // start and stopping C take on a loaded machine (the 16 MiB would take 17 s).
  const c = await mountedMember('buddy-c', { offer: '1G', initArgs: ['--max-upload', '1M'] });
  const d = await mountedMember('buddy-d', { offer: '1G', peers: [c.addr] });
  const a = await mountedMember('host-a', { offer: '200M', peers: [c.addr] });
  const data = seededBytes(16 << 20, 41);
  writeFileSync(join(a.mnt, 'data.bin'), data);
  writeFileSync(join(a.mnt, 'small.txt'), 'small\n');
  await a.settle();
  a.ok('snapshot');
  const sync = JSON.parse(a.ok('sync', '--wait', '--json')) as { buddies: { ok: boolean }[] };
  assert.equal(sync.buddies.filter((b) => b.ok).length, 2, JSON.stringify(sync));
  const cId = c.peerId();
  d.unmount();
  a.unmount();
  rmSync(a.home, { recursive: true, force: true });

  const recovering = spawn(SAFE_BIN, ['recover', '--host', 'host-a', '--mount', a.mnt, '--group', GROUP.name, '--peer', c.addr, '--listen', a.addr, '--no-mdns', '--json'], { env: a.env });
  let stdout = '';
  let stderr = '';
  recovering.stdout.on('data', (b: Buffer) => (stdout += b));
  recovering.stderr.on('data', (b: Buffer) => (stderr += b));
  const exited = new Promise<number | null>((res) => recovering.on('exit', (code) => res(code)));

  // The daemon is up and fetching: C goes away before it has served a page.
  await until('the recovered daemon fetching', 120_000, () => fetching(a)?.peers.fetching);
  c.unmount();
  const waiting = await until('the fetch waiting for C', 60_000, () => {
    const s = fetching(a);
    return s?.peers.backfill?.unreachable.includes(cId) && s;
  });
  assert.ok(waiting.peers.fetching, 'still fetching while C is away');
  setConfig(c, { maxUpload: undefined }); // back at full speed
  c.mount();

  const code = await exited;
  assert.equal(code, 0, `safe recover: ${stderr}${stdout}`);
  const rec = JSON.parse(stdout) as { missing: number; fetched: number };
  assert.equal(rec.missing, 0);
  assert.ok(rec.fetched > 600, `fetched ${rec.fetched} chunks`);
  assert.ok(readFileSync(join(a.mnt, 'data.bin')).equals(data), 'data.bin whole');
  assert.equal(readFileSync(join(a.mnt, 'small.txt'), 'utf8'), 'small\n');
  assert.match(a.ok('verify'), /no problems/);
});
