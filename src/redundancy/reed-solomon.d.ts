// Types for @ronomon/reed-solomon 6 (it ships none): the calls the codec makes.
declare module '@ronomon/reed-solomon' {
  export interface Context {
    readonly __brand: 'ReedSolomonContext';
  }
  export const MAX_K: number;
  export const MAX_M: number;
  export function create(k: number, m: number): Context;
  /** Computes the `targets` shards (bit i = shard i; parity shards follow the k data shards) from `sources`. */
  export function encode(
    context: Context,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}
