// yamux, with data frames of at most 64 KiB. js-yamux 8 sends whatever a stream has queued, up
// to the whole send window (16 MiB), as one data frame, and a receiver delivers none of a frame
// before its last byte (its `maxMessageSize` setting is not used). Through a relay that made
// the relay take in a whole window from one side before it passed a byte to the other: the two
// hops took turns, and a relayed shipment ran at half the link (README, "Across home routers").
// The stream's own frame limit is what js-yamux resets to the send window on every window
// update; here it can never rise above the cap.
import { yamux } from '@chainsafe/libp2p-yamux';

export const MAX_DATA_FRAME = 64 * 1024;

/** What js-yamux names the method that makes each stream, inbound or outbound (8.x). */
interface WithNewStream {
  _newStream(...args: unknown[]): object;
}

export function cappedYamux(cap = MAX_DATA_FRAME): ReturnType<typeof yamux> {
  const inner = yamux();
  return () => {
    const factory = inner();
    const create = factory.createStreamMuxer.bind(factory);
    factory.createStreamMuxer = (maConn) => {
      const muxer = create(maConn);
      const hook = muxer as unknown as WithNewStream;
      const newStream = hook._newStream.bind(muxer);
      hook._newStream = (...args) => capFrames(newStream(...args), cap);
      return muxer;
    };
    return factory;
  };
}

function capFrames<S extends object>(stream: S, cap: number): S {
  let size = Math.min((stream as { maxMessageSize?: number }).maxMessageSize ?? cap, cap);
  Object.defineProperty(stream, 'maxMessageSize', {
    get: () => size,
    set: (v: number) => (size = Math.min(v, cap)),
    configurable: true,
  });
  return stream;
}
