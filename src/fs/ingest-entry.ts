// Worker entry for the filesystem's chunking: the commit that stores a staging file's chunks
// also swaps them into every tree row that still has that staging generation.
import { serveIngest } from '../chunkstore/ingest-worker.js';
import { swapStaged } from '../snapshot/content.js';
import type { StagedGeneration } from './chunk-queue.js';

serveIngest((store) => (done) => {
  for (const { job, file } of done) {
    const { ino, gen } = job.tag as StagedGeneration;
    swapStaged(store.db, store, ino, gen, file.chunks, file.chunks.length > 0 && file.fresh === file.chunks.length);
  }
});
