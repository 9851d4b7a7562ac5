// The dashboard's web server: a process of its own that the daemon starts for `safe ui`. It
// listens on 127.0.0.1 only, on a random port, and answers nothing without the session's token
// (in the URL the CLI prints; then a header, or the query for links and the event stream). It
// asks the daemon over the control socket, reads the folder and its snapshots through the
// mount, and pushes what changes to the browser as server-sent events; it leaves when the
// daemon does.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { callDaemon, type Request } from '../cli/control.js';
import { loadConfig, paths, safeHome } from '../cli/config.js';
import { openHostStore } from '../cli/open-store.js';
import { diskUsage } from '../cli/disk-usage.js';
import type { ChunkStore } from '../chunkstore/store.js';
import { snapshotHistory } from '../snapshot/snapshots.js';
import { listSamples, type StorageSample } from '../cli/storage-samples.js';
import { TreeView, PathError, type CopyProgress } from './tree-view.js';

const WEB = new URL('./web/', import.meta.url).pathname;
const ASSETS: Record<string, string> = { '/app.js': 'text/javascript', '/app.css': 'text/css' };
/** How often the daemon is asked for its state while a browser listens. */
const PUSH_MS = 1000;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The store's figures, read when a snapshot is taken or forgotten. */
interface Storage {
  chunks: number;
  liveBytes: number;
  referencedRaw: number;
  packBytes: number;
  /** Bytes the files name over bytes stored: deduplication and compression together. */
  ratio: number;
  /** The store's directory on disk. */
  disk: number;
  time: number;
}

interface Restore extends CopyProgress {
  id: number;
  snapshot: string;
  path: string;
  target: string;
}

export async function serveUi(): Promise<void> {
  const home = safeHome();
  const cfg = loadConfig(home);
  const socket = paths(home).socket;
  const token = randomBytes(24).toString('base64url');
  const view = new TreeView(cfg.mount);
  const restores: Restore[] = [];
  const listeners = new Set<ServerResponse>();
  let port = 0;

  const ask = async (req: Request): Promise<unknown> => {
    const r = await callDaemon(socket, req, 60_000);
    if (!r) throw new HttpError(503, 'the daemon is not running');
    if (!r.ok) throw new HttpError(409, r.error);
    return r.data;
  };
  // The store, read-only in this process (as `safe status` reads it): what it costs to read the
  // snapshot history (a pass over the tree's files) and the store's figures is this process's
  // time, not the daemon's, whose thread serves the folder.
  // Opened once, by whichever request comes first (two at once must not both open it); a
  // failed open is tried again by the next request.
  let opening: Promise<ChunkStore> | null = null;
  const opened = (): Promise<ChunkStore> =>
    (opening ??= openHostStore(home).then(
      (o) => o.store,
      (err: unknown) => {
        opening = null;
        throw err;
      },
    ));
  const storage = async (): Promise<Storage> => {
    const s = (await opened()).stats();
    const usage = diskUsage(home);
    return { ...s, ratio: s.liveBytes > 0 ? s.referencedRaw / s.liveBytes : 1, disk: usage.entries.get(paths(home).store) ?? 0, time: Date.now() };
  };
  // Read again only when a snapshot was taken or forgotten (the epoch moves with each snapshot;
  // the count with forget), or when the daemon noted the store's figures after one.
  let snapshots: { key: string; list: unknown[]; storage: Storage; samples: StorageSample[] } | null = null;
  const current = async (): Promise<{ status: unknown; list: unknown[]; storage: Storage; samples: StorageSample[] }> => {
    const status = (await ask({ cmd: 'status' })) as { epoch: number; snapshots: number };
    const { db } = await opened();
    const samples = listSamples(db);
    const key = `${status.epoch}/${status.snapshots}/${samples.at(-1)?.epoch}`;
    if (snapshots?.key !== key) snapshots = { key, list: snapshotHistory(db), storage: await storage(), samples };
    return { status, ...snapshots };
  };
  const state = async (): Promise<unknown> => {
    const { status, list, storage: figures, samples } = await current();
    return { status, snapshots: list, storage: figures, samples, restores };
  };

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    const given = req.headers['x-safe-token'] ?? url.searchParams.get('token') ?? '';
    const a = Buffer.from(String(given));
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<unknown> => {
    // A page on another site, or a name that resolves here (DNS rebinding), gets nothing.
    if (req.headers.host !== `127.0.0.1:${port}`) throw new HttpError(403, 'wrong host');
    if (req.method !== 'GET' && req.headers.origin !== `http://127.0.0.1:${port}`) throw new HttpError(403, 'wrong origin');
    if (!authorized(req, url)) throw new HttpError(403, 'no or wrong token');
    const q = (k: string): string => url.searchParams.get(k) ?? '';
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        // Its scripts and styles are asked for with the token too: nothing is served without it.
        res.end(readFileSync(`${WEB}index.html`, 'utf8').replace(/(href|src)="(app\.\w+)"/g, `$1="$2?token=${token}"`));
        return undefined;
      case 'GET /api/state':
        return state();
      case 'GET /api/ls':
        return view.list(q('snapshot'), q('path'));
      case 'GET /api/versions': {
        // The cached list: asking the daemon again would cost it a pass over the tree's files.
        const { list } = await current();
        return view.versions((list as { name: string }[]).map((s) => s.name), q('path'));
      }
      case 'GET /api/file': {
        const { stream, size } = await view.read(q('snapshot'), q('path'));
        const name = q('path').split('/').filter(Boolean).at(-1) ?? 'file';
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': size,
          'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
        });
        stream.pipe(res);
        return undefined;
      }
      case 'GET /api/events':
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        listeners.add(res);
        req.on('close', () => listeners.delete(res));
        // A new page gets the state at once, changed or not; the others get changes only.
        res.write(`data: ${JSON.stringify(await state().catch((err: Error) => ({ error: err.message })))}\n\n`);
        return undefined;
      case 'POST /api/snapshot':
        return ask({ cmd: 'snapshot' }).finally(() => void push());
      case 'POST /api/restore': {
        const body = parseJson(await readBody(req)) as { snapshot?: unknown; path?: unknown; target?: unknown } | null;
        if (body === null || typeof body !== 'object') throw new HttpError(400, 'the body is a JSON object');
        if (typeof body.snapshot !== 'string' || typeof body.path !== 'string' || typeof body.target !== 'string') throw new HttpError(400, 'snapshot, path and target are strings');
        const job: Restore = { id: restores.length + 1, snapshot: body.snapshot, path: body.path, target: body.target, files: 0, bytes: 0, done: false, error: null };
        view.resolve(job.snapshot, job.path);
        restores.push(job);
        view.copy(job.snapshot, job.path, job.target, job).then(
          () => (job.done = true),
          (err: Error) => {
            job.done = true;
            job.error = err.message;
          },
        ).finally(() => void push());
        return job;
      }
      default:
        if (req.method === 'GET' && ASSETS[url.pathname]) {
          res.writeHead(200, { 'content-type': ASSETS[url.pathname]!, 'cache-control': 'no-store' });
          res.end(readFileSync(`${WEB}${url.pathname.slice(1)}`));
          return undefined;
        }
        throw new HttpError(404, 'not found');
    }
  };

  let last = '';
  const push = async (): Promise<void> => {
    if (listeners.size === 0) return;
    const body = JSON.stringify(await state().catch((err: Error) => ({ error: err.message })));
    if (body === last) return;
    last = body;
    for (const l of listeners) l.write(`data: ${body}\n\n`);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    route(req, res, url).then(
      (data) => {
        if (data === undefined || res.headersSent) return;
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(data));
      },
      (err: Error) => {
        const code = (err as NodeJS.ErrnoException).code;
        // ELOOP: a symlink where a file was asked for; it is not followed.
        const status = err instanceof HttpError ? err.status : err instanceof PathError || code === 'ELOOP' ? 400 : code === 'ENOENT' || code === 'ENOTDIR' ? 404 : 500;
        if (res.headersSent) return void res.destroy();
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err.message }));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  process.stdout.write(`http://127.0.0.1:${port}/?token=${token}\n`);
  const tick = setInterval(() => {
    // The daemon is gone: so is its dashboard.
    if (!existsSync(socket)) process.exit(0);
    void push();
  }, PUSH_MS);
  tick.unref();
  await new Promise<void>((resolve) => server.on('close', resolve));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      s += d;
      if (s.length > 65536) req.destroy(new HttpError(413, 'request too large'));
    });
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  serveUi().catch((err: Error) => {
    process.stderr.write(`safe ui: ${err.message}\n`);
    process.exit(1);
  });
}
