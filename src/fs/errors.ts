import { constants } from 'node:os';
import { TreeError } from '../snapshot/tree.js';
import type { Log } from '../log/logger.js';

/**
 * An errno for the kernel, raised inside an operation. Deliberately not an Error: ENOENT is
 * the answer to many lookups, and capturing a stack trace each time cost more than the lookup.
 */
export class FsError {
  constructor(readonly code: keyof typeof constants.errno) {}
}

/**
 * The one table from what an operation threw to the errno its caller sees. Unexpected errors
 * become EIO and are logged with their stack.
 */
export function errnoOf(err: unknown, log: Log): number {
  if (err instanceof FsError) return constants.errno[err.code];
  if (err instanceof TreeError) return constants.errno[err.errno];
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && code in constants.errno) return constants.errno[code as keyof typeof constants.errno];
  if (code === 'SQLITE_FULL') return constants.errno.ENOSPC;
  log.error(`internal error: ${(err as Error)?.stack ?? String(err)}`);
  return constants.errno.EIO;
}

