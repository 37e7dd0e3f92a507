import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import {
  alwaysTrue,
  CHECK_RULES,
  type CheckCode,
  checkLive,
  checkModel,
  type Finding,
  lintTargets,
  parseIgnore,
  summarize,
} from '../src/check/index.js';
import { readLintFacts } from '../src/introspect/lint.js';
import type { Model } from '../src/model/types.js';
import { validateModel } from '../src/model/validate.js';
import { quoteIdent } from '../src/sql/quote.js';
import { cli as runCli } from './helpers/cli.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

const MODEL = 'examples/crm/model.ts';

function cli(args: string[]) {
  return runCli(args, {}, { unset: ['DATABASE_URL', 'PGWARDEN_MODEL'] });
}

let t: TestDb;
let model: Model;
const id = (role: string) => quoteIdent(`${t.prefix}${role}`);

async function check(): Promise<Finding[]> {
  const options = { rolePrefix: t.prefix };
  const facts = await readLintFacts(t.sql, lintTargets(model, options));
  return summarize([...checkModel(model), ...checkLive(model, facts, options)]).findings;
}

function codes(findings: readonly Finding[], severity?: 'error' | 'warning'): string[] {
  return findings
    .filter((f) => severity === undefined || f.severity === severity)
    .map((f) => `${f.code} ${f.object}`);
}

/** Runs `edit`, expects the finding, runs `undo`, expects it gone. */
async function expectFinding(
  edit: string,
  code: CheckCode,
  object: string | RegExp,
  undo: string,
): Promise<Finding> {
  await t.sql.unsafe(edit);
  const found = (await check()).filter(
    (f) =>
      f.code === code && (typeof object === 'string' ? f.object === object : object.test(f.object)),
  );
  expect(found, `${code} ${String(object)} after: ${edit}`).toHaveLength(1);
  const f = found[0] as Finding;
  expect(f.severity).toBe(CHECK_RULES[code].severity);
  expect(f.fix).not.toBe('');
  await t.sql.unsafe(undo);
  const after = (await check()).filter((x) => x.code === code && x.object === f.object);
  expect(after, `${code} gone after: ${undo}`).toEqual([]);
  return f;
}

beforeAll(async () => {
  t = await createTestDatabase();
  ({ model } = await setupCrm(t.sql, { rolePrefix: t.prefix }));
});
afterAll(async () => {
  await t?.cleanup();
});

describe('the fresh reference CRM', () => {
  it('has no error-level findings, and exactly the known warnings', async () => {
    const findings = await check();
    expect(codes(findings, 'error')).toEqual([]);
    expect(codes(findings, 'warning')).toEqual([
      'admin_job_not_privileged model jobs.crm_admin',
      'export_sensitive_without_approval model tables.customers.exports.sales_director',
      'export_sensitive_without_approval model tables.customers.exports.sales_manager',
    ]);
  });
});

describe('each hand edit produces its rule code', () => {
  it('NO FORCE ROW LEVEL SECURITY: rls_not_forced; DISABLE: rls_disabled', async () => {
    const f = await expectFinding(
      'ALTER TABLE crm.customers NO FORCE ROW LEVEL SECURITY',
      'rls_not_forced',
      'table "crm"."customers"',
      'ALTER TABLE crm.customers FORCE ROW LEVEL SECURITY',
    );
    expect(f.fix).toContain('ALTER TABLE "crm"."customers" FORCE ROW LEVEL SECURITY');
    await expectFinding(
      'ALTER TABLE crm.deals DISABLE ROW LEVEL SECURITY',
      'rls_disabled',
      'table "crm"."deals"',
      'ALTER TABLE crm.deals ENABLE ROW LEVEL SECURITY',
    );
  });

  it('a USING (true) policy for PUBLIC: policy_for_public, policy_always_true, policy_not_in_model', async () => {
    await t.sql.unsafe('CREATE POLICY open_all ON crm.customers FOR SELECT USING (true)');
    const found = (await check()).filter(
      (f) => f.object === 'policy "open_all" on "crm"."customers"',
    );
    expect(found.map((f) => `${f.code}:${f.severity}`).sort()).toEqual([
      'policy_always_true:error',
      'policy_for_public:error',
      'policy_not_in_model:warning',
    ]);
    await t.sql.unsafe('DROP POLICY open_all ON crm.customers');
    // a constant-true policy for a named role, in the form the server prints (1 = 1)
    await expectFinding(
      `CREATE POLICY wide ON crm.deals FOR UPDATE TO ${id('crm_api_owner')} USING (1 = 1) WITH CHECK (owner IS NOT NULL)`,
      'policy_always_true',
      'policy "wide" on "crm"."deals"',
      'DROP POLICY wide ON crm.deals',
    );
  });

  it('a write policy without WITH CHECK: write_policy_without_check', async () => {
    await expectFinding(
      `CREATE POLICY upd ON crm.contacts FOR UPDATE TO ${id('crm_api_owner')} USING (customer_id > 0)`,
      'write_policy_without_check',
      'policy "upd" on "crm"."contacts"',
      'DROP POLICY upd ON crm.contacts',
    );
  });

  it('a SECURITY DEFINER function without search_path, in any schema: definer_without_search_path', async () => {
    await t.sql.unsafe('CREATE SCHEMA tools');
    const f = await expectFinding(
      'CREATE FUNCTION tools.count_customers() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM crm.customers $$',
      'definer_without_search_path',
      'function "tools"."count_customers"()',
      'ALTER FUNCTION tools.count_customers() SET search_path = pg_catalog, pg_temp',
    );
    expect(f.fix).toContain('SET search_path = pg_catalog, pg_temp');
    await expectFinding(
      'ALTER FUNCTION tools.count_customers() SET search_path = public',
      'definer_search_path_pg_temp',
      'function "tools"."count_customers"()',
      'DROP FUNCTION tools.count_customers()',
    );
  });

  it('CREATE on a schema for a person: role_create_privilege', async () => {
    const f = await expectFinding(
      `GRANT CREATE ON SCHEMA crm TO ${id('alice')}`,
      'role_create_privilege',
      `role ${t.prefix}alice`,
      `REVOKE CREATE ON SCHEMA crm FROM ${id('alice')}`,
    );
    expect(f.message).toContain('schema crm');
    await expectFinding(
      'GRANT CREATE ON SCHEMA public TO PUBLIC',
      'role_create_privilege',
      'role PUBLIC',
      'REVOKE CREATE ON SCHEMA public FROM PUBLIC',
    );
    await expectFinding(
      `GRANT CREATE ON DATABASE ${quoteIdent(t.name)} TO ${id('crm_app')}`,
      'role_create_privilege',
      `role ${t.prefix}crm_app`,
      `REVOKE CREATE ON DATABASE ${quoteIdent(t.name)} FROM ${id('crm_app')}`,
    );
  });

  it('dangerous attributes and memberships of people and the application role', async () => {
    await expectFinding(
      `ALTER ROLE ${id('crm_app')} BYPASSRLS`,
      'role_dangerous_attribute',
      `role ${t.prefix}crm_app`,
      `ALTER ROLE ${id('crm_app')} NOBYPASSRLS`,
    );
    await expectFinding(
      `ALTER ROLE ${id('bob')} CREATEROLE`,
      'role_dangerous_attribute',
      `role ${t.prefix}bob`,
      `ALTER ROLE ${id('bob')} NOCREATEROLE`,
    );
    await expectFinding(
      `GRANT pg_read_all_data TO ${id('dave')}`,
      'role_dangerous_membership',
      `role ${t.prefix}dave`,
      `REVOKE pg_read_all_data FROM ${id('dave')}`,
    );
    const f = await expectFinding(
      `GRANT ${id('crm_owner')} TO ${id('crm_people')}`,
      'role_dangerous_membership',
      `role ${t.prefix}crm_people`,
      `REVOKE ${id('crm_owner')} FROM ${id('crm_people')}`,
    );
    expect(f.message).toContain('the table owner');
  });

  it('a privilege on a protected table for a person: role_protected_privilege; for PUBLIC: public_privilege', async () => {
    await expectFinding(
      `GRANT SELECT (name) ON crm.customers TO ${id('erin')}`,
      'role_protected_privilege',
      `role ${t.prefix}erin`,
      `REVOKE SELECT (name) ON crm.customers FROM ${id('erin')}`,
    );
    await expectFinding(
      'GRANT SELECT ON crm.contracts TO PUBLIC',
      'public_privilege',
      'table "crm"."contracts"',
      'REVOKE SELECT ON crm.contracts FROM PUBLIC',
    );
    await expectFinding(
      'GRANT EXECUTE ON FUNCTION pgwarden.caller() TO PUBLIC',
      'public_privilege',
      'function "pgwarden"."caller"()',
      'REVOKE EXECUTE ON FUNCTION pgwarden.caller() FROM PUBLIC',
    );
  });

  it('a view over crm.customers in another schema owned by the owner role: view_bypasses_rules', async () => {
    await t.sql.unsafe('CREATE SCHEMA reports');
    await t.sql.unsafe(
      'CREATE VIEW reports.all_customers AS SELECT id, name, phone FROM crm.customers',
    );
    const f = await expectFinding(
      `ALTER VIEW reports.all_customers OWNER TO ${id('crm_owner')}`,
      'view_bypasses_rules',
      'view "reports"."all_customers"',
      'DROP VIEW reports.all_customers',
    );
    expect(f.message).toContain('crm.customers');
    // the view owner role owning a second view: rows by its policies, but no masks
    await expectFinding(
      `CREATE VIEW reports.unmasked AS SELECT id, phone FROM crm.customers; ALTER VIEW reports.unmasked OWNER TO ${id('crm_api_owner')}`,
      'view_bypasses_rules',
      'view "reports"."unmasked"',
      'DROP VIEW reports.unmasked',
    );
    // an ordinary owner: a warning unless security_invoker
    await t.sql.unsafe(`CREATE ROLE ${id('analyst')} NOLOGIN`);
    await expectFinding(
      `CREATE VIEW reports.by_region AS SELECT region, count(*) FROM crm.customers GROUP BY region; ALTER VIEW reports.by_region OWNER TO ${id('analyst')}`,
      'view_not_security_invoker',
      'view "reports"."by_region"',
      'ALTER VIEW reports.by_region SET (security_invoker = true)',
    );
    await t.sql.unsafe('DROP VIEW reports.by_region');
  });

  it('dropping the index on a scope column: unindexed_scope_column with the CREATE INDEX fix', async () => {
    const f = await expectFinding(
      'DROP INDEX crm.deals_owner_idx',
      'unindexed_scope_column',
      'column "crm"."deals"."owner"',
      'CREATE INDEX deals_owner_idx ON crm.deals (owner)',
    );
    expect(f.severity).toBe('warning');
    expect(f.fix).toContain('CREATE INDEX "deals_owner_idx" ON "crm"."deals" ("owner");');
    await expectFinding(
      'DROP INDEX crm.contacts_customer_idx',
      'unindexed_scope_column',
      'column "crm"."contacts"."customer_id"',
      'CREATE INDEX contacts_customer_idx ON crm.contacts (customer_id)',
    );
    // the policies compare owner names in the default collation: a "C" index does not serve them
    const c = await expectFinding(
      'DROP INDEX crm.customers_owner_idx; CREATE INDEX customers_owner_c ON crm.customers (owner COLLATE "C")',
      'unindexed_scope_column',
      'column "crm"."customers"."owner"',
      'DROP INDEX crm.customers_owner_c; CREATE INDEX customers_owner_idx ON crm.customers (owner)',
    );
    // assigned scopes (issue 10) are index arms: one attribute needs an index leading with its
    // column, a combined scope one index holding all its columns
    const r = await expectFinding(
      'DROP INDEX crm.customers_region_status_idx; DROP INDEX crm.customers_region_type_idx',
      'unindexed_scope_column',
      'column "crm"."customers"."region"',
      'CREATE INDEX customers_region_status_idx ON crm.customers (region, status); CREATE INDEX customers_region_type_idx ON crm.customers (region, customer_type)',
    );
    expect(r.message).toContain('scope assigned region');
    const both = await expectFinding(
      'DROP INDEX crm.customers_region_type_idx; CREATE INDEX customers_type_c ON crm.customers (customer_type, region COLLATE "C")',
      'unindexed_scope_column',
      'columns "crm"."customers" ("customer_type", "region")',
      'DROP INDEX crm.customers_type_c; CREATE INDEX customers_region_type_idx ON crm.customers (region, customer_type)',
    );
    expect(both.message).toContain('scope assigned customer_type AND region');
    expect(both.fix).toContain(
      'CREATE INDEX "customers_customer_type_region_idx" ON "crm"."customers" ("customer_type", "region");',
    );
    expect(c.message).toContain('customers_owner_c');
    expect(c.fix).toContain(
      'CREATE INDEX ON "crm"."customers" ("owner" COLLATE pg_catalog."default");',
    );
  });

  it('a table added to the protected schema without rules: table_not_in_model', async () => {
    await expectFinding(
      'CREATE TABLE crm.notes (id bigint PRIMARY KEY, body text)',
      'table_not_in_model',
      'table "crm"."notes"',
      'DROP TABLE crm.notes',
    );
  });

  it('after all the undos, the CRM is back to no errors', async () => {
    expect(codes(await check(), 'error')).toEqual([]);
  });
});

describe('model lints', () => {
  it('report risky but valid models, not what validation already refuses', async () => {
    const { model: m, problems } = await validateModel({
      schemas: { protected: 'app', exposed: 'app_api' },
      jobs: { clerk: {}, idle: {}, boss: { admin: true } },
      tables: {
        notes: {
          columns: ['id', 'owner', 'body', 'secret'],
          owner: 'owner',
          rules: [
            { jobs: ['*'], commands: ['select'], scopes: ['all'] },
            { jobs: ['clerk'], commands: ['delete'], scopes: [{ filter: '(1 = 1)' }] },
          ],
          cells: { secret: { own: 'full', default: 'hidden' } },
          exports: { clerk: { columns: ['id', 'secret'], perDay: 10 } },
        },
      },
    });
    expect(problems).toEqual([]);
    expect(codes(summarize(checkModel(m as Model)).findings)).toEqual([
      'admin_job_not_privileged model jobs.boss',
      'delete_without_recycle_bin model tables.notes.rules[1]',
      'export_sensitive_without_approval model tables.notes.exports.clerk',
      'filter_always_true model tables.notes.rules[1].scopes[0].filter',
      'job_without_rules model jobs.idle',
      'rule_any_job_all_rows model tables.notes.rules[0]',
    ]);
  });

  it('recognise constant-true expressions, and only those', () => {
    for (const e of ['true', '(true)', 'TRUE', '1 = 1', '(1 = 1)', "'a' = 'a'", 'NOT false'])
      expect(alwaysTrue(e), e).toBe(true);
    for (const e of ['owner = owner', '(a = 1) OR (b = 2)', 'false', '1 = 2', "status = 'active'"])
      expect(alwaysTrue(e), e).toBe(false);
  });

  it('--ignore takes codes, comma- or space-separated, and names the unknown ones', () => {
    expect(parseIgnore(['rls_disabled,unindexed_scope_column', 'rls_disabled'])).toEqual({
      codes: ['rls_disabled', 'unindexed_scope_column'],
      unknown: [],
    });
    expect(parseIgnore(['rls_off']).unknown).toEqual(['rls_off']);
  });
});

describe('pgwarden check (the CLI)', () => {
  const live = () => ['check', '--model', MODEL, '--url', t.url, '--role-prefix', t.prefix];

  it('exits 0 on the fresh CRM (warnings allowed), 2 with an error, 0 again when it is ignored', async () => {
    const ok = await cli(live());
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('Warnings (3)');
    expect(ok.stdout).toContain('admin_job_not_privileged');
    expect(ok.stdout).toContain('0 errors, 3 warnings');

    await t.sql.unsafe('ALTER TABLE crm.customers NO FORCE ROW LEVEL SECURITY');
    try {
      const bad = await cli([...live(), '--json']);
      expect(bad.code).toBe(2);
      const out = JSON.parse(bad.stdout) as { ok: boolean; errors: number; findings: Finding[] };
      expect(out.ok).toBe(false);
      expect(out.errors).toBe(1);
      expect(out.findings[0]).toMatchObject({
        code: 'rls_not_forced',
        severity: 'error',
        object: 'table "crm"."customers"',
      });
      const human = await cli(live());
      expect(human.code).toBe(2);
      expect(human.stdout).toMatch(/Errors \(1\)\n {2}✗ rls_not_forced {2}table "crm"."customers"/);
      const ignored = await cli([...live(), '--ignore', 'rls_not_forced,admin_job_not_privileged']);
      expect(ignored.code).toBe(0);
      expect(ignored.stdout).toContain('0 errors, 2 warnings, 2 ignored');
    } finally {
      await t.sql.unsafe('ALTER TABLE crm.customers FORCE ROW LEVEL SECURITY');
    }
  });

  it('exits 3 for an invalid model, 1 for an unknown --ignore code or an unreachable database; --offline checks the model only', async () => {
    const invalid = await cli(['check', '--model', 'test/fixtures/typos.yaml', '--offline']);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toContain('[unknown_job]');
    const unknown = await cli(['check', '--model', MODEL, '--offline', '--ignore', 'rls_off']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown rule code rls_off');
    const down = await cli([
      'check',
      '--model',
      MODEL,
      '--url',
      'postgres://nobody@127.0.0.1:1/none',
    ]);
    expect(down.code).toBe(1);
    const offline = await cli(['check', '--model', MODEL, '--offline', '--json']);
    expect(offline.code).toBe(0);
    const out = JSON.parse(offline.stdout) as { database: string | null; findings: Finding[] };
    expect(out.database).toBeNull();
    expect(out.findings.map((f) => f.code)).toEqual([
      'admin_job_not_privileged',
      'export_sensitive_without_approval',
      'export_sensitive_without_approval',
    ]);
  });

  it('--rules lists every rule with its severity', async () => {
    const r = await cli(['check', '--rules', '--json']);
    expect(r.code).toBe(0);
    const rules = JSON.parse(r.stdout) as { code: string; severity: string }[];
    expect(rules.map((x) => x.code)).toEqual(Object.keys(CHECK_RULES));
  });
});
