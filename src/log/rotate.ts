// The daemon's log file kept to a size: past `maxBytes` it is copied to daemon.log.1 (the older
// copies shift to .2, ...; the oldest goes) and emptied in place. In place, not renamed: the
// daemon writes through the file descriptor it was started with (its stderr, so that even a
// crash's last words land in the log), opened for appending, so its next line goes to the
// start of the emptied file. Lines written between the copy and the truncation are lost: at
// worst a few, once per rotation.
import { copyFileSync, existsSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';

/** True when it rotated. */
export function rotateIfLarge(file: string, maxBytes: number, keep = 2): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  rmSync(`${file}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`);
  copyFileSync(file, `${file}.1`);
  truncateSync(file, 0);
  return true;
}
