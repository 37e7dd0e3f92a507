/**
 * SECURITY.md A (ownership, attributes, grants) and E (views and masking), as attacks.
 * Already covered elsewhere, not repeated: every person gets 42501 on every crm table
 * (test/crm-behaviour.test.ts "… gets permission denied on every crm table"), hand-made
 * NO FORCE / policies are drift (test/plan-apply.test.ts), check's lints (test/check.test.ts).
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Crm, crm, failure, PEOPLE } from './helpers.js';

let c: Crm;
let before: Record<string, string>;
beforeAll(async () => {
  c = await crm();
  before = await c.fingerprint();
});
afterAll(async () => {
  await c?.end();
});

const COLS =
  'id, name, owner, region, customer_type, status, in_pool, phone, email, id_number, address';

describe('A. roles reachable from the application hold no dangerous attribute or privilege', () => {
  it('no person and not the authenticator: SUPERUSER, BYPASSRLS, REPLICATION, CREATEROLE, CREATEDB, pg_read_all_data, pg_write_all_data', async () => {
    const roles = [...PEOPLE.map((p) => c.role(p)), c.role('crm_app'), c.role('crm_people')];
    const rows = await c.t.sql<{ rolname: string; bad: string[] }[]>`
      SELECT r.rolname, ARRAY(
        SELECT x FROM unnest(ARRAY[
          CASE WHEN r.rolsuper THEN 'superuser' END, CASE WHEN r.rolbypassrls THEN 'bypassrls' END,
          CASE WHEN r.rolreplication THEN 'replication' END, CASE WHEN r.rolcreaterole THEN 'createrole' END,
          CASE WHEN r.rolcreatedb THEN 'createdb' END,
          CASE WHEN pg_has_role(r.oid, 'pg_read_all_data', 'MEMBER') THEN 'pg_read_all_data' END,
          CASE WHEN pg_has_role(r.oid, 'pg_write_all_data', 'MEMBER') THEN 'pg_write_all_data' END,
          CASE WHEN pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER') THEN 'pg_execute_server_program' END,
          CASE WHEN pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER') THEN 'pg_read_server_files' END
        ]) AS x WHERE x IS NOT NULL) AS bad
      FROM pg_roles r WHERE r.rolname = ANY (${roles})`;
    expect(rows).toHaveLength(roles.length);
    expect(rows.filter((r) => r.bad.length > 0)).toEqual([]);
  });

  it('no person can reach the table owner, the view owner, the catalog owner or the audit owner', async () => {
    const owners = ['crm_owner', 'crm_api_owner', 'pgwarden_owner', 'pgwarden_audit'].map(c.role);
    const [r] = await c.t.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM unnest(${[...PEOPLE.map((p) => c.role(p)), c.role('crm_app')]}::text[]) p,
        unnest(${owners}::text[]) o WHERE pg_has_role(p, o, 'MEMBER')`;
    expect(r?.n).toBe(0);
    for (const o of owners) {
      const e = await failure(c.as('alice', (tx) => tx.unsafe(`SET ROLE ${o}`)));
      expect(e.code, o).toBe('42501');
    }
  });

  it('no person has CREATE on any schema or the database, nor TRUNCATE, REFERENCES or TRIGGER on any table or view', async () => {
    const rows = await c.t.sql<{ who: string; what: string }[]>`
      SELECT p AS who, 'CREATE on schema ' || n.nspname AS what FROM unnest(${PEOPLE.map((p) => c.role(p))}::text[]) p, pg_namespace n
        WHERE n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT LIKE 'pg\_toast%' AND has_schema_privilege(p, n.oid, 'CREATE')
      UNION ALL
      SELECT p, 'CREATE on database' FROM unnest(${PEOPLE.map((p) => c.role(p))}::text[]) p WHERE has_database_privilege(p, current_database(), 'CREATE')
      UNION ALL
      SELECT p, priv || ' on ' || cl.oid::regclass::text FROM unnest(${PEOPLE.map((p) => c.role(p))}::text[]) p,
        pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace,
        unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) priv
        WHERE n.nspname IN ('crm', 'crm_api', 'pgwarden', 'pgwarden_audit', 'public') AND cl.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND has_table_privilege(p, cl.oid, priv)`;
    expect(rows).toEqual([]);
  });

  it('CREATE TABLE / VIEW / FUNCTION in crm, crm_api, pgwarden or public as a person: 42501', async () => {
    for (const stmt of [
      'CREATE TABLE crm_api.grab AS SELECT * FROM crm_api.customers',
      'CREATE TABLE public.grab AS SELECT * FROM crm_api.customers',
      'CREATE VIEW crm_api.v AS SELECT * FROM crm_api.customers',
      'CREATE MATERIALIZED VIEW public.mv AS SELECT * FROM crm_api.customers',
      'CREATE FUNCTION pgwarden.person_name(x text) RETURNS text LANGUAGE sql AS $$ SELECT x $$',
      'CREATE TABLE crm.grab (a int)',
      'CREATE SCHEMA grab',
    ]) {
      const e = await failure(c.as('carol', (tx) => tx.unsafe(stmt)));
      expect(e.code, stmt).toBe('42501');
    }
  });

  it('ALTER, DROP, GRANT on a view, policy or table by a person changes nothing', async () => {
    for (const stmt of [
      'ALTER VIEW crm_api.customers SET (security_barrier = false)',
      'ALTER TABLE crm.customers NO FORCE ROW LEVEL SECURITY',
      'DROP POLICY customers_select ON crm.customers',
      'CREATE POLICY open ON crm.customers USING (true)',
      'DROP VIEW crm_api.customers',
      'ALTER VIEW crm_api.customers OWNER TO CURRENT_USER',
      'COMMENT ON VIEW crm_api.customers IS $$x$$',
    ]) {
      const e = await failure(c.as('vera', (tx) => tx.unsafe(stmt)));
      expect(e.code, stmt).toBe('42501');
    }
    // GRANT without a grant option is a warning ("no privileges were granted"), not an error
    await c.as('vera', (tx) => tx.unsafe(`GRANT SELECT ON crm_api.customers TO PUBLIC`));
    await c.as('vera', (tx) => tx.unsafe(`GRANT SELECT ON crm_api.customers TO ${c.role('tom')}`));
    expect(await c.fingerprint()).toEqual(before);
  });
});

describe('A. whole-row references never expose a cell the person may not read', () => {
  // the columnwise view rows are what test/crm-behaviour.test.ts proves exact per person
  const columnwise = (person: string) =>
    c.as(person, (tx) => tx.unsafe(`SELECT ${COLS} FROM crm_api.customers ORDER BY id`));
  for (const person of ['bob', 'tom', 'erin', 'fiona']) {
    it(`${person}: SELECT c, row_to_json(c), to_jsonb(c), c::text, record casts equal the masked columns`, async () => {
      const expected = (await columnwise(person)).map((r) => ({ ...r, id: String(r.id) }));
      const viaJson = await c.as(person, (tx) =>
        tx.unsafe(
          `SELECT row_to_json(c) AS j, to_jsonb(c) AS b, c::text AS t, (c).* FROM crm_api.customers c ORDER BY c.id`,
        ),
      );
      expect(viaJson).toHaveLength(expected.length);
      viaJson.forEach((r, i) => {
        const e = expected[i] as Record<string, unknown>;
        for (const col of ['phone', 'email', 'id_number', 'address']) {
          expect(r.j[col], `${person} row ${e.id} ${col} (row_to_json)`).toBe(e[col]);
          expect(r.b[col], `${person} row ${e.id} ${col} (to_jsonb)`).toBe(e[col]);
          expect(r[col], `${person} row ${e.id} ${col} ((c).*)`).toBe(e[col]);
        }
      });
      // the record's text form contains no real value the columnwise row does not show
      const real = await c.t.sql<
        {
          id: string;
          phone: string | null;
          email: string | null;
          id_number: string | null;
          address: string | null;
        }[]
      >`SELECT id::text, phone, email, id_number, address FROM crm.customers`;
      for (const r of viaJson) {
        const e = expected.find((x) => x.id === String(r.j.id)) as Record<string, unknown>;
        const base = real.find((x) => x.id === String(r.j.id));
        for (const col of ['phone', 'email', 'id_number', 'address'] as const) {
          const v = base?.[col];
          if (v && e[col] !== v)
            expect(r.t.includes(v), `${person} ${r.j.id} ${col} in c::text`).toBe(false);
        }
      }
    });
  }

  it('a whole-row reference to the base table is refused (42501)', async () => {
    const e = await failure(c.as('vera', (tx) => tx`SELECT c FROM crm.customers c`));
    expect(e.code).toBe('42501');
  });

  it('RETURNING * of an UPDATE and an INSERT shows the masked row, not the stored one', async () => {
    // alice's own customer: id_number is masked even for her; RETURNING * must say so too
    const r = await c.t.sql<
      { id: string; id_number: string }[]
    >`SELECT id::text, id_number FROM crm.customers WHERE owner = 'alice' AND id_number IS NOT NULL ORDER BY id LIMIT 1`;
    const id = r[0]?.id as string;
    const [row] = await c
      .as('alice', async (tx) => {
        const out = await tx`UPDATE crm_api.customers SET name = name WHERE id = ${id} RETURNING *`;
        throw Object.assign(new Error('rollback'), { out });
      })
      .catch((e: { out: postgres.RowList<postgres.Row[]> }) => e.out);
    expect(row?.id_number).not.toBe(r[0]?.id_number);
    expect(row?.id_number).toMatch(/^\d{6}\*+\d{4}$/);
    const ins = await c
      .as('alice', async (tx) => {
        const out =
          await tx`INSERT INTO crm_api.customers (name, region, customer_type, id_number, in_pool) VALUES ('Probe', 'east', 'retail', '110101199001011234', true) RETURNING *`;
        throw Object.assign(new Error('rollback'), { out });
      })
      .catch((e: { out: postgres.RowList<postgres.Row[]> }) => e.out);
    // a row she creates in the pool: the pool hides every contact cell, also from RETURNING
    expect(ins[0]).toMatchObject({ owner: 'alice', in_pool: true, id_number: null, phone: null });
    expect(await c.fingerprint()).toEqual(before);
  });
});

describe('E. views and masking', () => {
  it('a temporary view or table over crm_api holds only what the person sees (the view runs as her)', async () => {
    const own = await c.as('bob', (tx) =>
      tx.unsafe(`SELECT ${COLS} FROM crm_api.customers ORDER BY id`),
    );
    const viaTemp = await c.as('bob', async (tx) => {
      await tx.unsafe('CREATE TEMP VIEW grab AS SELECT * FROM crm_api.customers');
      await tx.unsafe('CREATE TEMP TABLE grab2 AS SELECT * FROM crm_api.customers');
      const a = await tx.unsafe(`SELECT ${COLS} FROM pg_temp.grab ORDER BY id`);
      const b = await tx.unsafe(`SELECT ${COLS} FROM pg_temp.grab2 ORDER BY id`);
      await tx.unsafe('DROP VIEW pg_temp.grab; DROP TABLE pg_temp.grab2');
      return [a, b];
    });
    expect([...(viaTemp[0] ?? [])]).toEqual([...own]);
    expect([...(viaTemp[1] ?? [])]).toEqual([...own]);
  });

  it('masks are lossy: phones that differ in the hidden digits mask alike, so no dictionary reverses them', async () => {
    const [r] = await c.as(
      'alice',
      (tx) =>
        tx`SELECT pgwarden.mask_phone('13812345678') AS a, pgwarden.mask_phone('13899995678') AS b, pgwarden.mask_id_number('110101199001011234') AS c, pgwarden.mask_id_number('110101200012311234') AS d`,
    );
    expect(r).toEqual({
      a: '138****5678',
      b: '138****5678',
      c: '110101********1234',
      d: '110101********1234',
    });
    // the keyed hash used by audit is not callable, its key not readable
    expect(
      (await failure(c.as('alice', (tx) => tx`SELECT pgwarden_audit.hash_value('13812345678')`)))
        .code,
    ).toBe('42501');
    expect(
      (await failure(c.as('audrey', (tx) => tx`SELECT * FROM pgwarden_audit.hash_key`))).code,
    ).toBe('42501');
  });

  it('no materialized view in the database is readable by a person', async () => {
    const rows = await c.t.sql<{ mv: string }[]>`
      SELECT m.oid::regclass::text AS mv FROM pg_class m, unnest(${PEOPLE.map((p) => c.role(p))}::text[]) p
      WHERE m.relkind = 'm' AND has_table_privilege(p, m.oid, 'SELECT')`;
    expect(rows).toEqual([]);
  });

  it('COPY of a view is refused (42809), COPY of the base table 42501', async () => {
    const e = await failure(c.as('alice', (tx) => tx.unsafe('COPY crm_api.customers TO STDOUT')));
    expect(e.code).toBe('42809');
    const e2 = await failure(c.as('alice', (tx) => tx.unsafe('COPY crm.customers TO STDOUT')));
    expect(e2.code).toBe('42501');
    expect(await c.fingerprint()).toEqual(before);
  });
});
