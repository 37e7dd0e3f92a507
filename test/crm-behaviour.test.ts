/**
 * Behaviour: as each person of SCENARIO.md (through the authenticator with SET LOCAL ROLE, as the
 * application runs), the rows and cells of crm_api equal the scenario's rules evaluated
 * independently over the seed, here in TypeScript.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { withPerson } from '../src/runtime/with-person.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';
import { PEOPLE } from './helpers/people.js';

type Customer = {
  id: number;
  owner: string | null;
  region: string;
  customer_type: string;
  status: string;
  in_pool: boolean;
  phone: string | null;
  email: string | null;
  id_number: string | null;
  address: string | null;
};

let t: TestDb;
let app: postgres.Sql; // logged in as the authenticator, like the application
let customers: Customer[];
let unitOf: Map<string, string>;
let parentOf: Map<string, string | null>;
let shares: { row_key: string; person: string }[];
let contractCustomers: Set<number>;
const MANAGES: Record<string, string> = { carol: 'sales_east', walt: 'sales_west', vera: 'sales' };
const REPS = ['alice', 'bob', 'pat', 'dave'];

// --- the scenario, independently -------------------------------------------------------
const maskPhone = (v: string) => `${v.slice(0, 3)}****${v.slice(-4)}`;
const maskEmail = (v: string) => `${v[0]}***${v.slice(v.indexOf('@'))}`;
const maskId = (v: string) => `${v.slice(0, 6)}${'*'.repeat(v.length - 10)}${v.slice(-4)}`;

function inSubtree(unit: string | undefined, top: string): boolean {
  let u: string | null | undefined = unit;
  while (u) {
    if (u === top) return true;
    u = parentOf.get(u);
  }
  return false;
}
const managerAbove = (person: string, owner: string | null) =>
  owner !== null &&
  MANAGES[person] !== undefined &&
  inSubtree(unitOf.get(owner), MANAGES[person] as string);
const sharedWith = (person: string, id: number) =>
  shares.some((s) => s.person === person && s.row_key === String(id));

function sees(person: string, c: Customer): boolean {
  if (REPS.includes(person)) return c.owner === person || sharedWith(person, c.id) || c.in_pool;
  if (MANAGES[person]) return managerAbove(person, c.owner) || c.in_pool;
  if (person === 'erin') return c.status === 'active';
  if (person === 'fiona') return contractCustomers.has(c.id);
  if (person === 'mark') return c.status === 'lead' || c.status === 'active';
  if (person === 'tom') return c.region === 'east' && c.customer_type === 'retail';
  return false;
}

function cells(
  person: string,
  c: Customer,
): Pick<Customer, 'phone' | 'email' | 'id_number' | 'address'> {
  const hidden = { phone: null, email: null, id_number: null, address: null };
  if (c.in_pool) return hidden;
  if (c.owner === person || managerAbove(person, c.owner)) {
    return {
      phone: c.phone,
      email: c.email,
      id_number: c.id_number && maskId(c.id_number),
      address: c.address,
    };
  }
  if (REPS.includes(person) && sharedWith(person, c.id)) {
    return {
      phone: c.phone && maskPhone(c.phone),
      email: c.email,
      id_number: null,
      address: c.address,
    };
  }
  if (person === 'erin')
    return { phone: c.phone && maskPhone(c.phone), email: c.email, id_number: null, address: null };
  if (person === 'tom')
    return {
      phone: c.phone && maskPhone(c.phone),
      email: c.email && maskEmail(c.email),
      id_number: null,
      address: null,
    };
  return hidden;
}

// ----------------------------------------------------------------------------------------
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, { rolePrefix: t.prefix });

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 2 });
  // id_number is stored encrypted; the superuser connection supplies the test key to read it
  customers = await t.sql<
    Customer[]
  >`SELECT id::int, owner, region, customer_type, status, in_pool, phone, email, pgwarden.decrypt_value(id_number, 'crm.customers.id_number') AS id_number, address FROM crm.customers ORDER BY id`;
  const units = await t.sql<
    { name: string; parent: string | null }[]
  >`SELECT name, parent FROM pgwarden.units`;
  parentOf = new Map(units.map((u) => [u.name, u.parent]));
  const people = await t.sql<
    { name: string; unit: string }[]
  >`SELECT name, unit FROM pgwarden.people`;
  unitOf = new Map(people.map((p) => [p.name, p.unit]));
  shares = await t.sql<
    { row_key: string; person: string }[]
  >`SELECT row_key, person FROM pgwarden.shares WHERE revoked_at IS NULL AND (valid_until IS NULL OR valid_until > now())`;
  contractCustomers = new Set(
    (await t.sql<{ id: number }[]>`SELECT DISTINCT customer_id::int AS id FROM crm.contracts`).map(
      (r) => r.id,
    ),
  );
});

afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('the seed covers the scenario', () => {
  it("has at least 40 customers, pool rows, shares and tom's grant", async () => {
    expect(customers.length).toBeGreaterThanOrEqual(40);
    expect(customers.filter((c) => c.in_pool).length).toBeGreaterThan(0);
    expect(shares.length).toBeGreaterThan(0);
    expect(customers.some((c) => c.region === 'east' && c.customer_type === 'retail')).toBe(true);
  });
});

describe('who sees which customers, and which cells', () => {
  for (const person of PEOPLE) {
    it(`${person}: rows and cells of crm_api.customers`, async () => {
      const rows = await as(
        person,
        (tx) =>
          tx<
            Customer[]
          >`SELECT id::int, owner, region, customer_type, status, in_pool, phone, email, id_number, address FROM crm_api.customers ORDER BY id`,
      );
      const expected = customers.filter((c) => sees(person, c));
      expect(rows.map((r) => r.id)).toEqual(expected.map((c) => c.id));
      for (const r of rows) {
        const c = customers.find((x) => x.id === r.id) as Customer;
        expect({
          id: r.id,
          phone: r.phone,
          email: r.email,
          id_number: r.id_number,
          address: r.address,
        }).toEqual({ id: r.id, ...cells(person, c) });
        expect([r.owner, r.region, r.status]).toEqual([c.owner, c.region, c.status]);
      }
    });
  }

  it('every expected set is non-trivial where the scenario gives rows', () => {
    for (const p of ['alice', 'bob', 'carol', 'walt', 'vera', 'erin', 'fiona', 'mark', 'tom']) {
      expect(customers.filter((c) => sees(p, c)).length, p).toBeGreaterThan(0);
    }
  });
});

describe('contacts, deals and contracts follow their customer', () => {
  for (const person of PEOPLE) {
    it(`${person}: contacts, deals (amount), contracts`, async () => {
      const visible = new Set(customers.filter((c) => sees(person, c)).map((c) => c.id));
      type Contact = {
        id: number;
        customer_id: number;
        phone: string | null;
        email: string | null;
      };
      const allContacts = await t.sql<
        Contact[]
      >`SELECT id::int, customer_id::int, phone, email FROM crm.contacts ORDER BY id`;
      const contacts = await as(
        person,
        (tx) =>
          tx<
            Contact[]
          >`SELECT id::int, customer_id::int, phone, email FROM crm_api.contacts ORDER BY id`,
      );
      expect(contacts.map((r) => r.id)).toEqual(
        allContacts.filter((x) => visible.has(x.customer_id)).map((x) => x.id),
      );
      // contact details follow the customer's cell rules for phone and email
      for (const k of contacts) {
        const src = allContacts.find((x) => x.id === k.id) as Contact;
        const cust = customers.find((x) => x.id === k.customer_id) as Customer;
        const rule = cells(person, { ...cust, phone: src.phone, email: src.email });
        expect(
          { id: k.id, phone: k.phone, email: k.email },
          `contact ${k.id} for ${person}`,
        ).toEqual({ id: k.id, phone: rule.phone, email: rule.email });
      }

      const allDeals = await t.sql<
        { id: number; customer_id: number; owner: string | null; amount: string | null }[]
      >`SELECT id::int, customer_id::int, owner, amount FROM crm.deals ORDER BY id`;
      const deals = await as(
        person,
        (tx) =>
          tx<
            { id: number; amount: string | null }[]
          >`SELECT id::int, amount FROM crm_api.deals ORDER BY id`,
      );
      const expDeals = allDeals.filter((d) => visible.has(d.customer_id));
      expect(deals.map((d) => d.id)).toEqual(expDeals.map((d) => d.id));
      for (const d of deals) {
        const src = expDeals.find((x) => x.id === d.id) as (typeof expDeals)[number];
        const full = src.owner === person || managerAbove(person, src.owner) || person === 'fiona';
        expect(d.amount, `deal ${d.id} amount for ${person}`).toEqual(full ? src.amount : null);
      }

      const allContracts = await t.sql<
        { id: number; customer_id: number; amount: string }[]
      >`SELECT id::int, customer_id::int, amount FROM crm.contracts ORDER BY id`;
      const contracts = await as(
        person,
        (tx) =>
          tx<
            { id: number; amount: string }[]
          >`SELECT id::int, amount FROM crm_api.contracts ORDER BY id`,
      );
      const ownerOf = new Map(customers.map((c) => [c.id, c.owner]));
      const expContracts = allContracts.filter((k) => {
        const owner = ownerOf.get(k.customer_id) ?? null;
        return (
          person === 'fiona' ||
          (owner !== null && (owner === person || managerAbove(person, owner)))
        );
      });
      expect(contracts.map((k) => k.id)).toEqual(expContracts.map((k) => k.id));
      for (const k of contracts)
        expect(k.amount).toEqual(expContracts.find((x) => x.id === k.id)?.amount);
    });
  }
});

describe('the base tables are out of reach', () => {
  for (const person of PEOPLE) {
    it(`${person} gets permission denied on every crm table, reading and writing`, async () => {
      for (const table of ['customers', 'contacts', 'deals', 'contracts']) {
        for (const stmt of [
          `SELECT * FROM crm.${table}`,
          `UPDATE crm.${table} SET id = id`,
          `DELETE FROM crm.${table}`,
          `INSERT INTO crm.${table} (id) VALUES (99999)`,
        ]) {
          await expect(
            as(person, (tx) => tx.unsafe(stmt)),
            `${person}: ${stmt}`,
          ).rejects.toMatchObject({ code: '42501' });
        }
      }
    });
  }

  it('crm_app itself (RESET ROLE) reads no customer data', async () => {
    await expect(app`SELECT * FROM crm_api.customers`).rejects.toMatchObject({ code: '42501' });
    await expect(app`SELECT * FROM crm.customers`).rejects.toMatchObject({ code: '42501' });
    await expect(
      app.begin(async (tx) => {
        await tx`SELECT set_config('role', ${`${t.prefix}alice`}, true)`;
        await tx`RESET ROLE`;
        return tx`SELECT * FROM crm_api.customers`;
      }),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('a GUC claiming another identity changes nothing', async () => {
    const own = await as('alice', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    const spoofed = await as('alice', async (tx) => {
      await tx`SELECT set_config('app.user', 'vera', true)`;
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    expect(spoofed).toEqual(own);
  });

  it('helpers answer nothing about other people', async () => {
    const r = await as(
      'alice',
      (tx) =>
        tx`SELECT pgwarden.subtree_people(${`${t.prefix}vera`}) AS a, pgwarden.person_name(${`${t.prefix}vera`}) AS b, pgwarden.has_job(${`${t.prefix}vera`}, 'sales_director') AS c`,
    );
    expect(r[0]).toEqual({ a: [], b: null, c: false });
  });
});

describe('plain writes follow the row rules', () => {
  it('a rep inserts a customer owned by herself (owner defaults to her) and edits it', async () => {
    const [row] = await as(
      'alice',
      (tx) =>
        tx`INSERT INTO crm_api.customers (name, region, customer_type) VALUES ('New Co', 'east', 'retail') RETURNING id::int, owner, phone`,
    );
    expect(row).toMatchObject({ owner: 'alice', phone: null });
    const updated = await as(
      'alice',
      (tx) => tx`UPDATE crm_api.customers SET status = 'active' WHERE id = ${row?.id as number}`,
    );
    expect(updated.count).toBe(1);
  });

  it('a rep cannot insert a customer owned by someone else, nor give hers away', async () => {
    await expect(
      as(
        'alice',
        (tx) =>
          tx`INSERT INTO crm_api.customers (name, owner, region, customer_type) VALUES ('X', 'bob', 'east', 'retail')`,
      ),
    ).rejects.toMatchObject({ code: '42501' });
    const mine = customers.find((c) => c.owner === 'alice') as Customer;
    await expect(
      as('alice', (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${mine.id}`),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('UPDATE without WHERE changes only rows the person may change', async () => {
    const r = await as('bob', (tx) => tx`UPDATE crm_api.customers SET status = status`);
    expect(r.count).toBe(customers.filter((c) => c.owner === 'bob').length);
  });

  it('read-only columns are refused, naming the person, table, column and rule', async () => {
    const mine = customers.find((c) => c.owner === 'alice') as Customer;
    await expect(
      as(
        'alice',
        (tx) => tx`UPDATE crm_api.customers SET created_at = now() WHERE id = ${mine.id}`,
      ),
    ).rejects.toMatchObject({
      code: '42501',
      message: `permission denied: alice may not change column "created_at" of customers ${mine.id}: the column is read-only`,
    });
  });
});

describe('access changes as data, from the next statement', () => {
  it('tom sees his rows while the grant lasts and none after its time', async () => {
    const before = await as('tom', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    expect(before[0]?.n).toBeGreaterThan(0);
    await t.sql`UPDATE pgwarden.temp_grants SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 second' WHERE person = 'tom'`;
    const after = await as('tom', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    expect(after[0]?.n).toBe(0);
  });

  it('a session TimeZone does not stretch an expired grant', async () => {
    const r = await as('tom', async (tx) => {
      await tx`SET LOCAL TimeZone = 'Pacific/Kiritimati'`;
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    expect(r[0]?.n).toBe(0);
  });

  it('moving carol to manage sales_west changes what she sees on the next statement', async () => {
    const east = customers
      .filter((c) => c.owner && c.owner !== 'carol' && inSubtree(unitOf.get(c.owner), 'sales_east'))
      .map((c) => c.id);
    const west = customers
      .filter((c) => c.owner && c.owner !== 'carol' && inSubtree(unitOf.get(c.owner), 'sales_west'))
      .map((c) => c.id);
    const seen = (rows: { id: number }[]) => rows.map((r) => r.id);
    const q = (tx: postgres.TransactionSql) =>
      tx<{ id: number }[]>`SELECT id::int FROM crm_api.customers WHERE NOT in_pool ORDER BY id`;
    // one transaction of the application: the move happens between two statements
    const [before, after] = await withPerson(
      app,
      'carol',
      async (tx) => {
        const b = await q(tx);
        await t.sql`SELECT pgwarden.move_person('carol', 'sales_west')`;
        await t.sql`SELECT pgwarden.unset_manager('carol', NULL)`;
        await t.sql`SELECT pgwarden.set_manager('carol', 'sales_west')`;
        return [b, await q(tx)];
      },
      { rolePrefix: t.prefix },
    );
    expect(seen(before)).toEqual(expect.arrayContaining(east));
    expect(seen(before).some((id) => west.includes(id))).toBe(false);
    expect(seen(after)).toEqual(expect.arrayContaining(west));
    expect(seen(after).some((id) => east.includes(id))).toBe(false);
  });

  it('a deactivated person sees nothing, and the application can no longer act as them', async () => {
    const before = await as('bob', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    expect(before[0]?.n).toBeGreaterThan(0);
    await t.sql`SELECT pgwarden.deactivate_person('bob')`;
    await expect(
      as('bob', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`),
    ).rejects.toMatchObject({ code: '42501' });
    // even a session that could still become bob sees nothing
    const r = await t.sql.begin(async (tx) => {
      await tx`SELECT set_config('role', ${`${t.prefix}bob`}, true)`;
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    expect(r[0]?.n).toBe(0);
  });
});

describe('administration through pgwarden functions', () => {
  const asAdam = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => as('adam', fn);
  it("adam cannot make one of pgwarden's roles, or an existing role, a person", async () => {
    const prefixless = (r: string) => r.slice(t.prefix.length);
    for (const role of [
      `${t.prefix}crm_owner`,
      `${t.prefix}crm_api_owner`,
      `${t.prefix}crm_app`,
      `${t.prefix}crm_people`,
      `${t.prefix}pgwarden_owner`,
    ]) {
      await expect(
        asAdam((tx) => tx`SELECT pgwarden.add_person(${prefixless(role)}, 'hq')`),
        role,
      ).rejects.toMatchObject({ code: '42501' });
    }
    await t.sql.unsafe(`CREATE ROLE ${quoteIdent(`${t.prefix}preexisting`)} NOLOGIN`);
    await expect(
      asAdam((tx) => tx`SELECT pgwarden.add_person('preexisting', 'hq')`),
    ).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('already exists') });
    const [m] =
      await t.sql`SELECT pg_has_role(${`${t.prefix}crm_app`}, ${`${t.prefix}crm_owner`}, 'MEMBER') AS m`;
    expect(m?.m).toBe(false);
  });

  it('adam adds a person and grants a job, but nothing to himself; a rep administers nothing', async () => {
    await asAdam((tx) => tx`SELECT pgwarden.add_person('nina', 'sales_east', ARRAY['sales_rep'])`);
    const nina = await as(
      'nina',
      (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers WHERE in_pool`,
    );
    expect(nina[0]?.n).toBe(customers.filter((c) => c.in_pool).length);
    await expect(
      asAdam((tx) => tx`SELECT pgwarden.grant_job('adam', 'sales_director')`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      as('alice', (tx) => tx`SELECT pgwarden.add_person('eve', 'hq')`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(as('alice', (tx) => tx`SELECT * FROM pgwarden.people`)).rejects.toMatchObject({
      code: '42501',
    });
    await expect(
      asAdam((tx) => tx`SELECT pgwarden.move_unit('hq', 'sales_east')`),
    ).rejects.toMatchObject({ code: '23514' });
  });
});

describe('key helpers answer only active people, about themselves', () => {
  it("olga (no customer rules) learns no pool ids; nobody learns another person's keys", async () => {
    const olga = await as(
      'olga',
      (tx) =>
        tx`SELECT pgwarden._keys_customers_via_pool(current_user) AS a, pgwarden._keys_customers(current_user) AS b`,
    );
    expect(olga[0]?.b).toEqual([]);
    // the pool relation alone is a fact about rows, but olga is an active person: she may only
    // learn it because contacts' cells need it; crm_app (no person) learns nothing
    const app2 = await app`SELECT pgwarden._keys_customers_via_pool(current_user) AS a`.catch(
      (e: { code: string }) => e.code,
    );
    expect(app2).toBe('42501');
    const spy = await as(
      'alice',
      (tx) => tx`SELECT pgwarden._keys_customers(${`${t.prefix}vera`}) AS k`,
    );
    expect(spy[0]?.k).toEqual([]);
  });
});
