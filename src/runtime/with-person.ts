/**
 * Run application work as one person. One transaction, `SET LOCAL ROLE` (through
 * set_config('role', ..., true), so the name is a bind parameter, never spliced into SQL);
 * nothing survives the transaction, so a pooled connection (pgbouncer in transaction mode)
 * never carries one person's identity into the next request.
 *
 *   await withPerson(sql, 'alice', (tx) => tx`SELECT id, phone FROM crm_api.customers`);
 *   -- BEGIN; SELECT set_config('role', 'alice', true); SELECT ...; COMMIT;
 */
import type postgres from 'postgres';

export interface PersonOptions {
  /** prefix of person role names (the role_prefix the model was applied with) */
  rolePrefix?: string;
}

export async function withPerson<T>(
  sql: postgres.Sql,
  person: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
  options: PersonOptions = {},
): Promise<T> {
  if (!person) throw new TypeError('withPerson: a person name is required');
  const role = (options.rolePrefix ?? '') + person;
  return (await sql.begin(async (tx) => {
    await tx`SELECT pg_catalog.set_config('role', ${role}, true)`;
    return await fn(tx);
  })) as T;
}
