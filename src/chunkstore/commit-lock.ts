// A mutex shared by the threads that write the store's database (the ingest workers and the
// main thread's filesystem), so their commits queue up instead of meeting in SQLite's busy
// handler, which sleeps 1, 2, 5, 10, 25... ms between tries while the lock is already free
// again (measured: ~10% of each worker's time on the linux corpus, and a main thread that
// stalled every FUSE request behind it).
export class CommitLock {
  private readonly cell: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.cell = new Int32Array(buffer);
  }

  acquire(): void {
    while (Atomics.compareExchange(this.cell, 0, 0, 1) !== 0) Atomics.wait(this.cell, 0, 1, 1000);
  }

  release(): void {
    Atomics.store(this.cell, 0, 0);
    Atomics.notify(this.cell, 0, 1);
  }

  hold<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}
