// What a directory takes on disk, as du counts it (allocated blocks, not apparent sizes), for
// `safe status`: the packs' table alone missed the open pack, the index and its WAL, and staging.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function diskUsage(dir: string): number {
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return; // gone meanwhile (the daemon renames and removes files as it works)
    }
    for (const name of names) {
      const p = join(d, name);
      try {
        const st = lstatSync(p);
        total += st.blocks * 512;
        if (st.isDirectory()) walk(p);
      } catch {
        // gone meanwhile
      }
    }
  };
  walk(dir);
  return total;
}
