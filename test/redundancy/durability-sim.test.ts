// The durability simulator against answers worked out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simulate, type SimParams } from '../../scripts/durability/model.js';
import { parseRedundancy } from '../../src/redundancy/scheme.js';

const quiet: Omit<SimParams, 'scheme' | 'hosts' | 'seed'> = {
  days: 365, hostLossPerYear: 0, networkLossPerYear: 0, availability: [1, 1],
  dataBytes: 100e9, newBytesPerDay: 0, upBytesPerSec: 2e6, silenceHours: 24,
};

test('one copy, never repaired: a host stays recoverable exactly when its holder survived the year (1 - p)', () => {
  const hosts = 20_000;
  const p = 0.2;
  const r = simulate({ ...quiet, hosts, scheme: parseRedundancy('copies:1'), hostLossPerYear: p, silenceHours: Infinity, seed: 1 });
  const expected = hosts * (1 - p);
  // Holders are drawn at random, so one holds for Poisson(1) owners: E[load^2] = 2 doubles the
  // variance of a plain binomial.
  const sigma = Math.sqrt(2 * hosts * p * (1 - p));
  assert.ok(Math.abs(r.recoverable - expected) < 4 * sigma, `${r.recoverable} recoverable, expected ${expected} +- ${4 * sigma}`);
  assert.equal(r.repairBytes, 0, 'nothing is ever repaired');
  assert.equal(r.overhead, 1);
  // A host's own loss is survived only while its holder lives: about p * p / 2 lose data.
  const lostExpected = hosts * p * p / 2;
  assert.ok(Math.abs(r.lostData - lostExpected) < 4 * Math.sqrt(lostExpected), `${r.lostData} lost data, expected ${lostExpected}`);
});

test('rs:2+1 on four always-online hosts: one disk dies, it recovers, and each other host rebuilds one shard', () => {
  const r = simulate({ ...quiet, hosts: 4, scheme: parseRedundancy('rs:2+1'), script: [{ hour: 10, hosts: [0] }], seed: 3 });
  assert.equal(r.recovered, 1, 'host 0 had all three of its shards');
  assert.equal(r.lostData, 0);
  assert.equal(r.recoverable, 4);
  // Hosts 1-3 each held a shard on host 0, lost with its disk: each uploads one shard, 100 GB / 2.
  assert.equal(r.repairBytes, 3 * 50e9);
  assert.equal(r.worstShards, 3, 'every host is back to three intact shards');
});

test('rs:2+1 on four hosts: two disks die in the same hour; both recover from the two others, then the shards come back', () => {
  const r = simulate({ ...quiet, hosts: 4, scheme: parseRedundancy('rs:2+1'), script: [{ hour: 10, hosts: [1, 2] }], seed: 3 });
  // Host 1's shards are on 0, 2, 3: 2 died with it, 0 and 3 are enough (k = 2). Same for host 2.
  assert.equal(r.recovered, 2);
  assert.equal(r.lostData, 0);
  // Hosts 0 and 3 lost two shards each, hosts 1 and 2 one each (on each other): 6 shards of 50 GB.
  assert.equal(r.repairBytes, 6 * 50e9);
  assert.equal(r.worstShards, 3);
});

test('rs:2+1 on four hosts: three disks die at once and data is lost; the survivor still holds what it had', () => {
  const r = simulate({ ...quiet, hosts: 4, scheme: parseRedundancy('rs:2+1'), script: [{ hour: 10, hosts: [1, 2, 3] }], seed: 3 });
  assert.equal(r.lostData, 3, 'each of them had one intact shard left (on host 0), two were needed');
  assert.equal(r.recovered, 0);
  assert.equal(r.recoverable, 1);
});
