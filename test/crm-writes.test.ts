/**
 * Writes and the people lifecycle (issue #3): SCENARIO.md "What they may change" and
 * "Lifecycle", as the people, through the application role.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { withPerson } from '../src/runtime/with-person.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createTestDatabase, loginAs, type TestDb, urlFor } from './helpers/db.js';

let t: TestDb;
let app: postgres.Sql;
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, { rolePrefix: t.prefix });
const one = async (q: Promise<postgres.RowList<postgres.Row[]>>) => (await q)[0] as postgres.Row;
type C = { id: number; owner: string | null; in_pool: boolean };
let cust: C[];
const ownedBy = (p: string) => cust.filter((c) => c.owner === p).map((c) => c.id);

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 2 });
  cust = await t.sql<C[]>`SELECT id::int, owner, in_pool FROM crm.customers ORDER BY id`;
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('what reps may change', () => {
  it('a rep edits name, status, phone, email and address of her own customer; RETURNING shows her view', async () => {
    const id = ownedBy('alice')[0] as number;
    const [r] = await as(
      'alice',
      (tx) =>
        tx`UPDATE crm_api.customers SET name = 'Acme Renamed', status = 'active', phone = '13900000001', email = 'new@acme.example.com', address = '9 New Rd' WHERE id = ${id} RETURNING id::int, name, phone, id_number`,
    );
    expect(r).toMatchObject({ id, name: 'Acme Renamed', phone: '13900000001' });
    expect(String(r?.id_number)).toMatch(/^\d{6}\*+\d{4}$/); // still masked for her
    const [base] =
      await t.sql`SELECT name, phone, email, address, status FROM crm.customers WHERE id = ${id}`;
    expect(base).toEqual({
      name: 'Acme Renamed',
      phone: '13900000001',
      email: 'new@acme.example.com',
      address: '9 New Rd',
      status: 'active',
    });
  });

  it('a rep cannot change owner or id_number of her own customer', async () => {
    const id = ownedBy('alice')[1] as number;
    await expect(
      as('alice', (tx) => tx`UPDATE crm_api.customers SET owner = 'bob' WHERE id = ${id}`),
    ).rejects.toMatchObject({
      code: '42501',
      message: `permission denied: alice may not change column "owner" of customers ${id} (rule edits.owner: subtree)`,
    });
    await expect(
      as(
        'alice',
        (tx) => tx`UPDATE crm_api.customers SET id_number = '110101199001011234' WHERE id = ${id}`,
      ),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('may not change column "id_number"'),
    });
  });

  it("a rep cannot edit another rep's customer: shared with her (refused) or not visible (nothing)", async () => {
    // customer 1 (alice's) is shared with bob: he sees it, may not update it
    await expect(
      as('bob', (tx) => tx`UPDATE crm_api.customers SET name = 'Mine now' WHERE id = 1`),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringMatching(
        /^permission denied: bob may not (update customers 1|change column "name" of customers 1)/,
      ),
    });
    const sharedIds = (await t.sql`SELECT row_key FROM pgwarden.shares`).map((x) =>
      Number(x.row_key),
    );
    const dave = ownedBy('dave').find((x) => !sharedIds.includes(x)) as number; // another unit: invisible
    const r = await as(
      'alice',
      (tx) => tx`UPDATE crm_api.customers SET name = 'x' WHERE id = ${dave}`,
    );
    expect(r.count).toBe(0);
    const [base] = await t.sql`SELECT name FROM crm.customers WHERE id = 1`;
    expect(base?.name).not.toBe('Mine now');
  });

  it('a rep creates customers owned by herself only; she may set their contact fields', async () => {
    const [r] = await as(
      'bob',
      (tx) =>
        tx`INSERT INTO crm_api.customers (name, region, customer_type, phone) VALUES ('Bob New', 'east', 'retail', '13700000000') RETURNING id::int, owner, phone, status`,
    );
    expect(r).toMatchObject({ owner: 'bob', phone: '13700000000', status: 'lead' });
    await expect(
      as(
        'bob',
        (tx) =>
          tx`INSERT INTO crm_api.customers (name, owner, region, customer_type) VALUES ('For alice', 'alice', 'east', 'retail')`,
      ),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining(
        'permission denied: bob may not insert this row into customers',
      ),
    });
  });

  it('UPDATE and DELETE without WHERE touch only allowed rows; a rep deletes nothing', async () => {
    const r = await as('pat', (tx) => tx`UPDATE crm_api.customers SET status = status`);
    expect(r.count).toBe(ownedBy('pat').length);
    await expect(as('pat', (tx) => tx`DELETE FROM crm_api.customers`)).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('pat may not delete customers'),
    });
    const [n] = await t.sql`SELECT count(*)::int AS n FROM crm.customers`;
    expect(n?.n).toBeGreaterThanOrEqual(cust.length);
  });

  it('RETURNING never shows a cell the person may not read', async () => {
    const rows = await as(
      'bob',
      (tx) =>
        tx`UPDATE crm_api.customers SET status = status WHERE owner = 'bob' RETURNING id::int, id_number`,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const [base] =
        await t.sql`SELECT id_number FROM crm.customers WHERE id = ${row.id as number}`;
      if (base?.id_number === null) expect(row.id_number).toBeNull();
      else expect(String(row.id_number)).toMatch(/^\d{6}\*+\d{4}$/);
    }
  });

  it('people without write rules change nothing', async () => {
    for (const p of ['erin', 'mark', 'tom', 'olga', 'adam', 'audrey']) {
      const attempt = as(p, (tx) => tx`UPDATE crm_api.customers SET name = name`);
      await attempt.then(
        (r) => expect(r.count, p).toBe(0),
        (e: { code: string }) => expect(e.code, p).toBe('42501'),
      );
    }
  });
});

describe('what managers may change', () => {
  it('carol edits and reassigns inside her subtree, but not outside it', async () => {
    const id = ownedBy('alice')[2] as number;
    const [r] = await as(
      'carol',
      (tx) =>
        tx`UPDATE crm_api.customers SET owner = 'bob', region = 'north' WHERE id = ${id} RETURNING owner, region`,
    );
    expect(r).toEqual({ owner: 'bob', region: 'north' });
    // issue #10: outside her subtree (another unit) the reassignment waits for approval
    const pending = await as(
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${id}`,
    );
    expect(pending.count).toBe(0);
    const [base] = await t.sql`SELECT owner FROM crm.customers WHERE id = ${id}`;
    expect(base?.owner).toBe('bob');
    const [req] =
      await t.sql`SELECT status, requested_by FROM pgwarden.change_requests WHERE row_key = ${String(id)}`;
    expect(req).toEqual({ status: 'pending', requested_by: 'carol' });
  });
});

describe('contracts: only finance edits the amount', () => {
  it('fiona edits contracts.amount; carol sees it read-only', async () => {
    const [k] =
      await t.sql`SELECT k.id::int AS id FROM crm.contracts k JOIN crm.customers c ON c.id = k.customer_id WHERE c.owner IN ('alice', 'bob', 'pat') LIMIT 1`;
    const id = k?.id as number;
    const [r] = await as(
      'fiona',
      (tx) => tx`UPDATE crm_api.contracts SET amount = 12345.67 WHERE id = ${id} RETURNING amount`,
    );
    expect(r?.amount).toBe('12345.67');
    // issue #10: her change of the amount waits for finance; the row stays
    const pending = await as(
      'carol',
      (tx) => tx`UPDATE crm_api.contracts SET amount = 1 WHERE id = ${id}`,
    );
    expect(pending.count).toBe(0);
    const [still] = await t.sql`SELECT amount::text AS amount FROM crm.contracts WHERE id = ${id}`;
    expect(still?.amount).toBe('12345.67');
    await expect(
      as('carol', (tx) => tx`UPDATE crm_api.contracts SET terms = 'x' WHERE id = ${id}`),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('the public pool', () => {
  it('a rep claims at most 5 pool customers a day; the 6th is refused; release and re-claim work', async () => {
    const pool = cust.filter((c) => c.in_pool).map((c) => c.id);
    expect(pool.length).toBeGreaterThanOrEqual(6);
    for (const [i, id] of pool.slice(0, 5).entries()) {
      const [r] = await as(
        'dave',
        (tx) => tx`SELECT pgwarden.claim('customers', ${String(id)}) AS left`,
      );
      expect(r?.left).toBe(4 - i);
    }
    await expect(
      as('dave', (tx) => tx`SELECT pgwarden.claim('customers', ${String(pool[5])})`),
    ).rejects.toMatchObject({
      code: '42501',
      message: 'claim refused: dave has claimed 5 of 5 customers allowed today (UTC)',
    });
    const mine = await as(
      'dave',
      (tx) =>
        tx`SELECT id::int, owner, in_pool, phone FROM crm_api.customers WHERE id = ${pool[0] as number}`,
    );
    expect(mine[0]).toMatchObject({ owner: 'dave', in_pool: false });
    expect(mine[0]?.phone).not.toBeNull(); // his own now: contact fields visible
    await as('dave', (tx) => tx`SELECT pgwarden.release('customers', ${String(pool[0])})`);
    const [back] =
      await t.sql`SELECT owner, in_pool FROM crm.customers WHERE id = ${pool[0] as number}`;
    expect(back).toEqual({ owner: null, in_pool: true });
    // alice re-claims what dave released
    await as('alice', (tx) => tx`SELECT pgwarden.claim('customers', ${String(pool[0])})`);
    const [again] = await t.sql`SELECT owner FROM crm.customers WHERE id = ${pool[0] as number}`;
    expect(again?.owner).toBe('alice');
  });

  it('claims by a non-rep, of a non-pool row, and releases by a non-owner are refused', async () => {
    const pool = cust.filter((c) => c.in_pool).map((c) => c.id);
    await expect(
      as('carol', (tx) => tx`SELECT pgwarden.claim('customers', ${String(pool[6])})`),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('carol may not claim customers'),
    });
    await expect(
      as('bob', (tx) => tx`SELECT pgwarden.claim('customers', ${String(ownedBy('alice')[3])})`),
    ).rejects.toMatchObject({ code: 'P0002' });
    await expect(
      as('bob', (tx) => tx`SELECT pgwarden.release('customers', ${String(ownedBy('alice')[3])})`),
    ).rejects.toMatchObject({ code: '42501' });
  });
});

describe('the recycle bin', () => {
  it("a manager's delete moves the customer and its children to the bin; restore brings them back unchanged", async () => {
    const id = ownedBy('pat')[0] as number;
    const snapshot = async () => ({
      customer: await t.sql`SELECT * FROM crm.customers WHERE id = ${id}`,
      contacts: await t.sql`SELECT * FROM crm.contacts WHERE customer_id = ${id} ORDER BY id`,
      deals: await t.sql`SELECT * FROM crm.deals WHERE customer_id = ${id} ORDER BY id`,
      contracts: await t.sql`SELECT * FROM crm.contracts WHERE customer_id = ${id} ORDER BY id`,
    });
    const before = await snapshot();
    expect(before.customer).toHaveLength(1);
    expect(before.contacts.length + before.deals.length + before.contracts.length).toBeGreaterThan(
      0,
    );
    const del = await as('carol', (tx) => tx`DELETE FROM crm_api.customers WHERE id = ${id}`);
    expect(del.count).toBe(1);
    const gone = await snapshot();
    expect([
      gone.customer.length,
      gone.contacts.length,
      gone.deals.length,
      gone.contracts.length,
    ]).toEqual([0, 0, 0, 0]);
    const [bin] =
      await t.sql`SELECT id::int, deleted_by, purge_after - deleted_at AS keep FROM pgwarden.recycle_bin WHERE table_name = 'customers' AND row_key = ${String(id)}`;
    expect(bin?.deleted_by).toBe('carol');
    expect(bin?.keep).toBe('60 days');
    // a rep cannot restore what carol deleted
    await expect(
      as('alice', (tx) => tx`SELECT pgwarden.restore(${bin?.id as number})`),
    ).rejects.toMatchObject({ code: '42501' });
    const [r] = await as(
      'carol',
      (tx) => tx`SELECT pgwarden.restore(${bin?.id as number}) AS report`,
    );
    expect(r?.report).toMatchObject({ table: 'customers', key: String(id) });
    expect(await snapshot()).toEqual(before);
    await expect(
      as('carol', (tx) => tx`SELECT pgwarden.restore(${bin?.id as number})`),
    ).rejects.toMatchObject({ message: expect.stringContaining('already restored') });
  });

  it('rows past retention are purged only explicitly, and the purge reports them', async () => {
    const id = ownedBy('bob')[0] as number;
    await as('carol', (tx) => tx`DELETE FROM crm_api.customers WHERE id = ${id}`);
    await t.sql`UPDATE pgwarden.recycle_bin SET deleted_at = now() - interval '61 days', purge_after = now() - interval '1 day' WHERE row_key = ${String(id)}`;
    const [b] = await t.sql`SELECT id::int FROM pgwarden.recycle_bin WHERE row_key = ${String(id)}`;
    await expect(
      as('carol', (tx) => tx`SELECT pgwarden.restore(${b?.id as number})`),
    ).rejects.toMatchObject({ message: expect.stringContaining('past its retention') });
    const dry = await as('adam', (tx) => tx`SELECT * FROM pgwarden.purge_recycle_bin(true)`);
    expect(dry.map((x) => x.row_key)).toEqual([String(id)]);
    await expect(
      as('carol', (tx) => tx`SELECT * FROM pgwarden.purge_recycle_bin()`),
    ).rejects.toMatchObject({ code: '42501' });
    const purged = await as('adam', (tx) => tx`SELECT * FROM pgwarden.purge_recycle_bin()`);
    expect(purged.map((x) => x.row_key)).toEqual([String(id)]);
    const [left] =
      await t.sql`SELECT count(*)::int AS n FROM pgwarden.recycle_bin WHERE row_key = ${String(id)}`;
    expect(left?.n).toBe(0);
  });

  it('a rep cannot delete; a delete outside the subtree deletes nothing', async () => {
    await expect(
      as(
        'alice',
        (tx) => tx`DELETE FROM crm_api.customers WHERE id = ${ownedBy('alice')[4] as number}`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    const r = await as(
      'walt',
      (tx) => tx`DELETE FROM crm_api.customers WHERE id = ${ownedBy('alice')[4] as number}`,
    );
    expect(r.count).toBe(0);
  });
});

describe('separation of duties', () => {
  it('adam cannot grant himself a job; his grant of sales_director does nothing until olga approves', async () => {
    await expect(
      as('adam', (tx) => tx`SELECT pgwarden.grant_job('adam', 'sales_rep')`),
    ).rejects.toMatchObject({ code: '42501' });
    const [r] = await as(
      'adam',
      (tx) => tx`SELECT pgwarden.grant_job('bob', 'sales_director') AS result`,
    );
    const req = (r?.result as { requested: number } | undefined)?.requested as number;
    expect(req).toBeGreaterThan(0);
    expect(
      await one(
        as('bob', (tx) => tx`SELECT pgwarden.has_job(current_user, 'sales_director') AS j`),
      ),
    ).toEqual({ j: false });
    await expect(
      as('adam', (tx) => tx`SELECT pgwarden.approve_job_request(${req})`),
    ).rejects.toMatchObject({ code: '42501' });
    await as('olga', (tx) => tx`SELECT pgwarden.approve_job_request(${req})`);
    expect(
      await one(
        as('bob', (tx) => tx`SELECT pgwarden.has_job(current_user, 'sales_director') AS j`),
      ),
    ).toEqual({ j: true });
    await as('adam', (tx) => tx`SELECT pgwarden.revoke_job('bob', 'sales_director')`);
  });

  it('olga cannot approve a request for herself, nor one she made', async () => {
    const [r] = await as(
      'adam',
      (tx) => tx`SELECT pgwarden.grant_job('olga', 'auditor') AS result`,
    );
    const forOlga = (r?.result as { requested: number } | undefined)?.requested as number;
    await expect(
      as('olga', (tx) => tx`SELECT pgwarden.approve_job_request(${forOlga})`),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('made or that is for themselves'),
    });
    // olga, also an admin, requests a privileged job for erin: she cannot approve it herself
    await t.sql`SELECT pgwarden.grant_job('olga', 'crm_admin')`;
    const [r2] = await as(
      'olga',
      (tx) => tx`SELECT pgwarden.grant_job('erin', 'auditor') AS result`,
    );
    const byOlga = (r2?.result as { requested: number } | undefined)?.requested as number;
    await expect(
      as('olga', (tx) => tx`SELECT pgwarden.approve_job_request(${byOlga})`),
    ).rejects.toMatchObject({ code: '42501' });
    await as('olga', (tx) => tx`SELECT pgwarden.reject_job_request(${byOlga}, 'not needed')`);
    await t.sql`SELECT pgwarden.revoke_job('olga', 'crm_admin')`;
  });

  it('nobody extends their own grant or moves a unit into a subtree they manage; people read only their own entries', async () => {
    const [g] = await t.sql`SELECT id::int FROM pgwarden.temp_grants WHERE person = 'tom'`;
    await t.sql`SELECT pgwarden.grant_job('tom', 'crm_admin')`;
    await expect(
      as(
        'tom',
        (tx) => tx`SELECT pgwarden.set_access_until(${g?.id as number}, now() + interval '1 year')`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    await t.sql`SELECT pgwarden.revoke_job('tom', 'crm_admin')`;
    await t.sql`SELECT pgwarden.grant_job('walt', 'crm_admin')`;
    await expect(
      as('walt', (tx) => tx`SELECT pgwarden.move_unit('marketing', 'sales_west')`),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('walt manages "sales_west"'),
    });
    await t.sql`SELECT pgwarden.revoke_job('walt', 'crm_admin')`;
    const [me] = await as('tom', (tx) => tx`SELECT pgwarden.me() AS me`);
    expect(me?.me).toMatchObject({ person: 'tom', unit: 'marketing', jobs: [] });
    expect((me?.me as { temporary_grants: unknown[] } | undefined)?.temporary_grants).toHaveLength(
      1,
    );
    await expect(as('tom', (tx) => tx`SELECT * FROM pgwarden.temp_grants`)).rejects.toMatchObject({
      code: '42501',
    });
  });
});

describe('offboarding', () => {
  it('alice leaves: no login, no application session, her open session ends, her customers go to bob, her shares and grants end', async () => {
    await t.sql.unsafe(`ALTER ROLE ${quoteIdent(`${t.prefix}alice`)} LOGIN PASSWORD 'alice-pw'`);
    const direct = postgres(urlFor(t.url, { user: `${t.prefix}alice` }), {
      password: 'alice-pw',
      max: 1,
      onnotice: () => {},
    });
    await direct`SELECT 1`; // an open session of alice's
    const hers = (await t.sql`SELECT id::int FROM crm.customers WHERE owner = 'alice'`).map(
      (r) => r.id,
    );
    expect(hers.length).toBeGreaterThan(0);
    const [r] = await as('adam', (tx) => tx`SELECT pgwarden.offboard('alice', 'bob') AS report`);
    const report = r?.report as Record<string, unknown>;
    expect(report).toMatchObject({
      person: 'alice',
      deactivated: true,
      moved_to: 'bob',
      sessions_ended: 1,
      nothing_to_do: false,
    });
    expect((report.rows_moved as Record<string, number>).customers).toBe(hers.length);
    // her session is gone
    await expect(direct`SELECT 1`).rejects.toBeTruthy();
    await direct.end({ timeout: 1 }).catch(() => undefined);
    // she cannot log in, and the application cannot act as her
    const again = postgres(urlFor(t.url, { user: `${t.prefix}alice` }), {
      password: 'alice-pw',
      max: 1,
      onnotice: () => {},
      connect_timeout: 5,
    });
    await expect(again`SELECT 1`).rejects.toMatchObject({ code: '28000' });
    await again.end({ timeout: 1 }).catch(() => undefined);
    await expect(as('alice', (tx) => tx`SELECT 1`)).rejects.toMatchObject({ code: '42501' });
    // bob owns her former customers; nothing of hers is active
    const [owners] =
      await t.sql`SELECT array_agg(DISTINCT owner) AS o FROM crm.customers WHERE id = ANY (${hers})`;
    expect(owners?.o).toEqual(['bob']);
    const [active] = await t.sql`SELECT
      (SELECT count(*)::int FROM pgwarden.shares WHERE person = 'alice' AND pgwarden._active(valid_from, valid_until, revoked_at)) AS shares,
      (SELECT count(*)::int FROM pgwarden.job_grants WHERE person = 'alice' AND pgwarden._active(valid_from, valid_until, revoked_at)) AS jobs,
      (SELECT count(*)::int FROM pgwarden.temp_grants WHERE person = 'alice' AND pgwarden._active(valid_from, valid_until, revoked_at)) AS grants`;
    expect(active).toEqual({ shares: 0, jobs: 0, grants: 0 });
    // run twice: nothing left to do
    const [second] = await as(
      'adam',
      (tx) => tx`SELECT pgwarden.offboard('alice', 'bob') AS report`,
    );
    expect(second?.report).toMatchObject({ nothing_to_do: true, changes: 0 });
  });

  it('to the pool instead, and only by an administrator', async () => {
    await expect(
      as('carol', (tx) => tx`SELECT pgwarden.offboard('pat', NULL, true)`),
    ).rejects.toMatchObject({ code: '42501' });
    const hers = (await t.sql`SELECT id::int FROM crm.customers WHERE owner = 'pat'`).map(
      (r) => r.id,
    );
    await as('adam', (tx) => tx`SELECT pgwarden.offboard('pat', NULL, true)`);
    const rows = await t.sql`SELECT owner, in_pool FROM crm.customers WHERE id = ANY (${hers})`;
    expect(rows.every((x) => x.owner === null && x.in_pool === true)).toBe(true);
  });
});

describe('grants end by themselves; sweep removes what has ended', () => {
  it('sweep reports and removes ended grants, and only an admin may sweep', async () => {
    await t.sql`UPDATE pgwarden.temp_grants SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day' WHERE person = 'tom'`;
    await expect(as('bob', (tx) => tx`SELECT pgwarden.sweep()`)).rejects.toMatchObject({
      code: '42501',
    });
    const [r] = await as('adam', (tx) => tx`SELECT pgwarden.sweep() AS report`);
    expect(
      (r?.report as Record<string, number> | undefined)?.temporary_grants,
    ).toBeGreaterThanOrEqual(1);
    const [left] =
      await t.sql`SELECT count(*)::int AS n FROM pgwarden.temp_grants WHERE person = 'tom'`;
    expect(left?.n).toBe(0);
  });
});

describe('approvers see what waits for them; admins cannot move people into their own subtree', () => {
  it('olga lists pending requests; bob cannot; an expired request cannot be approved', async () => {
    const [r] = await as(
      'adam',
      (tx) =>
        tx`SELECT pgwarden.grant_job('dave', 'sales_director', now() + interval '1 hour') AS result`,
    );
    const id = (r?.result as { requested: number } | undefined)?.requested as number;
    const pending = await as(
      'olga',
      (tx) => tx`SELECT id::int, person, job FROM pgwarden.pending_requests()`,
    );
    expect(pending).toContainEqual({ id, person: 'dave', job: 'sales_director' });
    await expect(
      as('bob', (tx) => tx`SELECT * FROM pgwarden.pending_requests()`),
    ).rejects.toMatchObject({ code: '42501' });
    await t.sql`UPDATE pgwarden.job_requests SET valid_until = now() - interval '1 minute' WHERE id = ${id}`;
    await expect(
      as('olga', (tx) => tx`SELECT pgwarden.approve_job_request(${id})`),
    ).rejects.toMatchObject({
      code: '22023',
      message: expect.stringContaining('which has passed'),
    });
  });

  it('an administrator who manages a unit cannot move a person into it', async () => {
    await t.sql`SELECT pgwarden.grant_job('walt', 'crm_admin')`;
    await expect(
      as('walt', (tx) => tx`SELECT pgwarden.move_person('erin', 'sales_west')`),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('walt manages "sales_west"'),
    });
    await t.sql`SELECT pgwarden.revoke_job('walt', 'crm_admin')`;
  });
});
