// Worker entry for the filesystem's chunking: the commit that stores a staging file's chunks
// also swaps them into every tree row that still has that staging generation.
import { basename } from 'node:path';
import { serveIngest } from '../chunkstore/ingest-worker.js';
import { swapStaged } from '../snapshot/content.js';

serveIngest((store) => (done) => {
  for (const { job, file } of done) {
    const [ino, gen] = basename(job.path).split('-').map(Number) as [number, number];
    swapStaged(store.db, store, ino, gen, file.chunks);
  }
});
