// Audits: is a buddy still holding what it committed for us? We challenge it with a fresh
// nonce and a random sample of the chunk ids it should hold; it answers a digest over the nonce
// and those ciphertexts, which only a holder of every byte can compute. Our encryption is
// deterministic, so we recompute the digest from our own copies and compare.
import { randomBytes } from 'node:crypto';
import type { ChunkStore } from '../../chunkstore/store.js';
import { hexId } from '../../chunkstore/sealer.js';
import { countIdsUpTo, idsUpTo, sampleIdsUpTo } from '../../snapshot/records.js';
import type { PeerNode } from '../net/node.js';
import { RestoreClient } from './restore-client.js';
import { auditDigest } from '../wire/protocol.js';

/**
 * Chunks to challenge so that a buddy that lost a fraction `lost` of ours fails with
 * probability at least `confidence`: each sampled chunk is held with probability 1 - lost, so
 * n >= ln(1 - confidence) / ln(1 - lost). 1% lost, 99% caught: 459.
 */
export function auditSampleSize(lost = 0.01, confidence = 0.99): number {
  return Math.ceil(Math.log(1 - confidence) / Math.log(1 - lost));
}

export const AUDIT_SAMPLE = auditSampleSize();

export interface AuditResult {
  peer: string;
  /** The epoch the buddy committed, whose chunks were sampled. */
  epoch: number;
  /** Chunks challenged (all of them when we hold fewer than the sample size). */
  sampled: number;
  /** Of those, how many the buddy says it no longer has. */
  missing: number;
  /** passed: the digest matched; failed: it did not (lost or altered data); unreachable. */
  verdict: 'passed' | 'failed' | 'unreachable';
  error?: string;
  ms: number;
  /** Bytes of the challenge and the answer (payload). */
  bytes: number;
}

/** The ids to challenge a buddy holding epoch `epoch` with: only chunks we can recompute. */
export function auditSample(store: ChunkStore, epoch: number, n = AUDIT_SAMPLE): Buffer[] {
  const db = store.db;
  let ids: Buffer[];
  if (countIdsUpTo(db, epoch) <= n) {
    ids = [];
    for (let after: Buffer = Buffer.alloc(0); ; ) {
      const page = idsUpTo(db, epoch, after, 1024);
      if (page.length === 0) break;
      ids.push(...page);
      after = page[page.length - 1]!;
    }
  } else {
    ids = sampleIdsUpTo(db, epoch, n, () => randomBytes(32));
  }
  return ids.filter((id) => store.has(id));
}

/** What to challenge a buddy with, and how we get each challenged box back ourselves. */
export interface AuditChallenge {
  ids: Buffer[];
  box: (id: Buffer) => Buffer | Promise<Buffer | null> | null;
}

/** A copies buddy: a sample of the boxes of its epoch. */
export function boxChallenge(store: ChunkStore, epoch: number, n?: number): AuditChallenge {
  return { ids: auditSample(store, epoch, n), box: (id) => store.readBox(id) };
}

export async function auditBuddy(node: PeerNode, peer: string, epoch: number, challenge: AuditChallenge, opts: { signal?: AbortSignal } = {}): Promise<AuditResult> {
  const t0 = performance.now();
  const { ids } = challenge;
  const result: AuditResult = { peer, epoch, sampled: ids.length, missing: 0, verdict: 'passed', ms: 0, bytes: 32 + ids.length * 32 + 40 };
  if (ids.length === 0) return { ...result, ms: performance.now() - t0 };
  const nonce = randomBytes(32);
  let client: RestoreClient;
  try {
    client = await RestoreClient.open(node, peer, opts.signal ?? AbortSignal.timeout(30_000));
  } catch (err) {
    return { ...result, verdict: 'unreachable', error: (err as Error).message, ms: performance.now() - t0 };
  }
  try {
    const answer = await client.audit(nonce, ids);
    const boxes: Buffer[] = [];
    for (const id of ids) {
      const box = await challenge.box(id);
      if (!box) throw new Error(`challenged ${hexId(id)} but cannot compute it ourselves`);
      boxes.push(box);
    }
    const expected = auditDigest(nonce, boxes);
    result.missing = answer.missing;
    if (!answer.digest.equals(expected)) {
      result.verdict = 'failed';
      result.error = answer.missing > 0 ? `${answer.missing} of ${ids.length} sampled chunks are gone` : `the digest over ${ids.length} sampled chunks does not match: they were altered`;
    }
  } catch (err) {
    result.verdict = 'unreachable';
    result.error = (err as Error).message;
  } finally {
    await client.close();
  }
  return { ...result, ms: performance.now() - t0 };
}
