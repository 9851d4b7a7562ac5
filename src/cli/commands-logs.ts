// safe logs: the daemon's structured log, filtered by level and component, the last lines or
// followed as it grows. Read line by line: a log of months is never held in memory.
import { closeSync, createReadStream, existsSync, openSync, readSync, statSync, watchFile, unwatchFile } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadConfig, paths, safeHome } from './config.js';
import { UserError } from './errors.js';
import { LEVELS, formatLine, parseLine, type Level, type LogLine } from '../log/logger.js';
import type { Out } from './commands-store.js';

export interface LogsOptions {
  follow: boolean;
  level?: string;
  component?: string;
  lines?: string;
}

export async function logs(o: LogsOptions, out: Out): Promise<void> {
  const home = safeHome();
  loadConfig(home);
  const file = paths(home).log;
  if (o.level !== undefined && !LEVELS.includes(o.level as Level)) throw new UserError(`--level takes ${LEVELS.join(', ')}, not '${o.level}'`, 2);
  const lines = o.lines === undefined ? 200 : Number(o.lines);
  if (!Number.isInteger(lines) || lines < 0) throw new UserError(`--lines takes a whole number, not '${o.lines}'`, 2);
  const least = LEVELS.indexOf((o.level ?? 'debug') as Level);
  const wanted = (l: LogLine): boolean => LEVELS.indexOf(l.level) >= least && (o.component === undefined || l.component === o.component);
  const show = (l: LogLine): void => void process.stdout.write((out.json ? JSON.stringify(l) : formatLine(l)) + '\n');
  if (!existsSync(file) && !o.follow) {
    if (!out.json) process.stderr.write(`no log yet: the daemon writes ${file} once mounted\n`);
    return;
  }

  // The last `lines` wanted lines (from the rotated copies too, oldest first), then (with -f)
  // whatever is appended.
  let offset = 0;
  const last: LogLine[] = [];
  for (const f of [`${file}.2`, `${file}.1`, file]) {
    if (!existsSync(f)) continue;
    const input = createReadStream(f);
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      const l = parseLine(line);
      if (!l || !wanted(l)) continue;
      last.push(l);
      if (last.length > lines) last.shift();
    }
    if (f === file) offset = input.bytesRead;
  }
  for (const l of last) show(l);
  if (!o.follow) return;
  await new Promise<void>((resolve) => {
    let partial = '';
    const buf = Buffer.alloc(64 << 10);
    const drain = (): void => {
      let size: number;
      try {
        size = statSync(file).size;
      } catch {
        return; // not there yet
      }
      if (size < offset) offset = 0; // replaced or truncated: start over
      if (size === offset) return;
      const fd = openSync(file, 'r');
      try {
        for (let n; (n = readSync(fd, buf, 0, buf.length, offset)) > 0; ) {
          offset += n;
          const text = partial + buf.toString('utf8', 0, n);
          const parts = text.split('\n');
          partial = parts.pop()!;
          for (const line of parts) {
            const l = parseLine(line);
            if (l && wanted(l)) show(l);
          }
        }
      } finally {
        closeSync(fd);
      }
    };
    drain();
    watchFile(file, { interval: 250 }, drain);
    const stop = (): void => {
      unwatchFile(file);
      resolve();
    };
    process.once('SIGINT', stop).once('SIGTERM', stop);
  });
}
