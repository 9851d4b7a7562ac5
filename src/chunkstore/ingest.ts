// Turns files into stored chunks: read in blocks, cut by FastCDC, dedup against the index,
// seal new chunks into packs. Synchronous by design: it runs in a worker thread.
// Durability: commit() fsyncs the packs first, then inserts the rows naming those bytes and
// the references in one transaction, so the index never names bytes a crash could lose.
import { closeSync, openSync, readSync } from 'node:fs';
import { ChunkBuffers, cuts, StreamChunker } from './chunker.js';
import type { CdcParams } from './fastcdc.js';
import type { PackWriter } from './packs.js';
import { boxId } from './sealer.js';
import { StagedFile } from './staged-file.js';
import type { ChunkRef, ChunkRow, ChunkStore } from './store.js';
import type { CommitLock } from './commit-lock.js';
import { inReadTransaction } from './index-db.js';

export interface IngestedFile {
  size: number;
  chunks: ChunkRef[];
  /** Chunks this file added to the store (not found there or earlier in the batch). */
  fresh: number;
}

const READ_BLOCK = 1 << 20;

/** A chunk new to the store, with the references this batch takes to it. */
type Counted = ChunkRow & { refs: number };

export class Ingester {
  private readonly writer: PackWriter;
  /** Chunks new to the store, with the references this batch takes to each (`refs`). */
  private readonly pending = new Map<string, Counted>();
  /** References to chunks already stored, one entry each. */
  private readonly refs: Buffer[] = [];
  private readonly adopted: { id: Buffer; handle: Buffer }[] = [];
  private readonly block = Buffer.allocUnsafe(READ_BLOCK);
  /** add() is done with each chunk before the chunker is called again, so they can be reused. */
  private readonly chunkBuffers: ChunkBuffers;
  /** Bytes sealed into packs since the last commit: callers commit in batches by it. */
  pendingBytes = 0;

  constructor(private readonly store: ChunkStore, private readonly params: CdcParams, private readonly lock?: CommitLock) {
    this.writer = store.newWriter();
    this.chunkBuffers = new ChunkBuffers(params.max);
  }

  /**
   * Runs `fn` (ingests) in one read transaction of the index. Each lookup alone is a read
   * transaction of its own, and one that starts after another connection committed (the
   * folder's thread, every millisecond or so in an untar) begins with an empty page cache
   * (WAL): every lookup read its B-tree from the root. The pack's row is allocated first, so
   * nothing writes inside; chunks others commit meanwhile are not seen, and one stored twice
   * is dead space in a pack, as between two workers.
   */
  inSnapshot<T>(fn: () => T): T {
    this.writer.ready();
    return inReadTransaction(this.store.db, fn);
  }

  /** Chunk and store the file at `path`, streaming. */
  ingestFile(path: string): IngestedFile {
    const fd = openSync(path, 'r');
    try {
      return this.ingestFd(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Chunk and store a staged file (sealed at rest under `stagingKey`), streaming. */
  ingestStaged(path: string, stagingKey: Uint8Array): IngestedFile {
    const fd = openSync(path, 'r');
    try {
      const file = StagedFile.open(fd, stagingKey);
      const size = file.size();
      let pos = 0;
      return this.ingestBlocks((buf) => {
        const n = file.read(buf, buf.length, pos, size);
        pos += n;
        return n;
      });
    } finally {
      closeSync(fd);
    }
  }

  ingestFd(fd: number): IngestedFile {
    return this.ingestBlocks((buf) => readSync(fd, buf, 0, buf.length, null));
  }

  ingestBuffer(data: Uint8Array): IngestedFile {
    let at = 0;
    return this.ingestBlocks((buf) => {
      const n = Math.min(buf.length, data.length - at);
      buf.set(data.subarray(at, at + n));
      at += n;
      return n;
    });
  }

  /**
   * A file whose read fails part-way takes back the references its first chunks took: the
   * batch still commits the other files, and those would otherwise never be freed. Chunks it
   * sealed stay, unreferenced, for the next garbage collection.
   */
  private ingestBlocks(fill: (buf: Buffer) => number): IngestedFile {
    const chunker = new StreamChunker(this.params, cuts, this.chunkBuffers);
    const out: IngestedFile = { size: 0, chunks: [], fresh: 0 };
    const mark = this.refs.length;
    try {
      for (;;) {
        const n = fill(this.block);
        if (n === 0) break;
        out.size += n;
        for (const c of chunker.push(this.block.subarray(0, n))) this.add(c, out);
      }
      for (const c of chunker.finish()) this.add(c, out);
    } catch (err) {
      this.refs.length = mark;
      // Its chunks new to the store were counted on their rows (add() looks there first).
      for (const c of out.chunks) {
        const row = this.pending.get(c.handle.toString('latin1'));
        if (row) row.refs--;
      }
      throw err;
    }
    return out;
  }

  /**
   * Dedup goes by handle, which needs no sealing. A chunk stored here only for a buddy client
   * (no handle known) is found by its id once sealed, and adopted instead of written twice.
   */
  private add(plain: Uint8Array, out: IngestedFile): void {
    const sealer = this.store.sealer;
    const handle = sealer.handleOf(plain);
    const key = handle.toString('latin1');
    let row = this.pending.get(key);
    let id = row?.id ?? this.store.idOf(handle);
    if (!id) {
      const parts = sealer.sealParts(plain, handle);
      id = boxId(parts);
      if (this.store.has(id)) this.adopted.push({ id, handle });
      else {
        const placed = this.writer.appendParts(id, parts);
        row = { id, handle, raw: plain.length, refs: 0, ...placed };
        this.pending.set(key, row);
        this.pendingBytes += placed.len;
        out.fresh++;
      }
    }
    if (row) row.refs++;
    else this.refs.push(id);
    out.chunks.push({ id, handle, raw: plain.length });
  }

  /**
   * Make everything ingested since the last commit durable and referenced (owner 0), and
   * run `inTxn` in the same transaction. Throws MissingChunkError if a chunk found by
   * dedup was collected meanwhile: the caller re-ingests (the chunk is then written anew).
   */
  commit(inTxn?: () => void): void {
    this.writer.sync();
    const rows = [...this.pending.values()];
    const refs = this.refs.slice();
    const adopted = this.adopted.slice();
    this.pending.clear();
    this.refs.length = 0;
    this.adopted.length = 0;
    this.pendingBytes = 0;
    // New chunks go in with their references counted: inserted at zero and counted up
    // after, each entered the index of unreferenced chunks and left it in the same commit,
    // under the commit lock the folder's thread waits for.
    const txn = (): void =>
      this.store.db.transaction(() => {
        const there = this.store.insert(rows);
        for (const a of adopted) this.store.adopt(a.id, a.handle);
        this.store.incref(refs);
        // Stored by another worker since we looked: its references count up from there.
        for (const row of there) this.store.incref(Array.from({ length: row.refs }, () => row.id));
        inTxn?.();
      }).immediate();
    if (this.lock) this.lock.hold(txn);
    else txn();
  }

  /** Drop what was ingested since the last commit (its pack bytes become dead space). */
  abandon(): void {
    this.writer.discard();
    this.pending.clear();
    this.refs.length = 0;
    this.adopted.length = 0;
    this.pendingBytes = 0;
  }

  close(): void {
    this.writer.seal();
  }
}
