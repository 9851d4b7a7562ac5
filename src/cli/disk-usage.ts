// What a directory takes on disk, as du counts it (allocated blocks, not apparent sizes), for
// `safe status`: the packs' table alone missed the open pack, the index and its WAL, and staging.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The bytes under `dir` in all, and under each of its entries (by path): one walk for both. */
export function diskUsage(dir: string): { total: number; entries: Map<string, number> } {
  const entries = new Map<string, number>();
  const walk = (d: string): number => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return 0; // gone meanwhile (the daemon renames and removes files as it works)
    }
    let sum = 0;
    for (const name of names) {
      const p = join(d, name);
      let bytes = 0;
      try {
        const st = lstatSync(p);
        bytes = st.blocks * 512 + (st.isDirectory() ? walk(p) : 0);
      } catch {
        // gone meanwhile
      }
      if (d === dir) entries.set(p, bytes);
      sum += bytes;
    }
    return sum;
  };
  return { total: walk(dir), entries };
}
