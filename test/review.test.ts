/**
 * pgwarden review and pgwarden report (issue #7): the access review of the seeded CRM lists
 * tom's temporary grant with its expiry, flags an offboarded person who still holds a share,
 * and its counts match what each person reads; the HTML review and the evidence pack render in
 * a real headless Chromium (Debian's /usr/bin/chromium) without errors.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, setupCrm } from '../examples/crm/setup.js';
import type { Model } from '../src/model/types.js';
import { complianceCsv, complianceHtml, readCompliance } from '../src/report/compliance.js';
import {
  type Review,
  readReview,
  reviewCsv,
  reviewHtml,
  reviewText,
} from '../src/report/review.js';
import { withPerson } from '../src/runtime/with-person.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const HOSTILE = `eve<img src=x onerror="alert(1)">&'`;

let t: TestDb;
let app: postgres.Sql;
let model: Model;
let review: Review;
let dir: string;

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  model = await crmModel();
  app = await loginAs(t, 'crm_app', { max: 4 });
  dir = mkdtempSync(join(tmpdir(), 'pgwarden-review-'));
  // activity in the period: a reveal, a refused export, a change of permissions
  await t.sql`SELECT pgwarden.add_person(${HOSTILE}, 'hq', ARRAY['marketing'])`;
  await withPerson(
    app,
    'alice',
    (tx) => tx`SELECT pgwarden.reveal('customers', '1', 'id_number')`,
    { rolePrefix: t.prefix },
  );
  await withPerson(app, 'pat', (tx) => tx`SELECT pgwarden.export('customers')`, {
    rolePrefix: t.prefix,
  });
  // dave leaves: offboarding ends his shares; then a share to him is recorded behind
  // pgwarden's back (as a superuser), the state the review must flag
  await t.sql`SELECT pgwarden.share('customers', '1', 'dave', now() + interval '10 days')`;
  await t.sql`SELECT pgwarden.offboard('dave', 'walt')`;
  await t.sql`INSERT INTO pgwarden.shares (table_name, row_key, person, valid_from, valid_until, granted_by)
              VALUES ('customers', '2', 'dave', now() - interval '120 days', now() + interval '20 days', 'postgres')`;
  await t.sql`SELECT pgwarden_audit.seal()`;
  review = await readReview(t.sql, model, { soonDays: 31, shareAgeDays: 90 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pgwarden review', () => {
  it("lists tom's temporary grant with its expiry", async () => {
    const [g] = await t.sql<
      { until: Date }[]
    >`SELECT valid_until AS until FROM pgwarden.temp_grants WHERE person = 'tom'`;
    const tom = review.people.find((p) => p.name === 'tom');
    expect(tom?.grants).toHaveLength(1);
    expect(tom?.grants[0]).toMatchObject({ state: 'active', until: g?.until.toISOString() });
    expect(tom?.grants[0]?.what).toContain('double11');
    expect(review.findings).toContainEqual(
      expect.objectContaining({
        code: 'grant_expiring',
        person: 'tom',
        message: expect.stringContaining(g?.until.toISOString() as string),
      }),
    );
    expect(reviewText(review)).toMatch(/tom\s+grant "double11" customers select .* until \d{4}-/);
  });

  it('flags an offboarded person who still holds a share', () => {
    const dave = review.people.find((p) => p.name === 'dave');
    expect(dave?.active).toBe(false);
    expect(dave?.authenticatorMember).toBe(false);
    const f = review.findings.find((x) => x.code === 'inactive_holds' && x.person === 'dave');
    expect(f?.severity).toBe('high');
    expect(f?.message).toMatch(
      /dave is offboarded \(inactive since .*\) but still holds a share of customers 2 until/,
    );
    // the share offboarding ended is reported as ended, not as held
    expect(dave?.shares.map((s) => s.state).sort()).toEqual(['active', 'revoked']);
    expect(review.findings).toContainEqual(
      expect.objectContaining({ code: 'old_share', person: 'dave' }),
    );
  });

  it('flags privileged jobs and rules that give a job a whole table', () => {
    const priv = review.findings
      .filter((f) => f.code === 'privileged_job')
      .map((f) => f.person)
      .sort();
    expect(priv).toEqual(['adam', 'audrey', 'olga', 'vera']);
    expect(review.findings).toContainEqual(
      expect.objectContaining({
        code: 'whole_table_rule',
        table: 'contracts',
        message: expect.stringContaining('finance'),
      }),
    );
  });

  it('counts rows and column levels exactly as each person reads them', async () => {
    let compared = 0;
    for (const p of review.people) {
      for (const ta of p.tables) {
        expect(ta.error).toBeUndefined();
        if (!p.active) {
          // helpers answer nothing for an inactive person: no row
          expect(ta.rows, `${p.name} ${ta.table}`).toBe(0);
          continue;
        }
        const view = model.tables.find((x) => x.name === ta.table);
        const cols = ta.columns.map((c) => c.column);
        const rows = await withPerson(
          app,
          p.name,
          (tx) =>
            tx.unsafe(
              `SELECT ${['id', ...cols].map((c) => `"${c}"::text AS "${c}"`).join(', ')} FROM crm_api."${view?.name}"`,
            ),
          { rolePrefix: t.prefix },
        );
        expect(ta.rows, `${p.name} ${ta.table}`).toBe(rows.length);
        for (const ca of ta.columns) {
          const shown = rows.filter((r) => r[ca.column] !== null).length;
          expect(ca.full + ca.masked, `${p.name} ${ta.table}.${ca.column}`).toBe(shown);
          expect(ca.full + ca.masked + ca.hidden + ca.empty).toBe(rows.length);
        }
        compared += 1;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(13 * 4);
    const alice = review.people
      .find((p) => p.name === 'alice')
      ?.tables.find((x) => x.table === 'customers');
    expect(alice?.columns.find((c) => c.column === 'phone')).toMatchObject({ masked: 1 });
  });

  it('escapes every value in the HTML and the CSV keeps hostile text in one cell', () => {
    const html = reviewHtml(review);
    expect(html).not.toContain('<img');
    expect(html).toContain('eve&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;');
    expect(html).not.toMatch(/<link|src="http|href="http/);
    const csv = reviewCsv(review);
    expect(csv.split('\n')[0]).toBe(
      'kind,person,unit,active,table,rows,total,column,full,masked,hidden,severity,code,message',
    );
    expect(csv).toContain(`"eve<img src=x onerror=""alert(1)"">&'"`);
  });
});

describe('pgwarden report', () => {
  it('collects the evidence of the period and verifies the chain', async () => {
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    const pack = await readCompliance(t.sql, model, { from, to });
    expect(pack.chain.ok).toBe(true);
    expect(pack.sections.reveals.length).toBe(1);
    expect(pack.sections.refused.some((r) => r.person === 'pat')).toBe(true);
    expect(pack.sections.permission_changes.some((r) => r.table === 'pgwarden.shares')).toBe(true);
    expect(pack.sections.applies.length).toBeGreaterThan(0);
    expect(pack.alerts.some((a) => a.kind === 'export_refused' && a.person === 'pat')).toBe(true);
    expect(pack.findings.some((f) => f.code === 'inactive_holds')).toBe(true);
    expect(complianceCsv(pack)).toMatch(/^section,id,at,kind/);
    const empty = await readCompliance(t.sql, model, { from: '2001-01-01', to: '2001-02-01' });
    expect(empty.sections.exports).toEqual([]);
  });
});

async function chromium(file: string, extra: string[] = []): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'pgwarden-chromium-'));
  try {
    const r = await run(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        ...extra,
        `file://${file}`,
      ],
      { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
    );
    return r.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

describe.skipIf(!HAS_CHROMIUM)(
  `HTML in headless Chromium${HAS_CHROMIUM ? '' : ' (skipped: /usr/bin/chromium is absent; apt-get install chromium)'}`,
  () => {
    it('the review renders without errors, with every matrix cell', async () => {
      const file = join(dir, 'review.html');
      writeFileSync(file, reviewHtml(review));
      const dom = await chromium(file, ['--dump-dom']);
      const cells =
        review.people.length * review.tables.reduce((n, x) => n + 1 + x.cellColumns.length, 0);
      expect(dom).toMatch(/<html[^>]* data-rendered="ok"/);
      expect(dom).toContain(`data-matrix-cells="${cells}"`);
      expect(dom).not.toMatch(/<html[^>]* data-errors=/);
      expect(dom).toContain('data-person="tom" data-table="customers" data-column=""');
      const shot = join(dir, 'review.png');
      await chromium(file, ['--window-size=1400,1000', `--screenshot=${shot}`]);
      expect(statSync(shot).size).toBeGreaterThan(10_000);
      expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    });

    it('the evidence pack renders without errors', async () => {
      const pack = await readCompliance(t.sql, model, {
        from: new Date(Date.now() - 3_600_000).toISOString(),
        to: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const file = join(dir, 'report.html');
      writeFileSync(file, complianceHtml(pack));
      const dom = await chromium(file, ['--dump-dom']);
      expect(dom).toMatch(/<html[^>]* data-rendered="ok"/);
      expect(dom).not.toMatch(/<html[^>]* data-errors=/);
      expect(dom).toContain('id="chain-result"');
      expect(dom).toContain('The audit hash chain verifies');
    });
  },
);

describe('pgwarden review / report (CLI)', () => {
  const env = () => ({ DATABASE_URL: t.url, PGWARDEN_MODEL: 'examples/crm/model.ts' });
  it('review: table, JSON, CSV, HTML and --exit-code', async () => {
    const text = await cli(['review'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('Findings (');
    const json = await cli(['review', '--json'], env());
    expect(JSON.parse(json.stdout).people.length).toBe(review.people.length);
    const csv = await cli(['review', '--csv'], env());
    expect(csv.stdout.split('\n')[0]).toMatch(/^kind,person/);
    const file = join(dir, 'cli-review.html');
    const html = await cli(['review', '--html', file], env());
    expect(html.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain('id="access-matrix"');
    expect((await cli(['review', '--exit-code'], env())).code).toBe(2);
    expect((await cli(['review', '--json', '--csv'], env())).code).toBe(1);
  });
  it('report: formats, help and errors', async () => {
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    const out = join(dir, 'cli-report.html');
    const r = await cli(['report', '--from', from, '--to', to, '--out', out], env());
    expect(r.stderr).toContain('wrote the evidence pack');
    expect(r.code).toBe(0);
    const j = await cli(['report', '--from', from, '--to', to, '--format', 'json'], env());
    expect(JSON.parse(j.stdout).chain.ok).toBe(true);
    expect((await cli(['report', '--from', from, '--to', to, '--format', 'pdf'], env())).code).toBe(
      1,
    );
    expect((await cli(['report', '--from', 'soon', '--to', to], env())).stderr).toContain(
      'is not a time',
    );
    expect((await cli(['report', '--to', to], env())).code).toBe(1);
    expect((await cli(['report', '--help'])).stdout).toContain('--format <format>');
    expect((await cli(['review', '--help'])).stdout).toContain('--html <file>');
  });
});
