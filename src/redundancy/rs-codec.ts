// Reed-Solomon over one stripe: K data shards cut from the stripe's bytes (zero-padded to K
// equal shards, each a multiple of 8 bytes as the coder wants) and M parity shards. Any K of
// the K+M shards rebuild the rest. The coding runs on the libuv pool, off the event loop.
import { createRequire } from 'node:module';
import type * as ReedSolomonModule from '@ronomon/reed-solomon';
import { MAX_DATA_SHARDS, MAX_PARITY_SHARDS } from './scheme.js';

// The package's entry point is the addon itself, which ESM import cannot load.
const ReedSolomon = createRequire(import.meta.url)('@ronomon/reed-solomon') as typeof ReedSolomonModule;

export class StripeError extends Error {
  override name = 'StripeError';
}

const contexts = new Map<string, ReedSolomonModule.Context>();

function contextFor(k: number, m: number): ReedSolomonModule.Context {
  if (!Number.isInteger(k) || !Number.isInteger(m) || k < 1 || k > MAX_DATA_SHARDS || m < 1 || m > MAX_PARITY_SHARDS) {
    throw new StripeError(`no Reed-Solomon code ${k}+${m} (K 1..${MAX_DATA_SHARDS}, M 1..${MAX_PARITY_SHARDS})`);
  }
  const key = `${k}+${m}`;
  let c = contexts.get(key);
  if (!c) contexts.set(key, (c = ReedSolomon.create(k, m)));
  return c;
}

/** The shard size a stripe of `length` bytes gets: length / k rounded up to a multiple of 8. */
export function shardSizeFor(length: number, k: number): number {
  return Math.max(8, Math.ceil(length / k / 8) * 8);
}

function run(k: number, m: number, sources: number, targets: number, data: Buffer, parity: Buffer): Promise<void> {
  const ctx = contextFor(k, m);
  return new Promise((resolve, reject) => {
    ReedSolomon.encode(ctx, sources, targets, data, 0, data.length, parity, 0, parity.length, (err) => (err ? reject(err) : resolve()));
  });
}

/** Cuts `bytes` into k data shards and computes m parity shards: k + m buffers of one size. */
export async function encodeStripe(bytes: Uint8Array, k: number, m: number): Promise<Buffer[]> {
  const size = shardSizeFor(bytes.length, k);
  const data = Buffer.alloc(size * k);
  data.set(bytes);
  const parity = Buffer.alloc(size * m);
  const all = (1 << (k + m)) - 1;
  const dataBits = (1 << k) - 1;
  await run(k, m, dataBits, all & ~dataBits, data, parity);
  return [...split(data, size, k), ...split(parity, size, m)];
}

interface Rebuilt {
  data: Buffer;
  parity: Buffer;
  size: number;
}

async function reconstruct(shards: readonly (Uint8Array | null)[], k: number, m: number, want: readonly number[]): Promise<Rebuilt> {
  if (shards.length !== k + m) throw new StripeError(`a ${k}+${m} stripe has ${k + m} shards, not ${shards.length}`);
  const present = shards.flatMap((s, i) => (s ? [i] : []));
  if (present.length < k) throw new StripeError(`${present.length} of ${k + m} shards present; ${k} are needed`);
  const size = shards[present[0]!]!.length;
  if (size === 0 || size % 8 !== 0 || present.some((i) => shards[i]!.length !== size)) {
    throw new StripeError('shards of a stripe must share one size, a multiple of 8 bytes');
  }
  for (const w of want) {
    if (!Number.isInteger(w) || w < 0 || w >= k + m) throw new StripeError(`no shard ${w} in a ${k}+${m} stripe`);
  }
  const data = Buffer.alloc(size * k);
  const parity = Buffer.alloc(size * m);
  let sources = 0;
  for (const i of present) {
    (i < k ? data : parity).set(shards[i]!, (i < k ? i : i - k) * size);
    sources |= 1 << i;
  }
  let targets = 0;
  for (const w of want) if (!shards[w]) targets |= 1 << w;
  if (targets !== 0) await run(k, m, sources, targets, data, parity);
  return { data, parity, size };
}

/**
 * Rebuilds the shards numbered in `want` from those present (null = missing). At least k must
 * be present, all of one size. Returns the wanted shards in the order asked.
 */
export async function rebuildShards(shards: readonly (Uint8Array | null)[], k: number, m: number, want: readonly number[]): Promise<Buffer[]> {
  const { data, parity, size } = await reconstruct(shards, k, m, want);
  return want.map((w) => (w < k ? data.subarray(w * size, (w + 1) * size) : parity.subarray((w - k) * size, (w - k + 1) * size)));
}

/** The stripe's first `length` bytes, from any k of its shards. */
export async function decodeStripe(shards: readonly (Uint8Array | null)[], k: number, m: number, length: number): Promise<Buffer> {
  const { data } = await reconstruct(shards, k, m, Array.from({ length: k }, (_, i) => i));
  if (length > data.length) throw new StripeError(`a stripe of ${data.length} data bytes cannot hold ${length}`);
  return data.subarray(0, length);
}

function split(buf: Buffer, size: number, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => buf.subarray(i * size, (i + 1) * size));
}
