/**
 * The command line as a user runs it: the real bin in a child process, against a real database.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, readCrmFile } from '../examples/crm/setup.js';
import { loadModel } from '../src/model/load.js';
import { validateModel, withColumns } from '../src/model/validate.js';
import { quoteIdent } from '../src/sql/quote.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';
import { sealAll } from './helpers/seal.js';

let t: TestDb;
beforeAll(async () => {
  t = await createTestDatabase();
  await t.sql.begin((tx) => tx.unsafe(readCrmFile('schema.sql')).simple());
});
afterAll(async () => {
  await t?.cleanup();
});

describe('an invalid model', () => {
  it('exits 3, lists every problem with file:line and path, and leaves the database untouched', async () => {
    const r = await cli([
      'apply',
      '--model',
      'test/fixtures/typos.yaml',
      '--url',
      t.url,
      '--yes',
      '--role-prefix',
      t.prefix,
    ]);
    expect(r.code).toBe(3);
    const text = r.stderr;
    for (const code of [
      'unknown_column',
      'unknown_job',
      'invalid_filter',
      'unknown_mask',
      'duplicate_rule',
    ])
      expect(text).toContain(`[${code}]`);
    expect(text).toMatch(/typos\.yaml:7:\d+/); // owner: ownr
    expect(text).toMatch(/typos\.yaml:9:\d+ .*sales_rpe/);
    expect(text).toMatch(/tables\.customers\.rules\[1\]\.scopes\[0\]\.filter/);
    expect(text).toMatch(/tables\.customers\.rules\[2\]\.scopes\[0\]\.filter/);
    expect(text).toContain('fix:');
    expect(text).toContain('Nothing was changed.');
    const [s] =
      await t.sql`SELECT to_regnamespace('pgwarden') AS p, to_regnamespace('crm_api') AS a, (SELECT count(*)::int FROM pg_roles WHERE rolname LIKE ${`${t.prefix}%`}) AS roles`;
    expect(s).toEqual({ p: null, a: null, roles: 0 });
  });

  it('generate exits 3 too, before writing anything', async () => {
    const out = mkdtempSync(join(tmpdir(), 'pgw-gen-'));
    const r = await cli(['generate', '--model', 'test/fixtures/typos.yaml', '--out', out]);
    expect(r.code).toBe(3);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('the YAML model', () => {
  it('means the same as the TypeScript model', async () => {
    const ts = await crmModel();
    const y = await loadModel('examples/crm/model.yaml');
    expect(y.problems).toEqual([]);
    const cols = Object.fromEntries(
      ts.tables.map((tb) => [
        tb.name,
        tb.columns.map((c) => ({ name: c.name, type: c.type ?? 'text' })),
      ]),
    );
    const v = await validateModel(withColumns(y.input as never, cols), { requireColumns: true });
    expect(v.problems).toEqual([]);
    expect(v.model).toEqual(ts);
  });
});

describe('plan, apply, plan', () => {
  it('plan shows the steps, apply refuses to run unattended without --yes, then applies; plan is then empty', async () => {
    const common = [
      '--model',
      'examples/crm/model.yaml',
      '--url',
      t.url,
      '--role-prefix',
      t.prefix,
    ];
    const plan = await cli(['plan', ...common]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/Plan: \d+ to create, 0 to replace, 0 to drop/);
    expect(plan.stdout).toContain(
      'create policy "customers_select" on "crm"."customers" for select',
    );
    const exitCode = await cli(['plan', ...common, '--exit-code']);
    expect(exitCode.code).toBe(2);
    const json = JSON.parse((await cli(['plan', ...common, '--json'])).stdout) as {
      changes: number;
      steps: { op: string; sql: string[] }[];
    };
    expect(json.changes).toBeGreaterThan(50);
    expect(json.steps.map((s) => s.op)).toContain('create_policy');

    const refused = await cli(['apply', ...common]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--yes');
    expect((await t.sql`SELECT to_regnamespace('pgwarden') AS p`)[0]?.p).toBeNull();

    const applied = await cli(['apply', ...common, '--yes']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('Applied');
    const again = await cli(['apply', ...common, '--yes']);
    expect(again.stdout).toContain('No changes.');
    const after = await cli(['plan', ...common, '--exit-code']);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('No changes.');
  });

  it('the TypeScript model applied over the YAML one changes nothing', async () => {
    const r = await cli([
      'plan',
      '--model',
      'examples/crm/model.ts',
      '--url',
      t.url,
      '--role-prefix',
      t.prefix,
      '--exit-code',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('generate writes deterministic files equal to the golden ones', async () => {
    const out = mkdtempSync(join(tmpdir(), 'pgw-gen-'));
    const r = await cli(['generate', '--model', 'examples/crm/model.ts', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    for (const f of readdirSync(join(import.meta.dirname, 'golden', 'crm'))) {
      expect(readFileSync(join(out, f), 'utf8')).toBe(
        readFileSync(join(import.meta.dirname, 'golden', 'crm', f), 'utf8'),
      );
    }
  });
});

describe('people, units, jobs, shares and grants from the command line', () => {
  const u = () => ['--url', t.url];
  it('an admin sets up people; the database enforces who may', async () => {
    expect((await cli(['unit', 'add', 'hq', ...u()])).code).toBe(0);
    expect((await cli(['unit', 'add', 'sales', '--parent', 'hq', ...u()])).code).toBe(0);
    const adam = await cli(['person', 'add', 'adam', '--unit', 'hq', '--job', 'crm_admin', ...u()]);
    expect(adam.code, adam.stderr).toBe(0);
    expect(adam.stdout).toContain(`as role ${t.prefix}adam`);
    // adam acts through the application role, as a person
    const asAdam = ['--as', `${t.prefix}adam`];
    const bob = await cli([
      'person',
      'add',
      'bob',
      '--unit',
      'sales',
      '--job',
      'sales_rep',
      ...u(),
      ...asAdam,
    ]);
    expect(bob.code, bob.stderr).toBe(0);
    const self = await cli(['grant', 'job', 'adam', 'sales_director', ...u(), ...asAdam]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('may not grant anything to themselves');
    const unknownJob = await cli(['grant', 'job', 'bob', 'sales_rpe', ...u(), ...asAdam]);
    expect(unknownJob.stderr).toContain('job "sales_rpe" is not in the model');
    expect(unknownJob.stderr).toContain('Known jobs:');
    const bobAsAdmin = await cli(['unit', 'add', 'x', ...u(), '--as', `${t.prefix}bob`]);
    expect(bobAsAdmin.code).toBe(1);
    expect(bobAsAdmin.stderr).toContain('may not manage people');
    const access = await cli([
      'grant',
      'access',
      'bob',
      'customers',
      '--filter',
      '{"region":"east"}',
      '--until',
      '2d',
      ...u(),
      ...asAdam,
    ]);
    expect(access.code, access.stderr).toBe(0);
    const badFilter = await cli([
      'grant',
      'access',
      'bob',
      'customers',
      '--filter',
      '{"phone":"1"}',
      '--until',
      '2d',
      ...u(),
      ...asAdam,
    ]);
    expect(badFilter.stderr).toContain('cannot filter on column "phone"');
    expect(
      (
        await cli([
          'share',
          'add',
          'customers',
          '42',
          '--with',
          'bob',
          '--until',
          '7d',
          ...u(),
          ...asAdam,
        ])
      ).code,
    ).toBe(0);
    expect((await cli(['person', 'move', 'bob', '--unit', 'hq', ...u()])).stdout).toContain(
      'bob moved to hq',
    );
    const list = await cli(['person', 'list', ...u()]);
    expect(list.stdout).toMatch(/bob\s+\S+bob\s+hq\s+true\s+sales_rep/);
    const grants = await cli(['grant', 'list', ...u()]);
    expect(grants.stdout).toContain('select customers {"region": ["east"]}');
    expect((await cli(['share', 'list', ...u()])).stdout).toMatch(/customers\s+42\s+bob/);
    expect((await cli(['person', 'deactivate', 'bob', ...u()])).code).toBe(0);
    const [row] = await t.sql`SELECT active FROM pgwarden.people WHERE name = 'bob'`;
    expect(row?.active).toBe(false);
  });
});

describe('preflight', () => {
  it('a model over tables that do not exist is refused with the fix, before anything changes', async () => {
    const d = await createTestDatabase();
    try {
      const r = await cli([
        'apply',
        '--model',
        'examples/crm/model.ts',
        '--url',
        d.url,
        '--role-prefix',
        d.prefix,
        '--yes',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('schema "crm"');
      expect(r.stderr).toContain('drizzle-kit migrate');
      await d.sql.unsafe('CREATE SCHEMA crm');
      const r2 = await cli([
        'plan',
        '--model',
        'examples/crm/model.ts',
        '--url',
        d.url,
        '--role-prefix',
        d.prefix,
      ]);
      expect(r2.stderr).toContain('table "crm"."customers"');
      await d.sql.unsafe(`CREATE ROLE ${quoteIdent(`${d.prefix}dba`)} LOGIN PASSWORD 'pw'`);
      const u = new URL(d.url);
      u.username = `${d.prefix}dba`;
      u.password = 'pw';
      const r3 = await cli([
        'plan',
        '--model',
        'examples/crm/model.ts',
        '--url',
        u.toString(),
        '--role-prefix',
        d.prefix,
      ]);
      expect(r3.stderr).toContain('is not a superuser');
      const [s] = await d.sql`SELECT to_regnamespace('pgwarden') AS p`;
      expect(s?.p).toBeNull();
    } finally {
      await d.cleanup();
    }
  });
});

describe('help', () => {
  it('every command has help with an example', async () => {
    const commands = [
      ['generate'],
      ['plan'],
      ['apply'],
      ['demo'],
      ['person', 'add'],
      ['grant', 'access'],
      ['share', 'add'],
      ['person', 'offboard'],
      ['person', 'move'],
      ['claim'],
      ['release'],
      ['restore'],
      ['bin', 'purge'],
      ['whoami'],
      ['grant', 'approve'],
      ['grant', 'reject'],
      ['grant', 'sweep'],
      ['grant', 'list'],
      ['reveal'],
      ['export'],
      ['request', 'export'],
      ['requests'],
      ['approve'],
      ['reject'],
      ['alerts'],
      ['audit', 'verify'],
      ['audit', 'report'],
      ['diff'],
      ['check'],
      ['test'],
      ['explain'],
      ['review'],
      ['report'],
      ['doctor'],
    ];
    // a few at a time: each is a node process starting up
    for (let i = 0; i < commands.length; i += 4) {
      await Promise.all(
        commands.slice(i, i + 4).map(async (cmd) => {
          const r = await cli([...cmd, '--help']);
          expect(r.code, cmd.join(' ')).toBe(0);
          expect(r.stdout, cmd.join(' ')).toMatch(/Example/);
        }),
      );
    }
  }, 240_000);

  it('errors name the fix, without a stack unless --debug', async () => {
    const r = await cli(['plan', '--model', 'examples/crm/model.ts'], { DATABASE_URL: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no database to connect to');
    expect(r.stderr).toContain('--url');
    expect(r.stderr).not.toContain('    at ');
  });
});

describe('demo --url', () => {
  it('sets up the CRM on a given server and walks through the scenario', async () => {
    const d = await createTestDatabase();
    try {
      const r = await cli(['demo', '--url', d.url, '--role-prefix', d.prefix]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/alice .*: 25 customers/);
      expect(r.stdout).toContain('138****0000');
      expect(r.stdout).toMatch(/tom's grant ends: \d+ customers before, 0 after/);
      expect(r.stdout).toContain('refused');
      expect(r.stdout).not.toContain('unexpected');
      const [n] = await d.sql`SELECT count(*)::int AS n FROM crm.customers`;
      expect(n?.n).toBeGreaterThanOrEqual(40);
    } finally {
      await d.cleanup();
    }
  });
});

describe('writes and lifecycle from the command line', () => {
  it('claim, release, delete + restore, approvals, sweep, whoami and offboard', async () => {
    const d = await createTestDatabase();
    try {
      const { setupCrm } = await import('../examples/crm/setup.js');
      await setupCrm(d.sql, { rolePrefix: d.prefix });
      const u = ['--url', d.url];
      const as = (p: string) => ['--as', `${d.prefix}${p}`];
      const [pool] =
        await d.sql`SELECT id::int FROM crm.customers WHERE in_pool ORDER BY id LIMIT 1`;
      const claim = await cli(['claim', 'customers', String(pool?.id), ...u, ...as('alice')]);
      expect(claim.stdout, claim.stderr).toContain(
        `claimed customers ${pool?.id}; 4 claim(s) left today`,
      );
      const refused = await cli(['claim', 'customers', String(pool?.id), ...u, ...as('carol')]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('carol may not claim customers');
      expect(
        (await cli(['release', 'customers', String(pool?.id), ...u, ...as('alice')])).stdout,
      ).toContain('released');

      await d.sql.begin(async (tx) => {
        await tx`SELECT set_config('role', ${`${d.prefix}carol`}, true)`;
        await tx`DELETE FROM crm_api.customers WHERE id = 3`;
      });
      const bin = await cli(['bin', 'list', ...u]);
      expect(bin.stdout).toMatch(/customers\s+3\s+carol/);
      const [b] = await d.sql`SELECT id::int FROM pgwarden.recycle_bin WHERE row_key = '3'`;
      const restored = await cli(['restore', String(b?.id), ...u, ...as('carol')]);
      expect(restored.stdout, restored.stderr).toMatch(
        /restored customers 3 \(\d+ row\(s\) with its children\)/,
      );
      expect((await cli(['bin', 'purge', '--dry-run', ...u])).stdout).toContain(
        'would purge 0 entries',
      );

      const req = await cli(['grant', 'job', 'bob', 'sales_director', ...u, ...as('adam')]);
      expect(req.stdout, req.stderr).toMatch(
        /sales_director is privileged: request (\d+) for bob waits for approval by a holder of compliance_officer/,
      );
      const id = /request (\d+)/.exec(req.stdout)?.[1] as string;
      expect((await cli(['grant', 'requests', ...u])).stdout).toMatch(
        new RegExp(`${id}\\s+bob\\s+sales_director`),
      );
      const self = await cli(['grant', 'approve', id, ...u, ...as('adam')]);
      expect(self.stderr).toContain('adam may not approve job requests');
      expect((await cli(['grant', 'approve', id, ...u, ...as('olga')])).stdout).toContain(
        `request ${id} approved`,
      );

      const expiring = await cli(['grant', 'list', '--expiring', '10d', ...u]);
      expect(expiring.stdout).toMatch(/share\s+\d+\s+alice\s+customers 19/);
      expect(expiring.stdout).not.toContain('double11'); // 30 days away
      await d.sql`UPDATE pgwarden.shares SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day' WHERE person = 'alice'`;
      expect((await cli(['grant', 'sweep', ...u, ...as('adam')])).stdout).toContain(
        'removed 1 shares',
      );
      expect((await cli(['grant', 'sweep', ...u])).stdout).toContain('nothing has ended');

      const me = JSON.parse((await cli(['whoami', ...u, ...as('tom')])).stdout) as {
        person: string;
        temporary_grants: { label: string }[];
      };
      expect(me.person).toBe('tom');
      expect(me.temporary_grants[0]?.label).toBe('double11');

      const bad = await cli(['person', 'offboard', 'alice', ...u]);
      expect(bad.stderr).toContain('exactly one of --handover <person> or --to-pool');
      const off = await cli([
        'person',
        'offboard',
        'alice',
        '--handover',
        'bob',
        ...u,
        ...as('adam'),
      ]);
      expect(off.stdout, off.stderr).toMatch(/alice offboarded: .*\d+ customers.* moved to bob/);
      expect(
        (await cli(['person', 'offboard', 'alice', '--handover', 'bob', ...u, ...as('adam')]))
          .stdout,
      ).toContain('already offboarded; nothing left to do');
    } finally {
      await d.cleanup();
    }
  });
});

describe('the audit log from the command line', () => {
  it('seal, anchor, verify, log, report, archive; verify exits 2 on tampering', async () => {
    const d = await createTestDatabase();
    const out = mkdtempSync(join(tmpdir(), 'pgw-audit-'));
    try {
      const { setupCrm } = await import('../examples/crm/setup.js');
      await setupCrm(d.sql, { rolePrefix: d.prefix });
      const u = ['--url', d.url];
      await d.sql.begin(async (tx) => {
        await tx`SELECT set_config('role', ${`${d.prefix}alice`}, true)`;
        await tx`UPDATE crm_api.customers SET status = 'active' WHERE id = 1`;
      });
      // history from last month (as if the log had been running then), before the first seal
      const lastMonth = new Date();
      lastMonth.setUTCDate(1);
      lastMonth.setUTCMonth(lastMonth.getUTCMonth() - 1);
      // (three row changes in the customers' data log, two permission changes in the events;
      // the log was made this month, so its partition for last month is made first, as
      // `audit seal` would have made it then)
      await d.sql`SELECT pgwarden_audit.ensure_partitions()`;
      await d.sql`INSERT INTO pgwarden_audit.data_customers (recorded_at, op, key, actor, authenticator, txid, statement_at, o_status, n_status)
        SELECT ${lastMonth.toISOString()}::timestamptz + g * interval '1 hour', 'U', g, 'postgres', 'postgres', pg_current_xact_id(), ${lastMonth.toISOString()}::timestamptz, 'lead', 'active'
        FROM generate_series(1, 3) g`;
      await d.sql`INSERT INTO pgwarden_audit.events (recorded_at, kind, operation, table_name, row_key, actor, authenticator, statement_at)
        SELECT ${lastMonth.toISOString()}::timestamptz + g * interval '1 hour', 'permission', 'UPDATE', 'pgwarden.people', g::text, 'postgres', 'postgres', ${lastMonth.toISOString()}::timestamptz
        FROM generate_series(4, 5) g`;
      expect((await cli(['audit', 'seal', ...u])).stdout).toMatch(/sealed \d+ record\(s\)/);
      // (a transaction running elsewhere on the server may have held some back)
      await sealAll(d.sql);
      const anchorText = (await cli(['audit', 'anchor', ...u])).stdout.trim();
      const a = JSON.parse(anchorText) as { seq: number; hash: string };
      expect(a.seq).toBeGreaterThan(0);
      const ok = await cli(['audit', 'verify', '--anchor', anchorText, ...u]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(`the chain verifies: ${a.seq} link(s)`);

      const log = await cli([
        'audit',
        'log',
        '--table',
        'customers',
        '--row',
        '1',
        '--as',
        `${d.prefix}audrey`,
        ...u,
      ]);
      expect(log.stdout, log.stderr).toMatch(
        /data\s+UPDATE crm\.customers 1 {2}by alice via postgres {2}\{"status":/,
      );
      const denied = await cli(['audit', 'log', '--as', `${d.prefix}adam`, ...u]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('adam may not read the audit log');

      const from = new Date(Date.now() - 3_600_000).toISOString();
      const to = new Date(Date.now() + 3_600_000).toISOString();
      const csvFile = join(out, 'report.csv');
      const rep = await cli([
        'audit',
        'report',
        '--from',
        from,
        '--to',
        to,
        '--format',
        'csv',
        '--out',
        csvFile,
        '--as',
        `${d.prefix}audrey`,
        ...u,
      ]);
      expect(rep.code, rep.stderr).toBe(0);
      const csv = readFileSync(csvFile, 'utf8').trim().split('\n');
      expect(csv[0]).toBe(
        'id,recorded_at,kind,table_name,operation,row_key,person,actor,authenticator,txid,changes,detail,chain_seq',
      );
      expect(
        csv.some((l) => l.includes(',data,crm.customers,UPDATE,1,alice,')),
        csv.filter((l) => l.includes('UPDATE')).join('\n'),
      ).toBe(true);
      expect(csv.some((l) => l.includes(',permission,pgwarden.job_grants,INSERT,'))).toBe(true);
      expect(csv.some((l) => l.includes(',apply,pgwarden.applies,INSERT,'))).toBe(true);
      const json = JSON.parse(
        (
          await cli([
            'audit',
            'report',
            '--from',
            from,
            '--to',
            to,
            '--format',
            'json',
            '--as',
            `${d.prefix}audrey`,
            ...u,
          ])
        ).stdout,
      ) as { count: number; records: unknown[] };
      expect(json.count).toBe(csv.length - 1);
      expect(json.records).toHaveLength(json.count);

      // tampering: a superuser edits a sealed record
      // (link 5 is the last of last month's history: a permission change, in the events)
      await d.sql.begin(async (tx) => {
        await tx.unsafe('ALTER TABLE pgwarden_audit.events DISABLE TRIGGER append_only');
        await tx`UPDATE pgwarden_audit.events SET person = 'mallory' WHERE id = (SELECT record_id FROM pgwarden_audit.chain WHERE seq = 5)`;
        await tx.unsafe('ALTER TABLE pgwarden_audit.events ENABLE ALWAYS TRIGGER append_only');
      });
      const bad = await cli(['audit', 'verify', '--anchor', anchorText, ...u]);
      expect(bad.code).toBe(2);
      expect(bad.stdout).toContain('TAMPERED');
      expect(bad.stdout).toMatch(/record \d+ \(chain link 5\) does not match its hash/);
      await d.sql.begin(async (tx) => {
        await tx.unsafe('ALTER TABLE pgwarden_audit.events DISABLE TRIGGER append_only');
        await tx`UPDATE pgwarden_audit.events SET person = NULL WHERE person = 'mallory'`;
        await tx.unsafe('ALTER TABLE pgwarden_audit.events ENABLE ALWAYS TRIGGER append_only');
      });

      // archiving: only months that are over; a verifiable file; the partition detached and kept
      const now = new Date().toISOString().slice(0, 7);
      const next = new Date();
      next.setUTCDate(1);
      next.setUTCMonth(next.getUTCMonth() + 1);
      const tooLate = await cli([
        'audit',
        'archive',
        '--before',
        next.toISOString().slice(0, 7),
        '--out',
        out,
        ...u,
      ]);
      expect(tooLate.code).toBe(1);
      expect(tooLate.stderr).toContain('only months that are over can be archived');
      const dry = await cli(['audit', 'archive', '--before', now, '--out', out, '--dry-run', ...u]);
      expect(dry.stdout, dry.stderr).toMatch(/would archive records_\d{4}_\d{2}: 5 record\(s\)/);
      const arch = await cli(['audit', 'archive', '--before', now, '--out', out, ...u]);
      expect(arch.code, arch.stderr).toBe(0);
      const month = /archived (records_\d{4}_\d{2})/.exec(arch.stdout)?.[1] as string;
      const lines = readFileSync(join(out, `${month}.jsonl`), 'utf8')
        .trim()
        .split('\n');
      const header = JSON.parse(lines[0] as string) as { records: number; prev_hash: string };
      expect(lines).toHaveLength(header.records + 1);
      // the file verifies on its own: recompute its links
      const { linkHash } = await import('../src/report/audit.js');
      let prev: Buffer = Buffer.from(header.prev_hash, 'hex');
      for (const l of lines.slice(1)) {
        const link = JSON.parse(l) as { prev?: string; hash: string; record: string };
        if (link.prev !== undefined) prev = Buffer.from(link.prev, 'hex');
        prev = linkHash(prev, link.record);
        expect(prev.toString('hex')).toBe(link.hash);
      }
      // the detached table is still append-only
      await expect(d.sql.unsafe(`DELETE FROM pgwarden_audit.${month}`)).rejects.toMatchObject({
        code: '42501',
      });
      await expect(d.sql.unsafe(`TRUNCATE pgwarden_audit.${month}`)).rejects.toMatchObject({
        code: '42501',
      });
      const [kept] =
        await d.sql`SELECT to_regclass(${`pgwarden_audit.${month}`}) IS NOT NULL AS kept`;
      expect(kept?.kept).toBe(true);
      // the customers' data log's partition of the month went with it, detached and kept too
      const logPart = `pgwarden_audit.${month.replace(/^records/, 'data_customers')}`;
      const [lp] = await d.sql`SELECT to_regclass(${logPart}) IS NOT NULL AS kept,
        EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass(${logPart})) AS attached`;
      expect(lp).toEqual({ kept: true, attached: false });
      await expect(d.sql.unsafe(`DELETE FROM ${logPart}`)).rejects.toMatchObject({
        code: '42501',
      });
      const after = await cli(['audit', 'verify', ...u]);
      expect(after.code, after.stdout).toBe(0);
      expect(after.stdout).toMatch(/\(\d+ archived\)/);
    } finally {
      await d.cleanup();
    }
  });
});

describe('reveal, export, requests and alerts from the command line', () => {
  it('a reveal, a refused export, an export to csv, a request approved by olga, alerts', async () => {
    const d = await createTestDatabase();
    const out = mkdtempSync(join(tmpdir(), 'pgw-export-'));
    try {
      const { setupCrm } = await import('../examples/crm/setup.js');
      await setupCrm(d.sql, { rolePrefix: d.prefix });
      const u = ['--url', d.url];
      const as = (p: string) => ['--as', `${d.prefix}${p}`];
      const [c] =
        await d.sql`SELECT id::int, pgwarden.decrypt_value(id_number, 'crm.customers.id_number') AS id_number FROM crm.customers WHERE owner = 'alice' AND id_number IS NOT NULL ORDER BY id LIMIT 1`;
      const rv = await cli([
        'reveal',
        'customers',
        String(c?.id),
        'id_number',
        ...u,
        ...as('alice'),
      ]);
      expect(rv.code, rv.stderr).toBe(0);
      expect(rv.stdout.trim()).toBe(c?.id_number);
      const nope = await cli([
        'reveal',
        'customers',
        String(c?.id),
        'id_number',
        ...u,
        ...as('bob'),
      ]);
      expect(nope.code).toBe(1);
      expect(nope.stderr).toContain('needs the row to be own or subtree to bob');

      const pat = await cli(['export', '--table', 'customers', ...u, ...as('pat')]);
      expect(pat.code).toBe(1);
      expect(pat.stderr).toContain('no export rule of the model lets pat export customers');

      const file = join(out, 'east.csv');
      const ex = await cli([
        'export',
        '--table',
        'customers',
        '--where',
        "region = 'east'",
        '--out',
        file,
        ...u,
        ...as('carol'),
      ]);
      expect(ex.code, ex.stderr).toBe(0);
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      expect(lines[0]).toBe(
        'id,name,owner,region,customer_type,status,in_pool,address,created_at,updated_at',
      );
      const [n] = await d.sql.begin(async (tx) => {
        await tx`SELECT set_config('role', ${`${d.prefix}carol`}, true)`;
        return tx`SELECT count(*)::int AS n FROM crm_api.customers WHERE region = 'east'`;
      });
      expect(lines.length - 1).toBe(n?.n);
      const badWhere = await cli([
        'export',
        '--table',
        'customers',
        '--where',
        "region = 'east' OR 1=1",
        ...u,
        ...as('carol'),
      ]);
      expect(badWhere.stderr).toContain('is not a supported filter');

      const req = await cli([
        'request',
        'export',
        '--table',
        'customers',
        '--columns',
        'id,name,phone',
        '--reason',
        'renewals',
        ...u,
        ...as('vera'),
      ]);
      expect(req.stdout, req.stderr).toMatch(/export request (\d+) waits for approval/);
      const id = /request (\d+)/.exec(req.stdout)?.[1] as string;
      expect((await cli(['requests', ...u, ...as('olga')])).stdout).toMatch(
        new RegExp(`${id}\\s+pending\\s+vera exports id,name,phone of customers`),
      );
      expect((await cli(['approve', id, ...u, ...as('vera')])).stderr).toContain(
        'vera may not approve export requests',
      );
      expect((await cli(['approve', id, ...u, ...as('olga')])).stdout).toContain(
        `export request ${id}: approved`,
      );
      const json = await cli([
        'export',
        '--table',
        'customers',
        '--columns',
        'id,name,phone',
        '--request',
        id,
        '--format',
        'json',
        ...u,
        ...as('vera'),
      ]);
      expect(json.code, json.stderr).toBe(0);
      const rows = JSON.parse(json.stdout) as { phone: string | null }[];
      expect(rows.length).toBeGreaterThan(0);

      const alerts = await cli(['alerts', '--since', '1h', ...u, ...as('audrey')]);
      expect(alerts.stdout).toMatch(/export_refused\s+pat/);
      expect(alerts.stdout).toMatch(/reveal_refused\s+bob/);
      expect((await cli(['alerts', ...u, ...as('alice')])).stderr).toContain(
        'alice may not read alerts',
      );
    } finally {
      await d.cleanup();
    }
  });
});
