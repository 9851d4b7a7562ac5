// A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal.
export class Progress {
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;
  private readonly start = Date.now();

  constructor(private readonly label: string) {}

  update(done: number, total: number, extra = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 30;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 && frac < 1 ? ` eta ${Math.round((elapsed / frac) * (1 - frac))}s` : '';
    process.stderr.write(`\r${this.label} [${bar}] ${(frac * 100).toFixed(0)}% ${extra}${eta}\x1b[K`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}
