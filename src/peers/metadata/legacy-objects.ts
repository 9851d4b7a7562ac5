// Release 0.2's metadata (format 1): one sealed object per inode, holding every version of it
// and a directory's entries, and one per chunk list. A recovery from buddies that hold no chain
// yet (the host's last shipment was made by 0.2) reads them as delta pages, so the import is
// the same as for segments.
import { Decompressor } from 'zstd-napi';
import { decode, type Value } from '../wire/canonical.js';
import { handleDigest } from '../../chunkstore/sealer.js';
import type { DeltaPage } from '../../snapshot/deltas.js';
import { SegmentError } from './meta-segments.js';
import type { MetaSealer } from './sealed-objects.js';

const RAW = 0;
const ZSTD = 1;

type N = number;
type VersionTuple = [N, N | null, N, N, N, N, N, N, N, N, N, Uint8Array | null, N | null, string | null];

/** The pages one release-0.2 object holds. */
export function legacyPages(sealer: MetaSealer, id: Uint8Array, box: Uint8Array, decompressor = new Decompressor()): DeltaPage[] {
  const body = sealer.openLegacy(id, box);
  if (body[0] !== RAW && body[0] !== ZSTD) throw new SegmentError(`metadata object: unknown codec ${body[0]}`);
  const encoded = body[0] === ZSTD ? decompressor.decompress(body.subarray(1)) : body.subarray(1);
  const v = decode(encoded) as Record<string, Value>;
  if (v['k'] === 'inode') {
    const ino = v['ino'] as number;
    const rows = (v['versions'] as unknown as VersionTuple[]).map(([born, died, kind, mode, uid, gid, nlink, size, atime, mtime, ctime, target, cl, xattrs]) => ({
      ino, born, died, kind, mode, uid, gid, nlink, size, atime: atime / 1000, mtime: mtime / 1000, ctime: ctime / 1000,
      target: target === null ? null : Buffer.from(target), cl, xattrs,
    }));
    const entries = (v['entries'] as unknown as [Uint8Array, N, N | null, N][]).map(([name, born, died, child]) => ({ parent: ino, name: Buffer.from(name), born, died, ino: child }));
    return [{ kind: 'inodes', rows }, { kind: 'entries', rows: entries }];
  }
  // Release 0.1.0 shipped spans without the box id: its chunks are asked for by their old id.
  const spans = (v['spans'] as [number, Uint8Array, number, Uint8Array?][]).map(([off, handle, raw, cid]) => ({
    off, handle: Buffer.from(handle), raw, id: cid ? Buffer.from(cid) : handleDigest(handle),
  }));
  return [{ kind: 'clists', rows: [{ cl: v['cl'] as number, size: v['size'] as number, spans }] }];
}
