/**
 * Reveal, export, approvals and alerts (issue #5), as the people of SCENARIO.md through the
 * application role. Decisions are recorded and committed before any data is returned.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { PgwardenError } from '../src/errors.js';
import { exportBatches, reveal, startExport } from '../src/runtime/reveal-export.js';
import { withPerson } from '../src/runtime/with-person.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

let t: TestDb;
let app: postgres.Sql;
let listener: postgres.Sql;
const alerts: Record<string, unknown>[] = [];
const opts = () => ({ rolePrefix: t.prefix });
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, opts());
async function all(person: string, exportId: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const rows of exportBatches(app, person, exportId, opts())) out.push(...rows);
  return out;
}
let customerValues: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 2 });
  listener = postgres(t.url, { max: 1, onnotice: () => {} });
  await listener.listen('pgwarden_alerts', (p) =>
    alerts.push(JSON.parse(p) as Record<string, unknown>),
  );
  // id_number in clear (it is stored encrypted; the superuser connection supplies the test key)
  const rows =
    await t.sql`SELECT name, phone, email, pgwarden.decrypt_value(id_number, 'crm.customers.id_number') AS id_number, address FROM crm.customers`;
  customerValues = rows
    .flatMap((r) => [r.name, r.phone, r.email, r.id_number, r.address])
    .filter((v): v is string => typeof v === 'string');
});
afterAll(async () => {
  await listener?.end();
  await app?.end();
  await t?.cleanup();
});

const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 50 && !cond(); i++) await new Promise((r) => setTimeout(r, 100));
};

describe('reveal', () => {
  it('the owner reveals an id_number in full, recorded; the 21st reveal of the day is refused', async () => {
    const [c] =
      await t.sql`SELECT id::int, pgwarden.decrypt_value(id_number, 'crm.customers.id_number') AS id_number FROM crm.customers WHERE owner = 'alice' AND id_number IS NOT NULL ORDER BY id LIMIT 1`;
    const v = await reveal(app, 'alice', 'customers', String(c?.id), 'id_number', opts());
    expect(v).toBe(c?.id_number);
    for (let i = 1; i < 20; i++)
      await reveal(app, 'alice', 'customers', String(c?.id), 'id_number', opts());
    const err = await reveal(app, 'alice', 'customers', String(c?.id), 'id_number', opts()).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PgwardenError);
    expect((err as PgwardenError).code).toBe('refused_quota');
    expect((err as Error).message).toContain('alice has revealed 20 of 20 cells allowed today');
    const [recs] =
      await t.sql`SELECT count(*) FILTER (WHERE kind = 'reveal')::int AS ok, count(*) FILTER (WHERE kind = 'denied')::int AS denied FROM pgwarden_audit.records WHERE person = 'alice'`;
    expect(recs).toEqual({ ok: 20, denied: 1 });
    await waitFor(() => alerts.some((a) => a.kind === 'reveal_quota'));
    expect(alerts.find((a) => a.kind === 'reveal_quota')).toMatchObject({
      person: 'alice',
      table: 'customers',
    });
  });

  it('a reveal the model does not allow returns no data and names the rule', async () => {
    // bob sees customer 1 through a share: no reveal rule covers shares
    const err = await reveal(app, 'bob', 'customers', '1', 'id_number', opts()).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe(
      'reveal of customers 1 id_number refused: reveal of customers.id_number needs the row to be own or subtree to bob (rule reveal.columns.id_number)',
    );
    const phone = await reveal(app, 'carol', 'customers', '1', 'phone', opts()).catch(
      (e: unknown) => e,
    );
    expect((phone as Error).message).toContain(
      'no reveal rule of the model covers customers.phone',
    );
    // a row she cannot see at all: the same answer, nothing about the row
    const [dave] =
      await t.sql`SELECT id::int FROM crm.customers WHERE owner = 'dave' AND id <> 19 LIMIT 1`;
    const hidden = await reveal(
      app,
      'carol',
      'customers',
      String(dave?.id),
      'id_number',
      opts(),
    ).catch((e: unknown) => e);
    expect((hidden as Error).message).toContain('needs the row to be own or subtree to carol');
  });

  it('the cell is returned only for a reveal committed before: rolling back cannot erase the record', async () => {
    const [c] =
      await t.sql`SELECT id::int FROM crm.customers WHERE owner = 'bob' ORDER BY id LIMIT 1`;
    await expect(
      as('bob', async (tx) => {
        const [d] =
          await tx`SELECT pgwarden.reveal('customers', ${String(c?.id)}, 'id_number') AS d`;
        return tx`SELECT pgwarden.revealed(${(d?.d as { reveal: number } | undefined)?.reveal ?? 0})`;
      }),
    ).rejects.toMatchObject({
      code: '55000',
      message: expect.stringContaining('is not committed yet'),
    });
  });
});

describe('export', () => {
  it("pat's export is refused, recorded, and raises an alert", async () => {
    const before = alerts.length;
    const err = await startExport(app, 'pat', { table: 'customers' }, opts()).catch(
      (e: unknown) => e,
    );
    expect((err as PgwardenError).code).toBe('refused_denied');
    expect((err as Error).message).toContain(
      'no export rule of the model lets pat export customers',
    );
    const [x] = await t.sql`SELECT allowed, rows FROM pgwarden.exports WHERE person = 'pat'`;
    expect(x).toEqual({ allowed: false, rows: 0 });
    const [d] =
      await t.sql`SELECT detail FROM pgwarden_audit.records WHERE kind = 'denied' AND person = 'pat'`;
    expect(d?.detail).toMatchObject({ action: 'export', code: 'denied' });
    await waitFor(() => alerts.length > before);
    expect(alerts.slice(before)).toContainEqual(
      expect.objectContaining({ kind: 'export_refused', person: 'pat', table: 'customers' }),
    );
  });

  it("carol's export has no phone, email or id_number, exactly her rows, and the quota holds before any row", async () => {
    const seen = await as(
      'carol',
      (tx) => tx`SELECT id::int, name, address FROM crm_api.customers ORDER BY id`,
    );
    const started = await startExport(app, 'carol', { table: 'customers' }, opts());
    expect(started.columns).not.toContain('phone');
    expect(started.columns).not.toContain('email');
    expect(started.columns).not.toContain('id_number');
    const rows = await all('carol', started.export);
    expect(rows.map((r) => Number(r.id))).toEqual(seen.map((r) => r.id));
    expect(rows[0]).not.toHaveProperty('phone');
    expect(rows.map((r) => r.address)).toEqual(seen.map((r) => r.address));
    // asking for phone explicitly is refused, naming the column
    const phone = await startExport(
      app,
      'carol',
      { table: 'customers', columns: ['id', 'phone'] },
      opts(),
    ).catch((e: unknown) => e);
    expect((phone as Error).message).toContain(
      'carol may not export column(s) phone of customers (rule exports.sales_manager.columns)',
    );
    // a second read of the same export is refused
    await expect(all('carol', started.export)).rejects.toMatchObject({
      message: expect.stringContaining('was already read'),
    });
    // use up the 200 rows of the day; the export that would pass 200 is refused before any row
    let used = started.rows;
    while (used + started.rows <= 200) {
      const s = await startExport(app, 'carol', { table: 'customers' }, opts());
      used += s.rows;
    }
    const over = await startExport(app, 'carol', { table: 'customers' }, opts()).catch(
      (e: unknown) => e,
    );
    expect((over as PgwardenError).code).toBe('refused_quota');
    expect((over as Error).message).toContain(`${used} of 200 allowed today (UTC) are used`);
    // a filtered export still fits if small enough
    const small = await startExport(
      app,
      'carol',
      { table: 'customers', filter: { id: ['1'] } },
      opts(),
    );
    expect(small.rows).toBeLessThanOrEqual(1);
  });

  it("vera's export with phone: refused without a request, refused with one she approved herself, works once after olga approves", async () => {
    const cols = ['id', 'name', 'phone'];
    const none = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols },
      opts(),
    ).catch((e: unknown) => e);
    expect((none as PgwardenError).code).toBe('refused_needs_approval');
    expect((none as Error).message).toContain(
      'exporting phone of customers needs an approved request (rule exports.sales_director.approval)',
    );
    const [r] = await as(
      'vera',
      (tx) =>
        tx`SELECT pgwarden.request_export('customers', ${cols}::text[], '{}'::jsonb, 'renewal calls', 44) AS id`,
    );
    const id = r?.id as number;
    await expect(
      as('vera', (tx) => tx`SELECT pgwarden.approve_export(${id})`),
    ).rejects.toMatchObject({ code: '42501' });
    const self = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    ).catch((e: unknown) => e);
    expect((self as Error).message).toContain(`export request ${id} is pending, not approved`);
    await as('olga', (tx) => tx`SELECT pgwarden.approve_export(${id})`);
    const ok = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    );
    const rows = await all('vera', ok.export);
    expect(rows.length).toBe(ok.rows);
    expect(rows.some((x) => typeof x.phone === 'string' && !String(x.phone).includes('*'))).toBe(
      true,
    );
    const again = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    ).catch((e: unknown) => e);
    expect((again as Error).message).toContain(`export request ${id} is used, not approved`);
  });

  it('olga, who has no export rule, cannot request an export', async () => {
    await expect(
      as(
        'olga',
        (tx) => tx`SELECT pgwarden.request_export('customers', ARRAY['id'], '{}'::jsonb, 'x')`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('alerts', () => {
  it('alert payloads never contain a customer value, and readers list them', async () => {
    await waitFor(() => alerts.length >= 3);
    const text = JSON.stringify(alerts);
    for (const v of customerValues) expect(text.includes(v), v).toBe(false);
    const listed = await as(
      'audrey',
      (tx) => tx`SELECT kind FROM pgwarden.alerts_since(now() - interval '1 hour')`,
    );
    expect(listed.map((x) => x.kind)).toEqual(
      expect.arrayContaining(['reveal_quota', 'export_refused', 'export_quota']),
    );
    await expect(
      as('alice', (tx) => tx`SELECT * FROM pgwarden.alerts_since(now() - interval '1 hour')`),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('a read cap per statement', () => {
  it('a rep reads at most 200 customers in one statement; LIMIT and filters stay under it; managers are not capped', async () => {
    await t.sql`INSERT INTO crm.customers (name, owner, region, customer_type) SELECT 'Bulk ' || g, 'dave', 'west', 'retail' FROM generate_series(1, 250) g`;
    // what a LIMIT stops depends on the plan: with statistics a page in key order reads the
    // key index until it has its rows (without, the planner may sort everything dave sees)
    await t.sql`ANALYZE crm.customers`;
    await expect(as('dave', (tx) => tx`SELECT id FROM crm_api.customers`)).rejects.toMatchObject({
      code: '42501',
      message:
        'permission denied: dave may read at most 200 rows of customers in one statement (rule readCap)',
    });
    const page = await as(
      'dave',
      (tx) => tx`SELECT id FROM crm_api.customers ORDER BY id LIMIT 50`,
    );
    expect(page).toHaveLength(50);
    const one = await as('dave', (tx) => tx`SELECT id FROM crm_api.customers WHERE id = 19`);
    expect(one).toHaveLength(1);
    // each statement counts on its own
    await as('dave', async (tx) => {
      for (let i = 0; i < 3; i++)
        expect(await tx`SELECT id FROM crm_api.customers LIMIT 150`).toHaveLength(150);
    });
    const walt = await as('walt', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    expect(walt[0]?.n).toBeGreaterThan(250);
  });
});

describe('two approvers', () => {
  it('a request for columns the model marks so needs two different approvers', async () => {
    await t.sql`UPDATE pgwarden.export_rules SET approvers = 2 WHERE key = 'customers:sales_director'`;
    await t.sql`SELECT pgwarden.grant_job('erin', 'compliance_officer')`; // a second approver (granted by the DBA)
    const cols = ['id', 'phone'];
    const [r] = await as(
      'vera',
      (tx) =>
        tx`SELECT pgwarden.request_export('customers', ${cols}::text[], '{}'::jsonb, 'audit sample', 5) AS id`,
    );
    const id = r?.id as number;
    const [first] = await as('olga', (tx) => tx`SELECT pgwarden.approve_export(${id}) AS s`);
    expect(first?.s).toBe('approved by 1 of 2 approvers');
    await expect(
      as('olga', (tx) => tx`SELECT pgwarden.approve_export(${id})`),
    ).rejects.toMatchObject({ message: expect.stringContaining('a second approver is needed') });
    const early = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    ).catch((e: unknown) => e);
    expect((early as Error).message).toContain('is pending, not approved');
    const [second] = await as('erin', (tx) => tx`SELECT pgwarden.approve_export(${id}) AS s`);
    expect(second?.s).toBe('approved');
    const ok = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    );
    expect(ok.rows).toBeGreaterThan(0);
  });
});

describe('a rejected export request', () => {
  it('olga rejects with a reason; the request cannot be used, and only approvers decide', async () => {
    const cols = ['id', 'phone'];
    const [r] = await as(
      'vera',
      (tx) =>
        tx`SELECT pgwarden.request_export('customers', ${cols}::text[], '{}'::jsonb, 'spring campaign', 10) AS id`,
    );
    const id = r?.id as number;
    await expect(
      as('bob', (tx) => tx`SELECT pgwarden.reject_export(${id}, 'no')`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      as('olga', (tx) => tx`SELECT pgwarden.reject_export(${id}, '')`),
    ).rejects.toMatchObject({ code: '22023' });
    await as('olga', (tx) => tx`SELECT pgwarden.reject_export(${id}, 'not during the audit')`);
    const [row] =
      await t.sql`SELECT status, decided_reason FROM pgwarden.export_requests WHERE id = ${id}`;
    expect(row).toEqual({ status: 'rejected', decided_reason: 'not during the audit' });
    const used = await startExport(
      app,
      'vera',
      { table: 'customers', columns: cols, request: id },
      opts(),
    ).catch((e: unknown) => e);
    expect((used as Error).message).toContain(`export request ${id} is rejected, not approved`);
  });
});
