/**
 * introspect checks the objects that come in numbers (functions, views, policies, triggers,
 * grants, ...) many at a time, one query per shape (presenceBatch / existenceBatch in
 * src/introspect/index.ts). Each object's own presenceCheck / existenceCheck is the definition:
 * the batched answers must be the same, on a database as applied, after hand edits of every
 * kind, and before anything was applied.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCrmFile, setupCrm } from '../examples/crm/setup.js';
import type { CatalogObject } from '../src/catalog/objects.js';
import { objectKey } from '../src/catalog/objects.js';
import { compile } from '../src/compile/index.js';
import {
  existenceCheck,
  introspect,
  presenceCheck,
  serverVersionNum,
} from '../src/introspect/index.js';
import type { Model } from '../src/model/types.js';
import { sql } from '../src/sql/fragment.js';
import { loadParser } from '../src/sql/tree.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

let t: TestDb;
let empty: TestDb;
let model: Model;
beforeAll(async () => {
  await loadParser();
  [t, empty] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  ({ model } = await setupCrm(t.sql, { rolePrefix: t.prefix }));
  await empty.sql.begin((tx) => tx.unsafe(readCrmFile('schema.sql')).simple());
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
  await empty?.cleanup();
});

/** Each object's check on its own: the reference the batches must match. */
async function oneByOne(
  db: postgres.TransactionSql,
  objects: readonly CatalogObject[],
): Promise<{ present: Record<string, boolean>; exists: Record<string, boolean> }> {
  const [{ installed } = { installed: false }] = await db<{ installed: boolean }[]>`
    SELECT pg_catalog.to_regclass('pgwarden.applied_objects') IS NOT NULL AS installed`;
  const columns = await db<{ table: string; column: string }[]>`
    SELECT table_name AS table, column_name AS column FROM information_schema.columns
    WHERE table_schema = 'pgwarden'`;
  const catalogTables = new Map<string, Set<string>>();
  for (const c of columns) {
    const set = catalogTables.get(c.table) ?? new Set<string>();
    set.add(c.column);
    catalogTables.set(c.table, set);
  }
  const version = await serverVersionNum(db);
  const present: Record<string, boolean> = {};
  const exists: Record<string, boolean> = {};
  for (const o of objects) {
    const [p] = await db.unsafe<{ r: boolean }[]>(
      sql`SELECT ${presenceCheck(o, version, installed, catalogTables)} AS r`.text,
    );
    present[objectKey(o)] = p?.r === true;
    const e = existenceCheck(o);
    if (e) {
      const [x] = await db.unsafe<{ r: boolean }[]>(sql`SELECT ${e} AS r`.text);
      exists[objectKey(o)] = x?.r === true;
    }
  }
  return { present, exists };
}

async function compare(
  db: postgres.Sql,
  prefix: string,
  edits: readonly string[],
): Promise<{ falses: number; present: Record<string, boolean> }> {
  const desired = compile(model, { rolePrefix: prefix });
  let falses = 0;
  let present: Record<string, boolean> = {};
  await db
    .begin(async (tx) => {
      if (edits.length > 0) await tx.unsafe(edits.join(';\n')).simple();
      const live = await introspect(tx, desired);
      const ref = await oneByOne(tx, desired);
      expect(Object.fromEntries(live.present)).toEqual(ref.present);
      expect(Object.fromEntries(live.exists)).toEqual(ref.exists);
      falses = Object.values(ref.present).filter((v) => !v).length;
      present = ref.present;
      throw new RolledBack();
    })
    .catch((e: unknown) => {
      if (!(e instanceof RolledBack)) throw e;
    });
  return { falses, present };
}

class RolledBack extends Error {}

describe('batched presence and existence checks agree with the checks one by one', () => {
  it('on the database as applied', async () => {
    expect((await compare(t.sql, t.prefix, [])).falses).toBe(0);
  });

  it('after hand edits of every kind', async () => {
    const p = t.prefix;
    const { falses, present } = await compare(t.sql, p, [
      'DROP POLICY deals_select ON crm.deals',
      'ALTER POLICY customers_select ON crm.customers USING (true)',
      `ALTER POLICY contacts_update ON crm.contacts TO "${p}crm_people"`,
      'CREATE POLICY backdoor ON crm.contracts FOR SELECT TO PUBLIC USING (true)',
      'ALTER VIEW crm_api.deals OWNER TO postgres',
      'CREATE OR REPLACE VIEW crm_api.contracts AS SELECT * FROM crm_api.contracts WHERE true',
      'DROP VIEW crm_api.contacts CASCADE',
      'ALTER TABLE crm.customers DISABLE TRIGGER pgwarden_audit_update',
      'ALTER TABLE crm.deals ENABLE TRIGGER pgwarden_audit_insert',
      'DROP TRIGGER pgwarden_no_truncate ON crm.contracts',
      'ALTER TABLE crm.deals NO FORCE ROW LEVEL SECURITY',
      'ALTER TABLE crm.contacts DISABLE ROW LEVEL SECURITY',
      'ALTER TABLE crm.contracts OWNER TO postgres',
      'GRANT SELECT ON crm.customers TO PUBLIC',
      'GRANT USAGE ON SCHEMA crm TO PUBLIC',
      `REVOKE SELECT ON crm_api.customers FROM "${p}crm_people"`,
      `REVOKE INSERT ON crm_api.deals FROM "${p}crm_people"`,
      `REVOKE EXECUTE ON FUNCTION pgwarden.caller() FROM "${p}crm_people"`,
      'GRANT EXECUTE ON FUNCTION pgwarden.has_job(name, text) TO PUBLIC',
      'ALTER FUNCTION pgwarden._keys_customers(name) OWNER TO postgres',
      'ALTER FUNCTION pgwarden._keys_customers_via_own(name) SECURITY INVOKER',
      'DROP FUNCTION pgwarden._keys_customers_via_pool(name) CASCADE',
      `CREATE OR REPLACE FUNCTION pgwarden_audit.changed_deals() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
      `ALTER ROLE "${p}crm_app" NOLOGIN`,
      "UPDATE pgwarden.jobs SET description = 'edited' WHERE name = 'sales_rep'",
      // catalog rows: a boolean, a text array, a jsonb value, an integer, a NULL, a row gone
      "UPDATE pgwarden.jobs SET privileged = NOT privileged WHERE name = 'sales_director'",
      "UPDATE pgwarden.tables SET grantable = grantable || '{id}' WHERE name = 'customers'",
      'UPDATE pgwarden.row_checks SET assigned = \'[{"jobs": ["x"], "attribute": "y"}]\' WHERE key = \'contracts:select\'',
      'UPDATE pgwarden.export_rules SET per_day = per_day + 1 WHERE key = (SELECT min(key) FROM pgwarden.export_rules)',
      "UPDATE pgwarden.jobs SET description = NULL WHERE name = 'support_agent'",
      'DELETE FROM pgwarden.reveal_rules WHERE key = (SELECT min(key) FROM pgwarden.reveal_rules)',
    ]);
    expect(falses).toBeGreaterThan(20);
    // each catalog row edit is seen (catalog rows are checked in batches per table too)
    const rows = Object.entries(present).filter(([k]) => k.startsWith('catalog_row:'));
    expect(
      rows
        .filter(([, v]) => !v)
        .map(([k]) => k)
        .sort(),
    ).toEqual([
      'catalog_row:export_rules:customers:sales_director',
      'catalog_row:jobs:sales_director',
      'catalog_row:jobs:sales_rep',
      'catalog_row:jobs:support_agent',
      'catalog_row:reveal_rules:customers.id_number',
      'catalog_row:row_checks:contracts:select',
      'catalog_row:tables:customers',
    ]);
  });

  it('on a catalog from before the file that adds a catalog table (an upgrade)', async () => {
    // as a database applied by a pgwarden from before sql/016: no row_checks table
    // and, as before a file that adds a column, no jobs.privileged
    const { present } = await compare(t.sql, t.prefix, [
      'DROP TABLE pgwarden.row_checks CASCADE',
      "DELETE FROM pgwarden.applied_objects WHERE key = 'catalog:016' OR key LIKE 'catalog_row:row_checks:%'",
      'ALTER TABLE pgwarden.jobs DROP COLUMN privileged CASCADE',
    ]);
    const rows = Object.entries(present).filter(([k]) => k.startsWith('catalog_row:row_checks:'));
    expect(rows.length).toBeGreaterThan(2);
    expect(rows.every(([, v]) => v === false)).toBe(true);
    const jobs = Object.entries(present).filter(([k]) => k.startsWith('catalog_row:jobs:'));
    expect(jobs.length).toBeGreaterThan(5);
    expect(jobs.every(([, v]) => v === false)).toBe(true);
  });

  it('before anything was applied', async () => {
    const { falses } = await compare(empty.sql, empty.prefix, []);
    expect(falses).toBeGreaterThan(100);
  });
});
