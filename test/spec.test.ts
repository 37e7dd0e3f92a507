import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import input from '../examples/crm/model.js';
import { setupCrm } from '../examples/crm/setup.js';
import { apply } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import { compile } from '../src/compile/index.js';
import type { ModelInput } from '../src/model/types.js';
import { validateModel } from '../src/model/validate.js';
import { loadSpec, parseSpec } from '../src/spec/parse.js';
import { checkSpecIn, readSpecContext, runSpec, type SpecReport } from '../src/spec/run.js';
import { quoteQualified } from '../src/sql/quote.js';
import { cli as runCli } from './helpers/cli.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';
import { PEOPLE } from './helpers/people.js';

const ROOT = join(import.meta.dirname, '..');
const SPEC = 'examples/crm/expectations.yaml';
const SPEC_TEXT = readFileSync(join(ROOT, SPEC), 'utf8');

function cli(args: string[]) {
  return runCli(args, {}, { cwd: ROOT });
}

/** The line (1-based) of the first line of the file that starts with `prefix` after `after`. */
function lineOf(text: string, prefix: string, after = ''): number {
  const lines = text.split('\n');
  const from = after ? lines.findIndex((l) => l.startsWith(after)) : 0;
  const i = lines.findIndex((l, n) => n >= from && l.startsWith(prefix));
  if (i < 0) throw new Error(`no line starts with ${prefix}`);
  return i + 1;
}

async function runFile(db: postgres.Sql, file: string, rolePrefix: string): Promise<SpecReport> {
  const { spec, problems } = await loadSpec(file);
  expect(problems).toEqual([]);
  if (!spec) throw new Error('no spec');
  const ctx = await readSpecContext(db, spec, { rolePrefix });
  expect(checkSpecIn(spec, ctx)).toEqual([]);
  return await runSpec(db, spec, ctx);
}

/** Every row of the tables a spec's writes, claims, reveals and exports could touch. */
async function snapshot(db: postgres.Sql): Promise<Record<string, string>> {
  const tables = [
    ['crm', 'customers'],
    ['crm', 'contacts'],
    ['crm', 'deals'],
    ['crm', 'contracts'],
    ['pgwarden', 'claims'],
    ['pgwarden', 'recycle_bin'],
    ['pgwarden', 'reveals'],
    ['pgwarden', 'exports'],
    ['pgwarden', 'alerts'],
    ['pgwarden', 'shares'],
    ['pgwarden', 'people'],
    ['pgwarden_audit', 'records'],
  ] as const;
  const out: Record<string, string> = {};
  for (const [s, n] of tables) {
    const [r] = await db.unsafe(
      `SELECT count(*)::int AS n, md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM ${quoteQualified(s, n)} t`,
    );
    out[`${s}.${n}`] = `${r?.n} ${r?.h}`;
  }
  return out;
}

let t: TestDb;
let dir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-spec-'));
});

afterAll(async () => {
  await t?.cleanup();
});

describe('the shipped CRM expectations', () => {
  it('cover every person of SCENARIO.md', async () => {
    const { spec, problems } = parseSpec(SPEC_TEXT, SPEC);
    expect(problems).toEqual([]);
    expect(spec?.blocks.map((b) => b.person).sort()).toEqual([...PEOPLE].sort());
    const kinds = new Set(spec?.blocks.flatMap((b) => b.expectations.map((e) => e.statement.kind)));
    for (const k of ['sees', 'row', 'update', 'insert', 'delete', 'claim', 'reveal', 'export'])
      expect(kinds.has(k as never), k).toBe(true);
  });

  it('pass on the seeded CRM, and leave the database exactly as it was', async () => {
    const before = await snapshot(t.sql);
    const report = await runFile(t.sql, join(ROOT, SPEC), t.prefix);
    const failures = report.results.filter((r) => !r.ok);
    expect(failures).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.results.length).toBeGreaterThan(100);
    expect(report.via).toBe(`${t.prefix}crm_app`);
    // the spec has allowed writes, a delete, claims, reveals and exports: all rolled back
    expect(report.results.some((r) => r.statement.startsWith('delete') && r.ok)).toBe(true);
    expect(await snapshot(t.sql)).toEqual(before);
  });

  it('through the CLI: exit 0, one line per expectation, and --json', async () => {
    const r = await cli(['test', SPEC, '--url', t.url, '--role-prefix', t.prefix]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const line = lineOf(SPEC_TEXT, '  - sees customers:', 'as alice:');
    expect(r.stdout).toContain(`✓ ${SPEC}:${line}  alice: sees customers`);
    expect(r.stdout).toMatch(/ok \d+ passed; the database was not changed/);

    const j = await cli(['test', SPEC, '--url', t.url, '--role-prefix', t.prefix, '--json']);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout) as SpecReport;
    expect(report.ok).toBe(true);
    expect(report.failed).toBe(0);
    expect(report.results[0]).toMatchObject({
      file: SPEC,
      line,
      person: 'alice',
      label: 'alice: sees customers',
      ok: true,
    });
  });

  it('take the role prefix that pgwarden apply recorded when --role-prefix is not given', async () => {
    const r = await cli(['test', SPEC, '--url', t.url]);
    expect(r.code).toBe(0);
  });
});

describe('a failing expectation', () => {
  it('is named by file:line and label, with what was expected and what the database did; exit 1', async () => {
    const file = join(dir, 'failing.yaml');
    writeFileSync(
      file,
      [
        'as alice:',
        '  - sees customers: { includes: [1], excludes: [9] }',
        '  - row customers 1: { phone: masked }',
        '  - update customers 1 set owner = dave: allowed',
        '  - update customers 1 set phone = 13912345678:',
        '      refused: may not',
        '    label: alice may not edit her own phone',
        '',
      ].join('\n'),
    );
    const report = await runFile(t.sql, file, t.prefix);
    expect(report.results.map((r) => [r.line, r.ok])).toEqual([
      [2, true],
      [3, false],
      [4, false],
      [5, false],
    ]);
    expect(report.results[1]).toMatchObject({
      expected: 'phone masked',
      actual: 'phone is full ("13810000000")',
    });
    expect(report.results[2]?.actual).toContain(
      'refused: permission denied: alice may not change column "owner" of customers 1',
    );
    expect(report.results[3]).toMatchObject({
      label: 'alice: alice may not edit her own phone',
      expected: 'refused with "may not"',
      actual: 'allowed: 1 row changed',
    });

    const r = await cli(['test', file, '--url', t.url, '--role-prefix', t.prefix]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `✗ ${file}:3  alice: row customers 1: expected phone masked; the database: phone is full ("13810000000")`,
    );
    expect(r.stdout).toContain(
      `✗ ${file}:5  alice: alice may not edit her own phone [update customers 1 set phone = 13912345678]: expected refused with "may not"; the database: allowed: 1 row changed`,
    );
    expect(r.stdout).toContain('FAILED 3 of 4, 1 passed');
  });

  it('a statement that is broken (not a refusal) does not count as refused', async () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'as alice:\n  - update customers abc set name = x: refused\n');
    const report = await runFile(t.sql, file, t.prefix);
    expect(report.results[0]).toMatchObject({ ok: false });
    expect(report.results[0]?.actual).toMatch(/^failed \(not a refusal\): .*\[22P02\]$/);
  });
});

describe('a wider rule in the model', () => {
  let w: TestDb;
  beforeAll(async () => {
    w = await createTestDatabase();
    await setupCrm(w.sql, { rolePrefix: w.prefix });
    // a copy of the model in which reps also see their unit's customers
    const wider = JSON.parse(JSON.stringify(input)) as ModelInput;
    const rule = wider.tables.customers?.rules[0];
    if (!rule) throw new Error('no first rule on customers');
    expect(rule).toMatchObject({ jobs: ['sales_rep'], commands: ['select'] });
    (rule.scopes as unknown as string[]).push('unit');
    const { model, problems } = await validateModel(wider);
    expect(problems).toEqual([]);
    if (!model) throw new Error('invalid model');
    await apply(w.sql, compile(model, { rolePrefix: w.prefix }), {
      modelName: model.name,
      modelHash: sha256(canonicalJson(model)),
    });
  });
  afterAll(async () => {
    await w?.cleanup();
  });

  it('makes the named expectations fail', async () => {
    const report = await runFile(w.sql, join(ROOT, SPEC), w.prefix);
    expect(report.ok).toBe(false);
    const line = lineOf(SPEC_TEXT, '  - sees customers:', 'as alice:');
    const alice = report.results.find((r) => r.line === line);
    expect(alice).toMatchObject({
      ok: false,
      label: 'alice: sees customers',
      file: join(ROOT, SPEC),
    });
    // bob's, pat's and carol's customers now show up for alice
    expect(alice?.actual).toContain('not expected 9-18, 26');
    const failedPeople = new Set(report.results.filter((r) => !r.ok).map((r) => r.person));
    expect([...failedPeople].sort()).toEqual(['alice', 'bob', 'dave', 'pat']);

    const r = await cli(['test', SPEC, '--url', w.url, '--role-prefix', w.prefix]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`✗ ${SPEC}:${line}  alice: sees customers: expected exactly`);
    expect(r.stdout).toContain('not expected 9-18, 26');
  });
});

describe('an invalid spec', () => {
  it('is reported with file:line and a fix, without a database', () => {
    const text = [
      'as alice:',
      '  - sees customers: [1, 2]',
      '  - frobnicate customers 1: allowed',
      '  - update customers 1 set owner bob: refused',
      '  - update customers 1 set owner = bob: maybe',
      '  - row customers 1: phone',
      '  - sees customers: [1]',
      '    also: x',
      'as bob: nothing',
      'whatever: 1',
      '',
    ].join('\n');
    const { problems } = parseSpec(text, 'bad.yaml');
    expect(problems.map((p) => [p.location.line, p.code])).toEqual([
      [3, 'malformed_expectation'],
      [4, 'malformed_expectation'],
      [5, 'malformed_expectation'],
      [6, 'malformed_expectation'],
      [8, 'malformed_expectation'],
      [9, 'invalid_structure'],
      [10, 'invalid_structure'],
    ]);
    expect(problems[0]?.message).toContain('unknown statement "frobnicate"');
    expect(problems[0]?.fix).toContain('sees <table>');
    expect(problems[1]?.message).toContain('expected = after owner');
    expect(problems[2]?.message).toContain('not "maybe"');
    expect(problems[2]?.fix).toContain('allowed, refused');
  });

  it('reports invalid YAML with its line', () => {
    const { problems } = parseSpec('as alice:\n  - sees customers: [1, 2\n', 'broken.yaml');
    expect(problems[0]).toMatchObject({ code: 'invalid_syntax' });
    expect(problems[0]?.location.file).toBe('broken.yaml');
  });

  it('names unknown people, tables and columns of the database, with suggestions', async () => {
    const { spec } = parseSpec(
      [
        'as alcie:',
        '  - sees customers: none',
        'as bob:',
        '  - sees custmers: none',
        '  - row customers 1: { phone: full, phnoe: full }',
        '  - update deals 5 set amout = 1: allowed',
        '',
      ].join('\n'),
      'typos.yaml',
    );
    if (!spec) throw new Error('no spec');
    const ctx = await readSpecContext(t.sql, spec, { rolePrefix: t.prefix });
    const problems = checkSpecIn(spec, ctx);
    expect(problems.map((p) => [p.location.line, p.code])).toEqual([
      [1, 'unknown_person'],
      [4, 'unknown_table'],
      [5, 'unknown_column'],
      [6, 'unknown_column'],
    ]);
    expect(problems[0]?.message).toBe(
      `unknown person "alcie": the database has no role "${t.prefix}alcie"`,
    );
    expect(problems[0]?.fix).toContain('Did you mean "alice"?');
    expect(problems[1]?.fix).toContain('Did you mean "customers"?');
    expect(problems[2]?.location.column).toBe(37);
    expect(problems[2]?.fix).toContain('Did you mean "phone"?');
    expect(problems[3]?.fix).toContain('Did you mean "amount"?');
  });

  it('exits 3 from the CLI, before and after reading the database', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'as alice:\n  - sees customers: [1]\n  - delete customers: refused\n');
    const r = await cli(['test', bad, '--url', t.url, '--role-prefix', t.prefix]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${bad}:3:5 [malformed_expectation]`);
    expect(r.stderr).toContain('fix:');
    expect(r.stdout).toBe('');

    const unknown = join(dir, 'unknown.yaml');
    writeFileSync(
      unknown,
      'as alice:\n  - sees customers: [1]\nas zed:\n  - sees customers: none\n',
    );
    const u = await cli(['test', unknown, '--url', t.url, '--role-prefix', t.prefix]);
    expect(u.code).toBe(3);
    expect(u.stderr).toContain(`${unknown}:3:1 [unknown_person] unknown person "zed"`);

    const j = await cli(['test', unknown, '--url', t.url, '--role-prefix', t.prefix, '--json']);
    expect(j.code).toBe(3);
    expect(JSON.parse(j.stdout)).toMatchObject({
      ok: false,
      problems: [{ code: 'unknown_person', file: unknown, line: 3 }],
    });

    const missing = await cli(['test', join(dir, 'nope.yaml'), '--url', t.url]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('[file_not_found]');
  });

  it('a wrong --role-prefix makes every person unknown (exit 3)', async () => {
    const r = await cli(['test', SPEC, '--url', t.url, '--role-prefix', 'nobody_']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('unknown person "alice": the database has no role "nobody_alice"');
  });
});

describe('as the application logs in', () => {
  it('runs from the authenticator login too; cells are compared with stored values only when readable', async () => {
    const app = await loginAs(t, 'crm_app');
    try {
      const { spec } = parseSpec(
        [
          'schema: crm_api',
          'as bob:',
          '  - sees customers: [1, 9, 10, 11, 12, 13, 14, 37, 38, 39, 40, 41, 42, 43, 44]',
          "  - row customers 1: { phone: '138****0000', id_number: null }",
          '  - update customers 1 set name = x: refused',
          '  - row customers 9: { phone: full }',
          '',
        ].join('\n'),
        'app.yaml',
      );
      if (!spec) throw new Error('no spec');
      const ctx = await readSpecContext(app, spec, { rolePrefix: t.prefix });
      expect(ctx.via).toBeNull();
      expect(checkSpecIn(spec, ctx)).toEqual([]);
      const report = await runSpec(app, spec, ctx);
      expect(report.results.map((r) => r.ok)).toEqual([true, true, true, false]);
      expect(report.results[3]?.actual).toContain('phone: cannot read the stored value as');
    } finally {
      await app.end();
    }
  });
});
