/**
 * Plans a DBA can trust (issue #6): every kind of hand edit is drift that `diff` reports and
 * `apply` repairs; formatting is never a change; plan after apply is empty for a model using
 * every scope and mask; widening and destructive steps are classed and gated.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { apply, driftAgainst, planAgainst } from '../src/apply/index.js';
import type { FunctionObject } from '../src/catalog/objects.js';
import { compile } from '../src/compile/index.js';
import type { Model } from '../src/model/types.js';
import { validateModel } from '../src/model/validate.js';
import { stepsNeedingPermission } from '../src/plan/index.js';
import { returnedSelect } from '../src/sql/tree.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

const CRM_INPUT = join(import.meta.dirname, '..', 'examples', 'crm', 'model.yaml');

let t: TestDb;
let model: Model;
beforeAll(async () => {
  t = await createTestDatabase();
  ({ model } = await setupCrm(t.sql, { rolePrefix: t.prefix }));
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

async function repair(): Promise<void> {
  await apply(t.sql, compile(model, { rolePrefix: t.prefix }), {
    modelName: model.name,
    modelHash: 'test',
  });
}

describe('diff reports each kind of hand edit, and apply repairs it', () => {
  const cases: { name: string; edit: (p: string) => string; kind: string; object: RegExp }[] = [
    {
      name: 'policy edited',
      edit: () => 'ALTER POLICY customers_select ON crm.customers USING (true)',
      kind: 'edited',
      object: /policy "customers_select"/,
    },
    {
      name: 'policy dropped',
      edit: () => 'DROP POLICY deals_select ON crm.deals',
      kind: 'dropped',
      object: /policy "deals_select"/,
    },
    {
      name: 'policy added',
      edit: () => 'CREATE POLICY backdoor ON crm.contracts FOR SELECT TO PUBLIC USING (true)',
      kind: 'unknown_policy',
      object: /policy "backdoor"/,
    },
    {
      name: 'RLS disabled',
      edit: () => 'ALTER TABLE crm.contacts DISABLE ROW LEVEL SECURITY',
      kind: 'rls_disabled',
      object: /table "crm"."contacts"/,
    },
    {
      name: 'FORCE removed',
      edit: () => 'ALTER TABLE crm.deals NO FORCE ROW LEVEL SECURITY',
      kind: 'rls_not_forced',
      object: /table "crm"."deals"/,
    },
    {
      name: 'view replaced',
      edit: () =>
        'CREATE OR REPLACE VIEW crm_api.contracts AS SELECT * FROM crm_api.contracts WHERE true',
      kind: 'edited',
      object: /view "crm_api"."contracts"/,
    },
    {
      name: 'security barrier taken off a parent lookup',
      edit: () => 'ALTER VIEW pgwarden._rows_customers RESET (security_barrier)',
      kind: 'edited',
      object: /view "pgwarden"."_rows_customers"/,
    },
    {
      name: 'audit trigger dropped',
      edit: () => 'DROP TRIGGER pgwarden_audit_update ON crm.customers',
      kind: 'dropped',
      object: /trigger "pgwarden_audit_update"/,
    },
    {
      name: 'grant added to PUBLIC on a table',
      edit: () => 'GRANT SELECT ON crm.customers TO PUBLIC',
      kind: 'edited',
      object: /nothing for PUBLIC on "crm"."customers"/,
    },
    {
      name: 'grant added to PUBLIC on a view',
      edit: () => 'GRANT SELECT ON crm_api.customers TO PUBLIC',
      kind: 'public_grant',
      object: /PUBLIC on "crm_api"."customers"/,
    },
    {
      name: 'grant added to another role',
      edit: (p) => `GRANT SELECT ON crm.customers TO "${p}crm_people"`,
      kind: 'unknown_grant',
      object: /SELECT on "crm"."customers"/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      expect((await driftAgainst(t.sql)).findings).toEqual([]);
      await t.sql.unsafe(c.edit(t.prefix));
      const { findings } = await driftAgainst(t.sql);
      expect(findings.map((f) => f.kind)).toContain(c.kind);
      const f = findings.find((x) => x.kind === c.kind);
      expect(f?.object).toMatch(c.object);
      expect(f?.fix).toMatch(/pgwarden apply/);
      await repair();
      expect((await driftAgainst(t.sql)).findings).toEqual([]);
      expect((await planAgainst(t.sql, compile(model, { rolePrefix: t.prefix }))).steps).toEqual(
        [],
      );
    });
  }

  it('unknown triggers and uncovered tables are reported, and apply leaves them alone', async () => {
    await t.sql.unsafe(`CREATE TABLE crm.notes (id int)`);
    await t.sql.unsafe(
      `CREATE FUNCTION crm.copy_out() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
    );
    await t.sql.unsafe(
      'CREATE TRIGGER copy_out AFTER INSERT ON crm.customers FOR EACH ROW EXECUTE FUNCTION crm.copy_out()',
    );
    try {
      const { findings } = await driftAgainst(t.sql);
      expect(findings.map((f) => [f.kind, f.object])).toEqual([
        ['unknown_trigger', 'trigger "copy_out" on "crm"."customers"'],
        ['unmanaged_relation', 'table "crm"."notes"'],
      ]);
      await repair();
      expect((await driftAgainst(t.sql)).findings).toHaveLength(2);
      // a team that keeps its own triggers can leave that kind out of the gate
      const gate = await cli([
        'diff',
        '--url',
        t.url,
        '--exit-code',
        '--ignore',
        'unknown_trigger,unmanaged_relation',
      ]);
      expect(gate.code, gate.stdout).toBe(0);
      const bad = await cli(['diff', '--url', t.url, '--ignore', 'triggers']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/not a kind of finding/);
    } finally {
      await t.sql.unsafe('DROP TRIGGER copy_out ON crm.customers');
      await t.sql.unsafe('DROP FUNCTION crm.copy_out()');
      await t.sql.unsafe('DROP TABLE crm.notes');
    }
    expect((await driftAgainst(t.sql)).findings).toEqual([]);
  });

  it('the CLI: diff --exit-code exits 2 with every edit named, apply repairs, diff exits 0', async () => {
    await t.sql.unsafe(cases.map((c) => c.edit(t.prefix)).join(';\n'));
    const before = await cli(['diff', '--url', t.url, '--exit-code']);
    expect(before.code, before.stderr).toBe(2);
    for (const c of cases) expect(before.stdout).toMatch(c.object);
    expect(before.stdout).toMatch(/DANGER/);
    const json = await cli(['diff', '--url', t.url, '--json']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { clean: boolean; findings: { kind: string }[] };
    expect(parsed.clean).toBe(false);
    expect(new Set(parsed.findings.map((f) => f.kind))).toEqual(new Set(cases.map((c) => c.kind)));
    // re-creating the dropped policy is labelled widening, but repairs of drift restore what
    // was applied (and reviewed) before: --yes alone repairs, no --allow-widen needed
    const args = ['apply', '--url', t.url, '-m', CRM_INPUT, '--role-prefix', t.prefix, '--yes'];
    const applied = await cli(args);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/re-create policy "deals_select".*\(widens access\)/);
    const after = await cli(['diff', '--url', t.url, '--exit-code']);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toMatch(/No drift/);
  }, 120_000);

  it('diff on a database pgwarden never touched says so', async () => {
    const other = await createTestDatabase();
    try {
      const r = await cli(['diff', '--url', other.url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/never been applied/);
    } finally {
      await other.cleanup();
    }
  });
});

describe('normalized plans', () => {
  it('re-formatting an expression in the model is not a change', async () => {
    const input = (await import('../examples/crm/model.js')).default;
    const copy = JSON.parse(JSON.stringify(input)) as {
      tables: Record<string, { rules: { scopes: unknown[] }[] }>;
    };
    const rules = copy.tables.customers?.rules ?? [];
    let changed = 0;
    for (const r of rules)
      r.scopes = r.scopes.map((s) => {
        if (typeof s === 'object' && s && 'filter' in s) {
          changed += 1;
          const f = (s as { filter: string }).filter;
          // different whitespace, keyword case, a comment and redundant parentheses
          return {
            filter: `/* same rule */ ((${f.replace(/ = /g, '   =   ').replace('IN', 'in')}))`,
          };
        }
        return s;
      });
    expect(changed).toBeGreaterThan(1);
    const { model: reformatted, problems } = await validateModel(copy);
    expect(problems).toEqual([]);
    const plan = await planAgainst(t.sql, compile(reformatted as Model, { rolePrefix: t.prefix }));
    expect(plan.steps).toEqual([]);
  });

  it('plan after apply is empty for a model that uses every scope and mask', async () => {
    const db = await createTestDatabase();
    try {
      await setupCrm(db.sql, { rolePrefix: db.prefix });
      const input = JSON.parse(
        JSON.stringify((await import('../examples/crm/model.js')).default),
      ) as Record<string, unknown> & {
        tables: Record<string, { rules: unknown[]; cells?: Record<string, unknown> }>;
      };
      input.masks = { initials: { sql: "left(value, 1) || '***'" } };
      const deals = input.tables.deals as { rules: unknown[]; cells?: Record<string, unknown> };
      deals.rules.push(
        { jobs: ['marketing'], commands: ['select'], scopes: ['unit'] },
        { jobs: ['compliance_officer'], commands: ['select'], scopes: ['all'] },
      );
      deals.cells = {
        ...deals.cells,
        title: { own: 'full', subtree: 'full', unit: 'mask:initials', default: 'mask:null' },
      };
      const { model: every, problems } = await validateModel(input);
      expect(problems).toEqual([]);
      const m = every as Model;
      const scopes = new Set(
        m.tables.flatMap((tb) => tb.rules.flatMap((r) => r.scopes.map((s) => s.kind))),
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
        'parent',
      ])
        expect(scopes, k).toContain(k);
      const desired = compile(m, { rolePrefix: db.prefix });
      const first = await planAgainst(db.sql, desired);
      expect(first.steps.length).toBeGreaterThan(0);
      // a new rule and a new mask for a job: widening, named in the plan
      expect(first.steps.filter((s) => s.effect === 'widens').map((s) => s.key)).toEqual(
        expect.arrayContaining([`policy:crm.deals:deals_select`]),
      );
      await apply(db.sql, desired, { modelName: m.name, modelHash: 'every' });
      expect((await planAgainst(db.sql, desired)).steps).toEqual([]);
      expect((await driftAgainst(db.sql)).findings).toEqual([]);
    } finally {
      await db.cleanup();
    }
  }, 120_000);
});

describe('widening and destructive steps', () => {
  function withRepScopes(scopes: string[]): Model {
    return {
      ...model,
      tables: model.tables.map((tb) =>
        tb.name !== 'customers'
          ? tb
          : {
              ...tb,
              rules: tb.rules.map((r) =>
                // the reps' own rule (not rules the reps share with other jobs)
                r.jobs.length === 1 && r.jobs[0] === 'sales_rep' && r.commands.includes('select')
                  ? { ...r, scopes: scopes.map((k) => ({ kind: k as 'own' })) }
                  : r,
              ),
            },
      ),
    };
  }

  it('widening a rule is classed as widening, narrowing one as narrowing', async () => {
    const wider = await planAgainst(
      t.sql,
      compile(withRepScopes(['own', 'shared', 'pool', 'subtree']), { rolePrefix: t.prefix }),
    );
    const w = wider.steps.find((s) => s.key === 'policy:crm.customers:customers_select');
    expect(w?.action).toBe('replace');
    expect(w?.effect).toBe('widens');
    expect(stepsNeedingPermission(wider, {}).widen).toContain(w);
    expect(stepsNeedingPermission(wider, { widen: true }).widen).toEqual([]);

    const narrower = await planAgainst(
      t.sql,
      compile(withRepScopes(['own', 'shared']), { rolePrefix: t.prefix }),
    );
    const n = narrower.steps.find((s) => s.key === 'policy:crm.customers:customers_select');
    expect(n?.action).toBe('replace');
    expect(n?.effect).toBe('narrows');
  });

  it('the _keys_ helpers in PL/pgSQL replace the SQL ones of earlier releases without widening (issue 8)', async () => {
    const desired = compile(model, { rolePrefix: t.prefix });
    const keys = desired.filter(
      (o): o is FunctionObject => o.kind === 'function' && o.name.startsWith('_keys_'),
    );
    expect(keys.length).toBeGreaterThan(1);
    // the form releases before sql/020 generated: a SQL function with the same query
    const older = desired.map((o) => {
      if (o.kind !== 'function' || !o.name.startsWith('_keys_')) return o;
      expect(o.language).toBe('plpgsql');
      const query = returnedSelect(o.body)?.query ?? null;
      expect(query, o.name).not.toBeNull();
      return { ...o, language: 'sql' as const, body: query as string };
    });
    const visible = async (): Promise<unknown> =>
      await t.sql.begin(async (tx) => {
        await tx`SELECT pg_catalog.set_config('role', ${`${t.prefix}alice`}, true)`;
        return await tx`SELECT id::int, phone FROM crm_api.contacts ORDER BY id`;
      });
    try {
      await apply(t.sql, older, { modelName: model.name, modelHash: 'older' });
      const before = await visible();
      const plan = await planAgainst(t.sql, desired);
      // the same queries: replaced, and neither widening nor narrowing (grants put back too)
      expect(
        plan.steps
          .filter((s) => s.kind === 'function')
          .map((s) => `${s.action} ${s.key} ${s.effect}`)
          .sort(),
      ).toEqual(keys.map((o) => `replace function:pgwarden.${o.name}(name) neutral`).sort());
      expect(plan.steps.filter((s) => s.effect !== 'neutral')).toEqual([]);
      expect(stepsNeedingPermission(plan, {}).widen).toEqual([]);
      await apply(t.sql, desired, { modelName: model.name, modelHash: 'test' });
      expect(await visible()).toEqual(before);
      expect((before as unknown[]).length).toBeGreaterThan(0);

      // anything besides RETURN (query) in the body is not proven, so it widens
      const extra = desired.map((o) =>
        o === keys[0] && o.kind === 'function'
          ? { ...o, body: o.body.replace('BEGIN', 'BEGIN\n  PERFORM 1;') }
          : o,
      );
      await apply(t.sql, older, { modelName: model.name, modelHash: 'older' });
      const changed = await planAgainst(t.sql, extra);
      const step = changed.steps.find((s) => s.key === `function:pgwarden.${keys[0]?.name}(name)`);
      expect(step?.effect).toBe('widens');
    } finally {
      await repair();
    }
  });

  it('the CLI: apply --yes of a widening model change exits 5 and changes nothing; --allow-widen applies it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-widen-'));
    const copy = JSON.parse(JSON.stringify((await import('../examples/crm/model.js')).default)) as {
      tables: { customers: { rules: { jobs: string[]; commands: string[]; scopes: unknown[] }[] } };
    };
    for (const r of copy.tables.customers.rules)
      if (r.jobs.includes('sales_rep') && r.commands.includes('select')) r.scopes.push('subtree');
    const file = join(dir, 'wider.json');
    writeFileSync(file, JSON.stringify(copy));
    const args = ['apply', '--url', t.url, '-m', file, '--role-prefix', t.prefix, '--yes'];
    const refused = await cli(args);
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(/policy "customers_select".*\[widens access\]/);
    expect(refused.stderr).toMatch(/--allow-widen/);
    const plan = await cli([
      'plan',
      '--url',
      t.url,
      '-m',
      file,
      '--role-prefix',
      t.prefix,
      '--exit-code',
    ]);
    expect(plan.code).toBe(2);
    const ok = await cli([...args, '--allow-widen']);
    expect(ok.code, ok.stderr).toBe(0);
    // back to the reference model: a narrowing change, applied with --yes alone
    const back = await cli([
      'apply',
      '--url',
      t.url,
      '-m',
      CRM_INPUT,
      '--role-prefix',
      t.prefix,
      '--yes',
    ]);
    expect(back.code, back.stderr).toBe(0);
    expect((await driftAgainst(t.sql)).findings).toEqual([]);
  }, 120_000);

  it('a plan that drops audit needs --allow-destructive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgw-drift-'));
    const input = (await import('../examples/crm/model.js')).default as unknown as {
      tables: Record<string, unknown>;
    };
    const copy = JSON.parse(JSON.stringify(input)) as { tables: Record<string, unknown> };
    // contracts leave the model: its audit triggers and row level security would be dropped
    delete copy.tables.contracts;
    const customers = copy.tables.customers as { rules: { scopes: unknown[] }[] };
    for (const r of customers.rules)
      r.scopes = r.scopes.filter(
        (s) => !(typeof s === 'object' && s && JSON.stringify(s).includes('crm.contracts')),
      );
    customers.rules = customers.rules.filter((r) => r.scopes.length > 0);
    const file = join(dir, 'model.json');
    writeFileSync(file, JSON.stringify(copy));
    const plan = await cli(['plan', '--url', t.url, '-m', file, '--role-prefix', t.prefix]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/Needs attention:[\s\S]*pgwarden_audit[\s\S]*\[DESTRUCTIVE\]/);
    const args = ['apply', '--url', t.url, '-m', file, '--role-prefix', t.prefix, '--yes'];
    const refused = await cli(args);
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(/drop trigger "pgwarden_audit_insert".*\[destructive\]/);
    expect(refused.stderr).toMatch(/--allow-destructive/);
    // nothing changed
    expect((await driftAgainst(t.sql)).findings).toEqual([]);
    const [{ n } = { n: 0 }] = await t.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'crm.contracts'::regclass AND tgname LIKE 'pgwarden_audit%'`;
    expect(n).toBeGreaterThan(0);
    const ok = await cli([...args, '--allow-destructive']);
    expect(ok.code, ok.stderr).toBe(0);
    const [{ m } = { m: 0 }] = await t.sql<
      { m: number }[]
    >`SELECT count(*)::int AS m FROM pg_trigger WHERE tgrelid = 'crm.contracts'::regclass AND tgname LIKE 'pgwarden_audit%'`;
    expect(m).toBe(0);
    // and back, for the tests after this one
    await repair();
  }, 120_000);
  it('a lookup no longer used is dropped after the policy that named it changed (issue 8)', async () => {
    const copy = JSON.parse(JSON.stringify(model)) as Model;
    const contracts = copy.tables.find((x) => x.name === 'contracts');
    if (!contracts) throw new Error('no contracts');
    // the sales people's rule on contracts goes: its lookup of their own and subtree customers
    // (`_rows_customers_via_own_subtree`) is named by no policy any more
    (contracts as unknown as { rules: unknown[] }).rules = contracts.rules.filter(
      (r) => !r.scopes.some((x) => x.kind === 'parent'),
    );
    const desired = compile(copy, { rolePrefix: t.prefix });
    const plan = await planAgainst(t.sql, desired);
    const keys = plan.steps.map((x) => `${x.action} ${x.key}`);
    const view = keys.indexOf('drop view:pgwarden._rows_customers_via_own_subtree');
    const policy = keys.indexOf('replace policy:crm.contracts:contracts_select');
    expect(view, keys.join('\n')).toBeGreaterThan(-1);
    expect(policy, keys.join('\n')).toBeGreaterThan(-1);
    expect(view).toBeGreaterThan(policy);
    // the lookup's drop itself needs no permission (the policy's new form is not proven narrower)
    expect(stepsNeedingPermission(plan, {}).widen.map((x) => x.key)).not.toContain(
      'view:pgwarden._rows_customers_via_own_subtree',
    );
    await apply(t.sql, desired, { modelName: model.name, modelHash: 'narrower' });
    const [{ n } = { n: -1 }] = await t.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_class WHERE relname = '_rows_customers_via_own_subtree'`;
    expect(n).toBe(0);
    await repair();
    expect((await driftAgainst(t.sql)).findings).toEqual([]);
  }, 120_000);
});
