// Scheduled jobs (node-cron: snapshots, audits), one run at a time: a run still going when the
// next is due is not doubled up.
import cron from 'node-cron';
import { UserError } from './errors.js';
import type { Log } from '../log/logger.js';

export interface Job {
  stop(): void;
  /** When it runs next (ms since the epoch). */
  next(): number | null;
}

export function scheduleJob(what: string, expression: string, job: () => Promise<void>, log: Log): Job {
  if (!cron.validate(expression)) throw new UserError(`the ${what} schedule '${expression}' in the config is not a cron expression`);
  let running = false;
  const task = cron.schedule(expression, async () => {
    if (running) return;
    running = true;
    try {
      await job();
    } catch (err) {
      log.warn(`scheduled ${what} failed: ${(err as Error).message}`);
    } finally {
      running = false;
    }
  });
  return { stop: () => void task.stop(), next: () => task.getNextRun()?.getTime() ?? null };
}
