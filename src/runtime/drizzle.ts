/**
 * withPerson for drizzle-orm (postgres-js driver): the same contract as ../runtime/with-person.ts.
 *
 *   const rows = await withPersonDrizzle(db, 'alice', (tx) => tx.select().from(customersView));
 */
import { sql } from 'drizzle-orm';
import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import { setTransactionKeys } from './keys.js';
import { type PersonOptions, SESSION_CLEANUP, transactionKeys } from './with-person.js';

type Tx<TSchema extends Record<string, unknown>> = Parameters<
  Parameters<PostgresJsDatabase<TSchema>['transaction']>[0]
>[0];

export async function withPersonDrizzle<TSchema extends Record<string, unknown>, T>(
  db: PostgresJsDatabase<TSchema>,
  person: string,
  fn: (tx: Tx<TSchema>) => Promise<T>,
  options: PersonOptions = {},
): Promise<T> {
  if (!person) throw new TypeError('withPersonDrizzle: a person name is required');
  const role = (options.rolePrefix ?? '') + person;
  const keys = await transactionKeys(options);
  return await db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_catalog.set_config('role', ${role}, true)`);
    if (keys)
      await setTransactionKeys(
        (v) => tx.execute(sql`SELECT pg_catalog.set_config('pgwarden.keys', ${v}, true)`),
        keys,
      );
    const result = await fn(tx);
    for (const statement of SESSION_CLEANUP.split('; ')) await tx.execute(sql.raw(statement));
    return result;
  });
}
