// The listings READDIR offsets name (src/fs/listings.ts), without a mount: a stream goes on in
// the listing it began, a finished or crowded-out one is taken again at the same position.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Listings } from '../../src/fs/listings.js';

test('listings: offsets lead back to their own listing until it ends or is crowded out', () => {
  const l = new Listings<string>(2);
  let taken = 0;
  const take = (what: string) => () => `${what}#${++taken}`;

  const a = l.at(1, 0, take('a'));
  assert.deepEqual([a.listing, a.start], ['a#1', 0]);
  assert.ok(a.base > 0 && Number.isSafeInteger(a.base), 'offsets are never 0 (the start) and exact as doubles');
  const b = l.at(1, 0, take('b'));
  assert.notEqual(b.base, a.base, 'two streams of one directory get listings of their own');
  const again = l.at(1, a.base + 7, take('a'));
  assert.deepEqual([again.listing, again.start, again.base], ['a#1', 7, a.base], 'read on in the same listing');

  l.ended(a.base);
  const fresh = l.at(1, a.base + 9, take('a'));
  assert.deepEqual([fresh.listing, fresh.start], ['a#3', 9], 'an ended listing is taken again, at the same position');
  assert.notEqual(fresh.base, a.base);

  l.at(2, 0, take('c'));
  const crowded = l.at(1, b.base + 2, take('b'));
  assert.deepEqual([crowded.listing, crowded.start], ['b#5', 2], 'past two held, the oldest is taken again when asked for');
  const stranger = l.at(3, crowded.base + 4, take('d'));
  assert.deepEqual([stranger.listing, stranger.start], ['d#6', 4], "another directory's offset never reads that directory's listing");
});
