// Worker entry: garbage collection off the daemon's main thread (compaction reads whole packs).
import { parentPort, workerData } from 'node:worker_threads';
import { collectGarbage, type GcOptions } from './gc.js';
import { ChunkStore } from './store.js';

const { storeDir, storeKey, options } = workerData as { storeDir: string; storeKey: Uint8Array; options: GcOptions };
const store = ChunkStore.open(storeDir, null, { key: storeKey });
try {
  parentPort!.postMessage({ report: collectGarbage(store, options, (progress) => parentPort!.postMessage({ progress })) });
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
} finally {
  store.close();
}
