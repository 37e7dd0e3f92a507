/** Table shapes from the live database, for models (YAML/JSON) that do not list columns. */
import type postgres from 'postgres';

export async function readColumns(
  db: postgres.Sql,
  schema: string,
  tables: readonly string[],
): Promise<Record<string, { name: string; type: string }[]>> {
  const rows = await db<{ table: string; name: string; type: string }[]>`
    SELECT c.relname AS table, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${schema} AND c.relname = ANY (${tables as string[]}) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum`;
  const out: Record<string, { name: string; type: string }[]> = {};
  for (const r of rows) {
    const list = out[r.table] ?? [];
    list.push({ name: r.name, type: r.type });
    out[r.table] = list;
  }
  return out;
}
