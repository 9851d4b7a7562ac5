import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatRedundancy, membersNeeded, parseRedundancy, RedundancyError, storageOverhead } from '../../src/redundancy/scheme.js';

test('copies:N and rs:K+M parse, print back the same, and say what they cost', () => {
  for (const [text, members, overhead] of [['copies:1', 1, 1], ['copies:2', 2, 2], ['copies:3', 3, 3], ['rs:4+2', 6, 1.5], ['rs:6+3', 9, 1.5], ['rs:10+4', 14, 1.4], ['rs:24+6', 30, 1.25]] as const) {
    const r = parseRedundancy(text);
    assert.equal(formatRedundancy(r), text);
    assert.equal(membersNeeded(r), members, text);
    assert.equal(storageOverhead(r), overhead, text);
  }
});

test('anything else is refused with a line that says what is accepted', () => {
  for (const [text, why] of [
    ['copies:0', /copies must be 1\.\.30/],
    ['copies:31', /copies must be 1\.\.30/],
    ['rs:25+2', /K \(data shards\) must be 1\.\.24/],
    ['rs:0+2', /K \(data shards\) must be 1\.\.24/],
    ['rs:4+7', /M \(parity shards\) must be 1\.\.6/],
    ['rs:4+0', /M \(parity shards\) must be 1\.\.6/],
    ['rs:4-2', /expected copies:N or rs:K\+M/],
    ['copies:2 ', /expected copies:N or rs:K\+M/],
    ['', /expected copies:N or rs:K\+M/],
  ] as const) {
    assert.throws(() => parseRedundancy(text), (err: unknown) => err instanceof RedundancyError && why.test(err.message), JSON.stringify(text));
  }
});
