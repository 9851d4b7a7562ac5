// Spare staging files: where creates are slow, a chunked generation's file is reused for a later
// one instead of being deleted. The reused file must read as a new, empty generation sealed
// under a key of its own, never as what it held before; and no spare outlives a mount.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, statSync } from 'node:fs';
import { STAGED_HEADER } from '../../src/chunkstore/staged-file.js';
import { Staging } from '../../src/fs/staging.js';
import { secret32, tempDir } from '../helpers.js';

const spares = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('spare-'));

function writeGen(staging: Staging, ino: number, text: string): { gen: number; inode: number } {
  const { gen, file } = staging.create(ino);
  const size = file.write(Buffer.from(text), 0, 0);
  assert.equal(size, text.length);
  closeSync(file.fd);
  return { gen, inode: statSync(staging.path(ino, gen)).ino };
}

function readGen(staging: Staging, ino: number, gen: number): string {
  const fd = openSync(staging.path(ino, gen), 'r');
  try {
    const f = staging.reader(fd);
    const out = Buffer.alloc(4096);
    return out.subarray(0, f.read(out, out.length, 0, f.size())).toString();
  } finally {
    closeSync(fd);
  }
}

test('where creates are slow, a retired generation becomes a spare the next one reuses, empty and under a new key', () => {
  const dir = tempDir();
  // Every create counts as slow.
  const staging = new Staging(dir, 0, secret32(), -1);
  const a = writeGen(staging, 7, 'the first generation, chunked since');
  staging.retire(7, a.gen);
  assert.equal(existsSync(staging.path(7, a.gen)), false, 'the retired name is gone');
  assert.deepEqual(spares(dir).length, 1);
  assert.deepEqual(staging.list(), [], 'a spare is no generation');

  const { gen, file } = staging.create(9);
  assert.equal(statSync(staging.path(9, gen)).ino, a.inode, 'the spare was reused');
  assert.equal(spares(dir).length, 0);
  assert.equal(file.size(), 0, 'a reused file starts empty');
  assert.equal(statSync(staging.path(9, gen)).size, STAGED_HEADER);
  file.write(Buffer.from('short'), 0, 0);
  closeSync(file.fd);
  assert.equal(readGen(staging, 9, gen), 'short');
  assert.deepEqual(staging.list(), [{ ino: 9, gen }]);
});

test('where creates are fast, a retired generation is deleted; spares left behind go at the next mount', () => {
  const fast = tempDir();
  const quick = new Staging(fast, 0, secret32(), Number.POSITIVE_INFINITY);
  const a = writeGen(quick, 1, 'x');
  quick.retire(1, a.gen);
  assert.deepEqual(readdirSync(fast).filter((n) => n !== 'reserve'), []);

  const dir = tempDir();
  const slow = new Staging(dir, 0, secret32(), -1);
  const gens = [1, 2, 3].map((ino) => ({ ino, gen: writeGen(slow, ino, `file ${ino}`).gen }));
  for (const { ino, gen } of gens) slow.retire(ino, gen);
  assert.equal(spares(dir).length, 3);
  // A crash keeps them on disk; the next daemon drops them before it counts generations.
  const next = new Staging(dir, 0, secret32(), -1);
  next.dropSpares();
  assert.equal(spares(dir).length, 0);
  assert.deepEqual(next.list(), []);
  // Retiring a generation already gone (removed meanwhile) is not an error.
  next.retire(5, 99);
});
