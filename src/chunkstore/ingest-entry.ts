// Worker entry for plain chunkstore ingest (benchmarks, tools): no tree to update.
import { serveIngest } from './ingest-worker.js';

serveIngest();
