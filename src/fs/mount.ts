// Mounting and unmounting: checks on the mount point, then the kernel session over our
// libfuse 3 low-level binding (native/fuse).
import { mkdirSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import type { Tree } from '../snapshot/tree.js';
import { loadAddon } from './binding.js';
import type { Filesystem } from './filesystem.js';
import { Kernel } from './kernel.js';
import type { Staging } from './staging.js';
import type { Log } from '../log/logger.js';

export interface Mounted {
  unmount(): Promise<void>;
  /** Snapshots were taken or forgotten: the kernel drops what it cached of .snapshots. */
  snapshotsChanged(names: string[]): void;
}

/** Refuse a mount point that is in use; clear a stale mount a crashed daemon left. */
export async function prepareMountPoint(mnt: string): Promise<void> {
  try {
    statSync(mnt);
    // A mount whose daemon died may still answer stat from the kernel's attribute cache
    // (kept for a day); statfs always asks the daemon, and fails with ENOTCONN.
    if (isMountPoint(mnt)) statfsSync(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'EIO') {
      await new Promise<void>((res) => execFile('fusermount3', ['-uz', mnt], () => res()));
      return;
    }
    if (code === 'ENOENT') {
      // A first mount at the default ~/safe: the folder is ours to make.
      mkdirSync(mnt, { recursive: true });
      return;
    }
    throw err;
  }
  if (isMountPoint(mnt)) throw new Error(`${mnt} is already a mount point`);
  if (readdirSync(mnt).length > 0) throw new Error(`mount point ${mnt} is not empty`);
}

export function isMountPoint(mnt: string): boolean {
  try {
    return statSync(mnt).dev !== statSync(dirname(mnt)).dev;
  } catch {
    return false;
  }
}

export async function mountFs(mnt: string, fs: Filesystem, tree: Tree, staging: Staging, log: Log): Promise<Mounted> {
  const kernel = new Kernel(loadAddon(), fs, tree, staging, log);
  try {
    kernel.mount(mnt);
  } catch (err) {
    throw new Error((err as Error).message, { cause: err });
  }
  return {
    unmount: async () => kernel.unmount(),
    snapshotsChanged: (names) => kernel.snapshotsChanged(names),
  };
}
