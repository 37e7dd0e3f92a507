/**
 * Run application work as one person. One transaction, `SET LOCAL ROLE` (through
 * set_config('role', ..., true), so the name is a bind parameter, never spliced into SQL).
 * Before it commits, the transaction also undoes what SQL run as the person could have left on
 * the connection for whoever uses it next (with pgbouncer in transaction mode, another
 * client): a session-level SET ROLE or other setting, temporary tables and functions (which
 * could shadow unqualified names), WITH HOLD cursors (her rows, readable later), LISTEN, and
 * session advisory locks. See SESSION_CLEANUP. So nothing of one person survives the
 * transaction, which also means the application's own session-level SETs do not survive a
 * withPerson on that connection: set them as connection options instead.
 *
 *   await withPerson(sql, 'alice', (tx) => tx`SELECT id, phone FROM crm_api.customers`);
 *   -- BEGIN; SELECT set_config('role', 'alice', true); SELECT ...; COMMIT;
 *
 * With `{ keys }` (encrypted columns), the transaction also gets the keys, right after the role:
 *   -- SELECT set_config('pgwarden.keys', $1, true)   ($1: the keys, comma-separated)
 * RESET ALL in SESSION_CLEANUP clears them again before COMMIT.
 */
import type postgres from 'postgres';
import { type KeySpec, resolveKeys, setTransactionKeys } from './keys.js';

export interface PersonOptions {
  /** prefix of person role names (the role_prefix the model was applied with) */
  rolePrefix?: string;
  /**
   * Encryption keys for this transaction only (encrypted columns, see docs/encryption.md):
   * envKey(), fileKey(path), kmsKey(fn), 'env:NAME', 'file:PATH', a 64-hex key, or a list
   * (new key first). Sent as `set_config('pgwarden.keys', $1, true)`, a bind parameter; an
   * empty list means no key in this transaction even if the connection has one. Omitted: the
   * connection's own keys (a startup parameter, see keyConnectionOptions), if any.
   */
  keys?: KeySpec;
}

/** The keys of `options`, resolved before the transaction begins (undefined: not given). */
export async function transactionKeys(options: PersonOptions): Promise<string[] | undefined> {
  return options.keys === undefined ? undefined : await resolveKeys(options.keys);
}

/**
 * Run last in every withPerson transaction (as one simple-protocol query). `RESET ALL` puts every
 * setting back to its session default (connection options are defaults, not SETs), `RESET ROLE`
 * the session's role, and the rest drop temporary objects, close cursors, stop listening and
 * release session advisory locks. Prepared statements are left alone: the driver keeps its own,
 * and a prepared statement runs with the privileges of whoever executes it.
 */
export const SESSION_CLEANUP =
  'RESET ALL; RESET ROLE; DISCARD TEMP; CLOSE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all()';

export async function withPerson<T>(
  sql: postgres.Sql,
  person: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
  options: PersonOptions = {},
): Promise<T> {
  if (!person) throw new TypeError('withPerson: a person name is required');
  const role = (options.rolePrefix ?? '') + person;
  const keys = await transactionKeys(options);
  return (await sql.begin(async (tx) => {
    await tx`SELECT pg_catalog.set_config('role', ${role}, true)`;
    if (keys)
      await setTransactionKeys(
        (v) => tx`SELECT pg_catalog.set_config('pgwarden.keys', ${v}, true)`,
        keys,
      );
    const result = await fn(tx);
    await tx.unsafe(SESSION_CLEANUP).simple();
    return result;
  })) as T;
}
