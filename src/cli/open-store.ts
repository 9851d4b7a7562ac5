// Commands that read a host's store open its sealed index (and staged files) with the host's
// keys: from the running daemon (this user's unlocked session), or from the passphrase when
// none runs.
import { ChunkStore, StoreLockedError } from '../chunkstore/store.js';
import { SchemaError } from '../chunkstore/migrations.js';
import { loadConfig, paths, unlock } from './config.js';
import { callDaemon } from './control.js';
import { UserError } from './errors.js';
import { HOST_SCHEMA } from './host-schema.js';

export interface StoreKeys {
  storeKey: Uint8Array;
  stagingKey: Uint8Array;
}

/** What the daemon's 'storeKeys' command answers: the keys in hex. */
export interface StoreKeysReply {
  store: string;
  staging: string;
}

export async function openHostStore(home: string): Promise<{ store: ChunkStore; keys: StoreKeys }> {
  const cfg = loadConfig(home);
  const reply = await callDaemon(paths(home).socket, { cmd: 'storeKeys' }, 10_000);
  let keys: StoreKeys;
  if (reply?.ok) {
    const k = reply.data as StoreKeysReply;
    keys = { storeKey: Buffer.from(k.store, 'hex'), stagingKey: Buffer.from(k.staging, 'hex') };
  } else {
    keys = (await unlock(home, cfg)).keys;
  }
  try {
    return { store: ChunkStore.open(paths(home).store, null, { schema: HOST_SCHEMA, key: keys.storeKey }), keys };
  } catch (cause) {
    if (cause instanceof StoreLockedError || cause instanceof SchemaError) throw new UserError(cause.message, 1, { cause });
    throw cause;
  }
}
