// A bounded cache of open read-only descriptors. A descriptor in use by an async read is
// pinned: closing it could let the number be reused by another file under the read's feet.
import { closeSync, openSync } from 'node:fs';

interface Open {
  fd: number;
  pins: number;
  doomed: boolean;
}

export class FdCache<K> {
  private readonly open = new Map<K, Open>();

  constructor(private readonly pathOf: (key: K) => string, private readonly limit = 64) {}

  async with<T>(key: K, fn: (fd: number) => Promise<T> | T): Promise<T> {
    const o = this.pin(key);
    try {
      return await fn(o.fd);
    } finally {
      this.unpin(o);
    }
  }

  withSync<T>(key: K, fn: (fd: number) => T): T {
    const o = this.pin(key);
    try {
      return fn(o.fd);
    } finally {
      this.unpin(o);
    }
  }

  /** Several descriptors at once, all pinned while `fn` runs; `fd(key)` gives each. */
  withSyncAll<T>(keys: K[], fn: (fd: (key: K) => number) => T): T {
    const pinned = new Map<K, Open>();
    try {
      for (const key of keys) if (!pinned.has(key)) pinned.set(key, this.pin(key));
      return fn((key) => pinned.get(key)!.fd);
    } finally {
      for (const o of pinned.values()) this.unpin(o);
    }
  }

  /** The file behind `key` is gone or replaced: close once no read uses it. False while one does. */
  drop(key: K): boolean {
    const o = this.open.get(key);
    if (!o) return true;
    this.open.delete(key);
    if (o.pins > 0) {
      o.doomed = true;
      return false;
    }
    closeSync(o.fd);
    return true;
  }

  closeAll(): void {
    for (const key of [...this.open.keys()]) this.drop(key);
  }

  private pin(key: K): Open {
    let o = this.open.get(key);
    if (o) this.open.delete(key);
    else o = { fd: openSync(this.pathOf(key), 'r'), pins: 0, doomed: false };
    this.open.set(key, o);
    o.pins++;
    for (const [k, v] of this.open) {
      if (this.open.size <= this.limit) break;
      if (v.pins > 0) continue;
      this.open.delete(k);
      closeSync(v.fd);
    }
    return o;
  }

  private unpin(o: Open): void {
    o.pins--;
    if (o.pins === 0 && o.doomed) closeSync(o.fd);
  }
}
