/**
 * generate / plan / apply round trips on the CRM model: golden SQL, the generated SQL executed
 * on an empty database gives the same catalog as apply, a second apply changes nothing, plan
 * after apply is empty, a hand-dropped object is re-created, a failing apply changes nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, readCrmFile, setupCrm } from '../examples/crm/setup.js';
import { apply, planAgainst } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import { compile } from '../src/compile/index.js';
import { PgwardenError } from '../src/errors.js';
import { generate } from '../src/generate/index.js';
import type { Model } from '../src/model/types.js';
import { catalogSnapshot } from './helpers/catalog-snapshot.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'crm');
let model: Model;
let a: TestDb; // apply
let b: TestDb; // generated SQL

beforeAll(async () => {
  model = await crmModel();
  a = await createTestDatabase();
  b = await createTestDatabase();
});
afterAll(async () => {
  await b?.cleanup();
  await a?.cleanup();
});

describe('generate', () => {
  it('is byte-for-byte deterministic and equals the golden files', () => {
    const hash = sha256(canonicalJson(model));
    const one = generate(compile(model), { modelName: model.name, modelHash: hash });
    const two = generate(compile(model), { modelName: model.name, modelHash: hash });
    expect(one).toEqual(two);
    const golden = readdirSync(GOLDEN)
      .filter((f) => f.endsWith('.sql'))
      .sort();
    expect(one.map((f) => f.name)).toEqual(golden);
    for (const f of one) {
      // update with: npx pgwarden generate --model examples/crm/model.ts --out test/golden/crm
      expect(
        f.content,
        `${f.name} differs from test/golden/crm; regenerate it if the change is intended`,
      ).toBe(readFileSync(join(GOLDEN, f.name), 'utf8'));
    }
  });

  it('the generated SQL on an empty database gives the same catalog as apply, and plan is then empty', async () => {
    const prefix = a.prefix;
    for (const db of [a.sql, b.sql]) await db.unsafe(readCrmFile('schema.sql')).simple();
    const desired = compile(model, { rolePrefix: prefix });
    await apply(a.sql, desired, { modelName: model.name, modelHash: 'x' });
    const files = generate(desired, { modelName: model.name, modelHash: 'x' });
    await b.sql.begin(async (tx) => {
      for (const f of files) await tx.unsafe(f.content).simple();
    });
    expect(await catalogSnapshot(b.sql, prefix)).toEqual(await catalogSnapshot(a.sql, prefix));
    expect((await planAgainst(b.sql, desired)).steps).toEqual([]);
  });
});

describe('apply', () => {
  it('a second apply changes nothing and plan reports no changes', async () => {
    const desired = compile(model, { rolePrefix: a.prefix });
    const again = await apply(a.sql, desired, { modelName: model.name, modelHash: 'x' });
    expect(again.applied).toBe(false);
    expect(again.plan.steps).toEqual([]);
    expect((await planAgainst(a.sql, desired)).steps).toEqual([]);
  });

  it('re-creates what was dropped or changed by hand (policy, view, RLS, grant)', async () => {
    const desired = compile(model, { rolePrefix: a.prefix });
    await a.sql.unsafe('DROP POLICY customers_select ON crm.customers');
    await a.sql.unsafe('ALTER TABLE crm.deals NO FORCE ROW LEVEL SECURITY');
    await a.sql.unsafe('DROP VIEW crm_api.contacts');
    await a.sql.unsafe(`REVOKE SELECT ON crm_api.deals FROM "${a.prefix}crm_people"`);
    const plan = await planAgainst(a.sql, desired);
    const keys = plan.steps.map((s) => `${s.op} ${s.key} ${s.reason}`);
    expect(keys).toEqual(
      expect.arrayContaining([
        'create_policy policy:crm.customers:customers_select drifted',
        'create_rls rls:crm.deals drifted',
        'create_view view:crm_api.contacts drifted',
        `create_grant grant:table:crm_api.contacts:${a.prefix}crm_people:SELECT,INSERT,UPDATE drifted`,
        `create_grant grant:table:crm_api.deals:${a.prefix}crm_people:SELECT,INSERT,UPDATE drifted`,
      ]),
    );
    await apply(a.sql, desired, { modelName: model.name, modelHash: 'x' });
    expect((await planAgainst(a.sql, desired)).steps).toEqual([]);
  });

  it('edits by hand are drift: a widened policy, a hand-written USING (true), a replaced view', async () => {
    const desired = compile(model, { rolePrefix: a.prefix });
    await a.sql.unsafe('ALTER POLICY customers_select ON crm.customers USING (true)');
    await a.sql.unsafe('CREATE POLICY backdoor ON crm.contracts FOR SELECT TO PUBLIC USING (true)');
    await a.sql.unsafe(
      'CREATE OR REPLACE VIEW crm_api.deals AS SELECT id, customer_id, owner, title, stage, amount::numeric AS amount FROM crm.deals',
    );
    await a.sql.unsafe(
      'CREATE POLICY "restrict"  ON crm.deals AS RESTRICTIVE FOR SELECT TO PUBLIC USING (false)',
    );
    const plan = await planAgainst(a.sql, desired);
    const keys = plan.steps.map((s) => `${s.op} ${s.key} ${s.reason} ${s.effect}`);
    expect(keys).toEqual(
      expect.arrayContaining([
        // putting the policy back narrows what the hand edit (USING (true)) opened up
        'create_policy policy:crm.customers:customers_select drifted narrows',
        'drop_policy policy:crm.contracts:backdoor unknown narrows',
        'drop_policy policy:crm.deals:restrict unknown widens',
        'create_view view:crm_api.deals drifted widens',
      ]),
    );
    expect(plan.steps.find((s) => s.key.endsWith(':backdoor'))?.summary).toContain(
      'PERMISSIVE select TO PUBLIC USING (true)',
    );
    await apply(a.sql, desired, { modelName: model.name, modelHash: 'x' });
    expect((await planAgainst(a.sql, desired)).steps).toEqual([]);
    const [left] =
      await a.sql`SELECT count(*)::int AS n FROM pg_policy WHERE polname IN ('backdoor', 'restrict')`;
    expect(left?.n).toBe(0);
  });

  it('a model change is planned as typed steps, and dropping a rule drops its policy', async () => {
    const changed: Model = {
      ...model,
      tables: model.tables.map((tb) =>
        tb.name === 'contracts'
          ? { ...tb, rules: tb.rules.filter((r) => !r.jobs.includes('finance')) }
          : tb,
      ),
    };
    const plan = await planAgainst(a.sql, compile(changed, { rolePrefix: a.prefix }));
    const ops = plan.steps.map((s) => s.op);
    expect(ops).toContain('drop_policy');
    expect(ops).toContain('replace_policy');
    expect(plan.steps.find((s) => s.op === 'drop_policy')?.effect).toBe('narrows');
  });

  it('a failing step rolls everything back and names the step', async () => {
    const desired = compile(model, { rolePrefix: a.prefix });
    const broken = desired.map((o) =>
      o.kind === 'policy' && o.name === 'deals_select' ? { ...o, using: 'no_such_column = 1' } : o,
    );
    const before = await catalogSnapshot(a.sql, a.prefix);
    const err = await apply(a.sql, broken, { modelName: model.name, modelHash: 'y' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PgwardenError);
    expect(String((err as Error).message)).toMatch(
      /policy "deals_select" on "crm"."deals"[\s\S]*no_such_column/,
    );
    expect(await catalogSnapshot(a.sql, a.prefix)).toEqual(before);
  });
});

describe('setupCrm', () => {
  it('is idempotent', async () => {
    const r = await setupCrm(a.sql, { rolePrefix: a.prefix });
    expect(r).toMatchObject({ tablesCreated: false });
  });
});
