// The folder and its snapshots as the dashboard sees them: through the mount, like any program
// would, so nothing it asks ever runs on the daemon's FUSE thread beyond ordinary requests.
// Every path a browser names is checked to stay inside the view it names, and nothing here
// follows a symlink.
import { constants, type ReadStream } from 'node:fs';
import { cp, lstat, mkdir, open, readdir, realpath } from 'node:fs/promises';
import { join, normalize, sep } from 'node:path';

export class PathError extends Error {}

export interface Entry {
  name: string;
  kind: 'dir' | 'file' | 'link' | 'other';
  size: number;
  mtime: number;
}

export interface Version {
  snapshot: string;
  size: number;
  mtime: number;
}

export interface CopyProgress {
  files: number;
  bytes: number;
  done: boolean;
  error: string | null;
}

const kindOf = (mode: number): Entry['kind'] =>
  (mode & constants.S_IFMT) === constants.S_IFDIR ? 'dir' : (mode & constants.S_IFMT) === constants.S_IFREG ? 'file' : (mode & constants.S_IFMT) === constants.S_IFLNK ? 'link' : 'other';

export class TreeView {
  constructor(private readonly mount: string) {}

  /** Where `path` of snapshot `snap` ('live' for the folder itself) lies on disk. */
  resolve(snap: string, path: string): string {
    if (snap !== 'live' && (!/^[0-9A-Za-z._-]{1,128}$/.test(snap) || snap.startsWith('.'))) throw new PathError(`not a snapshot name: ${snap}`);
    if (path.includes('\0')) throw new PathError('a path cannot hold a NUL byte');
    const rel = normalize(`/${path}`).slice(1);
    if (rel.split(sep).includes('..')) throw new PathError(`a path cannot leave its snapshot: ${path}`);
    const base = snap === 'live' ? this.mount : join(this.mount, '.snapshots', snap);
    // The live view hides .snapshots: it is browsed as snapshots.
    if (snap === 'live' && rel.split(sep)[0] === '.snapshots') throw new PathError('.snapshots is browsed as snapshots');
    return rel === '' ? base : join(base, rel);
  }

  /**
   * resolve(), for a path that must exist: a symlink on the way (`link/passwd`, with link ->
   * /etc) would lead the kernel out of the view, so the real path must still be inside it.
   */
  async existing(snap: string, path: string): Promise<string> {
    const p = this.resolve(snap, path);
    const base = await realpath(this.resolve(snap, ''));
    const real = await realpath(p);
    if (real !== base && !real.startsWith(`${base}/`)) throw new PathError(`a path cannot leave its snapshot: ${path}`);
    return p;
  }

  async list(snap: string, path: string): Promise<Entry[]> {
    const dir = await this.existing(snap, path);
    const names = (await readdir(dir)).filter((n) => !(snap === 'live' && path.replace(/^\/+/, '') === '' && n === '.snapshots'));
    // All at once: libuv's threads ask the folder side by side (one after another, a folder of
    // 1,465 files took over a second).
    const out = await Promise.all(names.map(async (name): Promise<Entry> => {
      const st = await lstat(join(dir, name));
      return { name, kind: kindOf(st.mode), size: st.size, mtime: st.mtimeMs };
    }));
    return out.sort((a, b) => Number(b.kind === 'dir') - Number(a.kind === 'dir') || (a.name < b.name ? -1 : 1));
  }

  /** The file at `path` in each snapshot that has it, oldest first, one row per change. */
  async versions(snapshots: string[], path: string): Promise<Version[]> {
    const found = await Promise.all(snapshots.map(async (snapshot) => {
      try {
        const st = await lstat(await this.existing(snapshot, path));
        return st.isFile() ? { snapshot, size: st.size, mtime: st.mtimeMs } : null;
      } catch (err) {
        if (err instanceof PathError) throw err;
        return null; // not in this snapshot
      }
    }));
    const out: Version[] = [];
    for (const v of found) {
      const last = out.at(-1);
      if (v && (!last || last.size !== v.size || last.mtime !== v.mtime)) out.push(v);
    }
    return out;
  }

  /** A regular file, opened without following a symlink. */
  async read(snap: string, path: string): Promise<{ stream: ReadStream; size: number }> {
    const fh = await open(await this.existing(snap, path), constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new PathError(`not a file: ${path}`);
    }
    return { stream: fh.createReadStream(), size: st.size };
  }

  /**
   * Copies a file or folder of a snapshot to `target` (absolute, not there yet), keeping modes,
   * times and symlinks as they are; `progress` is updated as it goes.
   */
  async copy(snap: string, path: string, target: string, progress: CopyProgress): Promise<void> {
    if (!target.startsWith('/')) throw new PathError(`the target must be an absolute path: ${target}`);
    const src = await this.existing(snap, path);
    try {
      await lstat(target);
      throw new PathError(`${target} exists: choose a new name`);
    } catch (err) {
      if (err instanceof PathError) throw err;
    }
    await mkdir(join(target, '..'), { recursive: true });
    await cp(src, target, {
      recursive: true,
      errorOnExist: true,
      force: false,
      preserveTimestamps: true,
      verbatimSymlinks: true,
      filter: async (from) => {
        const st = await lstat(from);
        if (st.isFile()) {
          progress.files++;
          progress.bytes += st.size;
        }
        return true;
      },
    });
  }
}
