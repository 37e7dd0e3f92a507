/**
 * SECURITY.md I (audit) and J (the pgwarden catalog), the tampering paths not already in
 * test/audit.test.ts ("people … cannot insert, update, delete or truncate audit rows, or silence
 * triggers", "crm_app itself cannot either", tampering by a superuser) and test/crm-writes.test.ts
 * (self-grant, own expiry, re-parenting, approvals).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Crm, crm, failure } from './helpers.js';

let c: Crm;
let before: Record<string, string>;
let partition: string;
let logPartition: string;
beforeAll(async () => {
  c = await crm();
  const [p] = await c.t.sql<
    { p: string }[]
  >`SELECT c.relname AS p FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'pgwarden_audit.events'::regclass ORDER BY 1 LIMIT 1`;
  partition = `pgwarden_audit.${p?.p}`;
  // a monthly partition of a data log (sql/018) too
  const [lp] = await c.t.sql<
    { p: string }[]
  >`SELECT c.relname AS p FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'pgwarden_audit.data_customers'::regclass ORDER BY 1 LIMIT 1`;
  logPartition = `pgwarden_audit.${lp?.p}`;
  before = await c.fingerprint();
});
afterAll(async () => {
  await c?.end();
});

describe('I. audit tampering by people', () => {
  it('a monthly partition reached by name: SELECT, INSERT, UPDATE, DELETE, TRUNCATE are refused (42501), also for the reader', async () => {
    for (const p of ['alice', 'adam', 'audrey']) {
      for (const stmt of [
        `SELECT * FROM ${partition}`,
        `INSERT INTO ${partition} (kind, operation, actor, authenticator) VALUES ('data', 'X', 'x', 'x')`,
        `UPDATE ${partition} SET person = NULL`,
        `DELETE FROM ${partition}`,
        `TRUNCATE ${partition}`,
        'DELETE FROM pgwarden_audit.seal_state',
        'DELETE FROM pgwarden_audit.archives',
        'SELECT * FROM pgwarden_audit.hash_key',
        `ALTER TABLE pgwarden_audit.events DETACH PARTITION ${partition}`,
        `SELECT * FROM ${logPartition}`,
        `INSERT INTO ${logPartition} (recorded_at, op, actor, authenticator, txid, statement_at) VALUES (now(), 'D', 'x', 'x', '1', now())`,
        `UPDATE ${logPartition} SET person = NULL`,
        `DELETE FROM ${logPartition}`,
        `TRUNCATE ${logPartition}`,
        `ALTER TABLE pgwarden_audit.data_customers DETACH PARTITION ${logPartition}`,
      ]) {
        expect((await failure(c.as(p, (tx) => tx.unsafe(stmt)))).code, `${p}: ${stmt}`).toBe(
          '42501',
        );
      }
    }
  });

  it("pgwarden's audit functions are not callable by people: seal, anchor, record_event, hash_value, protect, ensure_partitions (42501)", async () => {
    for (const stmt of [
      'SELECT pgwarden_audit.seal(10)',
      'SELECT pgwarden_audit.anchor()',
      `SELECT pgwarden_audit.record_event('reveal', 'customers', '1', '{}')`,
      `SELECT pgwarden_audit.hash_value('x')`,
      `SELECT pgwarden_audit.protect('crm.customers')`,
      `SELECT pgwarden_audit.ensure_partitions(current_date, 1)`,
    ]) {
      expect((await failure(c.as('adam', (tx) => tx.unsafe(stmt)))).code, stmt).toBe('42501');
    }
  });

  it('the reader views are read-only, even for audrey (55000 / 42501)', async () => {
    for (const stmt of [
      'UPDATE pgwarden_audit.log SET person = NULL',
      'DELETE FROM pgwarden_audit.log',
      'DELETE FROM pgwarden_audit.data_changes',
    ]) {
      const e = await failure(c.as('audrey', (tx) => tx.unsafe(stmt)));
      expect(['55000', '42501'], stmt).toContain(e.code);
    }
    expect(await c.fingerprint()).toEqual(before);
  });

  it('identity spoofing does not reach the record: alice with app.user / application_name = vera is recorded as alice', async () => {
    const [mine] = await c.t.sql<
      { id: string }[]
    >`SELECT id::text FROM crm.customers WHERE owner = 'alice' ORDER BY id LIMIT 1`;
    await c.as('alice', async (tx) => {
      await tx`SELECT set_config('app.user', 'vera', true), set_config('application_name', 'vera', true), set_config('pgwarden.person', 'vera', true)`;
      await tx`UPDATE crm_api.customers SET status = 'active' WHERE id = ${mine?.id as string}`;
    });
    const rec = await c.t
      .sql`SELECT person, actor, authenticator FROM pgwarden_audit.records WHERE kind = 'data' AND row_key = ${mine?.id as string} ORDER BY id DESC LIMIT 1`;
    expect(rec[0]).toEqual({
      person: 'alice',
      actor: c.role('alice'),
      authenticator: c.role('crm_app'),
    });
  });

  it('writes through a data-modifying CTE are recorded once per row, with the true person', async () => {
    const [n0] = await c.t.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pgwarden_audit.records WHERE kind = 'data' AND person = 'bob'`;
    const r = await c.as(
      'bob',
      (tx) =>
        tx`WITH u AS (UPDATE crm_api.customers SET status = status WHERE owner = 'bob' RETURNING id) SELECT count(*)::int AS n FROM u`,
    );
    const [n1] = await c.t.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pgwarden_audit.records WHERE kind = 'data' AND person = 'bob'`;
    expect((n1?.n ?? 0) - (n0?.n ?? 0)).toBe(r[0]?.n);
    expect(r[0]?.n).toBeGreaterThan(0);
  });
});

describe('J. the pgwarden catalog changes only through its functions', () => {
  it('direct writes to catalog tables are refused for people, admins included (42501)', async () => {
    for (const p of ['alice', 'adam', 'olga']) {
      for (const stmt of [
        `INSERT INTO pgwarden.job_grants (person, job) VALUES ('alice', 'sales_director')`,
        `UPDATE pgwarden.temp_grants SET valid_until = 'infinity'`,
        `INSERT INTO pgwarden.shares (table_name, row_key, person) VALUES ('customers', '9', 'alice')`,
        `UPDATE pgwarden.people SET unit = 'sales'`,
        `UPDATE pgwarden.units SET parent = NULL`,
        `DELETE FROM pgwarden.unit_managers`,
      ]) {
        expect((await failure(c.as(p, (tx) => tx.unsafe(stmt)))).code, `${p}: ${stmt}`).toBe(
          '42501',
        );
      }
    }
  });

  it('internal helpers are not callable by people, and public ones answer nothing about someone else (42501 / empty)', async () => {
    for (const stmt of [
      `SELECT pgwarden._person('${c.role('vera')}')`,
      `SELECT pgwarden._self('${c.role('vera')}')`,
    ]) {
      expect((await failure(c.as('alice', (tx) => tx.unsafe(stmt)))).code, stmt).toBe('42501');
    }
    const [r] = await c.as(
      'alice',
      (tx) =>
        tx`SELECT pgwarden.my_units(${c.role('vera')}) AS u, pgwarden.shared_keys(${c.role('bob')}, 'customers') AS s, pgwarden.grant_filters(${c.role('tom')}, 'customers', 'select') AS g, pgwarden.read_cap(${c.role('carol')}, 'customers') AS cap`,
    );
    expect(r).toMatchObject({ u: [], s: [] });
    expect(
      [null, '[]'].includes(JSON.stringify(r?.g) === 'null' ? null : JSON.stringify(r?.g)),
    ).toBe(true);
  });

  it('adam cannot share a row with himself, nor grant himself temporary access (42501), and the catalog is unchanged', async () => {
    const catalog = async () => {
      const f = await c.fingerprint();
      return Object.fromEntries(Object.entries(f).filter(([k]) => k.startsWith('pgwarden.')));
    };
    const was = await catalog();
    expect(
      (
        await failure(
          c.as(
            'adam',
            (tx) => tx`SELECT pgwarden.share('customers', '1', 'adam', now() + interval '1 day')`,
          ),
        )
      ).code,
    ).toBe('42501');
    expect(
      (
        await failure(
          c.as(
            'adam',
            (tx) =>
              tx`SELECT pgwarden.grant_access('adam', 'customers', '{"region": ["east"]}', now() + interval '1 day', 'x', 'select')`,
          ),
        )
      ).code,
    ).toBe('42501');
    expect(await catalog()).toEqual(was);
  });
});
