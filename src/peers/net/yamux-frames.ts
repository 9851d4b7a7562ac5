// yamux, with data frames of at most 64 KiB. js-yamux 8 sends whatever a stream has queued, up
// to the whole send window (16 MiB), as one data frame, and a receiver delivers none of a frame
// before its last byte (its `maxMessageSize` setting is not used). Through a relay that made
// the relay take in a whole window from one side before it passed a byte to the other: the two
// hops took turns, and a relayed shipment ran at half the link (docs/performance.md, "Across home routers").
//
// The split happens where a stream hands a data frame to its muxer, not by lowering the
// stream's own message size: a stream takes that many bytes off its write queue at a time,
// and the queue drops each buffer it passes with Array#shift, so a queue of many small writes
// (a rogue peer's fuzzer sending frames a byte at a time) was emptied in quadratic time. A
// window's worth taken at once empties the queue in one step, as plain js-yamux does.
//
// Even so, js-yamux shifts what a window did not take off a copy of the queue, buffer by
// buffer, at every window update: 100,000 one-byte writes took 0.5-3.4 s to go out, 200,000 took
// 2-4 s. So small writes are copied together as they are queued (coalesceSmallWrites), and the
// queue holds a buffer per 16 KiB of them.
import { yamux } from './libp2p.js';

export const MAX_DATA_FRAME = 64 * 1024;

/** js-yamux's frame type for data (its enum is not exported). */
const DATA_FRAME = 0;

interface FrameHeader {
  type: number;
  flag: number;
  streamID: number;
  length: number;
}

/** The bytes of a frame: js-yamux passes a Uint8ArrayList. */
interface FrameData {
  byteLength: number;
  sublist(begin: number, end: number): FrameData;
}

/** A stream's write queue, a Uint8ArrayList: its buffers and byte count are plain fields. */
interface WriteQueue {
  bufs: Uint8Array[];
  length: number;
  append(...bufs: unknown[]): void;
}

/** What js-yamux 8 names the method that makes each stream, the stream's frame sender and its queue. */
interface WithNewStream {
  _newStream(...args: unknown[]): { sendFrame: SendFrame; writeBuffer: unknown };
}
type SendFrame = (header: FrameHeader, data?: FrameData) => boolean;

export function cappedYamux(cap = MAX_DATA_FRAME): ReturnType<typeof yamux> {
  const inner = yamux();
  return () => {
    const factory = inner();
    const create = factory.createStreamMuxer.bind(factory);
    factory.createStreamMuxer = (maConn) => {
      const muxer = create(maConn);
      const hook = muxer as unknown as WithNewStream;
      const newStream = hook._newStream.bind(muxer);
      hook._newStream = (...args) => {
        const stream = newStream(...args);
        stream.sendFrame = splitFrames(stream.sendFrame, cap);
        coalesceSmallWrites(stream.writeBuffer as WriteQueue);
        return stream;
      };
      return muxer;
    };
    return factory;
  };
}

/**
 * Sends a data frame longer than `cap` as several, the stream's flags (SYN or ACK) on the first.
 * The muxer takes every frame it is given; its answer says only whether to wait for a drain.
 */
function splitFrames(send: SendFrame, cap: number): SendFrame {
  return (header, data) => {
    if (header.type !== DATA_FRAME || data === undefined || data.byteLength <= cap) return send(header, data);
    let more = true;
    for (let off = 0; off < data.byteLength; off += cap) {
      const piece = data.sublist(off, Math.min(off + cap, data.byteLength));
      more = send({ ...header, flag: off === 0 ? header.flag : 0, length: piece.byteLength }, piece) && more;
    }
    return more;
  };
}

/** Writes this long or shorter are copied into a shared block instead of queued as they are. */
const SMALL_WRITE = 512;
const BLOCK = 16 * 1024;

/**
 * Queues each small write by copying it to the end of the queue's last buffer when that buffer
 * is a view of the current block ending where the block is filled to. Bytes of a block are
 * written once and never again, so views already handed to the muxer stay what they were.
 */
function coalesceSmallWrites(queue: WriteQueue): void {
  const append = queue.append.bind(queue);
  let block = new Uint8Array(0);
  let used = 0;
  queue.append = (...bufs: unknown[]) => {
    for (const buf of bufs) {
      if (!(buf instanceof Uint8Array) || buf.byteLength > SMALL_WRITE) {
        append(buf);
        continue;
      }
      if (used + buf.byteLength > block.byteLength) {
        block = new Uint8Array(BLOCK);
        used = 0;
      }
      block.set(buf, used);
      const last = queue.bufs.length - 1;
      const tail = queue.bufs[last];
      if (tail !== undefined && tail.buffer === block.buffer && tail.byteOffset + tail.byteLength === used) {
        queue.bufs[last] = block.subarray(tail.byteOffset, used + buf.byteLength);
      } else {
        queue.bufs.push(block.subarray(used, used + buf.byteLength));
      }
      used += buf.byteLength;
      queue.length += buf.byteLength;
    }
  };
}
