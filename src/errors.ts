/**
 * One error type for everything pgwarden reports: a stable code, a message that names the
 * object, a hint that states the fix, and the Postgres error (if any) as `cause`.
 */
export class PgwardenError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PgwardenError';
  }
}
