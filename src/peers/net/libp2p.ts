// Every libp2p module the peers layer uses at run time, through one file. The build bundles
// this file with esbuild (scripts/build.sh), so a process starting its peer service loads one
// file instead of some 800 modules: 0.3 s of CPU instead of 0.9 on this machine, paid by every
// daemon, `safe recover` and `safe mount` that brings up a node. Types still come from the
// packages themselves; a value taken straight from a package beside this bundle would be a
// second copy of it (its classes and symbols not the bundle's), so none is.
import './polyfill.js';

export { createLibp2p } from 'libp2p';
export { tcp } from '@libp2p/tcp';
export { noise } from '@chainsafe/libp2p-noise';
export { defaultCrypto as defaultNoiseCrypto } from '@chainsafe/libp2p-noise/crypto';
export { yamux } from '@chainsafe/libp2p-yamux';
export { identify, identifyPush } from '@libp2p/identify';
export { ping } from '@libp2p/ping';
export { bootstrap } from '@libp2p/bootstrap';
export { mdns } from '@libp2p/mdns';
export { circuitRelayServer, circuitRelayTransport, RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2';
export { kadDHT, passthroughMapper } from '@libp2p/kad-dht';
export { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
export { peerIdFromString } from '@libp2p/peer-id';
export { multiaddr } from '@multiformats/multiaddr';
export { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils';
export { CID } from 'multiformats/cid';
export * as raw from 'multiformats/codecs/raw';
export { sha256 } from 'multiformats/hashes/sha2';
