/**
 * Issue #10: attribute assignments as data, project teams, approval-gated edits, and their
 * audit, against real PostgreSQL, as the people of SCENARIO.md through the application role.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, setupCrm } from '../examples/crm/setup.js';
import { validateModel } from '../src/model/validate.js';
import { evaluateExplain, explainRow } from '../src/report/explain.js';
import { readReview } from '../src/report/review.js';
import { withPerson } from '../src/runtime/with-person.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

let t: TestDb;
let app: postgres.Sql;
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, { rolePrefix: t.prefix });
const as_ = as;
const ids = (rows: readonly postgres.Row[]) => rows.map((r) => Number(r.id));
const visible = async (person: string, where = 'true') =>
  ids(
    await as(person, (tx) =>
      tx.unsafe(`SELECT id FROM crm_api.customers WHERE ${where} ORDER BY id`),
    ),
  );
const base = async (where: string) =>
  ids(await t.sql.unsafe(`SELECT id FROM crm.customers WHERE ${where} ORDER BY id`));

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 2 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('attribute assignments', () => {
  it('dave assigned region north sees north customers from the next statement, not after removal or end', async () => {
    const north = await base(`region = 'north'`);
    const notMine = await base(
      `region = 'north' AND owner IS DISTINCT FROM 'dave' AND NOT in_pool`,
    );
    expect(notMine.length).toBeGreaterThan(0);
    const before = await visible('dave');
    expect(before).not.toEqual(expect.arrayContaining(notMine));

    // adam (crm_admin) assigns, in the same transaction dave's next statement sees them
    await as('adam', (tx) => tx`SELECT pgwarden.assign('dave', 'region', ARRAY['north'])`);
    const after = await visible('dave');
    expect(after).toEqual(expect.arrayContaining(north));
    // cells of assigned rows: masked phone, as the model says
    const [row] = await as(
      'dave',
      (tx) => tx`SELECT phone, id_number FROM crm_api.customers WHERE id = ${notMine[0] as number}`,
    );
    expect(String(row?.phone)).toMatch(/^\d{3}\*{4}\d{4}$/);
    expect(row?.id_number).toBeNull();

    await as('adam', (tx) => tx`SELECT pgwarden.unassign('dave', 'region', ARRAY['north'])`);
    expect(await visible('dave')).toEqual(before);

    // an assignment that ended (validity window) grants nothing
    await as('adam', async (tx) => {
      const [r] =
        await tx`SELECT pgwarden.assign('dave', 'region', ARRAY['north'], now() + interval '1 hour') AS ids`;
      expect(r?.ids).toHaveLength(1);
    });
    expect(await visible('dave')).toEqual(expect.arrayContaining(north));
    await t.sql`UPDATE pgwarden.assignments SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day' WHERE person = 'dave'`;
    expect(await visible('dave')).toEqual(before);
  });

  it('a combined scope (region AND customer type) for marketing; nobody assigns to themselves', async () => {
    const eastVipChurned = await base(
      `region = 'east' AND customer_type = 'retail' AND status = 'churned'`,
    );
    expect(eastVipChurned.length).toBeGreaterThan(0);
    await as('adam', (tx) => tx`SELECT pgwarden.assign('mark', 'region', ARRAY['east'])`);
    // region alone is not enough: the scope needs both
    expect(await visible('mark', `status = 'churned'`)).toEqual([]);
    await as('adam', (tx) => tx`SELECT pgwarden.assign('mark', 'customer_type', ARRAY['retail'])`);
    expect(await visible('mark', `status = 'churned'`)).toEqual(eastVipChurned);
    await expect(
      as('adam', (tx) => tx`SELECT pgwarden.assign('adam', 'region', ARRAY['east'])`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      as('adam', (tx) => tx`SELECT pgwarden.assign('dave', 'planet', ARRAY['mars'])`),
    ).rejects.toThrow(/attribute "planet" is not in the model/);
    await expect(
      as('dave', (tx) => tx`SELECT pgwarden.assign('bob', 'region', ARRAY['west'])`),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('the policy compares the column with one array per statement (index-friendly)', async () => {
    const [p] = await t.sql<{ qual: string }[]>`
      SELECT pg_get_expr(polqual, polrelid) AS qual FROM pg_policy WHERE polname = 'customers_select'`;
    // in the default collation, so that a default-collation index on the column applies; the
    // rule's job gate folded into the array (an index arm, like subtree), and the bounds of the
    // values that keep the planner's estimate of the arm low (test/explain-plans.test.ts)
    const qual = (p?.qual ?? '').replace(/\s+/g, ' ');
    expect(qual).toContain(
      `region = ANY ((( SELECT CASE WHEN pgwarden.has_any_job(pgwarden.caller(), ARRAY['sales_rep'::text, 'sales_manager'::text]) THEN pgwarden.assigned(pgwarden.caller(), 'region'::text) ELSE NULL::text[] END AS "case") COLLATE "default"))`,
    );
    expect(qual).toContain(
      `region >= (( SELECT pgwarden.assigned_min(pgwarden.caller(), 'region'::text) AS assigned_min) COLLATE "default")`,
    );
    expect(qual).toContain(
      `region <= (( SELECT pgwarden.assigned_max(pgwarden.caller(), 'region'::text) AS assigned_max) COLLATE "default")`,
    );
    // not behind row_checked(): an assignment opens nobody's key range
    const [rc] = await t.sql<{ assigned: unknown[] }[]>`
      SELECT assigned FROM pgwarden.row_checks WHERE table_name = 'customers' AND command = 'select'`;
    expect(rc?.assigned).toEqual([]);
  });
});

describe('project teams', () => {
  it('a team with an end date in the past grants nothing; members added and removed change rows on the next statement', async () => {
    const eastRetail = await base(`region = 'east' AND customer_type = 'retail'`);
    const erinBefore = await visible('erin');
    await as('adam', async (tx) => {
      await tx`SELECT pgwarden.create_team('double11', now() + interval '10 days', 'the double11 promotion')`;
      await tx`SELECT pgwarden.grant_team('double11', 'customers', '{"region": ["east"], "customer_type": "retail"}')`;
      await tx`SELECT pgwarden.add_team_member('double11', 'erin')`;
    });
    expect(await visible('erin')).toEqual(
      [...new Set([...erinBefore, ...eastRetail])].sort((a, b) => a - b),
    );
    // team rows get the model's `granted` levels (tom's): masked phone and email
    const [row] = await as(
      'erin',
      (tx) =>
        tx`SELECT phone, address FROM crm_api.customers WHERE id = ${eastRetail.find((i) => !erinBefore.includes(i)) as number}`,
    );
    expect(String(row?.phone)).toMatch(/\*{4}/);
    expect(row?.address).toBeNull();
    await as('adam', (tx) => tx`SELECT pgwarden.remove_team_member('double11', 'erin')`);
    expect(await visible('erin')).toEqual(erinBefore);

    // a team that ended
    await as('adam', async (tx) => {
      await tx`SELECT pgwarden.create_team('old_promo', now() + interval '1 day')`;
      await tx`SELECT pgwarden.grant_team('old_promo', 'customers', '{"region": ["west"]}')`;
      await tx`SELECT pgwarden.add_team_member('old_promo', 'erin')`;
      await tx`SELECT pgwarden.assign_team('old_promo', 'region', ARRAY['west'])`;
    });
    expect((await visible('erin')).length).toBeGreaterThan(erinBefore.length);
    await t.sql`UPDATE pgwarden.teams SET ends_at = now() - interval '1 hour' WHERE name = 'old_promo'`;
    expect(await visible('erin')).toEqual(erinBefore);
    // end_team ends it for good
    await as('adam', (tx) => tx`SELECT pgwarden.add_team_member('double11', 'erin')`);
    expect((await visible('erin')).length).toBeGreaterThan(erinBefore.length);
    await as('adam', (tx) => tx`SELECT pgwarden.end_team('double11')`);
    expect(await visible('erin')).toEqual(erinBefore);
  });

  it("tom's grant expressed as a team gives the same rows as his temporary grant", async () => {
    const tomRows = await visible('tom');
    expect(tomRows).toEqual(await base(`region = 'east' AND customer_type = 'retail'`));
    await as('adam', async (tx) => {
      await tx`SELECT pgwarden.create_team('double11b', now() + interval '30 days')`;
      await tx`SELECT pgwarden.grant_team('double11b', 'customers', '{"region": ["east"], "customer_type": ["retail"]}')`;
      await tx`SELECT pgwarden.add_team_member('double11b', 'mark')`;
    });
    const [g] = await t.sql`SELECT id FROM pgwarden.temp_grants WHERE person = 'tom'`;
    await as('adam', (tx) => tx`SELECT pgwarden.revoke_access(${g?.id as string})`);
    expect(await visible('tom')).toEqual([]);
    await as('adam', (tx) => tx`SELECT pgwarden.add_team_member('double11b', 'tom')`);
    expect(await visible('tom')).toEqual(tomRows);
  });
});

describe('approval-gated edits', () => {
  it("carol's reassignment of an east customer to dave waits; walt applies it; carol cannot approve her own; the audit shows both", async () => {
    const [c] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'alice' AND region = 'east' ORDER BY id LIMIT 1`;
    const id = c?.id as number;
    const r = await as(
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${id}`,
    );
    expect(r.count).toBe(0);
    expect((await t.sql`SELECT owner FROM crm.customers WHERE id = ${id}`)[0]?.owner).toBe('alice');
    const [req] =
      await t.sql`SELECT id::int AS id, status, changes FROM pgwarden.change_requests WHERE row_key = ${String(id)}`;
    expect(req).toMatchObject({
      status: 'pending',
      changes: { owner: { old: 'alice', new: 'dave' } },
    });
    const change = req?.id as number;

    // visible to the requester and the approvers, not to others
    expect(ids(await as('carol', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`))).toEqual([
      change,
    ]);
    const [w] = await as('walt', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`);
    expect(w).toMatchObject({ id: String(change), may_approve: true, requested_by: 'carol' });
    expect(ids(await as('vera', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`))).toEqual([
      change,
    ]);
    expect(await as('bob', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`)).toHaveLength(0);

    await expect(
      as('carol', (tx) => tx`SELECT pgwarden.approve_change(${change})`),
    ).rejects.toThrow(/carol may not approve their own change/);
    await expect(
      as('bob', (tx) => tx`SELECT pgwarden.approve_change(${change})`),
    ).rejects.toMatchObject({ code: '42501' });
    expect((await t.sql`SELECT owner FROM crm.customers WHERE id = ${id}`)[0]?.owner).toBe('alice');

    const [done] = await as('walt', (tx) => tx`SELECT pgwarden.approve_change(${change}) AS r`);
    expect(done?.r).toMatchObject({ requested_by: 'carol', approved_by: 'walt', rows: 1 });
    expect((await t.sql`SELECT owner FROM crm.customers WHERE id = ${id}`)[0]?.owner).toBe('dave');
    await expect(as('vera', (tx) => tx`SELECT pgwarden.approve_change(${change})`)).rejects.toThrow(
      /is approved, not pending/,
    );

    // the data record: carol's change, approved by walt; the permission records: both people
    const [d] = await t.sql`
      SELECT person, actor::text, detail, changes FROM pgwarden_audit.records
      WHERE kind = 'data' AND table_name = 'crm.customers' AND row_key = ${String(id)} AND operation = 'UPDATE'
      ORDER BY id DESC LIMIT 1`;
    expect(d).toMatchObject({
      person: 'carol',
      actor: `${t.prefix}walt`,
      detail: { change, requested_by: 'carol', approved_by: 'walt' },
      changes: { owner: { old: 'alice', new: 'dave' } },
    });
    const perms = await t.sql`
      SELECT person, operation FROM pgwarden_audit.records
      WHERE table_name = 'pgwarden.change_requests' AND row_key = ${String(change)} ORDER BY id`;
    expect(perms.map((p) => p.person)).toEqual(['carol', 'walt', 'walt']);
  });

  it('vera may approve too; within a unit carol reassigns directly; others may not ask; expiry', async () => {
    const [c] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'bob' AND region = 'east' ORDER BY id LIMIT 1`;
    const id = c?.id as number;
    await as('carol', (tx) => tx`UPDATE crm_api.customers SET owner = 'walt' WHERE id = ${id}`);
    const [req] =
      await t.sql`SELECT id::int AS id FROM pgwarden.change_requests WHERE row_key = ${String(id)} AND status = 'pending'`;
    await as('vera', (tx) => tx`SELECT pgwarden.approve_change(${req?.id as number})`);
    expect((await t.sql`SELECT owner FROM crm.customers WHERE id = ${id}`)[0]?.owner).toBe('walt');

    // same unit: no approval
    const [c2] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'pat' ORDER BY id LIMIT 1`;
    const [r2] = await as(
      'carol',
      (tx) =>
        tx`UPDATE crm_api.customers SET owner = 'bob' WHERE id = ${c2?.id as number} RETURNING owner`,
    );
    expect(r2?.owner).toBe('bob');

    // a rep may not ask to reassign her customer
    const [c3] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'alice' ORDER BY id LIMIT 1`;
    await expect(
      as(
        'alice',
        (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${c3?.id as number}`,
      ),
    ).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('may not change column "owner"'),
    });

    // an unapproved change expires after the model's window
    await as(
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${c3?.id as number}`,
    );
    const [old] =
      await t.sql`SELECT id::int AS id, expires_at - requested_at AS w FROM pgwarden.change_requests WHERE row_key = ${String(c3?.id)} AND status = 'pending'`;
    expect(String(old?.w)).toMatch(/72:00:00|3 days/);
    await t.sql`UPDATE pgwarden.change_requests SET requested_at = now() - interval '4 days', expires_at = now() - interval '1 day' WHERE id = ${old?.id as number}`;
    await expect(
      as('walt', (tx) => tx`SELECT pgwarden.approve_change(${old?.id as number})`),
    ).rejects.toThrow(/is expired, not pending/);
    expect(await as('walt', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`)).toHaveLength(0);
  });

  it("contracts.amount: a manager's change waits for finance; fiona edits directly and approves", async () => {
    const [k] =
      await t.sql`SELECT k.id::int AS id, k.amount::text AS amount FROM crm.contracts k JOIN crm.customers c ON c.id = k.customer_id WHERE c.owner IN ('alice', 'bob') ORDER BY k.id LIMIT 1`;
    const id = k?.id as number;
    const r = await as(
      'carol',
      (tx) => tx`UPDATE crm_api.contracts SET amount = 777 WHERE id = ${id}`,
    );
    expect(r.count).toBe(0);
    expect((await t.sql`SELECT amount::text AS a FROM crm.contracts WHERE id = ${id}`)[0]?.a).toBe(
      k?.amount,
    );
    await expect(
      as('carol', (tx) => tx`UPDATE crm_api.contracts SET terms = 'x' WHERE id = ${id}`),
    ).rejects.toMatchObject({ code: '42501' });
    const [req] =
      await t.sql`SELECT id::int AS id FROM pgwarden.change_requests WHERE table_name = 'contracts' AND row_key = ${String(id)}`;
    await expect(
      as('walt', (tx) => tx`SELECT pgwarden.approve_change(${req?.id as number})`),
    ).rejects.toMatchObject({ code: '42501' });
    await as('fiona', (tx) => tx`SELECT pgwarden.approve_change(${req?.id as number})`);
    expect((await t.sql`SELECT amount::text AS a FROM crm.contracts WHERE id = ${id}`)[0]?.a).toBe(
      '777.00',
    );
    const [f] = await as(
      'fiona',
      (tx) => tx`UPDATE crm_api.contracts SET amount = 778 WHERE id = ${id} RETURNING amount`,
    );
    expect(f?.amount).toBe('778.00');
  });

  it('a forged applying_change setting attributes nothing', async () => {
    const [c] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'alice' ORDER BY id LIMIT 1`;
    const [req] =
      await t.sql`SELECT id::int AS id FROM pgwarden.change_requests WHERE status = 'approved' ORDER BY id LIMIT 1`;
    await as('alice', async (tx) => {
      await tx`SELECT set_config('pgwarden.applying_change', ${String(req?.id)}, true)`;
      await tx`UPDATE crm_api.customers SET name = 'Forged Co' WHERE id = ${c?.id as number}`;
    });
    const [d] = await t.sql`
      SELECT person, detail FROM pgwarden_audit.records
      WHERE kind = 'data' AND table_name = 'crm.customers' AND row_key = ${String(c?.id)} ORDER BY id DESC LIMIT 1`;
    expect(d).toEqual({ person: 'alice', detail: null });
  });
});

describe('permission changes are audited', () => {
  it('assignments, teams, members and team grants appear in the audit log with who did it', async () => {
    const rows = await t.sql<{ table_name: string; person: string }[]>`
      SELECT DISTINCT table_name, person FROM pgwarden_audit.records
      WHERE kind = 'permission' AND person IS NOT NULL AND table_name IN ('pgwarden.assignments', 'pgwarden.teams', 'pgwarden.team_members', 'pgwarden.team_grants')
      ORDER BY 1, 2`;
    expect(rows).toEqual([
      { table_name: 'pgwarden.assignments', person: 'adam' },
      { table_name: 'pgwarden.team_grants', person: 'adam' },
      { table_name: 'pgwarden.team_members', person: 'adam' },
      { table_name: 'pgwarden.teams', person: 'adam' },
    ]);
  });
});

describe('explain and review cover assignments and teams', () => {
  it('explain names the assignment (and the team) that grants a row; review lists them with their end', async () => {
    const model = await crmModel();
    await as(
      'adam',
      (tx) => tx`SELECT pgwarden.assign('bob', 'region', ARRAY['west'], now() + interval '5 days')`,
    );
    const [west] =
      await t.sql`SELECT id::text AS id FROM crm.customers WHERE region = 'west' AND owner = 'dave' ORDER BY id LIMIT 1`;
    const ev = await evaluateExplain(t.sql, model, {
      person: 'bob',
      table: 'customers',
      key: west?.id as string,
    });
    const e = explainRow(ev, ev.rows[0] as (typeof ev.rows)[number]);
    expect(e.see.allowed).toBe(true);
    expect(e.agrees).toBe(true);
    expect(e.grantedBy).toContain('assigned region');
    expect(e.see.why.join(' ')).toMatch(
      /its region west is assigned to bob \(assignment #\d+, until /,
    );
    const cell = e.cells.find((c) => c.column === 'phone');
    expect(cell?.level).toBe('masked');

    // tom through team double11b: a `granted` row, named by its team
    const [er] =
      await t.sql`SELECT id::text AS id FROM crm.customers WHERE region = 'east' AND customer_type = 'retail' ORDER BY id LIMIT 1`;
    const ev2 = await evaluateExplain(t.sql, model, {
      person: 'tom',
      table: 'customers',
      key: er?.id as string,
    });
    const e2 = explainRow(ev2, ev2.rows[0] as (typeof ev2.rows)[number]);
    expect(e2.see.allowed).toBe(true);
    expect(e2.see.why.join(' ')).toContain('team double11b');

    const review = await readReview(t.sql, model);
    const bob = review.people.find((p) => p.name === 'bob');
    expect(bob?.assignments.find((a) => a.state === 'active')?.what).toBe('region = west');
    const tom = review.people.find((p) => p.name === 'tom');
    expect(tom?.teams.map((m) => [m.what, m.state])).toContainEqual(['team double11b', 'active']);
    expect(
      review.findings.some(
        (f) => f.code === 'grant_expiring' && f.message.includes('assignment region = west'),
      ),
    ).toBe(true);
  });
});

describe('model validation of the new fields', () => {
  it('reports unknown attributes, unknown columns, crossUnit off the owner, sensitive gated columns, changeApproval without edits', async () => {
    const { model, problems } = await validateModel({
      schemas: { protected: 'crm', exposed: 'crm_api' },
      jobs: ['rep', 'boss'],
      attributes: ['region'],
      tables: {
        customers: {
          columns: ['id', 'owner', 'region', 'kind', 'phone', 'amount'],
          owner: 'owner',
          rules: [
            { jobs: ['rep'], scopes: ['own', { assigned: ['region', 'planet'] }] },
            { jobs: ['rep'], commands: ['select'], scopes: [{ assigned: { region: 'regoin' } }] },
          ],
          cells: { phone: { own: 'full', assigned: 'mask:phone', default: 'hidden' } },
          edits: { owner: ['job:boss'], amount: ['job:boss'] },
          changeApproval: {
            columns: {
              amount: { requesters: ['own'], approvers: ['job:boss'], crossUnit: true },
              phone: { requesters: ['own'], approvers: ['job:boss'] },
              owner: { requesters: ['own'], approvers: ['job:bos'] },
            },
          },
        },
        other: {
          columns: ['id', 'x'],
          rules: [{ jobs: ['rep'], scopes: ['all'] }],
          cells: { x: { assigned: 'hidden', default: 'full' } },
          changeApproval: { columns: { x: { requesters: ['job:rep'], approvers: ['job:boss'] } } },
        },
      },
    });
    expect(model).toBeNull();
    const got = problems.map((p) => [p.code, p.path.join('.')]);
    expect(got).toEqual(
      expect.arrayContaining([
        ['unknown_attribute', 'tables.customers.rules.0.scopes.1.assigned.1'],
        ['unknown_column', 'tables.customers.rules.1.scopes.0.assigned.region'],
        ['conflicting_rule', 'tables.customers.changeApproval.columns.amount.crossUnit'],
        ['conflicting_rule', 'tables.customers.changeApproval.columns.phone'],
        ['unknown_job', 'tables.customers.changeApproval.columns.owner.approvers.0'],
        ['missing_column_for_scope', 'tables.other.cells.x.assigned'],
        ['conflicting_rule', 'tables.other.changeApproval'],
      ]),
    );
  });
});

describe('the CLI', () => {
  it('assign, unassign, team create/add/grant/list/remove/end, changes, approve-change', async () => {
    const u = ['--url', t.url];
    const as = (p: string) => ['--as', `${t.prefix}${p}`];
    const ok = async (args: string[]) => {
      const r = await cli([...args, ...u]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return r.stdout;
    };
    expect(await ok(['assign', 'pat', 'region', 'west', '--until', '7d', ...as('adam')])).toContain(
      'pat assigned region west until',
    );
    expect(await ok(['assign', '--list', ...as('adam')])).toMatch(/pat\s+region\s+west/);
    expect(await ok(['unassign', 'pat', 'region', ...as('adam')])).toContain('1 assignment(s)');
    await ok(['team', 'create', 'spring', '--until', '10d', ...as('adam')]);
    await ok(['team', 'add', 'spring', 'pat', ...as('adam')]);
    await ok([
      'team',
      'grant',
      'spring',
      'customers',
      '--filter',
      '{"region":["west"]}',
      ...as('adam'),
    ]);
    await ok(['assign', '--team', 'spring', 'customer_type', 'vip', ...as('adam')]);
    const list = await ok(['team', 'list', ...as('adam')]);
    expect(list).toMatch(/spring .*pat/);
    expect(list).toContain('"customer_type":["vip"]');
    await ok(['team', 'remove', 'spring', 'pat', ...as('adam')]);
    await ok(['team', 'end', 'spring', ...as('adam')]);
    const refused = await cli(['team', 'create', 'x', '--until', '1d', ...u, ...as('bob')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('permission denied');

    const [c] =
      await t.sql`SELECT id::int AS id FROM crm.customers WHERE owner = 'bob' AND region = 'east' ORDER BY id DESC LIMIT 1`;
    await as_(
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = ${c?.id as number}`,
    );
    const [req] =
      await t.sql`SELECT id::int AS id FROM pgwarden.change_requests WHERE status = 'pending' AND row_key = ${String(c?.id)}`;
    expect(await ok(['changes', ...as('walt')])).toMatch(
      new RegExp(`^${req?.id}\\s+customers\\s+${c?.id}`, 'm'),
    );
    const own = await cli(['approve-change', String(req?.id), ...u, ...as('carol')]);
    expect(own.code).toBe(1);
    expect(own.stderr).toContain('may not approve their own change');
    expect(await ok(['approve-change', String(req?.id), ...as('walt')])).toContain(
      "carol's change, approved by walt",
    );
  });
});

describe('deactivation', () => {
  it("ends the person's assignments and team memberships", async () => {
    const adam = (fn: (tx: postgres.TransactionSql) => Promise<unknown>) => as('adam', fn);
    await adam((tx) => tx`SELECT pgwarden.assign('pat', 'region', ARRAY['north'], NULL, NULL)`);
    await adam((tx) => tx`SELECT pgwarden.create_team('deact', now() + interval '7 days')`);
    await adam((tx) => tx`SELECT pgwarden.add_team_member('deact', 'pat')`);
    const held = async () => {
      const [r] = await t.sql<{ a: number; m: number }[]>`SELECT
        (SELECT count(*)::int FROM pgwarden.assignments WHERE person = 'pat' AND revoked_at IS NULL) AS a,
        (SELECT count(*)::int FROM pgwarden.team_members WHERE person = 'pat' AND revoked_at IS NULL) AS m`;
      return r;
    };
    expect(await held()).toEqual({ a: 1, m: 1 });
    await adam((tx) => tx`SELECT pgwarden.deactivate_person('pat')`);
    expect(await held()).toEqual({ a: 0, m: 0 });
    const [by] = await t.sql<
      { revoked_by: string }[]
    >`SELECT revoked_by FROM pgwarden.assignments WHERE person = 'pat' ORDER BY id DESC LIMIT 1`;
    expect(by?.revoked_by).toBe(`${t.prefix}adam`);
  });
});

describe('a pending change and its requester', () => {
  it('is void once the requester is deactivated: nobody can approve it', async () => {
    const [row] = await t.sql<
      { id: number }[]
    >`SELECT id::int AS id FROM crm.customers WHERE owner = 'dave' ORDER BY id LIMIT 1`;
    const id = row?.id as number;
    await as('walt', (tx) => tx`UPDATE crm_api.customers SET owner = 'alice' WHERE id = ${id}`);
    const [req] = await t.sql<
      { id: number }[]
    >`SELECT id::int AS id FROM pgwarden.change_requests WHERE row_key = ${String(id)} AND requested_by = 'walt' AND status = 'pending'`;
    expect(req?.id).toBeGreaterThan(0);
    await t.sql`UPDATE pgwarden.people SET active = false, deactivated_at = now() WHERE name = 'walt'`;
    try {
      await expect(
        as('vera', (tx) => tx`SELECT pgwarden.approve_change(${req?.id as number})`),
      ).rejects.toThrow(/is void, not pending/);
      expect(
        (await as('vera', (tx) => tx`SELECT * FROM pgwarden.pending_changes()`)).map((r) =>
          Number(r.id),
        ),
      ).not.toContain(req?.id);
      const [still] = await t.sql<
        { owner: string }[]
      >`SELECT owner FROM crm.customers WHERE id = ${id}`;
      expect(still?.owner).toBe('dave');
    } finally {
      await t.sql`UPDATE pgwarden.people SET active = true, deactivated_at = NULL WHERE name = 'walt'`;
    }
  });
});
