/**
 * Checks before planning: the things apply cannot create itself must already be there, and the
 * connecting role must be able to create roles and policies. Each failure names the fix.
 */
import type postgres from 'postgres';
import type { CatalogObject, SchemaObject, TableOwnerObject } from '../catalog/objects.js';
import { PgwardenError } from '../errors.js';
import { quoteIdent } from '../sql/quote.js';

type Db = postgres.Sql | postgres.TransactionSql;

export async function preflight(db: Db, desired: readonly CatalogObject[]): Promise<void> {
  const [me] = await db<
    { superuser: boolean; user: string }[]
  >`SELECT rolsuper AS superuser, current_user AS user FROM pg_roles WHERE rolname = current_user`;
  if (!me?.superuser) {
    throw new PgwardenError(
      'not_superuser',
      `role "${me?.user ?? '?'}" is not a superuser; pgwarden apply creates roles with BYPASSRLS and CREATEROLE and changes table owners`,
      'Run plan/apply as a superuser (the database administrator), e.g. --url postgres://postgres@host/db.',
    );
  }
  const tables = desired.filter((o): o is TableOwnerObject => o.kind === 'table_owner');
  const schemas = desired.filter((o): o is SchemaObject => o.kind === 'schema' && !o.create);
  const missing: string[] = [];
  // one query for all of them (a model may have hundreds of tables), in the model's order
  const rows = await db<{ ok: boolean }[]>`
    SELECT to_regnamespace(s.name) IS NOT NULL AS ok
    FROM ROWS FROM (pg_catalog.unnest(${schemas.map((s) => quoteIdent(s.name))}::text[])) WITH ORDINALITY AS s(name, i)
    ORDER BY s.i`;
  for (const [i, s] of schemas.entries()) if (!rows[i]?.ok) missing.push(`schema "${s.name}"`);
  const found = await db<{ ok: boolean }[]>`
    SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = t.schema AND c.relname = t.name AND c.relkind IN ('r', 'p')) AS ok
    FROM ROWS FROM (pg_catalog.unnest(${tables.map((t) => t.schema)}::pg_catalog.name[]), pg_catalog.unnest(${tables.map((t) => t.table)}::pg_catalog.name[])) WITH ORDINALITY AS t(schema, name, i)
    ORDER BY t.i`;
  for (const [i, t] of tables.entries())
    if (!found[i]?.ok) missing.push(`table "${t.schema}"."${t.table}"`);
  if (missing.length > 0) {
    throw new PgwardenError(
      'missing_table',
      `the model protects ${missing.join(', ')}, which ${missing.length === 1 ? 'does' : 'do'} not exist in this database`,
      'Create the tables first (e.g. drizzle-kit migrate), or fix the names in the model.',
    );
  }
}
