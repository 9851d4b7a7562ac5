// The control socket: one JSON request per connection, one JSON reply. The CLI talks to the
// running daemon through it (SAFE_HOME/daemon.sock).
import { createConnection, createServer, type Server } from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';

import type { Policy } from '../snapshot/retention.js';

export type Request =
  | { cmd: 'status' }
  | { cmd: 'storeKeys' }
  | { cmd: 'unmount' }
  | { cmd: 'snapshot'; label?: string }
  | { cmd: 'forget'; policy: Policy; dryRun: boolean; allowAll: boolean }
  | { cmd: 'flush' }
  | { cmd: 'sync'; wait: boolean; now?: boolean }
  | { cmd: 'peers' }
  | { cmd: 'audit' }
  | { cmd: 'repair'; ids: string[] }
  | { cmd: 'fetch'; ino: number; epoch: number }
  | { cmd: 'ui' };
export type Reply = { ok: true; data?: unknown } | { ok: false; error: string };

export function serveControl(path: string, handle: (req: Request) => Promise<unknown>): Server {
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 65536) sock.destroy();
        return;
      }
      let req: Request;
      try {
        req = JSON.parse(buf.slice(0, nl)) as Request;
      } catch {
        sock.end(JSON.stringify({ ok: false, error: 'malformed request' }) + '\n');
        return;
      }
      handle(req).then(
        (data) => sock.end(JSON.stringify({ ok: true, data }) + '\n'),
        (err: Error) => sock.end(JSON.stringify({ ok: false, error: err.message }) + '\n'),
      );
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen(path);
  return server;
}

/** Send one request; resolves null when no daemon listens. */
export function callDaemon(path: string, req: Request, timeoutMs = 600_000): Promise<Reply | null> {
  return new Promise((resolve, reject) => {
    if (!existsSync(path)) return resolve(null);
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('the daemon did not answer in time'));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as Reply);
      } catch {
        reject(new Error('the daemon closed the connection without an answer'));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(null);
      else reject(err);
    });
  });
}
