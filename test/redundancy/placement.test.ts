import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSilent, networkCaps, pickHolders, vacancies } from '../../src/redundancy/placement.js';
import { parseRedundancy } from '../../src/redundancy/scheme.js';

type M = { peer: string; net: string | null };
const m = (peer: string, net: string | null): M => ({ peer, net });
const pick = (ranked: M[], count: number, placed: (string | null)[], scheme: string): string[] =>
  pickHolders(ranked, count, (c) => c.net, placed, networkCaps(parseRedundancy(scheme))).map((c) => c.peer);

test('copies:2 keeps the best-ranked pair unless both would sit on one network', () => {
  assert.deepEqual(pick([m('a', 'x'), m('b', 'y'), m('c', 'z')], 2, [], 'copies:2'), ['a', 'b']);
  // a and a2 share network x: the second copy goes elsewhere, the best elsewhere.
  assert.deepEqual(pick([m('a', 'x'), m('a2', 'x'), m('b', 'y'), m('c', 'z')], 2, [], 'copies:2'), ['a', 'b']);
  // Nowhere else to go: the best of the rest ("where possible").
  assert.deepEqual(pick([m('a', 'x'), m('a2', 'x')], 2, [], 'copies:2'), ['a', 'a2']);
  // A replacement respects the holder already placed.
  assert.deepEqual(pick([m('a2', 'x'), m('b', 'y')], 1, ['x'], 'copies:2'), ['b']);
  // An unknown network is under no cap.
  assert.deepEqual(pick([m('a', null), m('b', null)], 2, [null], 'copies:2'), ['a', 'b']);
});

test('rs:4+2 spreads its shards over as many networks as there are, at most two on one where the group allows', () => {
  // Four networks for six shards: one on each first, then a second on the best-ranked two.
  const ranked = ['x', 'x', 'x', 'y', 'y', 'y', 'z', 'w'].map((net, i) => m(`p${i}`, net));
  assert.deepEqual(pick(ranked, 6, [], 'rs:4+2'), ['p0', 'p3', 'p6', 'p7', 'p1', 'p4']);
  // Six networks: one shard each, whatever the ranking says.
  const wide = ['x', 'x', 'y', 'y', 'z', 'w', 'v', 'u'].map((net, i) => m(`q${i}`, net));
  assert.deepEqual(pick(wide, 6, [], 'rs:4+2'), ['q0', 'q2', 'q4', 'q5', 'q6', 'q7']);
  // Two networks only: two on each is all the cap allows, then the best of the rest.
  const narrow = ['x', 'x', 'x', 'x', 'y', 'y', 'y'].map((net, i) => m(`r${i}`, net));
  assert.deepEqual(pick(narrow, 6, [], 'rs:4+2'), ['r0', 'r4', 'r1', 'r5', 'r2', 'r3']);
  assert.deepEqual(networkCaps(parseRedundancy('rs:10+4')), [1, 4]);
  assert.deepEqual(networkCaps(parseRedundancy('copies:3')), [1, 2]);
});

test('repair waits for the threshold, then restores every shard at once', () => {
  const rs = parseRedundancy('rs:4+2');
  assert.equal(vacancies(rs, 6), 0);
  assert.equal(vacancies(rs, 5), 1, 'default threshold m: the first loss is repaired');
  assert.equal(vacancies(rs, 5, 1), 0, 'threshold 1: five healthy are enough');
  assert.equal(vacancies(rs, 4, 1), 2, 'below k + 1: both lost shards are rebuilt');
  assert.equal(vacancies(rs, 0), 6);
  const copies = parseRedundancy('copies:2');
  assert.deepEqual([2, 1, 0].map((h) => vacancies(copies, h)), [0, 1, 2]);
});

test('a holder is silent only after failing for the whole silence period', () => {
  const day = 86400_000;
  const now = 100 * day;
  assert.equal(isSilent({ chosen: 0, lastOk: now - 4 * day, fails: 3 }, now, 3 * day), true);
  assert.equal(isSilent({ chosen: 0, lastOk: now - 2 * day, fails: 3 }, now, 3 * day), false);
  assert.equal(isSilent({ chosen: 0, lastOk: now - 4 * day, fails: 0 }, now, 3 * day), false, 'not tried since: not silent');
  assert.equal(isSilent({ chosen: now - 4 * day, lastOk: null, fails: 1 }, now, 3 * day), true, 'never reached since chosen');
});
