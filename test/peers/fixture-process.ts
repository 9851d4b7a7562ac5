// A fixture process (fixtures/peer.ts) and the JSON lines it prints; killed when the tests end.
import { after } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const FIXTURE = new URL('./fixtures/peer.js', import.meta.url).pathname;
const running = new Set<FixtureProcess<object>>();
after(() => {
  for (const p of running) p.child.kill('SIGKILL');
});

export class FixtureProcess<Line extends object> {
  readonly lines: Line[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;
  readonly child: ChildProcess;

  constructor(cfg: object) {
    // stdin is the fixture's lifeline: it stops when the pipe closes, even if we crash.
    this.child = spawn(process.execPath, [FIXTURE, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      this.lines.push(JSON.parse(l) as Line);
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** The first line from index `from` on that `pred` accepts, waiting up to `ms`. */
  async next(pred: (l: Line) => boolean, ms: number, what: string, from = 0): Promise<Line> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit) return hit;
      if (this.child.exitCode !== null) throw new Error(`${what}: process exited ${this.child.exitCode}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: nothing within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<number | null> {
    this.child.stdin!.end();
    return this.exited;
  }
}
