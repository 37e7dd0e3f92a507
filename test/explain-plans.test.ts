/**
 * Issue 8: the plans of the statements that matter, as people run them through crm_api, on a
 * CRM large enough for the planner to prefer indexes (30,000 customers, 200 more reps, ANALYZE).
 * The plans are read from EXPLAIN (FORMAT JSON) by walking the tree, not by matching text:
 *
 *   - a rep's count reads the owner index with `owner = $n`, $n an initplan (once per statement);
 *   - a manager's count reads the owner index with `owner = ANY ($n)`, $n an initplan array;
 *   - shares are read from the primary key index with `id = ANY ($n)`;
 *   - an attribute scope (issue 10) reads the region index with `region = ANY ($n)`;
 *   - a point lookup by id is an index scan of the primary key;
 *   - no SubPlan runs once per row (initplans, and hashed subplans built once, are fine);
 *   - the built-in masks are inlined: no mask function call per cell.
 *
 * The read cap of reps (200 rows a statement) is removed first: EXPLAIN ANALYZE of a rep's count
 * would stop at row 201. The plan does not depend on it.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { withPerson } from '../src/runtime/with-person.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

const CUSTOMERS = 30_000;
const EXTRA_REPS = 200;

interface PlanNode {
  'Node Type': string;
  'Parent Relationship'?: string;
  'Subplan Name'?: string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  Output?: string[];
  Filter?: string;
  Plans?: PlanNode[];
}

let t: TestDb;
let app: postgres.Sql;

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  await t.sql.begin(async (tx) => {
    await tx`SELECT pgwarden.add_person('rep' || lpad(g::text, 3, '0'),
               CASE WHEN g % 2 = 0 THEN 'sales_east' ELSE 'sales_west' END, ARRAY['sales_rep'])
             FROM generate_series(1, ${EXTRA_REPS}::int) g`;
    // owners spread over all the reps and managers (one customer in 50 in the pool)
    await tx`INSERT INTO crm.customers (name, owner, region, customer_type, status, in_pool, phone, email, address)
      SELECT 'Customer ' || g,
        CASE WHEN g % 50 = 0 THEN NULL ELSE o.names[1 + (g / 3) % pg_catalog.cardinality(o.names)] END,
        (ARRAY['east', 'west', 'north'])[1 + g % 3],
        (ARRAY['enterprise', 'retail', 'vip'])[1 + (g / 3) % 3],
        (ARRAY['lead', 'active', 'churned'])[1 + (g / 9) % 3],
        g % 50 = 0,
        '138' || lpad(g::text, 8, '0'), 'c' || g || '@example.com', g || ' Some Rd'
      FROM generate_series(1, ${CUSTOMERS}::int) g,
        (SELECT pg_catalog.array_agg(name ORDER BY name) AS names FROM pgwarden.people
         WHERE name LIKE 'rep%' OR name IN ('alice', 'bob', 'pat', 'dave', 'carol', 'walt', 'vera')) o`;
    await tx`DELETE FROM pgwarden.read_caps`;
  });
  await t.sql`ANALYZE`;
  app = await loginAs(t, 'crm_app', { max: 2 });
}, 300_000);

afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

/** EXPLAIN (FORMAT JSON, ...) of `query` as `person` through crm_api: the root plan node. */
async function explain(person: string, query: string, analyze = false): Promise<PlanNode> {
  const options = analyze ? 'ANALYZE, VERBOSE, FORMAT JSON' : 'VERBOSE, FORMAT JSON';
  const rows = await withPerson(app, person, (tx) => tx.unsafe(`EXPLAIN (${options}) ${query}`), {
    rolePrefix: t.prefix,
  });
  const json = (rows[0] as Record<string, unknown>)['QUERY PLAN'];
  const doc = (typeof json === 'string' ? JSON.parse(json) : json) as { Plan: PlanNode }[];
  return (doc[0] as { Plan: PlanNode }).Plan;
}

/** Every node of the tree, depth first. */
function nodes(root: PlanNode): PlanNode[] {
  return [root, ...(root.Plans ?? []).flatMap(nodes)];
}

const INDEX_SCANS = ['Index Scan', 'Index Only Scan', 'Bitmap Index Scan'];

/** The index scans of `index`. */
function indexScans(root: PlanNode, index: string): PlanNode[] {
  return nodes(root).filter(
    (n) => INDEX_SCANS.includes(n['Node Type']) && n['Index Name'] === index,
  );
}

/** The parameters ($n) that initplans of the tree return. */
function initplanParams(root: PlanNode): Set<string> {
  const out = new Set<string>();
  for (const n of nodes(root)) {
    if (n['Parent Relationship'] !== 'InitPlan') continue;
    // PostgreSQL <= 16 names the parameters an initplan returns ("InitPlan 1 (returns $0)");
    // 17 refers to its output as (InitPlan 1).col1 and names it "InitPlan 1".
    const name = n['Subplan Name'] ?? '';
    const m = /\(returns (.+)\)$/.exec(name);
    for (const p of m?.[1]?.split(',') ?? []) out.add(p.trim());
    const v17 = /^InitPlan (\d+)$/.exec(name);
    if (v17) out.add(`(InitPlan ${v17[1]})`);
  }
  return out;
}

/** Every index condition of a plan (for failure messages). */
const indexConds = (root: PlanNode) =>
  nodes(root)
    .map((n) => n['Index Cond'])
    .filter(Boolean);

/** The parameters an expression reads. */
const params = (expr: string) =>
  [...expr.matchAll(/\$\d+|\(InitPlan \d+\)(?=\.col\d+)/g)].map((m) => m[0]);
/** An initplan's value in an index condition: $1 (PostgreSQL <= 16) or (InitPlan 1).col1 (17). */
const P = String.raw`(?:\(?\$\d+\)?|\(?\(InitPlan \d+\)\.col\d+\)?)`;

/** The SubPlan nodes (not initplans) that ran more than once: evaluated per row. */
function perRowSubplans(root: PlanNode): PlanNode[] {
  return nodes(root).filter(
    (n) => n['Parent Relationship'] === 'SubPlan' && (n['Actual Loops'] ?? 0) > 1,
  );
}

/** The table scans of crm.customers that read every row. */
const seqScans = (root: PlanNode) =>
  nodes(root).filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'customers');

async function base(where: string): Promise<number> {
  const [r] = await t.sql.unsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM crm.customers WHERE ${where}`,
  );
  return r?.n ?? -1;
}

const COUNT = 'SELECT count(*) FROM crm_api.customers';

/**
 * The index arms cover the policy's first part exactly, so the heap rows are not re-checked
 * against it; what the heap scan may still filter on is the second part, NOT row_checked() OR
 * ..., decided by its first term. (An arm that is not exactly one index's condition, such as a
 * combined assigned scope without an index on all its columns, makes the planner re-check the
 * whole policy on every row: for a manager a walk through her subtree array per row.)
 */
function expectNoPolicyRecheck(plan: PlanNode): void {
  for (const n of nodes(plan).filter((x) => x['Node Type'] === 'Bitmap Heap Scan'))
    if (n.Filter) expect(n.Filter, 'heap filter').toMatch(/^\(+NOT /);
}

describe('the plans that matter (EXPLAIN, FORMAT JSON)', () => {
  it("a rep's count (own scope) reads the owner index with owner = an initplan value", async () => {
    const plan = await explain('alice', COUNT, true);
    expect(seqScans(plan)).toEqual([]);
    const scans = indexScans(plan, 'customers_owner_idx').filter((n) =>
      new RegExp(String.raw`^\((customers\.)?owner = ${P}(::text)?\)$`).test(n['Index Cond'] ?? ''),
    );
    expect(scans, JSON.stringify(indexConds(plan))).toHaveLength(1);
    const own = scans[0] as PlanNode;
    const initplans = initplanParams(plan);
    for (const p of params(own['Index Cond'] ?? '')) expect(initplans).toContain(p);
    // the index scan found exactly her customers
    expect(own['Actual Rows']).toBe(await base(`owner = 'alice'`));
    expect(own['Actual Rows']).toBeGreaterThan(50);
    expect(perRowSubplans(plan)).toEqual([]);
    expectNoPolicyRecheck(plan);
  });

  it("a manager's count (subtree scope) reads the owner index with owner = ANY (initplan array)", async () => {
    const plan = await explain('carol', COUNT, true);
    expect(seqScans(plan)).toEqual([]);
    const scans = indexScans(plan, 'customers_owner_idx').filter((n) =>
      new RegExp(String.raw`^\((customers\.)?owner = ANY \(${P}(::text\[\])?\)\)$`).test(
        n['Index Cond'] ?? '',
      ),
    );
    expect(scans, JSON.stringify(indexConds(plan))).toHaveLength(1);
    const subtree = scans[0] as PlanNode;
    const initplans = initplanParams(plan);
    for (const p of params(subtree['Index Cond'] ?? '')) expect(initplans).toContain(p);
    // carol manages sales_east: the customers of everyone in it
    expect(subtree['Actual Rows']).toBe(
      await base(`owner IN (SELECT name FROM pgwarden.people WHERE unit = 'sales_east')`),
    );
    expect(subtree['Actual Rows']).toBeGreaterThan(1000);
    expect(perRowSubplans(plan)).toEqual([]);
    expectNoPolicyRecheck(plan);
  });

  it('shares (shared scope) are read from the primary key index with id = ANY (initplan array)', async () => {
    // the seed shares customer 1 with bob
    const plan = await explain('bob', COUNT, true);
    expect(seqScans(plan)).toEqual([]);
    const scans = indexScans(plan, 'customers_pkey').filter((n) =>
      new RegExp(String.raw`^\((customers\.)?id = ANY \(${P}(::bigint\[\])?\)\)$`).test(
        n['Index Cond'] ?? '',
      ),
    );
    expect(scans, JSON.stringify(indexConds(plan))).toHaveLength(1);
    const shared = scans[0] as PlanNode;
    const initplans = initplanParams(plan);
    for (const p of params(shared['Index Cond'] ?? '')) expect(initplans).toContain(p);
    expect(shared['Actual Rows']).toBe(1);
    expect(perRowSubplans(plan)).toEqual([]);
  });

  it('an attribute scope (issue 10) reads the region index with region = ANY (initplan array)', async () => {
    // dave (a rep) covers the north region for a while: his own customers, and the north ones
    await t.sql`SELECT pgwarden.assign('dave', 'region', ARRAY['north'])`;
    try {
      const plan = await explain('dave', COUNT, true);
      expect(seqScans(plan)).toEqual([]);
      // region = ANY ($n), with the bounds of the values that keep the planner's estimate low
      const cond = String.raw`^\(\((customers\.)?region = ANY \(${P}(::text\[\])?\)\) AND \((customers\.)?region >= ${P}(::text)?\) AND \((customers\.)?region <= ${P}(::text)?\)\)$`;
      // either index leading with region (region, status) or (region, customer_type)
      const scans = [
        ...indexScans(plan, 'customers_region_status_idx'),
        ...indexScans(plan, 'customers_region_type_idx'),
      ].filter((n) => new RegExp(cond).test(n['Index Cond'] ?? ''));
      expect(scans, JSON.stringify(indexConds(plan))).toHaveLength(1);
      const region = scans[0] as PlanNode;
      const initplans = initplanParams(plan);
      for (const p of params(region['Index Cond'] ?? '')) expect(initplans).toContain(p);
      expect(region['Actual Rows']).toBe(await base(`region = 'north'`));
      expectNoPolicyRecheck(plan);
      expect(perRowSubplans(plan)).toEqual([]);
      // and the assignment is not a row-by-row scope: no key range is opened for him
      expect(
        indexScans(plan, 'customers_pkey').filter((n) => (n['Actual Rows'] ?? 0) > 1),
        JSON.stringify(indexConds(plan)),
      ).toEqual([]);
    } finally {
      await t.sql`SELECT pgwarden.unassign('dave', 'region', ARRAY['north'])`;
    }
  });

  it('the plan shape does not depend on the person: a rep without shares plans the same scans', async () => {
    const shape = (plan: PlanNode) =>
      nodes(plan)
        .filter((n) => INDEX_SCANS.includes(n['Node Type']) || n['Node Type'] === 'Seq Scan')
        .map((n) => `${n['Node Type']} ${n['Index Name'] ?? n['Relation Name']}`);
    expect(shape(await explain('pat', COUNT))).toEqual(shape(await explain('alice', COUNT)));
  });

  it('a point lookup by id is an index scan of the primary key', async () => {
    const [row] =
      await t.sql`SELECT id FROM crm.customers WHERE owner = 'alice' ORDER BY id DESC LIMIT 1`;
    const id = Number((row as { id: string }).id);
    const plan = await explain('alice', `SELECT * FROM crm_api.customers WHERE id = ${id}`, true);
    expect(seqScans(plan)).toEqual([]);
    const scans = indexScans(plan, 'customers_pkey').filter((n) =>
      new RegExp(`^\\((customers\\.)?id = '?${id}'?(::bigint)?\\)$`).test(n['Index Cond'] ?? ''),
    );
    expect(scans, JSON.stringify(indexConds(plan))).toHaveLength(1);
    expect((scans[0] as PlanNode)['Actual Rows']).toBe(1);
    expect(perRowSubplans(plan)).toEqual([]);
  });

  it("a manager's masked page and full read: no SubPlan per row, the masks inlined", async () => {
    for (const query of [
      'SELECT * FROM crm_api.customers ORDER BY id LIMIT 50',
      'SELECT id, phone, email, address FROM crm_api.customers',
    ]) {
      const plan = await explain('carol', query, true);
      expect(perRowSubplans(plan), query).toEqual([]);
      const outputs = nodes(plan).flatMap((n) => n.Output ?? []);
      expect(outputs.join('\n'), query).not.toMatch(/mask_(phone|email)/);
    }
    // someone who sees masked cells: erin (phone masked) reads the same way
    const plan = await explain('erin', 'SELECT id, phone, email FROM crm_api.customers', true);
    expect(perRowSubplans(plan)).toEqual([]);
    expect(
      nodes(plan)
        .flatMap((n) => n.Output ?? [])
        .join('\n'),
    ).not.toMatch(/mask_phone/);
  });
});

/**
 * A child table (crm.contacts, one contact for every third customer): a contact is visible when
 * its customer is. A rep's customers are few, so her contacts are tested against the array of
 * their keys, built once per statement; a manager's may be most of the table, so each contact
 * looks its one customer up by primary key instead (`pgwarden._rows_customers`), and a page of
 * 50 contacts looks up about 50 customers, not every customer she sees.
 */
describe('a child table: the parent looked up per row for a manager, an array for a rep', () => {
  beforeAll(async () => {
    await t.sql`INSERT INTO crm.contacts (customer_id, name, title, phone, email)
      SELECT c.id, 'Contact ' || c.id, 'Buyer', '139' || lpad(c.id::text, 8, '0'), 'k' || c.id || '@example.com'
      FROM crm.customers c WHERE c.id % 3 = 0`;
    await t.sql`ANALYZE crm.contacts`;
  }, 120_000);

  /** The lookups of one customer by primary key for a contact's customer_id. */
  const lookups = (plan: PlanNode) =>
    indexScans(plan, 'customers_pkey').filter((n) => /customer_id/.test(n['Index Cond'] ?? ''));
  /** Rows the plan read from crm.contacts. */
  const contactsRead = (plan: PlanNode) =>
    nodes(plan)
      .filter((n) => n['Relation Name'] === 'contacts')
      .reduce((a, n) => a + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 0), 0);

  async function contactOf(where: string): Promise<number> {
    const [row] = await t.sql.unsafe<{ id: string }[]>(
      `SELECT k.id FROM crm.contacts k JOIN crm.customers c ON c.id = k.customer_id
       WHERE ${where} ORDER BY k.id DESC LIMIT 1`,
    );
    return Number(row?.id);
  }

  it("a manager's contact by id: one lookup of its customer, no array of her customers", async () => {
    const id = await contactOf("c.owner LIKE 'rep%' AND substr(c.owner, 4)::int % 2 = 0");
    const plan = await explain('carol', `SELECT * FROM crm_api.contacts WHERE id = ${id}`, true);
    expect(nodes(plan)[0]?.['Actual Rows']).toBe(1);
    const ran = lookups(plan).filter((n) => (n['Actual Loops'] ?? 0) > 0);
    expect(ran.length, JSON.stringify(indexConds(plan))).toBeGreaterThan(0);
    for (const n of ran) expect(n['Actual Loops']).toBe(1);
    // no SubPlan hashes the visible customers (a hashed subplan scans all of them first)
    expect(nodes(plan).filter((n) => /hashed/.test(n['Subplan Name'] ?? ''))).toEqual([]);
  });

  it("a manager's page of 50 contacts looks up the customers of the contacts it reads", async () => {
    const plan = await explain(
      'carol',
      'SELECT * FROM crm_api.contacts ORDER BY id LIMIT 50',
      true,
    );
    expect(nodes(plan)[0]?.['Actual Rows']).toBe(50);
    const read = contactsRead(plan);
    expect(read).toBeLessThan(1000);
    const policyLookups = lookups(plan).reduce((a, n) => a + (n['Actual Loops'] ?? 0), 0);
    expect(policyLookups).toBeGreaterThan(0);
    // the policy's lookup for every contact read, and the cells' for every contact shown
    expect(policyLookups).toBeLessThanOrEqual(read + 50 * 2 * 6);
    expect(nodes(plan).filter((n) => /hashed/.test(n['Subplan Name'] ?? ''))).toEqual([]);
  });

  it("a rep's contacts: her customers' keys once per statement, no lookup per contact", async () => {
    const id = await contactOf("c.owner = 'alice'");
    const plan = await explain('alice', `SELECT * FROM crm_api.contacts WHERE id = ${id}`, true);
    expect(nodes(plan)[0]?.['Actual Rows']).toBe(1);
    for (const n of lookups(plan)) expect(n['Actual Loops'] ?? 0, 'a lookup ran').toBe(0);
    // a contact of someone else's customer is not hers
    const other = await contactOf("c.owner LIKE 'rep%' AND NOT c.in_pool");
    const none = await explain('alice', `SELECT * FROM crm_api.contacts WHERE id = ${other}`, true);
    expect(nodes(none)[0]?.['Actual Rows']).toBe(0);
  });
});
