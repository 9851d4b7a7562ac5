// The dashboard's web server runs as a child of the daemon (src/ui/server.ts): a process of its
// own, so a browser's requests never wait on the folder's thread and the folder never waits on
// them. Started at the first `safe ui`, kept until the daemon stops.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Log } from '../log/logger.js';

const SERVER = new URL('../ui/server.js', import.meta.url).pathname;

export class Dashboard {
  private child: ChildProcess | null = null;
  private address: Promise<string> | null = null;

  constructor(private readonly log: Log) {}

  /** Its URL, with the session's token; starts it when it is not running. */
  url(): Promise<string> {
    this.address ??= new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [SERVER], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
      this.child = child;
      createInterface({ input: child.stdout! }).once('line', (line) => {
        this.log(`dashboard at ${line.replace(/\?token=.*/, '')}`);
        resolve(line);
      });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.once('exit', (code) => {
        this.child = null;
        this.address = null;
        if (code) this.log.warn(`the dashboard stopped (${code}): ${err.trim()}`);
        reject(new Error(`the dashboard did not start: ${err.trim() || `exit ${code}`}`));
      });
    });
    return this.address;
  }

  stop(): void {
    this.child?.kill();
  }
}
