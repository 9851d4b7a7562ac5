// The wire protocols between group members, as message schemas. Every field has a bound, so a
// peer cannot make us hold more than a frame.
//
// /safe/backup/1 (a host ships one snapshot to one buddy; the host speaks first, every
// message gets one answer):
//   hello -> welcome | refused          who we are, what we offer, which epoch we ship
//   has -> missing                      add-set ids; the buddy names those it lacks
//   chunks -> stored | refused          ciphertexts of what it lacked
//   hasObjects -> missing               metadata object ids and digests
//   objects -> stored | refused         signed metadata objects
//   deletes -> stored                   the signed delete set (chunks and objects)
//   commit -> committed                 signed root block: everything above becomes current
// /safe/probe/1: fingerprint -> coverage, offered space, members it knows.
// /safe/reach/1: dialBack -> dialedBack      the member tries a TCP connection to the address
//                                            it sees us at, on each port we listen on
import { createHash } from 'node:crypto';
import { defineMessages, t } from './messages.js';

export const BACKUP_PROTOCOL = '/safe/backup/1';
export const PROBE_PROTOCOL = '/safe/probe/1';
export const REACH_PROTOCOL = '/safe/reach/1';

/** Frame limit of the backup channel: one batch of objects or chunks (a large directory). */
export const BACKUP_MAX_FRAME = 8 * 1024 * 1024 + 64 * 1024;
export const MAX_CHUNK_BOX = 1024 * 1024;
export const MAX_OBJECT_BOX = 8 * 1024 * 1024;
export const MAX_ROOT_BOX = 1024 * 1024;
export const IDS_PER_MESSAGE = 4096;

const id = () => t.bytes({ len: 32 });
const digest = () => t.bytes({ len: 16 });
const sig = () => t.bytes({ len: 64 });

export const hostMessages = defineMessages({
  hello: { owner: t.bytes({ len: 32 }), offer: t.uint(), epoch: t.uint(), locator: t.str({ max: 64, pattern: /^[0-9a-f]{64}$/ }) },
  has: { ids: t.array(id(), { max: IDS_PER_MESSAGE }) },
  chunks: { items: t.array(t.obj({ id: id(), box: t.bytes({ max: MAX_CHUNK_BOX }) }), { max: IDS_PER_MESSAGE }) },
  hasObjects: { items: t.array(t.obj({ id: id(), digest: digest() }), { max: IDS_PER_MESSAGE }) },
  objects: { items: t.array(t.obj({ id: id(), digest: digest(), box: t.bytes({ max: MAX_OBJECT_BOX }) }), { max: IDS_PER_MESSAGE }), sig: sig() },
  deletes: { chunks: t.array(id(), { max: IDS_PER_MESSAGE }), objects: t.array(id(), { max: IDS_PER_MESSAGE }), sig: sig() },
  commit: { epoch: t.uint(), root: t.bytes({ max: MAX_ROOT_BOX }), sig: sig() },
});

export const buddyMessages = defineMessages({
  welcome: { heldEpoch: t.uint(), charged: t.uint(), free: t.uint() },
  refused: { reason: t.str({ max: 300 }) },
  missing: { indexes: t.array(t.uint({ max: IDS_PER_MESSAGE - 1 }), { max: IDS_PER_MESSAGE }) },
  stored: { n: t.uint() },
  committed: { epoch: t.uint() },
});

const member = () => t.obj({ peer: t.str({ max: 128 }), addrs: t.array(t.str({ max: 256 }), { max: 16 }) });

export const probeRequests = defineMessages({
  probe: { fingerprint: t.array(id(), { max: 256 }) },
});

export const probeReplies = defineMessages({
  probed: { covered: t.uint(), offer: t.uint(), free: t.uint(), members: t.array(member(), { max: 256 }) },
});

export const reachRequests = defineMessages({
  dialBack: { ports: t.array(t.uint({ max: 65535 }), { max: 4 }) },
});

export const reachReplies = defineMessages({
  dialedBack: { reached: t.array(t.str({ max: 64 }), { max: 4 }) },
});

/** What each signature covers: the context string names the step, the value binds the owner. */
export const SIGNED = {
  objects: 'safe/v1/backup/objects',
  deletes: 'safe/v1/backup/deletes',
  commit: 'safe/v1/backup/commit',
} as const;

// /safe/restore/1: a host gets its data back (recovery, restores of chunks no longer local) and
// audits what a buddy holds. Anyone may ask for a root block by locator and owner key (it is
// sealed); the rest answers only about what is held for the asking peer itself.
export const RESTORE_PROTOCOL = '/safe/restore/1';
export const RESTORE_PAGE_BYTES = 4 * 1024 * 1024;

export const restoreRequests = defineMessages({
  rootBlock: { locator: t.str({ max: 64, pattern: /^[0-9a-f]{64}$/ }), owner: t.bytes({ len: 32 }) },
  listObjects: { after: t.bytes({ max: 32 }) },
  /** Metadata objects by id (a recovery's segments); release 0.2 members do not know it. */
  getObjects: { ids: t.array(id(), { max: 256 }) },
  listChunks: { after: t.bytes({ max: 32 }) },
  getChunks: { ids: t.array(id(), { max: 1024 }) },
  audit: { nonce: t.bytes({ len: 32 }), ids: t.array(id(), { max: 1024 }) },
});

export const restoreReplies = defineMessages({
  root: { box: t.bytes({ max: MAX_ROOT_BOX }), sig: sig(), pubkey: t.bytes({ len: 32 }), epoch: t.uint() },
  none: {},
  objectPage: { items: t.array(t.obj({ id: id(), box: t.bytes({ max: MAX_OBJECT_BOX }) }), { max: IDS_PER_MESSAGE }), more: t.bool() },
  idPage: { ids: t.array(id(), { max: IDS_PER_MESSAGE }), more: t.bool() },
  chunkPage: { items: t.array(t.obj({ id: id(), box: t.bytes({ max: MAX_CHUNK_BOX }) }), { max: 1024 }) },
  auditDigest: { digest: t.bytes({ len: 32 }), missing: t.uint() },
});

/** Keyed digest of chunk boxes for an audit: only a holder of every box can answer it. */
export function auditDigest(nonce: Uint8Array, boxes: Iterable<Uint8Array>): Buffer {
  const h = createHash('sha256').update(nonce);
  for (const b of boxes) h.update(b);
  return h.digest();
}
