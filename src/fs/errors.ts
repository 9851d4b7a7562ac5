import { constants } from 'node:os';
import { TreeError } from '../snapshot/tree.js';

/**
 * An errno for the kernel, raised inside an operation. Deliberately not an Error: ENOENT is
 * the answer to every negative lookup, and capturing a stack trace each time cost more than
 * the lookup itself.
 */
export class FsError {
  constructor(readonly code: keyof typeof constants.errno) {}
}

/** Negative errno for any error an operation threw; unexpected ones become EIO (and are logged). */
export function toErrno(err: unknown, log: (msg: string) => void): number {
  if (err instanceof FsError || err instanceof TreeError) return -constants.errno[err instanceof FsError ? err.code : err.errno];
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && code in constants.errno) return -constants.errno[code as keyof typeof constants.errno];
  if (code === 'SQLITE_FULL') return -constants.errno.ENOSPC;
  log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
  return -constants.errno.EIO;
}
