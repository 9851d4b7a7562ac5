// The host database's schema: one ordered list of migrations over every layer's tables (each
// layer's SQL stays in its own module). Append only: a step that shipped in a release never
// changes, and a store written by any earlier release opens (test/upgrade.test.ts).
import type { Migration } from '../chunkstore/migrations.js';
import { createChunkTables } from '../chunkstore/index-db.js';
import { renameChunksToBoxIds } from '../chunkstore/box-ids.js';
import { addChunkIdsToRefs, createTreeTables } from '../snapshot/schema.js';
import { indexEntriesByBorn } from '../snapshot/deltas.js';
import { createHolderTables, renameHeldChunkDeletes } from '../peers/buddy/holder-schema.js';
import { addBuddySlots, createAuditTable, createBuddyTables, renameDropCursor } from '../peers/host/replicator-schema.js';
import { createStripeTables } from '../peers/metadata/stripes.js';
import { moveToSegments } from '../peers/metadata/meta-log.js';
import { createMemberTables } from '../peers/group/member-schema.js';
import { createStorageSamples } from './storage-samples.js';

export const HOST_SCHEMA: readonly Migration[] = [
  {
    version: 1,
    what: 'the tables of release 0.1.0',
    up: ({ db }) => {
      createChunkTables(db);
      createTreeTables(db);
      createHolderTables(db);
      createBuddyTables(db);
      createMemberTables(db);
    },
  },
  {
    version: 2,
    what: 'chunks are named by the hash of their box, which buddies can check',
    up: ({ db, packsDir }) => {
      renameChunksToBoxIds(db, packsDir);
      addChunkIdsToRefs(db);
      renameHeldChunkDeletes(db);
    },
  },
  {
    version: 3,
    what: 'metadata ships as a chain of packed deltas, not one object per inode',
    up: ({ db }) => {
      indexEntriesByBorn(db);
      moveToSegments(db);
      renameDropCursor(db);
    },
  },
  {
    version: 4,
    what: 'redundancy rs:K+M: stripes of boxes, one shard per buddy slot',
    up: ({ db }) => {
      createStripeTables(db);
      addBuddySlots(db);
    },
  },
  {
    version: 5,
    what: "each audit's result is kept, for status and its alerts",
    up: ({ db }) => createAuditTable(db),
  },
  {
    version: 6,
    what: "the store's size after each snapshot, for the dashboard's chart",
    up: ({ db }) => createStorageSamples(db),
  },
];
