/**
 * Model loading and validation: pure, no database. Every problem of a model comes back in one
 * call, with its code, path and (for YAML/JSON) line and column.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bigint, boolean, pgSchema, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { defineModel, table } from '../src/model/define.js';
import { checkExpression } from '../src/model/expression.js';
import { loadModel } from '../src/model/load.js';
import { formatPath, type Problem } from '../src/model/problems.js';
import type { ModelInput } from '../src/model/types.js';
import { validateModel, withColumns } from '../src/model/validate.js';

const dir = mkdtempSync(join(tmpdir(), 'pgwarden-model-'));
function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** 1-based line of the first line containing `needle` */
function lineOf(text: string, needle: string, from = 1): number {
  const lines = text.split('\n');
  for (let i = from - 1; i < lines.length; i++) if (lines[i]?.includes(needle)) return i + 1;
  throw new Error(`${needle} not found`);
}

const summary = (ps: readonly Problem[]) => ps.map((p) => [p.code, formatPath(p.path)]);

const minimal: ModelInput = {
  schemas: { protected: 'crm', exposed: 'crm_api' },
  jobs: ['sales_rep'],
  tables: {
    customers: {
      owner: 'owner',
      rules: [{ jobs: ['sales_rep'], scopes: ['own'] }],
    },
  },
};

const LONG = 'o'.repeat(64);

// One model with many problems. Line numbers are asserted below, so keep the layout.
const BAD_YAML = `name: shop
schemas:
  protected: crm
  exposed: crm_api
jobs: [sales_rep, support]
masks:
  short:
    sql: left(value, 2) || '***'
tables:
  customers:
    columns: [id, owner, status, phone, region]
    owner: ownr
    rules:
      - jobs: [sales_rep]
        scopes: [own]
      - jobs: [sales_rpe]
        scopes: [own]
      - jobs: [support]
        commands: [select]
        scopes:
          - filter: "status = 'active' AND"
          - filter: "status = 'a'; drop table crm.customers"
          - filter: "true) OR (1=1"
      - jobs: [sales_rep]
        scopes: [own]
    cells:
      phnoe:
        own: full
      phone:
        own: full
        shard: mask:phone
        job:support: mask:shrot
        default: hidden
  orders:
    name: ${LONG}
    rules:
      - jobs: [support]
        scopes: [all]
  notes:
    columns: [id, customer_id]
    rules:
      - jobs: [support]
        scopes:
          - parent: { column: customer_id, table: custmers }
`;

const EXPECTED: [string, string][] = [
  ['unknown_column', 'tables.customers.owner'],
  ['unknown_job', 'tables.customers.rules[1].jobs[0]'],
  ['invalid_filter', 'tables.customers.rules[2].scopes[0].filter'],
  ['invalid_filter', 'tables.customers.rules[2].scopes[1].filter'],
  ['invalid_filter', 'tables.customers.rules[2].scopes[2].filter'],
  ['duplicate_rule', 'tables.customers.rules[3]'],
  ['unknown_column', 'tables.customers.cells.phnoe'],
  ['unknown_relation', 'tables.customers.cells.phone.shard'],
  ['unknown_mask', 'tables.customers.cells.phone["job:support"]'],
  ['name_too_long', 'tables.orders.name'],
  ['unknown_table', 'tables.notes.rules[0].scopes[0].parent.table'],
];

function sortByPath(ps: readonly Problem[]) {
  return [...ps].sort((a, b) => (formatPath(a.path) < formatPath(b.path) ? -1 : 1));
}

describe('validateModel', () => {
  it('accepts a minimal model and normalizes it with defaults', async () => {
    const { model, problems } = await validateModel(minimal);
    expect(problems).toEqual([]);
    expect(model).not.toBeNull();
    if (!model) return;
    expect(model.name).toBe('model');
    expect(model.roles).toEqual({
      authenticator: 'app',
      tableOwner: 'crm_owner',
      viewOwner: 'crm_api_owner',
      people: 'crm_people',
    });
    expect(model.jobs).toEqual([
      { name: 'sales_rep', description: null, admin: false, privileged: false },
    ]);
    expect(model.masks.map((m) => [m.name, m.builtin, m.sql])).toEqual([
      ['email', true, null],
      ['id_number', true, null],
      ['null', true, null],
      ['phone', true, null],
    ]);
    const [t] = model.tables;
    expect(t).toMatchObject({
      name: 'customers',
      table: 'customers',
      key: 'id',
      keyType: 'bigint',
      owner: 'owner',
      unit: null,
      pool: null,
      grantable: [],
      cells: [],
      columns: [],
    });
    expect(t?.rules).toEqual([
      {
        jobs: ['sales_rep'],
        commands: ['select', 'insert', 'update', 'delete'],
        scopes: [{ kind: 'own' }],
      },
    ]);
    expect(Object.isFrozen(model)).toBe(true);
    expect(Object.isFrozen(model.tables[0]?.rules[0]?.scopes)).toBe(true);
  });

  it('normalizes scopes, cells, levels, job records and sorts tables, jobs and masks', async () => {
    const { model, problems } = await validateModel({
      name: 'n',
      schemas: { protected: 'p', exposed: 'e' },
      jobs: { zed: { admin: true }, alpha: { description: 'a', privileged: true } },
      approvals: { approvers: ['zed'] },
      masks: { short: { sql: " left(value, 2) || '***' " } },
      tables: {
        zoo: {
          columns: ['id', 'owner', { name: 'phone', type: 'varchar(20)' }, 'parent_id'],
          owner: 'owner',
          rules: [
            {
              jobs: ['alpha', '*'],
              commands: ['select'],
              scopes: [
                { filter: ' true ' },
                { parent: { column: 'parent_id', table: 'apes', via: ['own'] } },
              ],
            },
          ],
          cells: { phone: { own: 'full', 'job:zed': { mask: 'short' }, shared: 'mask:phone' } },
        },
        apes: {
          key: 'code',
          columns: [{ name: 'code', type: 'bigserial' }, 'owner'],
          owner: 'owner',
          rules: [{ jobs: ['zed'], scopes: ['all'] }],
        },
      },
    });
    expect(problems).toEqual([]);
    if (!model) throw new Error('no model');
    expect(model.tables.map((t) => t.name)).toEqual(['apes', 'zoo']);
    expect(model.jobs.map((j) => [j.name, j.admin, j.privileged, j.description])).toEqual([
      ['alpha', false, true, 'a'],
      ['zed', true, false, null],
    ]);
    expect(model.approvers).toEqual(['zed']);
    expect(model.masks.find((m) => m.name === 'short')).toEqual({
      name: 'short',
      sql: "left(value, 2) || '***'",
      builtin: false,
    });
    expect(model.tables[0]?.keyType).toBe('bigint');
    const zoo = model.tables[1];
    expect(zoo?.rules[0]?.scopes).toEqual([
      { kind: 'filter', sql: 'true' },
      { kind: 'parent', column: 'parent_id', table: 'apes', via: ['own'] },
    ]);
    expect(zoo?.cells).toEqual([
      {
        column: 'phone',
        cases: [
          { when: { kind: 'relation', relation: 'own' }, level: { kind: 'full' } },
          { when: { kind: 'job', job: 'zed' }, level: { kind: 'mask', mask: 'short' } },
          {
            when: { kind: 'relation', relation: 'shared' },
            level: { kind: 'mask', mask: 'phone' },
          },
        ],
        otherwise: { kind: 'hidden' },
      },
    ]);
  });

  it('reports every problem of a YAML model at once, with codes, paths and lines', async () => {
    const file = write('bad.yaml', BAD_YAML);
    const { model, problems } = await loadModel(file);
    expect(model).toBeNull();
    expect(summary(sortByPath(problems))).toEqual(
      [...EXPECTED].sort((a, b) => (a[1] < b[1] ? -1 : 1)),
    );
    const at = (path: string) => problems.find((p) => formatPath(p.path) === path)?.location;
    const y = BAD_YAML;
    expect(at('tables.customers.owner')).toEqual({ file, line: 12, column: 5 });
    expect(at('tables.customers.rules[1].jobs[0]')).toEqual({ file, line: 16, column: 16 });
    expect(at('tables.customers.rules[2].scopes[0].filter')?.line).toBe(
      lineOf(y, "status = 'active' AND"),
    );
    expect(at('tables.customers.rules[2].scopes[1].filter')?.line).toBe(lineOf(y, 'drop table'));
    expect(at('tables.customers.rules[2].scopes[2].filter')?.line).toBe(lineOf(y, 'true) OR (1=1'));
    expect(at('tables.customers.rules[3]')).toEqual({ file, line: 24, column: 9 });
    expect(at('tables.customers.cells.phnoe')?.line).toBe(lineOf(y, 'phnoe:'));
    expect(at('tables.customers.cells.phone.shard')?.line).toBe(lineOf(y, 'shard:'));
    expect(at('tables.customers.cells.phone["job:support"]')?.line).toBe(lineOf(y, 'job:support:'));
    expect(at('tables.orders.name')?.line).toBe(lineOf(y, LONG));
    expect(at('tables.notes.rules[0].scopes[0].parent.table')?.line).toBe(lineOf(y, 'custmers'));
    // every problem says what to do
    for (const p of problems) {
      expect(p.message.length).toBeGreaterThan(10);
      expect(p.fix.length).toBeGreaterThan(5);
    }
    expect(problems.find((p) => p.code === 'unknown_job')?.message).toContain(
      'Did you mean "sales_rep"?',
    );
    expect(problems.find((p) => p.code === 'unknown_mask')?.message).toContain(
      'Did you mean "short"?',
    );
  });

  it('reports the same problems for the same model in JSON, with JSON lines', async () => {
    const json = JSON.stringify(parseYaml(BAD_YAML), null, 2);
    const file = write('bad.json', json);
    const { model, problems } = await loadModel(file);
    expect(model).toBeNull();
    expect(summary(sortByPath(problems))).toEqual(
      [...EXPECTED].sort((a, b) => (a[1] < b[1] ? -1 : 1)),
    );
    const at = (path: string) => problems.find((p) => formatPath(p.path) === path)?.location;
    expect(at('tables.customers.owner')).toEqual({
      file,
      line: lineOf(json, '"owner": "ownr"'),
      column: 7,
    });
    expect(at('tables.customers.rules[1].jobs[0]')?.line).toBe(lineOf(json, '"sales_rpe"'));
    expect(at('tables.customers.rules[2].scopes[2].filter')?.line).toBe(
      lineOf(json, 'true) OR (1=1'),
    );
    expect(at('tables.customers.cells.phnoe')?.line).toBe(lineOf(json, '"phnoe"'));
    expect(at('tables.customers.cells.phone["job:support"]')?.line).toBe(
      lineOf(json, '"job:support"'),
    );
    expect(at('tables.orders.name')?.line).toBe(lineOf(json, LONG));
  });

  it('accepts hostile schema, table and column names (they are always quoted)', async () => {
    const { model, problems } = await validateModel({
      schemas: { protected: 'Crm "x"; drop schema', exposed: 'crm.api' },
      roles: { authenticator: 'App', tableOwner: 'owner-1', viewOwner: 'viewer_1', people: '人々' },
      jobs: ['销售', 'Sales-Rep'],
      tables: {
        items: {
          name: 'Order "Items"; DROP TABLE x; --\'',
          columns: ['ID', 'Ph.one"', '电话', "o'wner"],
          key: 'ID',
          owner: "o'wner",
          rules: [{ jobs: ['销售', 'Sales-Rep'], scopes: ['own'] }],
          cells: {
            电话: { own: 'full', 'job:Sales-Rep': 'mask:phone' },
            'Ph.one"': { default: 'hidden' },
          },
        },
      },
    });
    expect(problems).toEqual([]);
    expect(model?.tables[0]?.table).toBe('Order "Items"; DROP TABLE x; --\'');
  });

  it('rejects hostile job, mask, table model and role names with invalid_name', async () => {
    const { model, problems } = await validateModel({
      schemas: { protected: 'crm', exposed: 'crm_api' },
      roles: { authenticator: 'app"; drop role x; --', people: 'pg_people' },
      jobs: ['sales rep', 'x";drop', '', 'ok'],
      masks: { 'a.b': { sql: 'value' } },
      tables: {
        'my table': { rules: [{ jobs: ['ok'], scopes: ['all'] }] },
      },
    });
    expect(model).toBeNull();
    expect(summary(problems)).toEqual([
      ['invalid_name', 'roles.authenticator'],
      ['invalid_name', 'roles.people'],
      ['invalid_name', 'jobs[0]'],
      ['invalid_name', 'jobs[1]'],
      ['invalid_name', 'jobs[2]'],
      ['invalid_name', 'masks["a.b"]'],
      ['invalid_name', 'tables["my table"]'],
    ]);
  });

  it('rejects names over 63 bytes, counting UTF-8 bytes and derived names', async () => {
    const { problems } = await validateModel({
      schemas: { protected: 'é'.repeat(32), exposed: 'api' }, // 64 bytes
      roles: { tableOwner: 'a', people: 'b' },
      jobs: ['j'.repeat(64)],
      masks: { ['m'.repeat(60)]: { sql: 'value' } }, // mask_custom_ + 60 > 63
      tables: {
        t: {
          name: 'x'.repeat(60),
          columns: ['id', 'c'.repeat(64)],
          rules: [{ jobs: ['*'], scopes: ['all'] }],
        },
      },
    });
    expect(summary(problems)).toEqual([
      ['name_too_long', 'schemas.protected'],
      ['name_too_long', 'jobs[0]'],
      ['name_too_long', `masks.${'m'.repeat(60)}`],
      ['name_too_long', 'tables.t.name'], // policy x..x_select
      ['name_too_long', 'tables.t.columns[1]'],
    ]);
    // 63 bytes are fine
    const ok = await validateModel({
      ...minimal,
      jobs: ['j'.repeat(63)],
      tables: { t: { rules: [{ jobs: ['j'.repeat(63)], scopes: ['all'] }] } },
    });
    expect(ok.problems).toEqual([]);
  });

  it('checks structure, scopes, cells, schemas and cycles', async () => {
    const { problems } = await validateModel({
      schemas: { protected: 'crm', exposed: 'crm' },
      jobs: ['a', 'a'],
      extra: 1,
      tables: {
        t: {
          columns: ['id', 'owner', { name: 'age', type: 'integer' }, 'p_id'],
          owner: 'owner',
          rules: [
            {
              jobs: ['a'],
              commands: ['select', 'selct'],
              scopes: ['pool', 'granted', 'everything'],
            },
            { jobs: ['a'], scopes: [{ parent: { column: 'p_id', table: 'u' } }] },
          ],
          cells: {
            age: { own: 'mask:phone', default: 'hidden' },
            owner: { default: 'hidden' },
            id: { default: 'full' },
          },
        },
        u: {
          unit: 'unit',
          rules: [
            {
              jobs: ['a'],
              scopes: [
                { parent: { column: 't_id', table: 't' } },
                { parent: { column: 't_id', table: 't', via: ['pool'] } },
              ],
            },
          ],
          cells: { x: { default: 'full', own: 'full' } },
        },
        empty: { rules: [] },
      },
    });
    expect(summary(problems)).toEqual([
      ['invalid_structure', 'extra'],
      ['same_schema', 'schemas.exposed'],
      ['conflicting_rule', 'jobs[1]'],
      ['invalid_structure', 'tables.t.rules[0].commands[1]'],
      ['missing_column_for_scope', 'tables.t.rules[0].scopes[0]'],
      ['missing_column_for_scope', 'tables.t.rules[0].scopes[1]'],
      ['invalid_structure', 'tables.t.rules[0].scopes[2]'],
      ['mask_on_non_text', 'tables.t.cells.age.own'],
      ['conflicting_rule', 'tables.t.cells.owner'],
      ['missing_column_for_scope', 'tables.u.rules[0].scopes[1].parent.via[0]'],
      ['conflicting_rule', 'tables.u.cells.x.default'],
      ['missing_column_for_scope', 'tables.u.cells.x.own'],
      ['no_rules', 'tables.empty.rules'],
      ['parent_cycle', 'tables.u.rules[0].scopes[0].parent'],
    ]);
  });

  it('requires columns only when asked, and withColumns fills them in', async () => {
    const input: ModelInput = {
      ...minimal,
      tables: {
        customers: {
          owner: 'owner',
          cells: { phone: { own: 'full' } },
          rules: [{ jobs: ['sales_rep'], scopes: ['own'] }],
        },
      },
    };
    expect((await validateModel(input)).problems).toEqual([]);
    expect(summary((await validateModel(input, { requireColumns: true })).problems)).toEqual([
      ['no_columns', 'tables.customers'],
    ]);
    const filled = withColumns(input, {
      customers: [
        { name: 'id', type: 'uuid' },
        { name: 'owner', type: 'text' },
      ],
    });
    const again = await validateModel(filled, { requireColumns: true });
    expect(summary(again.problems)).toEqual([['unknown_column', 'tables.customers.cells.phone']]);
    const ok = await validateModel(
      withColumns(input, {
        customers: [
          { name: 'id', type: 'uuid' },
          { name: 'owner', type: 'text' },
          { name: 'phone', type: null },
        ],
      }),
      { requireColumns: true },
    );
    expect(ok.problems).toEqual([]);
    expect(ok.model?.tables[0]?.keyType).toBe('uuid');
  });
});

describe('checkExpression', () => {
  it.each([
    "status = 'active'",
    "status IN ('lead', 'active')",
    'EXISTS (SELECT FROM crm.contracts k WHERE k.customer_id = customers.id)',
    "status = 'a;b'",
    "left(value, 2) || '***'",
    "E'a\\\\b' = x",
    '$$x$$ = y',
    '(select 1) = 1',
    // libpg-query's own wrapper refused any text whose tree contains ERROR (src/sql/pg-parser.ts)
    "status <> 'ERROR'",
    // a literal over two lines (the scanner's JSON had the newline unescaped)
    "note = 'line one\nline two'",
  ])('accepts %s', async (text) => {
    expect(await checkExpression(text)).toEqual({ ok: true, normalized: text });
  });

  it.each([
    '',
    '   ',
    'true) OR (1=1',
    '1) ; drop table x; select (1',
    "status = 'a'; drop table crm.customers",
    'true;',
    'x -- trailing comment',
    'x /* unterminated',
    "'a\\' = b",
    'a, b',
    '1 AS x',
    '*',
    '1 UNION SELECT 2',
    'select 1',
    '1 FROM t',
    'a\u0000; drop table x',
    'drop table x',
  ])('rejects %j', async (text) => {
    const r = await checkExpression(text);
    expect(r.ok).toBe(false);
  });
});

describe('loadModel', () => {
  it('loads the TS example through tsx, and hashes the normalized model', async () => {
    const r = await loadModel('examples/crm/model.ts');
    expect(r.problems).toEqual([]);
    expect(r.model?.tables.map((t) => t.name)).toEqual([
      'contacts',
      'contracts',
      'customers',
      'deals',
    ]);
    expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
    const again = await loadModel('examples/crm/model.ts');
    expect(again.hash).toBe(r.hash);
  });

  it('reports a missing file, YAML and JSON syntax errors and duplicate keys', async () => {
    expect(summary((await loadModel(join(dir, 'nope.yaml'))).problems)).toEqual([
      ['file_not_found', '(model)'],
    ]);

    const yamlFile = write('syntax.yaml', 'schemas:\n  protected: crm\n  exposed: [a\njobs: []\n');
    const y = await loadModel(yamlFile);
    expect(y.problems[0]?.code).toBe('invalid_syntax');
    expect(y.problems[0]?.location?.file).toBe(yamlFile);
    expect(y.problems[0]?.location?.line).toBeGreaterThanOrEqual(3);

    const jsonFile = write('syntax.json', '{\n  "schemas": {\n    "protected": "crm",\n  }\n}\n');
    const j = await loadModel(jsonFile);
    expect(summary(j.problems)).toEqual([['invalid_syntax', '(model)']]);
    expect(j.problems[0]?.location).toEqual({ file: jsonFile, line: 4, column: 3 });

    const dup = write(
      'dup.yaml',
      [
        'schemas: { protected: crm, exposed: api }',
        'jobs: { a: {}, a: {} }',
        'tables:',
        '  t:',
        '    rules: [{ jobs: [a], scopes: [all] }]',
        '    cells:',
        '      c:',
        '        own: full',
        '        own: hidden',
        '    rules: [{ jobs: [a], scopes: [all] }]',
        '',
      ].join('\n'),
    );
    const d = await loadModel(dup);
    expect(d.model).toBeNull();
    expect(summary(d.problems)).toEqual([
      ['conflicting_rule', 'jobs.a'],
      ['conflicting_rule', 'tables.t.cells.c.own'],
      ['duplicate_key', 'tables.t.rules'],
      ['missing_column_for_scope', 'tables.t.cells.c.own'],
    ]);
    expect(d.problems.map((p) => p.location?.line)).toEqual([2, 9, 10, 8]);
  });
});

// ---------------------------------------------------------------- types: column names are checked

const s = pgSchema('shop');
const people = s.table('people', {
  id: bigint('id', { mode: 'number' }).primaryKey(),
  owner: text('owner'),
  phone: text('phone'),
  inPool: boolean('in_pool'),
});

describe('table() from drizzle', () => {
  it('fills name, columns, key and key type, and maps column keys to SQL names', () => {
    const t = table(people, {
      owner: 'owner',
      pool: 'inPool',
      rules: [{ jobs: ['a'], scopes: ['own', 'pool'] }],
      cells: { phone: { own: 'full' } },
    });
    expect(t).toMatchObject({
      name: 'people',
      key: 'id',
      keyType: 'bigint',
      owner: 'owner',
      pool: 'in_pool',
      columns: [
        { name: 'id', type: 'bigint' },
        { name: 'owner', type: 'text' },
        { name: 'phone', type: 'text' },
        { name: 'in_pool', type: 'boolean' },
      ],
    });
  });

  it('makes a typo in a column name a compile error', () => {
    defineModel({
      schemas: { protected: 'shop', exposed: 'shop_api' },
      jobs: ['a'],
      tables: {
        // @ts-expect-error owner 'ownr' is not a column of people
        p1: table(people, { owner: 'ownr', rules: [{ jobs: ['a'], scopes: ['own'] }] }),
        p2: table(people, {
          rules: [{ jobs: ['a'], scopes: ['all'] }],
          // @ts-expect-error cell key 'phnoe' is not a column of people
          cells: { phnoe: { own: 'full' } },
        }),
        p3: table(people, {
          // @ts-expect-error parent column 'customer' is not a column of people
          rules: [{ jobs: ['a'], scopes: [{ parent: { column: 'customer', table: 'x' } }] }],
        }),
      },
    });
    expect(true).toBe(true);
  });
});

describe('writes, lifecycle and audit in the model', () => {
  const base = {
    schemas: { protected: 'p', exposed: 'e' },
    jobs: { rep: {}, boss: { privileged: true }, ok: {}, aud: {} },
    approvals: { approvers: ['ok'] },
    audit: { readers: ['aud'] },
  };
  const table = {
    columns: ['id', 'owner', 'pool', 'phone', 'parent_id'],
    owner: 'owner',
    pool: 'pool',
    rules: [
      { jobs: ['rep'], commands: ['select', 'update', 'delete'] as const, scopes: ['own'] },
      {
        jobs: ['rep'],
        commands: ['select'] as const,
        scopes: [{ parent: { column: 'parent_id', table: 'par' } }],
      },
    ],
  };
  const par = {
    columns: ['id', 'owner'],
    owner: 'owner',
    rules: [{ jobs: ['rep'], scopes: ['own'] }],
  };

  it('normalizes edits, claims, recycle bin, sensitive columns, approvers and audit readers', async () => {
    const { model, problems } = await validateModel({
      ...base,
      tables: {
        t: {
          ...table,
          edits: { phone: ['own', 'parent:own', 'job:ok'] },
          claims: { jobs: ['rep'], perDay: 3 },
          recycleBin: { retentionDays: 30 },
          sensitive: ['phone'],
        },
        par,
      },
    });
    expect(problems).toEqual([]);
    const t = model?.tables.find((x) => x.name === 't');
    expect(t?.edits).toEqual([
      {
        column: 'phone',
        who: [
          { kind: 'relation', relation: 'own' },
          { kind: 'parent', column: 'parent_id', table: 'par', relation: 'own' },
          { kind: 'job', job: 'ok' },
        ],
      },
    ]);
    expect(t?.claims).toEqual({ jobs: ['rep'], perDay: 3 });
    expect(t?.recycleBin).toEqual({ retentionDays: 30 });
    expect(t?.sensitive).toEqual(['phone']);
    expect(model?.approvers).toEqual(['ok']);
    expect(model?.auditReaders).toEqual(['aud']);
  });

  it('reports every mistake in them at once', async () => {
    const { model, problems } = await validateModel({
      ...base,
      approvals: { approvers: ['nobody'] },
      audit: { readers: ['ghost'] },
      tables: {
        t: {
          ...table,
          rules: [{ jobs: ['rep'], commands: ['select'], scopes: ['own'] }],
          edits: { id: ['own'], phoen: ['own'], phone: ['ownn', 'parent:own', 'job:nope'] },
          claims: { jobs: ['rep'], perDay: 0 },
          recycleBin: { retentionDays: 7 },
          sensitive: ['phnoe'],
        },
      },
    });
    expect(model).toBeNull();
    const got = problems.map((p) => `${p.code} ${p.path.join('.')}`);
    expect(got).toEqual(
      expect.arrayContaining([
        'unknown_job approvals.approvers.0',
        'unknown_job audit.readers.0',
        'conflicting_rule tables.t.edits.id',
        'unknown_column tables.t.edits.phoen',
        'unknown_relation tables.t.edits.phone.0',
        'missing_column_for_scope tables.t.edits.phone.1',
        'unknown_job tables.t.edits.phone.2',
        'conflicting_rule tables.t.edits',
        'invalid_structure tables.t.claims.perDay',
        'conflicting_rule tables.t.recycleBin',
        'unknown_column tables.t.sensitive.0',
      ]),
    );
  });

  it('privileged jobs need approvers', async () => {
    const { problems } = await validateModel({ ...base, approvals: undefined, tables: { par } });
    expect(problems.map((p) => p.code)).toContain('conflicting_rule');
    expect(problems.find((p) => p.path[0] === 'jobs')?.message).toContain('no approvals.approvers');
  });
});
