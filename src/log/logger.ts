// Structured logs: one JSON object a line with its time, level, component and message, so that
// `safe logs` (and anything else reading the log) can filter by level and component. pino
// writes them, synchronously: a daemon that dies must not lose the lines that say why.
import pino from 'pino';

type Pino = pino.Logger;

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** Called as a function it logs at info, so modules that only report take `(m: string) => void`. */
export interface Log {
  (msg: string): void;
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** The same log, its lines marked as `component`'s. */
  child(component: string): Log;
}

/** One line as written. */
export interface LogLine {
  time: string;
  level: Level;
  component: string;
  msg: string;
}

/** `p` writes the lines; children come from `root`, so a line names one component, the innermost. */
function wrap(root: Pino, p: Pino = root): Log {
  const log = ((msg: string) => p.info(msg)) as Log;
  log.debug = (msg) => p.debug(msg);
  log.info = (msg) => p.info(msg);
  log.warn = (msg) => p.warn(msg);
  log.error = (msg) => p.error(msg);
  log.child = (component) => wrap(root, root.child({ component }));
  return log;
}

/** The daemon's log, to file descriptor `fd` (its log file, or a pipe to `safe mount --foreground`). */
export function createLog(fd: number, component = 'daemon', level: Level = (process.env.SAFE_LOG_LEVEL as Level | undefined) ?? 'info'): Log {
  const p = pino(
    {
      level: LEVELS.includes(level) ? level : 'info',
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: fd, sync: true }),
  );
  return wrap(p, p.child({ component }));
}

/** A line of the log read back; lines of releases before structured logs come back as info. */
export function parseLine(line: string): LogLine | null {
  if (!line.trim()) return null;
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as Partial<LogLine>;
      if (typeof o.msg === 'string' && typeof o.time === 'string') {
        return { time: o.time, level: LEVELS.includes(o.level as Level) ? (o.level as Level) : 'info', component: o.component ?? 'daemon', msg: o.msg };
      }
    } catch {
      // not one of ours: shown as it is
    }
  }
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (.*)$/.exec(line);
  return { time: m ? m[1]! : '', level: 'info', component: 'daemon', msg: m ? m[2]! : line };
}

/** How `safe logs` and a foreground mount show a line. */
export function formatLine(l: LogLine): string {
  return `${l.time} ${l.level.toUpperCase().padEnd(5)} ${l.component}: ${l.msg}`;
}

/** A log that keeps nothing: for library callers that gave none. */
export function silentLog(): Log {
  return wrap(pino({ enabled: false }));
}
