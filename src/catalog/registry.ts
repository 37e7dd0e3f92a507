/**
 * The applied-object registry row for an object, as one SQL statement, shared by apply and by
 * generate (so both leave the same registry behind). For policies and views it also records the
 * server's own form of the object right after it was created, which later plans compare with.
 */
import { literal, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
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

export function registryDelete(key: string): Sql {
  return sql`DELETE FROM pgwarden.applied_objects WHERE key = ${literal(key)}`;
}
