// What the soak compares between a snapshot, its reference copy and its recovered twin.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every path under root (but a top-level .snapshots) with type, mode, size, link count, content
 * hash or link target, and a file's mtime to the ms; then, for names that are hard links of one
 * another, the group (under "linked: " and its first name). A directory's mtime is left out:
 * copying into it sets it, and cp -a sets it back only as well as the order of its writes allows.
 */
export function manifest(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const byInode = new Map<number, string[]>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      if (rel === '' && name === '.snapshots') continue;
      const p = rel ? `${rel}/${name}` : name;
      const full = join(root, p);
      const st = lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.set(p, `dir ${mode}`);
        walk(p);
      } else if (st.isSymbolicLink()) out.set(p, `symlink -> ${readlinkSync(full)}`);
      else if (st.isFile()) {
        if (st.nlink > 1) byInode.set(st.ino, [...(byInode.get(st.ino) ?? []), p]);
        out.set(p, `file ${mode} ${st.size} bytes nlink ${st.nlink} sha256 ${createHash('sha256').update(readFileSync(full)).digest('hex').slice(0, 16)} mtime ${Math.floor(st.mtimeMs)}`);
      } else out.set(p, `other ${st.mode.toString(8)}`);
    }
  };
  walk('');
  for (const names of byInode.values()) if (names.length > 1) out.set(`linked: ${names[0]}`, names.join(' '));
  return out;
}

/** Fails naming the first few paths that differ (a whole manifest is too long to read). */
export function assertSameTree(expected: string, actual: string, what: string): void {
  const want = manifest(expected);
  const got = manifest(actual);
  const diffs: string[] = [];
  for (const p of new Set([...want.keys(), ...got.keys()])) {
    if (want.get(p) !== got.get(p)) diffs.push(`  ${p}: expected ${want.get(p) ?? 'nothing'}, got ${got.get(p) ?? 'nothing'}`);
  }
  assert.ok(diffs.length === 0, `${what}: ${diffs.length} paths differ:\n${diffs.slice(0, 8).join('\n')}`);
}
