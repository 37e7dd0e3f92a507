/**
 * pgwarden and drizzle-kit 0.31 on one database (docs/drizzle.md):
 *  - `pgwarden generate --drizzle` writes a custom migration that the real `drizzle-kit migrate`
 *    applies, leaving the same catalog as `pgwarden apply` (plan empty); no change, no migration;
 *    a changed model adds a new migration that brings the database to the new model;
 *  - `drizzle-kit push` drops pgwarden's policies (and, with the repo's config, disables row
 *    level security); declaring `.enableRLS()` keeps it failing closed, and `pgwarden apply`
 *    right after push restores the catalog exactly.
 */
import { execFile } from 'node:child_process';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDrizzleMigration } from '../cli/commands/generate.js';
import { crmModel, readCrmFile } from '../examples/crm/setup.js';
import { apply, planAgainst } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import type { CatalogObject } from '../src/catalog/objects.js';
import { compile } from '../src/compile/index.js';
import { PgwardenError } from '../src/errors.js';
import { BREAKPOINT, drizzleMigration } from '../src/generate/drizzle.js';
import { generate } from '../src/generate/index.js';
import type { Model } from '../src/model/types.js';
import { catalogSnapshot } from './helpers/catalog-snapshot.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

const root = join(import.meta.dirname, '..');
const run = promisify(execFile);
const DRIZZLE_KIT = join(root, 'node_modules', 'drizzle-kit', 'bin.cjs');

let model: Model;
let meta: { modelName: string; modelHash: string };
let tmp: string;

beforeAll(async () => {
  model = await crmModel();
  meta = { modelName: model.name, modelHash: sha256(canonicalJson(model)) };
  tmp = mkdtempSync(join(tmpdir(), 'pgw-drizzle-'));
  // temporary drizzle schema files import drizzle-orm from here
  symlinkSync(join(root, 'node_modules'), join(tmp, 'node_modules'), 'dir');
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

async function drizzleKit(args: string[], cwd = root): Promise<string> {
  try {
    const { stdout, stderr } = await run(process.execPath, [DRIZZLE_KIT, ...args], {
      cwd,
      timeout: 120_000,
    });
    return stdout + stderr;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `drizzle-kit ${args.join(' ')} failed: ${err.message}\n${err.stdout}\n${err.stderr}`,
    );
  }
}

/**
 * `drizzle-kit generate` of the CRM schema into <tmp>/migrations. drizzle-kit 0.31 reads the
 * snapshots as `./<out>/meta/...`, so `out` must be relative to the working directory.
 */
function drizzleGenerate(extra: string[]): Promise<string> {
  const schema = join(root, 'examples', 'crm', 'schema.ts');
  return drizzleKit(
    ['generate', '--dialect', 'postgresql', '--schema', schema, '--out', 'migrations', ...extra],
    tmp,
  );
}

/** A drizzle.config for `url`, written to the temp folder (drizzle-kit reads .mjs configs). */
function config(name: string, fields: Record<string, unknown>): string {
  const file = join(tmp, `${name}.config.mjs`);
  writeFileSync(file, `export default ${JSON.stringify({ dialect: 'postgresql', ...fields })};\n`);
  return file;
}

function journalTags(folder: string): string[] {
  const j = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8'));
  return j.entries.map((e: { tag: string }) => e.tag);
}

async function pgwardenCli(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(root, 'bin', 'pgwarden.js'), ...args], {
    cwd: root,
    timeout: 120_000,
  });
  return stdout;
}

describe('generate --drizzle (offline)', () => {
  const objects = (): CatalogObject[] => compile(model, { rolePrefix: 'p_' });

  it('the default generate output is unchanged (golden files)', () => {
    const files = generate(compile(model), meta);
    const golden = join(root, 'test', 'golden', 'crm');
    expect(files.map((f) => f.name)).toEqual(
      readdirSync(golden)
        .filter((f) => f.endsWith('.sql'))
        .sort(),
    );
    for (const f of files) expect(f.content).toBe(readFileSync(join(golden, f.name), 'utf8'));
  });

  it('starts a journal (dialect postgresql) in an empty folder, as drizzle-kit generate --custom does', () => {
    const r = drizzleMigration({
      folder: 'drizzle',
      files: new Map(),
      objects: objects(),
      meta,
      now: 1_700_000_000_000,
      uuid: () => 'new-id',
    });
    if (r.status !== 'added') throw new Error('expected a migration');
    expect(r.tag).toBe('0000_pgwarden_crm');
    expect(r.files.map((f) => f.path)).toEqual([
      '0000_pgwarden_crm.sql',
      'meta/0000_snapshot.json',
      'meta/_journal.json',
    ]);
    const journal = JSON.parse(r.files[2]?.content as string);
    expect(journal).toEqual({
      version: '7',
      dialect: 'postgresql',
      entries: [
        {
          idx: 0,
          version: '7',
          when: 1_700_000_000_000,
          tag: '0000_pgwarden_crm',
          breakpoints: true,
        },
      ],
    });
    const snapshot = JSON.parse(r.files[1]?.content as string);
    expect(snapshot).toMatchObject({
      id: 'new-id',
      prevId: '00000000-0000-0000-0000-000000000000',
      version: '7',
      dialect: 'postgresql',
      tables: {},
    });
    // one statement per piece; SET LOCAL only
    const sqlText = r.files[0]?.content as string;
    const pieces = sqlText.split(BREAKPOINT);
    expect(pieces.length).toBeGreaterThan(500);
    const statements = pieces.map((p) => p.replace(/^(\s*--[^\n]*\n)*\s*/, ''));
    expect(statements.filter((t) => /^SET (?!LOCAL)/.test(t))).toEqual([]);
    expect(sqlText).toMatch(/^SET LOCAL search_path = pg_catalog, pg_temp;$/m);
  });

  it('a later migration is later than the last one (drizzle skips older ones)', () => {
    const journal = {
      version: '7',
      dialect: 'postgresql',
      entries: [
        { idx: 4, version: '7', when: 2_000_000_000_000, tag: '0004_x', breakpoints: true },
      ],
    };
    const r = drizzleMigration({
      folder: 'drizzle',
      files: new Map([
        ['meta/_journal.json', JSON.stringify(journal)],
        [
          'meta/0004_snapshot.json',
          JSON.stringify({
            id: 'prev',
            prevId: 'p0',
            version: '7',
            dialect: 'postgresql',
            tables: { t: 1 },
          }),
        ],
      ]),
      objects: objects(),
      meta,
      now: 1_000,
      uuid: () => 'new-id',
    });
    if (r.status !== 'added') throw new Error('expected a migration');
    expect(r.tag).toBe('0005_pgwarden_crm');
    const j = JSON.parse(r.files[2]?.content as string);
    expect(j.entries[1]).toEqual({
      idx: 5,
      version: '7',
      when: 2_000_000_000_001,
      tag: '0005_pgwarden_crm',
      breakpoints: true,
    });
    expect(JSON.parse(r.files[1]?.content as string)).toMatchObject({
      id: 'new-id',
      prevId: 'prev',
      tables: { t: 1 },
    });
  });

  it('errors name the folder and the fix', () => {
    const attempt = (files: Map<string, string>) => {
      try {
        drizzleMigration({ folder: 'migrations', files, objects: objects(), meta });
      } catch (e) {
        return e as PgwardenError;
      }
      throw new Error('expected an error');
    };
    const mysql = attempt(
      new Map([['meta/_journal.json', '{"version":"5","dialect":"mysql","entries":[]}']]),
    );
    expect(mysql).toBeInstanceOf(PgwardenError);
    expect(mysql.code).toBe('drizzle_wrong_dialect');
    expect(mysql.message).toContain('migrations/meta/_journal.json');
    expect(mysql.hint).toContain('postgresql');
    const bad = attempt(new Map([['meta/_journal.json', '{"version":']]));
    expect(bad.code).toBe('drizzle_bad_json');
    expect(bad.message).toContain('migrations/meta/_journal.json is not valid JSON');
    const missing = attempt(
      new Map([
        [
          'meta/_journal.json',
          JSON.stringify({
            version: '7',
            dialect: 'postgresql',
            entries: [
              { idx: 0, version: '7', when: 1, tag: '0000_pgwarden_crm', breakpoints: true },
            ],
          }),
        ],
      ]),
    );
    expect(missing.code).toBe('drizzle_missing_migration');
    expect(missing.message).toContain('migrations/0000_pgwarden_crm.sql does not exist');
  });
});

describe('generate --drizzle with drizzle-kit migrate (real PostgreSQL)', () => {
  let a: TestDb; // pgwarden apply
  let b: TestDb; // drizzle-kit migrate (pg driver, the CLI)
  let c: TestDb; // drizzle-orm's postgres.js migrator
  let folder: string;

  beforeAll(async () => {
    a = await createTestDatabase();
    b = await createTestDatabase();
    c = await createTestDatabase();
    folder = join(tmp, 'migrations');
    // drizzle-kit's own migration of the CRM tables
    await drizzleGenerate([]);
    await a.sql.unsafe(readCrmFile('schema.sql')).simple();
  });
  afterAll(async () => {
    // roles (a.prefix) are shared: drop the databases that use them first
    await c?.cleanup();
    await b?.cleanup();
    await a?.cleanup();
  });

  it('drizzle-kit migrate applies it and leaves the same catalog as apply; plan is then empty', async () => {
    const prefix = a.prefix;
    const desired = compile(model, { rolePrefix: prefix });
    const modelArg = '--model=examples/crm/model.ts';
    const out = await pgwardenCli([
      'generate',
      modelArg,
      '--drizzle',
      folder,
      '--role-prefix',
      prefix,
    ]);
    expect(out).toContain(`drizzle-kit migration ${join(folder, '0001_pgwarden_crm.sql')}`);
    expect(journalTags(folder)).toEqual([expect.stringMatching(/^0000_/), '0001_pgwarden_crm']);
    // the model did not change: nothing is added
    const again = await pgwardenCli([
      'generate',
      modelArg,
      '--drizzle',
      folder,
      '--role-prefix',
      prefix,
    ]);
    expect(again).toContain('No changes');
    expect(journalTags(folder)).toHaveLength(2);

    // a migration of the application after pgwarden's, in the same drizzle-kit migrate run:
    // pgwarden's SET LOCAL search_path must not leak into it
    await drizzleGenerate(['--custom', '--name', 'later']);
    writeFileSync(join(folder, '0002_later.sql'), 'CREATE TABLE later_table (id int);');
    // drizzle-kit generate still works on the folder: the schema has not changed
    expect(await drizzleGenerate([])).toContain('No schema changes');

    await apply(a.sql, desired, { modelName: model.name, modelHash: meta.modelHash });
    const log = await drizzleKit([
      'migrate',
      '--config',
      config('b', { out: folder, dbCredentials: { url: b.url } }),
    ]);
    expect(log).toContain('migrations applied successfully');
    expect(await catalogSnapshot(b.sql, prefix)).toEqual(await catalogSnapshot(a.sql, prefix));
    expect((await planAgainst(b.sql, desired)).steps).toEqual([]);
    const [later] = await b.sql`SELECT to_regclass('public.later_table')::text AS t`;
    expect(later?.t).toBe('later_table');
    const migrations = await b.sql`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`;
    expect(migrations[0]?.n).toBe(3);
  });

  it('a changed model adds a new migration that brings the database to it (removed policies dropped)', async () => {
    const prefix = a.prefix;
    const changed: Model = {
      ...model,
      tables: model.tables.map((tb) =>
        tb.name === 'contracts'
          ? { ...tb, rules: tb.rules.filter((r) => !r.jobs.includes('finance')) }
          : tb,
      ),
    };
    const desired = compile(changed, { rolePrefix: prefix });
    const r = await writeDrizzleMigration(folder, desired, { ...meta, modelHash: 'changed' });
    if (r.status !== 'added') throw new Error('expected a migration');
    expect(r.tag).toBe('0003_pgwarden_crm');
    expect(r.removed.some((k) => k.startsWith('policy:crm.contracts:'))).toBe(true);
    // the earlier migrations are untouched
    expect(journalTags(folder)).toHaveLength(4);
    // running it again with the same model adds nothing
    expect(
      (await writeDrizzleMigration(folder, desired, { ...meta, modelHash: 'changed' })).status,
    ).toBe('unchanged');

    await apply(a.sql, desired, { modelName: model.name, modelHash: 'changed' });
    await drizzleKit([
      'migrate',
      '--config',
      config('b', { out: folder, dbCredentials: { url: b.url } }),
    ]);
    expect((await planAgainst(b.sql, desired)).steps).toEqual([]);
    expect(await catalogSnapshot(b.sql, prefix)).toEqual(await catalogSnapshot(a.sql, prefix));

    // all four migrations in one run, through postgres.js (one statement per piece)
    const client = postgres(c.url, { max: 1, onnotice: () => {} });
    try {
      await migrate(drizzle(client), { migrationsFolder: folder });
    } finally {
      await client.end({ timeout: 5 });
    }
    expect((await planAgainst(c.sql, desired)).steps).toEqual([]);
    expect(await catalogSnapshot(c.sql, prefix)).toEqual(await catalogSnapshot(a.sql, prefix));
  });
});

describe('drizzle-kit push on a database pgwarden manages', () => {
  let d: TestDb;
  let e: TestDb;
  /** examples/crm/schema.ts with a new column customers.website, optionally with .enableRLS() */
  function schemaFile(name: string, enableRls: boolean): string {
    let src = readFileSync(join(root, 'examples/crm/schema.ts'), 'utf8');
    src = src.replace(
      "address: text('address'),",
      "address: text('address'),\n    website: text('website'),",
    );
    if (enableRls) src = src.replaceAll('\n);', '\n).enableRLS();');
    const file = join(tmp, `${name}.ts`);
    writeFileSync(file, src);
    return file;
  }
  async function state(db: postgres.Sql) {
    const [r] = await db`SELECT
      (SELECT count(*)::int FROM pg_policies WHERE schemaname = 'crm') AS policies,
      (SELECT count(*)::int FROM pg_class WHERE relnamespace = 'crm'::regnamespace AND relkind = 'r' AND relrowsecurity) AS rls,
      (SELECT count(*)::int FROM pg_class WHERE relnamespace = 'crm'::regnamespace AND relkind = 'r' AND relforcerowsecurity) AS forced,
      (SELECT count(*)::int FROM pg_views WHERE schemaname = 'crm_api') AS views,
      (SELECT count(*)::int FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = 'customers' AND column_name = 'website') AS website`;
    return r;
  }

  beforeAll(async () => {
    d = await createTestDatabase();
    e = await createTestDatabase();
  });
  afterAll(async () => {
    await e?.cleanup();
    await d?.cleanup();
  });

  for (const variant of [
    'schemaFilter only (the repo config)',
    'schemaFilter + .enableRLS()',
  ] as const) {
    it(`${variant}: push drops pgwarden's policies; pgwarden apply right after restores everything`, async () => {
      const t = variant.includes('enableRLS') ? e : d;
      const rls = variant.includes('enableRLS');
      const desired = compile(model, { rolePrefix: t.prefix });
      await t.sql.unsafe(readCrmFile('schema.sql')).simple();
      await apply(t.sql, desired, { modelName: model.name, modelHash: meta.modelHash });
      const before = await catalogSnapshot(t.sql, t.prefix);
      expect(await state(t.sql)).toEqual({ policies: 13, rls: 4, forced: 4, views: 4, website: 0 });

      const cfg = config(`push-${rls ? 'rls' : 'plain'}`, {
        schema: schemaFile(`schema-${rls ? 'rls' : 'plain'}`, rls),
        schemaFilter: ['crm'],
        dbCredentials: { url: t.url },
      });
      const log = await drizzleKit(['push', '--config', cfg, '--force', '--verbose']);
      expect(log).toContain('ALTER TABLE "crm"."customers" ADD COLUMN "website" text;');
      expect(log).toContain('DROP POLICY "customers_select" ON "crm"."customers" CASCADE;');
      expect(log).not.toMatch(/DROP (VIEW|SCHEMA|ROLE|TRIGGER|FUNCTION)|REVOKE|OWNER/);
      // without .enableRLS() push also disables row level security (FORCE stays on);
      // with it, the tables stay closed: no policy, so no row for anyone until apply
      expect(await state(t.sql)).toEqual({
        policies: 0,
        rls: rls ? 4 : 0,
        forced: 4,
        views: 4,
        website: 1,
      });
      const drift = await planAgainst(t.sql, desired);
      expect(drift.steps.map((s) => s.op)).toContain('create_policy');

      // the workaround: pgwarden apply right after push
      await apply(t.sql, desired, { modelName: model.name, modelHash: meta.modelHash });
      expect((await planAgainst(t.sql, desired)).steps).toEqual([]);
      expect(await catalogSnapshot(t.sql, t.prefix)).toEqual(before);
      expect(await state(t.sql)).toEqual({ policies: 13, rls: 4, forced: 4, views: 4, website: 1 });
    }, 180_000);
  }
});
