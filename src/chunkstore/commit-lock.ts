// A mutex shared by the ingest workers of one pool, so their commits queue up instead of
// meeting in SQLite's busy handler, which sleeps 1, 2, 5, 10, 25... ms between tries while
// the lock is already free again (measured: ~10% of each worker's time on the linux corpus).
export class CommitLock {
  private readonly cell: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.cell = new Int32Array(buffer);
  }

  hold<T>(fn: () => T): T {
    while (Atomics.compareExchange(this.cell, 0, 0, 1) !== 0) Atomics.wait(this.cell, 0, 1, 1000);
    try {
      return fn();
    } finally {
      Atomics.store(this.cell, 0, 0);
      Atomics.notify(this.cell, 0, 1);
    }
  }
}
