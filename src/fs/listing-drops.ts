// Which directory listings the kernel is told to drop. A read the daemon answers makes the
// kernel forget the file's atime, so the next stat of it asks for its attributes: one round
// trip per file. A listing it reads afresh (READDIRPLUS) refreshes the attributes of every
// entry in one. Listings stay cached for a day, so a `find` or `git status` right after reads
// (md5sum, grep -r, a build) sent a GETATTR per file read. Now the directory a file was read
// from has its cached listing dropped when the loop next goes idle, once until the kernel
// lists it again: the next walk over it asks for the directory's attributes and its listing
// instead. A find -newer after an md5sum of 13.8k files in 686 directories: 2,248 GETATTRs
// and 1,354 READDIR(PLUS)es instead of 13,804 GETATTRs; the find after that asks each
// directory's attributes again (reading a listing forgets the directory's atime).

/** Past this many directories dropped and not listed again, forget them (a few needless drops). */
const MAX_DROPPED = 1 << 16;

export class ListingDrops {
  /** Nodes read since the last idle; their directories are looked up then, off the requests' path. */
  private readonly read = new Set<number>();
  /** Dropped and not listed since: the kernel reads them afresh anyway. */
  private readonly dropped = new Set<number>();

  noteRead(node: number): void {
    this.read.add(node);
  }

  /** The kernel asked for the listing from its start. */
  listed(dir: number): void {
    this.dropped.delete(dir);
  }

  flush(parentOf: (node: number) => number | undefined, drop: (dir: number) => void): void {
    if (this.read.size === 0) return;
    if (this.dropped.size > MAX_DROPPED) this.dropped.clear();
    for (const node of this.read) {
      const dir = parentOf(node);
      if (dir === undefined || this.dropped.has(dir)) continue;
      drop(dir);
      this.dropped.add(dir);
    }
    this.read.clear();
  }
}
