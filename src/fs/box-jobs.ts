// A read's boxes as native/fuse's replyBoxes takes them: BOX_WIRE bytes each, little-endian,
// i32 pack descriptor, u32 box length, f64 offset in the pack, u32 chunk plaintext length,
// u32 first plaintext byte the reply takes, u32 bytes it takes, u32 0, the chunk's 32-byte
// handle (its key and aad derive from it).
import type { BoxPlace } from '../chunkstore/store.js';
import type { ChunkSpan } from '../snapshot/tree.js';

const BOX_WIRE = 64;

export interface BoxJob {
  boxes: Buffer;
  count: number;
  /** Bytes of the reply. */
  total: number;
}

/** The boxes of `spans` (lying at `places`) that hold [pos, pos + want), in order. */
export function boxJob(spans: ChunkSpan[], places: BoxPlace[], pos: number, want: number): BoxJob {
  const end = pos + want;
  const boxes = Buffer.allocUnsafe(spans.length * BOX_WIRE);
  let count = 0;
  let at = pos;
  for (let i = 0; i < spans.length && at < end; i++) {
    const span = spans[i]!;
    const place = places[i]!;
    const from = at - span.off;
    const take = Math.min(span.raw - from, end - at);
    if (take <= 0) continue;
    const o = count++ * BOX_WIRE;
    boxes.writeInt32LE(place.fd, o);
    boxes.writeUInt32LE(place.len, o + 4);
    boxes.writeDoubleLE(place.off, o + 8);
    boxes.writeUInt32LE(span.raw, o + 16);
    boxes.writeUInt32LE(from, o + 20);
    boxes.writeUInt32LE(take, o + 24);
    boxes.writeUInt32LE(0, o + 28);
    span.handle.copy(boxes, o + 32, 0, 32);
    at += take;
  }
  return { boxes, count, total: at - pos };
}
