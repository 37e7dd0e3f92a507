/**
 * The Citus target (`--target citus`, docs/distributed.md). There is no Citus cluster here, so:
 *   (a) unit: every policy rendered for the target, parsed by the Postgres parser, holds no
 *       subquery (a SubLink node), which Citus refuses on distributed tables; the PostgreSQL
 *       target's policies do hold some (so the check can fail);
 *   (b) on plain PostgreSQL: the Citus rendering of the reference CRM, applied without the
 *       distribution step, gives each person the same rows on the base tables as the PostgreSQL
 *       target gives through crm_api, withholds the masked columns, checks edit rights, writes
 *       the audit tables, and plans empty after apply.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, setupCrm } from '../examples/crm/setup.js';
import { driftAgainst, planAgainst } from '../src/apply/index.js';
import type { CatalogObject, PolicyObject } from '../src/catalog/objects.js';
import { citusDistribution } from '../src/compile/citus.js';
import { compile, type Target } from '../src/compile/index.js';
import { appliedTarget, resolveTarget } from '../src/introspect/target.js';
import type { Model } from '../src/model/types.js';
import { validateModel } from '../src/model/validate.js';
import { parseSync } from '../src/sql/pg-parser.js';
import { quoteIdent } from '../src/sql/quote.js';
import { renderCreate } from '../src/sql/render.js';
import { loadParser } from '../src/sql/tree.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';
import { PEOPLE } from './helpers/people.js';

// ------------------------------------------------------------------ (a) unit

type Node = unknown;

/** SubLink nodes anywhere under a parse tree node (a walker of its own, not the compiler's). */
function countSubLinks(v: Node): number {
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + countSubLinks(x), 0);
  if (!v || typeof v !== 'object') return 0;
  let n = 'SubLink' in v ? 1 : 0;
  for (const x of Object.values(v)) n += countSubLinks(x);
  return n;
}

/** Each rendered CREATE POLICY, parsed: its name and the SubLinks of USING and WITH CHECK. */
function policySubLinks(objects: readonly CatalogObject[]): { name: string; subLinks: number }[] {
  const out: { name: string; subLinks: number }[] = [];
  for (const o of objects) {
    if (o.kind !== 'policy') continue;
    for (const s of renderCreate(o)) {
      const stmts = (parseSync(s.text) as { stmts: { stmt: Record<string, Node> }[] }).stmts;
      for (const { stmt } of stmts) {
        const create = stmt.CreatePolicyStmt as
          | { policy_name: string; qual?: Node; with_check?: Node }
          | undefined;
        if (!create) continue;
        expect(create.qual ?? create.with_check, `${o.name} has an expression`).toBeDefined();
        out.push({
          name: `${o.table}.${create.policy_name}`,
          subLinks: countSubLinks(create.qual ?? null) + countSubLinks(create.with_check ?? null),
        });
      }
    }
  }
  return out;
}

/** A model with every kind of scope, relation and parent scope, on tables with typed columns. */
async function everyScopeModel(): Promise<Model> {
  const { model, problems } = await validateModel({
    name: 'scopes',
    schemas: { protected: 'app', exposed: 'app_api' },
    jobs: ['rep', 'boss', 'clerk', 'viewer'],
    attributes: ['region'],
    tables: {
      accounts: {
        columns: [
          { name: 'id', type: 'bigint' },
          { name: 'owner', type: 'text' },
          { name: 'region', type: 'text' },
          { name: 'kind', type: 'text' },
          { name: 'in_pool', type: 'boolean' },
          { name: 'phone', type: 'text' },
        ],
        owner: 'owner',
        pool: 'in_pool',
        grantable: ['region', 'kind'],
        rules: [
          { jobs: ['rep'], scopes: ['own', 'unit', 'shared', 'pool'] },
          { jobs: ['boss'], scopes: ['subtree', { assigned: ['region'] }] },
          { jobs: ['*'], commands: ['select'], scopes: ['granted'] },
          { jobs: ['clerk'], commands: ['select'], scopes: [{ filter: "kind = 'open'" }] },
          {
            jobs: ['clerk'],
            commands: ['select'],
            scopes: [
              {
                filter:
                  'EXISTS (SELECT FROM app.notes n WHERE n.account_id = accounts.id) OR id IN (SELECT t.account_id FROM app.tasks t)',
              },
            ],
          },
          { jobs: ['viewer'], commands: ['select'], scopes: ['all'] },
        ],
        cells: { phone: { own: 'full', granted: 'mask:phone', default: 'hidden' } },
        edits: { kind: ['own', 'subtree'], owner: ['subtree'], phone: ['own'] },
      },
      notes: {
        columns: [
          { name: 'id', type: 'bigint' },
          { name: 'account_id', type: 'bigint' },
          { name: 'body', type: 'text' },
        ],
        rules: [
          {
            jobs: ['*'],
            commands: ['select'],
            scopes: [{ parent: { column: 'account_id', table: 'accounts' } }],
          },
          {
            jobs: ['rep'],
            commands: ['insert', 'update'],
            scopes: [
              { parent: { column: 'account_id', table: 'accounts', via: ['own', 'granted'] } },
            ],
          },
        ],
        edits: { body: ['parent:own'] },
      },
      tasks: {
        columns: [
          { name: 'id', type: 'bigint' },
          { name: 'account_id', type: 'bigint' },
          { name: 'unit', type: 'text' },
        ],
        unit: 'unit',
        rules: [
          { jobs: ['rep'], scopes: ['unit'] },
          { jobs: ['boss'], scopes: ['subtree'] },
          {
            jobs: ['clerk'],
            commands: ['select'],
            scopes: [{ parent: { column: 'account_id', table: 'accounts', via: ['pool'] } }],
          },
        ],
      },
    },
  });
  if (!model) throw new Error(`invalid test model: ${JSON.stringify(problems, null, 2)}`);
  return model;
}

describe('the Citus target renders policies without subqueries', () => {
  let crm: Model;
  let scopes: Model;
  beforeAll(async () => {
    await loadParser();
    crm = await crmModel();
    scopes = await everyScopeModel();
  });

  for (const which of ['crm', 'every scope kind'] as const) {
    it(`${which}: no policy of the citus target holds a SubLink; the postgres target's do`, () => {
      const model = which === 'crm' ? crm : scopes;
      const citus = policySubLinks(compile(model, { target: 'citus' }));
      const postgres = policySubLinks(compile(model));
      expect(citus.length).toBeGreaterThan(0);
      expect(citus.map((p) => p.name).sort()).toEqual(postgres.map((p) => p.name).sort());
      expect(citus.filter((p) => p.subLinks > 0)).toEqual([]);
      // the check itself can fail: the PostgreSQL target wraps every helper in (SELECT ...)
      expect(postgres.filter((p) => p.subLinks > 0).length).toBeGreaterThan(0);
    });
  }

  it('every scope kind is in the test model, and every helper a citus policy calls is compiled', () => {
    const kinds = new Set(
      scopes.tables.flatMap((t) =>
        t.rules.flatMap((r) =>
          r.scopes.map((s) => (s.kind === 'parent' ? `parent:${s.via ? 'via' : 'any'}` : s.kind)),
        ),
      ),
    );
    for (const k of [
      'own',
      'unit',
      'subtree',
      'shared',
      'pool',
      'granted',
      'all',
      'filter',
      'assigned',
      'parent:any',
      'parent:via',
    ])
      expect(kinds, k).toContain(k);
    for (const model of [crm, scopes]) {
      const objects = compile(model, { target: 'citus' });
      const fns = new Set(
        objects.flatMap((o) => (o.kind === 'function' ? [`${o.schema}.${o.name}`] : [])),
      );
      const called = new Set<string>();
      for (const o of objects) {
        if (o.kind !== 'policy') continue;
        for (const m of `${o.using ?? ''} ${o.check ?? ''}`.matchAll(
          /"pgwarden"\."(_[a-z_0-9]+)"/g,
        ))
          called.add(`pgwarden.${m[1]}`);
      }
      expect(called.size).toBeGreaterThan(0);
      for (const f of called) expect(fns, f).toContain(f);
      // policies apply to the people role itself, and no masking view is made
      const policies = objects.filter((o): o is PolicyObject => o.kind === 'policy');
      expect(new Set(policies.flatMap((p) => p.to))).toEqual(new Set([model.roles.people]));
      expect(objects.filter((o) => o.kind === 'view')).toEqual([]);
      // nor the PostgreSQL target's parent keys, lookups and their chooser, nor grants on them
      expect([...fns].filter((f) => /^pgwarden\._(keys|many|rows)_/.test(f))).toEqual([]);
      expect(
        objects.filter(
          (o) => o.kind === 'grant' && /^_(keys|many|rows)_/.test(o.target.name ?? ''),
        ),
      ).toEqual([]);
    }
  });

  it('the default target is postgres, and the distribution steps name every table', () => {
    expect(compile(crm)).toEqual(compile(crm, { target: 'postgres' }));
    const [before, after] = citusDistribution(crm);
    for (const t of crm.tables) {
      expect(before?.content).toContain(`create_distributed_table('"crm".${quoteIdent(t.table)}'`);
      expect(after?.content).toContain(`colocate_with => '"crm".${quoteIdent(t.table)}'`);
    }
    expect(after?.content).toContain('create_reference_table');
    // both scripts are SQL the server's parser accepts (Citus' functions are plain calls)
    for (const f of [before, after]) expect(() => parseSync(f?.content ?? '')).not.toThrow();
  });
});

// ------------------------------------------------------------------ (b) on PostgreSQL 15

async function idsAs(db: TestDb, person: string, relation: string): Promise<number[]> {
  return db.sql.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL ROLE ${quoteIdent(db.prefix + person)}`);
    const rows = await tx.unsafe<{ id: string }[]>(`SELECT id FROM ${relation} ORDER BY id`);
    return rows.map((r) => Number(r.id));
  });
}

async function asPerson<T>(
  db: TestDb,
  person: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return (await db.sql.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL ROLE ${quoteIdent(db.prefix + person)}`);
    return fn(tx);
  })) as T;
}

describe('the Citus rendering of the CRM on plain PostgreSQL (no distribution step)', () => {
  let pg: TestDb;
  let citus: TestDb;
  let model: Model;
  beforeAll(async () => {
    [pg, citus] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    await setupCrm(pg.sql, { rolePrefix: pg.prefix });
    model = (await setupCrm(citus.sql, { rolePrefix: citus.prefix, target: 'citus' })).model;
  });
  afterAll(async () => {
    await Promise.all([pg?.cleanup(), citus?.cleanup()]);
  });

  it('each person sees the same rows on the base tables as through crm_api on the postgres target', async () => {
    const seen: Record<string, number> = {};
    for (const person of PEOPLE) {
      for (const t of ['customers', 'contacts', 'deals', 'contracts']) {
        const viaView = await idsAs(pg, person, `crm_api.${t}`);
        const onBase = await idsAs(citus, person, `crm.${t}`);
        expect(onBase, `${person} on ${t}`).toEqual(viaView);
        if (t === 'customers') seen[person] = onBase.length;
      }
    }
    // not vacuous: the scenario's people see different, non-empty sets (SCENARIO.md)
    for (const p of ['alice', 'bob', 'carol', 'vera', 'erin', 'fiona', 'mark', 'tom'])
      expect(seen[p], p).toBeGreaterThan(0);
    for (const p of ['olga', 'adam', 'audrey']) expect(seen[p], p).toBe(0);
    expect(new Set(Object.values(seen)).size).toBeGreaterThan(4);
  });

  it('withholds the masked columns by column privileges, and reads the rest', async () => {
    await expect(
      asPerson(citus, 'alice', (tx) => tx.unsafe('SELECT phone FROM crm.customers')),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      asPerson(citus, 'carol', (tx) => tx.unsafe('SELECT amount FROM crm.deals')),
    ).rejects.toMatchObject({ code: '42501' });
    const rows = await asPerson(citus, 'alice', (tx) =>
      tx.unsafe<{ name: string }[]>('SELECT name, owner, region FROM crm.customers WHERE id = 1'),
    );
    expect(rows).toHaveLength(1);
  });

  it('checks edit rights per column, and leaves pgwarden functions (claims) alone', async () => {
    // alice may edit her customer's name, not reassign it (edits.owner: subtree)
    await asPerson(citus, 'alice', (tx) =>
      tx.unsafe(`UPDATE crm.customers SET name = 'Acme Renamed' WHERE id = 1`),
    );
    await expect(
      asPerson(citus, 'alice', (tx) =>
        tx.unsafe(`UPDATE crm.customers SET owner = 'bob' WHERE id = 1`),
      ),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('may not change column "owner" of customers 1'),
    });
    // carol manages sales_east: she may reassign inside it
    const moved = await asPerson(citus, 'carol', (tx) =>
      tx.unsafe(`UPDATE crm.customers SET owner = 'bob' WHERE id = 2 RETURNING id`),
    );
    expect(moved).toHaveLength(1);
    // a claim is pgwarden's function writing as its owner: not an edit of owner by bob
    const pool = await citus.sql<{ id: string }[]>`
      SELECT id FROM crm.customers WHERE in_pool ORDER BY id LIMIT 1`;
    const claimed = String(pool[0]?.id);
    await asPerson(citus, 'bob', (tx) => tx`SELECT pgwarden.claim('customers', ${claimed})`);
    const [after] = await citus.sql<{ owner: string }[]>`
      SELECT owner FROM crm.customers WHERE id = ${claimed}`;
    expect(after?.owner).toBe('bob');
  });

  it('writes every row change to the co-located audit table, sensitive values hashed', async () => {
    const [seeded] = await citus.sql<{ n: number; customers: number }[]>`
      SELECT (SELECT count(*)::int FROM pgwarden_audit.changes_customers WHERE operation = 'INSERT') AS n,
             (SELECT count(*)::int FROM crm.customers) AS customers`;
    expect(seeded?.n).toBe(seeded?.customers);
    await asPerson(citus, 'alice', (tx) =>
      tx.unsafe(`UPDATE crm.customers SET phone = '13900000000' WHERE id = 3`),
    );
    const [rec] = await citus.sql<
      { dist_key: string; person: string; changes: Record<string, { old: string; new: string }> }[]
    >`SELECT dist_key, person, changes FROM pgwarden_audit.changes_customers
      WHERE operation = 'UPDATE' AND row_key = '3' ORDER BY id DESC LIMIT 1`;
    expect(rec?.dist_key).toBe('3');
    expect(rec?.person).toBe('alice');
    expect(Object.keys(rec?.changes ?? {})).toEqual(['phone']);
    expect(rec?.changes.phone?.new).toMatch(/^hmac:[0-9a-f]{32}$/);
    // the postgres target's log table gets no data records on this target
    const [data] = await citus.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pgwarden_audit.records WHERE kind = 'data'`;
    expect(data?.n).toBe(0);
    // append-only, as the log
    await expect(
      citus.sql`DELETE FROM pgwarden_audit.changes_customers WHERE row_key = '3'`,
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('plans empty after apply, reports no drift, and records the target', async () => {
    const plan = await planAgainst(
      citus.sql,
      compile(model, { rolePrefix: citus.prefix, target: 'citus' }),
    );
    expect(plan.steps.map((s) => s.summary)).toEqual([]);
    const drift = await driftAgainst(citus.sql);
    expect(drift.findings).toEqual([]);
    expect(await appliedTarget(citus.sql)).toBe('citus');
    expect(await appliedTarget(pg.sql)).toBe('postgres');
    expect(await resolveTarget(citus.sql, undefined)).toBe('citus');
    await expect(resolveTarget(citus.sql, 'postgres' as Target)).rejects.toMatchObject({
      code: 'target_mismatch',
    });
    // a column privilege granted by hand (phone to the people role) is drift, and apply's
    // statement for the grant removes it (REVOKE on the table, then GRANT on the columns)
    await citus.sql.unsafe(
      `GRANT SELECT (phone) ON crm.customers TO ${quoteIdent(`${citus.prefix}crm_people`)}`,
    );
    const drifted = await planAgainst(
      citus.sql,
      compile(model, { rolePrefix: citus.prefix, target: 'citus' }),
    );
    expect(drifted.steps.map((s) => `${s.reason} ${s.key}`)).toEqual([
      expect.stringMatching(/^drifted grant:table:crm\.customers:.*crm_people:SELECT\(id,/),
    ]);
  });
});
