/**
 * `pgwarden doctor` (issue #9): passes on a database set up by apply (setupCrm), fails naming the
 * check after each of: BYPASSRLS for a person, CREATE on a schema for a person, a materialized
 * view over crm.customers readable by people. The server-version check is judged against the
 * release table (src/doctor/versions.ts): if this machine's server is older than the table's
 * latest minor, that check fails honestly and the test expects exactly that.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { type DoctorResult, LATEST_MINORS, versionCheck } from '../src/doctor/index.js';
import { quoteIdent } from '../src/sql/quote.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

let t: TestDb;
let versionNum = 0;
const MODEL = 'examples/crm/model.ts';

const run = async () => {
  const r = await cli(
    ['doctor', '--model', MODEL, '--url', t.url, '--role-prefix', t.prefix, '--json'],
    {},
    { unset: ['DATABASE_URL'] },
  );
  return { code: r.code, result: JSON.parse(r.stdout || '{}') as DoctorResult, stderr: r.stderr };
};
const verdicts = (r: DoctorResult) => Object.fromEntries(r.checks.map((c) => [c.code, c.verdict]));

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  const [v] = await t.sql<{ v: string }[]>`SELECT current_setting('server_version_num') AS v`;
  versionNum = Number(v?.v);
});
afterAll(async () => {
  await t?.cleanup();
});

describe('the server version', () => {
  it('is judged against the release table: below the latest minor fails, at or above passes, older than 15 fails, unknown majors warn', () => {
    expect(versionCheck(150020, { 15: { latest: 20, knownAsOf: '2026-11-29' } }).verdict).toBe(
      'pass',
    );
    const old = versionCheck(150008, { 15: { latest: 20, knownAsOf: '2026-11-29' } });
    expect(old.verdict).toBe('fail');
    expect(old.details.join('\n')).toContain('CVE-2024-10976');
    expect(old.details.join('\n')).toContain('CVE-2025-8713');
    expect(old.details[0]).toContain('could not know newer than 2026-11-29');
    expect(
      versionCheck(150015, { 15: { latest: 20, knownAsOf: '2026-11-29' } }).details.join('\n'),
    ).not.toContain('CVE-');
    expect(versionCheck(140020).verdict).toBe('fail');
    expect(versionCheck(990001).verdict).toBe('warn');
    expect(
      versionCheck(150030, { 15: { latest: 20, knownAsOf: '2026-11-29' } }).details[0],
    ).toContain('table is out of date');
  });
});

describe('pgwarden doctor on the reference CRM', () => {
  it('passes after apply: every check passes (TEMP for PUBLIC is a warning), except the version check if this server is behind the table', async () => {
    const { code, result, stderr } = await run();
    expect(stderr).toBe('');
    const expectedVersion = versionCheck(versionNum).verdict;
    const major = Math.floor(versionNum / 10000);
    expect(LATEST_MINORS[major], `the table knows PostgreSQL ${major}`).toBeDefined();
    expect(verdicts(result)).toEqual({
      server_version: expectedVersion,
      privileged_roles: 'pass',
      create_privilege: 'pass',
      public_execute_definer: 'pass',
      protected_tables: 'pass',
      materialized_views: 'pass',
      temporary_objects: 'warn',
      subtree_cache: 'pass',
    });
    expect(code).toBe(expectedVersion === 'fail' ? 2 : 0);
    expect(result.ok).toBe(expectedVersion !== 'fail');
  });

  const cases: [string, string, string, string][] = [
    [
      'BYPASSRLS for a person',
      `ALTER ROLE ${quoteIdent(`${'P'}alice`)} BYPASSRLS`,
      `ALTER ROLE ${quoteIdent('Palice')} NOBYPASSRLS`,
      'privileged_roles',
    ],
    [
      'CREATE on a schema for a person',
      `GRANT CREATE ON SCHEMA public TO ${quoteIdent('Pbob')}`,
      `REVOKE CREATE ON SCHEMA public FROM ${quoteIdent('Pbob')}`,
      'create_privilege',
    ],
    [
      'a materialized view over crm.customers readable by people',
      `CREATE MATERIALIZED VIEW public.customer_summary AS SELECT region, owner, phone FROM crm.customers; GRANT SELECT ON public.customer_summary TO ${quoteIdent('Pcrm_people')}`,
      'DROP MATERIALIZED VIEW public.customer_summary',
      'materialized_views',
    ],
    [
      'PUBLIC EXECUTE on a SECURITY DEFINER function',
      `CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ SELECT count(*) FROM crm.customers $$`,
      'DROP FUNCTION public.peek()',
      'public_execute_definer',
    ],
    [
      'a partition of a protected table without RLS',
      `CREATE TABLE crm.events (id bigint, at date) PARTITION BY RANGE (at); ALTER TABLE crm.events ENABLE ROW LEVEL SECURITY; ALTER TABLE crm.events FORCE ROW LEVEL SECURITY; CREATE TABLE crm.events_2026 PARTITION OF crm.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
      'DROP TABLE crm.events',
      'protected_tables',
    ],
    [
      "a stale row of the subtree cache (sales_east's people emptied)",
      `UPDATE pgwarden.subtree_people_cache SET people = '{}' WHERE unit = 'sales_east'`,
      'SELECT pgwarden._refresh_subtree_cache(NULL)',
      'subtree_cache',
    ],
  ];
  for (const [what, breakIt, undo, check] of cases) {
    it(`fails naming ${check} after ${what}, and passes again after the undo`, async () => {
      const p = (s: string) => s.replaceAll('"P', `"${t.prefix}`);
      await t.sql.unsafe(p(breakIt));
      try {
        const { code, result } = await run();
        expect(code).toBe(2);
        expect(result.ok).toBe(false);
        const failed = result.checks.filter((c) => c.verdict === 'fail').map((c) => c.code);
        expect(failed.filter((c) => c !== 'server_version')).toEqual([check]);
        const named = result.checks.find((c) => c.code === check);
        expect(named?.fix).not.toBe('');
        expect(named?.details.length).toBeGreaterThan(0);
      } finally {
        await t.sql.unsafe(p(undo));
      }
      const again = await run();
      expect(verdicts(again.result)[check]).toBe('pass');
    });
  }

  it('prints a verdict per check and the fix in text form', async () => {
    await t.sql.unsafe(`ALTER ROLE ${quoteIdent(`${t.prefix}carol`)} BYPASSRLS`);
    try {
      const r = await cli(
        ['doctor', '--model', MODEL, '--url', t.url, '--role-prefix', t.prefix],
        {},
        { unset: ['DATABASE_URL'] },
      );
      expect(r.code).toBe(2);
      expect(r.stdout).toMatch(/FAIL {2}privileged_roles/);
      expect(r.stdout).toMatch(/pass {2}create_privilege/);
      expect(r.stdout).toMatch(/warn {2}temporary_objects/);
      expect(r.stdout).toContain('fix:');
    } finally {
      await t.sql.unsafe(`ALTER ROLE ${quoteIdent(`${t.prefix}carol`)} NOBYPASSRLS`);
    }
  });
});
