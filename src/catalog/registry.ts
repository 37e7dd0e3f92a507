/**
 * The applied-object registry row for an object, as one SQL statement, shared by apply and by
 * generate (so both leave the same registry behind). For policies and views it also records the
 * server's own form of the object right after it was created, which later plans compare with.
 */
import { join, literal, type Sql, sql, textArray, unsafeRaw } from '../sql/fragment.js';
import { canonicalJson, fingerprint } from './fingerprint.js';
import type { CatalogObject } from './objects.js';
import { objectKey } from './objects.js';

/** `pgwarden._server_form(...)` for objects whose stored form the server rewrites; NULL otherwise. */
export function serverFormExpr(o: CatalogObject): Sql {
  switch (o.kind) {
    case 'policy':
      return sql`pgwarden._server_form('policy', ${literal(o.schema)}, ${literal(o.name)}, ${literal(o.table)})`;
    case 'view':
      return sql`pgwarden._server_form('view', ${literal(o.schema)}, ${literal(o.name)})`;
    default:
      return unsafeRaw('NULL');
  }
}

export function registryUpsert(o: CatalogObject): Sql {
  return sql`INSERT INTO pgwarden.applied_objects (key, kind, fingerprint, definition, server_form)
  VALUES (${literal(objectKey(o))}, ${literal(o.kind)}, ${literal(fingerprint(o))}, ${literal(canonicalJson(o))}, ${serverFormExpr(o)})
  ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, fingerprint = EXCLUDED.fingerprint,
    definition = EXCLUDED.definition, server_form = EXCLUDED.server_form, applied_at = now()`;
}

/**
 * registryUpsert for many objects in one statement (apply records thousands at once): the same
 * rows, with pgwarden._server_form called from one place, so the server plans it once.
 */
export function registryUpsertMany(objects: readonly CatalogObject[]): Sql {
  const col = (values: readonly string[]) => sql`pg_catalog.unnest(${textArray(values)})`;
  const names = objects.map((o) =>
    o.kind === 'policy'
      ? { schema: o.schema, name: o.name, table: o.table }
      : o.kind === 'view'
        ? { schema: o.schema, name: o.name, table: '' }
        : { schema: '', name: '', table: '' },
  );
  const rows = join(
    [
      col(objects.map(objectKey)),
      col(objects.map((o) => o.kind)),
      col(objects.map(fingerprint)),
      col(objects.map(canonicalJson)),
      col(names.map((n) => n.schema)),
      col(names.map((n) => n.name)),
      col(names.map((n) => n.table)),
    ],
    ',\n    ',
  );
  return sql`INSERT INTO pgwarden.applied_objects (key, kind, fingerprint, definition, server_form)
  SELECT t.key, t.kind, t.fingerprint, t.definition,
    CASE t.kind WHEN 'policy' THEN pgwarden._server_form('policy', t.schema_name, t.object_name, t.table_name)
      WHEN 'view' THEN pgwarden._server_form('view', t.schema_name, t.object_name) END
  FROM ROWS FROM (${rows}) AS t(key, kind, fingerprint, definition, schema_name, object_name, table_name)
  ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, fingerprint = EXCLUDED.fingerprint,
    definition = EXCLUDED.definition, server_form = EXCLUDED.server_form, applied_at = now()`;
}

export function registryDelete(key: string): Sql {
  return sql`DELETE FROM pgwarden.applied_objects WHERE key = ${literal(key)}`;
}
