// A read window as native/fuse's replyBoxes takes it (read-windows.c): the chunks ahead of a
// reader and where their boxes lie, WINDOW_WIRE bytes each, little-endian: i32 pack
// descriptor, u32 box length, f64 offset in the pack, f64 offset in the file, u32 chunk
// plaintext length, u32 0, the chunk's 32-byte handle (its key and aad derive from it).
import type { BoxPlace } from '../chunkstore/store.js';
import type { ChunkSpan } from '../snapshot/tree.js';

const WINDOW_WIRE = 64;

/** Contiguous chunks `spans`, their boxes lying at `places`. */
export function readWindow(spans: ChunkSpan[], places: BoxPlace[]): Buffer {
  const out = Buffer.allocUnsafe(spans.length * WINDOW_WIRE);
  spans.forEach((span, i) => {
    const place = places[i]!;
    const o = i * WINDOW_WIRE;
    out.writeInt32LE(place.fd, o);
    out.writeUInt32LE(place.len, o + 4);
    out.writeDoubleLE(place.off, o + 8);
    out.writeDoubleLE(span.off, o + 16);
    out.writeUInt32LE(span.raw, o + 24);
    out.writeUInt32LE(0, o + 28);
    span.handle.copy(out, o + 32, 0, 32);
  });
  return out;
}
