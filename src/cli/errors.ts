/** A mistake the user can fix: printed as one line, no stack trace. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}
