// Commands that read a host's store open its encrypted index with the store key: from the
// running daemon (this user's unlocked session), or from the passphrase when none runs.
import { ChunkStore, StoreLockedError } from '../chunkstore/store.js';
import { SchemaError } from '../chunkstore/migrations.js';
import { loadConfig, paths, unlock } from './config.js';
import { callDaemon } from './control.js';
import { UserError } from './errors.js';
import { HOST_SCHEMA } from './host-schema.js';

export async function openHostStore(home: string): Promise<ChunkStore> {
  const cfg = loadConfig(home);
  const reply = await callDaemon(paths(home).socket, { cmd: 'storeKey' }, 10_000);
  const key = reply?.ok ? Buffer.from(reply.data as string, 'hex') : (await unlock(home, cfg)).keys.storeKey;
  try {
    return ChunkStore.open(paths(home).store, null, { schema: HOST_SCHEMA, key });
  } catch (cause) {
    if (cause instanceof StoreLockedError || cause instanceof SchemaError) throw new UserError(cause.message, 1, { cause });
    throw cause;
  }
}
