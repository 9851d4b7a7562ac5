/** A mistake the user can fix: printed as one line, no stack trace. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

/** The index database is damaged (SQLite found it, or our check did): what is safe, what to do. */
export function damagedIndex(detail: string, cause?: unknown): UserError {
  return new UserError(
    `the index database (store/index.db) is damaged: ${detail}; the packs are untouched: put back a copy of index.db, or rebuild this host from its buddies (safe recover --force)`,
    1,
    { cause },
  );
}
