// The daemon's log lines as written: one JSON object a line, one component each (the innermost
// of nested children: a line with the key twice reads differently to each JSON reader), and
// nothing below the level asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLog, parseLine } from '../../src/log/logger.js';

test('a nested component writes one component key, the innermost; debug lines stay out at info', () => {
  const dir = mkdtempSync(join(tmpdir(), 'safe-log-'));
  try {
    const file = join(dir, 'daemon.log');
    const fd = openSync(file, 'a');
    const log = createLog(fd, 'daemon', 'info');
    const fetcher = log.child('peers').child('fetcher');
    fetcher.warn('cannot reach a buddy');
    fetcher.debug('not written');
    log('mounted');
    closeSync(fd);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.equal(lines[0]!.match(/"component"/g)?.length, 1, lines[0]);
    assert.deepEqual(
      lines.map((l) => parseLine(l)).map((l) => l && { level: l.level, component: l.component, msg: l.msg }),
      [
        { level: 'warn', component: 'fetcher', msg: 'cannot reach a buddy' },
        { level: 'info', component: 'daemon', msg: 'mounted' },
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
