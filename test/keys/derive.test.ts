import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sign, verify } from 'node:crypto';
import { ed25519FromSeed, groupKeys, hostKeys, hostMaster } from '../../src/keys/derive.js';

test('host keys are deterministic and depend on hostname and passphrase', async () => {
  const a = hostKeys(await hostMaster('alpha', 'correct horse'));
  const b = hostKeys(await hostMaster('alpha', 'correct horse'));
  const c = hostKeys(await hostMaster('beta', 'correct horse'));
  const d = hostKeys(await hostMaster('alpha', 'correct horsf'));
  assert.deepEqual(a, b);
  assert.notEqual(a.locator, c.locator);
  assert.notEqual(a.verifier, d.verifier);
  const labels = [a.identitySeed, a.rootKey, a.metaKey, a.soloConvergence].map((k) => Buffer.from(k).toString('hex'));
  assert.equal(new Set(labels).size, labels.length, 'every label gives a distinct key');
  assert.match(a.locator, /^[0-9a-f]{64}$/);
});

test('group keys are deterministic and separate', async () => {
  const g1 = await groupKeys('friends', 'pw');
  const g2 = await groupKeys('friends', 'pw');
  const g3 = await groupKeys('friends2', 'pw');
  assert.deepEqual(g1, g2);
  assert.notDeepEqual(g1.convergence, g3.convergence);
  assert.notDeepEqual(g1.pnetKey, g1.convergence);
});

test('identity seed gives a working Ed25519 key, same on every derivation', async () => {
  const k = hostKeys(await hostMaster('alpha', 'pw'));
  const id1 = ed25519FromSeed(k.identitySeed);
  const id2 = ed25519FromSeed(k.identitySeed);
  assert.deepEqual(id1.publicRaw, id2.publicRaw);
  const msg = Buffer.from('drop these chunks');
  const sig = sign(null, msg, id1.privateKey);
  assert.ok(verify(null, msg, id2.publicKey, sig));
});

test('empty inputs are refused', async () => {
  await assert.rejects(hostMaster('', 'pw'), /hostname/);
  await assert.rejects(hostMaster('h', ''), /passphrase/);
  await assert.rejects(groupKeys('g', ''), /password/);
});
