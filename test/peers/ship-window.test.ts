// The ship window's arithmetic: windows within a day and across midnight, and what is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isOpen, nextOpening, parseShipWindow, ShipWindowError } from '../../src/peers/host/ship-window.js';

const at = (hh: number, mm: number, day = 2): Date => new Date(2026, 11, day, hh, mm, 0, 0);

test('a window across midnight is open from its start to its end the next morning', () => {
  const w = parseShipWindow('22:00-06:30');
  assert.deepEqual([at(21, 59), at(22, 0), at(23, 59), at(0, 0), at(6, 29), at(6, 30), at(12, 0)].map((d) => isOpen(w, d)), [false, true, true, true, true, false, false]);
  assert.deepEqual(nextOpening(w, at(12, 0)), at(22, 0));
  assert.deepEqual(nextOpening(w, at(23, 0)), at(23, 0), 'open now: now');
});

test('a window within a day, and its next opening once it has passed today', () => {
  const w = parseShipWindow(' 9:15 - 17:00 ');
  assert.deepEqual([at(9, 14), at(9, 15), at(16, 59), at(17, 0)].map((d) => isOpen(w, d)), [false, true, true, false]);
  assert.deepEqual(nextOpening(w, at(18, 0)), at(9, 15, 3));
  assert.equal(w.text, '9:15 - 17:00');
});

test('what is not a window is refused with the reason', () => {
  for (const bad of ['22-06', '25:00-06:00', '22:00-22:00', 'nights', '22:00-06:60']) {
    assert.throws(() => parseShipWindow(bad), (err: Error) => err instanceof ShipWindowError && err.message.includes(`'${bad}'`), bad);
  }
});
