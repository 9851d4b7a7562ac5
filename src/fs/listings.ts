// Directory listings while the kernel reads them. The kernel opens and releases directories
// without asking the daemon (native/fuse, ll_opendir), so a listing cannot hang off an open
// handle. Instead the offsets it is given back name the listing: a READDIR at offset 0 takes
// a fresh one, and each entry's offset is its listing's number times 2^32 plus its position
// after it. A reader that goes on from an offset goes on in the listing it started, so an
// entry is listed exactly once even while the directory changes, as POSIX asks of readdir.

/** Positions per listing: a directory's entries stay well below 2^32. */
const SPAN = 2 ** 32;
/** Listing numbers wrap below this, so every offset stays an exact double (< 2^52). */
const NUMBERS = 2 ** 20;

export class Listings<T> {
  /** Insertion order is age: the oldest goes first when too many are held. */
  private readonly held = new Map<number, { dir: number; listing: T }>();
  private last = 0;

  /**
   * `keep`: listings held at once. Each is dropped when its end was read; more are held only
   * by readers that stopped part-way (or a kernel that never read the end again).
   */
  constructor(private readonly keep = 64) {}

  /**
   * The listing a READDIR of directory `dir` at `offset` reads, the position it starts at and
   * the base of the offsets it hands out. A listing no longer held (dropped for room), or an
   * offset from another directory's (a seekdir with a stranger's cookie), is taken again fresh:
   * the reader goes on at the same position, as it would with no listing kept at all.
   */
  at(dir: number, offset: number, take: () => T): { listing: T; start: number; base: number } {
    const start = offset % SPAN;
    const kept = offset > 0 ? this.held.get((offset - start) / SPAN) : undefined;
    if (kept?.dir === dir) return { listing: kept.listing, start, base: offset - start };
    const listing = take();
    return { listing, start, base: this.hold(dir, listing) * SPAN };
  }

  /** A READDIR found nothing more in the listing whose offsets count from `base`: it is done. */
  ended(base: number): void {
    this.held.delete(base / SPAN);
  }

  clear(): void {
    this.held.clear();
  }

  private hold(dir: number, listing: T): number {
    this.last = (this.last % (NUMBERS - 1)) + 1;
    this.held.delete(this.last);
    this.held.set(this.last, { dir, listing });
    if (this.held.size > this.keep) this.held.delete(this.held.keys().next().value!);
    return this.last;
  }
}
