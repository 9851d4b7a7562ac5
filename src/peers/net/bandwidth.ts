// Caps on what this host sends and receives, over all its channels at once (shipments,
// recoveries served and fetched, audits): a token bucket per direction. A message pays for its
// bytes before it goes, so over a transfer the rate stays at the cap, not at the cap plus a
// burst. An idle link saves up a quarter second's worth: control messages pass at once, and
// the time a sender spends between two messages (reading the next boxes) is not lost to it
// (with 50 ms, a capped shipment under load ran 6% under its cap). Not more: what is saved
// goes out as a burst when a shipment starts (with a second's worth, a 24 MB shipment under a
// 2 MB/s cap ran at 2.16 MB/s).
//
// Not a library bucket: those refuse a take larger than the bucket, and a shipment's messages
// are 4 MiB while the allowance must stay small for the average to hold.

const IDLE_ALLOWANCE_SECONDS = 0.25;

export class RateLimit {
  private tokens = 0;
  private last = performance.now();
  private readonly allowance: number;

  constructor(readonly bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`a rate limit must be above 0 bytes a second, got ${bytesPerSecond}`);
    this.allowance = Math.max(4096, bytesPerSecond * IDLE_ALLOWANCE_SECONDS);
  }

  /** Waits until `bytes` may go. Concurrent callers queue in the order they asked. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(this.allowance, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    const ms = (-this.tokens / this.bytesPerSecond) * 1000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        signal?.removeEventListener('abort', abort);
        resolve();
      }
      function abort(): void {
        clearTimeout(timer);
        reject(signal!.reason as Error);
      }
      signal?.addEventListener('abort', abort, { once: true });
    });
  }
}

/** The caps a node applies to its channels; null: no cap that way. */
export interface Bandwidth {
  up: RateLimit | null;
  down: RateLimit | null;
}

export const UNLIMITED: Bandwidth = { up: null, down: null };

export function bandwidthOf(o: { maxUploadRate?: number | null; maxDownloadRate?: number | null }): Bandwidth {
  return { up: o.maxUploadRate ? new RateLimit(o.maxUploadRate) : null, down: o.maxDownloadRate ? new RateLimit(o.maxDownloadRate) : null };
}
