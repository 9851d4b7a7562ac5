// Versioned schemas: a database's tables change only through its ordered list of migrations,
// keyed on PRAGMA user_version. Each step runs once, at open, in its own transaction with the
// version it brings, so a crash mid-upgrade leaves the store at the last whole step.
import type { Db } from './index-db.js';

export interface MigrationContext {
  db: Db;
  /** The store's pack files (a step may have to read boxes). */
  packsDir: string;
}

export interface Migration {
  version: number;
  /** What the step changes, for the log. */
  what: string;
  up(ctx: MigrationContext): void;
}

export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Brings the database up to the last step; returns the steps it ran. */
export function migrate(ctx: MigrationContext, steps: readonly Migration[]): Migration[] {
  steps.forEach((s, i) => {
    if (s.version !== i + 1) throw new Error(`migration ${i + 1} is numbered ${s.version}`);
  });
  const have = schemaVersion(ctx.db);
  if (have > steps.length) {
    throw new SchemaError(`this store has schema version ${have}, written by a newer release of safe (this one knows versions up to ${steps.length}): upgrade safe`);
  }
  const ran = steps.slice(have);
  for (const step of ran) {
    ctx.db.transaction(() => {
      step.up(ctx);
      ctx.db.pragma(`user_version = ${step.version}`);
    }).immediate();
  }
  return ran;
}
