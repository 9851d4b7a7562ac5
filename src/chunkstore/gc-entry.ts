// Worker entry: garbage collection off the daemon's main thread (compaction reads whole packs).
import { parentPort, workerData } from 'node:worker_threads';
import { collectGarbage, type GcOptions } from './gc.js';
import { ChunkStore } from './store.js';

const { storeDir, options } = workerData as { storeDir: string; options: GcOptions };
const store = ChunkStore.open(storeDir, null);
try {
  parentPort!.postMessage({ report: collectGarbage(store, options) });
} catch (err) {
  parentPort!.postMessage({ error: (err as Error).message });
} finally {
  store.close();
}
