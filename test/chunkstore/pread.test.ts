import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fsyncSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loaded, preadCached } from '../../src/chunkstore/native.js';
import { seededBytes, tempDir } from '../helpers.js';

test('preadCached reads what the page cache holds, says -1 for what it does not, and never throws', { skip: loaded.addon ? false : `native addon absent (${loaded.error})` }, () => {
  const path = join(tempDir(), 'f');
  const data = seededBytes(300_000, 3);
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(100_000);
    assert.equal(preadCached(fd, buf, 123_456), buf.length);
    assert.ok(buf.equals(data.subarray(123_456, 223_456)), 'the bytes at that offset');
    assert.equal(preadCached(fd, buf, 250_000), 50_000, 'short at the end of the file');
    assert.ok(buf.subarray(0, 50_000).equals(data.subarray(250_000)));
    assert.equal(preadCached(fd, buf, 400_000), 0, 'nothing past the end');
    assert.equal(preadCached(-1, buf, 0), -1, 'a bad descriptor');
    // Dropped from the page cache (root only), the bytes would need the disk: -1. The kernel
    // may keep some pages anyway (another reader, read-ahead), so a read is allowed too, if
    // it is whole and right.
    fsyncSync(fd);
    try {
      writeFileSync('/proc/sys/vm/drop_caches', '1');
    } catch {
      return;
    }
    const got = preadCached(fd, buf, 0);
    assert.ok(got === -1 || (got === buf.length && buf.equals(data.subarray(0, buf.length))), `after dropping the cache: ${got}`);
  } finally {
    closeSync(fd);
  }
});
