/**
 * Safe apply (issue #6): an apply killed at a random point — kill -9 of the client, and
 * separately of its server backend — leaves the database exactly as before; two concurrent
 * applies never interleave; a second apply that cannot get the lock exits 4.
 *
 * Killing a backend with SIGKILL makes the postmaster restart every backend of its cluster, so
 * that half runs on a private embedded PostgreSQL, never on the server other test files share.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, readCrmFile } from '../examples/crm/setup.js';
import { APPLY_LOCK_KEY, apply } from '../src/apply/index.js';
import { compile } from '../src/compile/index.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { quoteIdent } from '../src/sql/quote.js';
import { BIN, cli } from './helpers/cli.js';
import { createTestDatabase, type TestDb, urlFor } from './helpers/db.js';

const RUNS = 20;
const MODEL = join(import.meta.dirname, '..', 'examples', 'crm', 'model.yaml');

/** A small seeded PRNG, so a failing run can be replayed (the seed is in the test name). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.PGWARDEN_TEST_SEED ?? Date.now() % 100000);
const random = prng(SEED);

/** Everything an apply could change, for databases with or without pgwarden in them. */
async function state(db: postgres.Sql, prefix: string): Promise<unknown> {
  const [s] = await db<{ s: unknown }[]>`SELECT jsonb_build_object(
    'schemas', (SELECT jsonb_agg(jsonb_build_array(nspname, pg_get_userbyid(nspowner), nspacl::text) ORDER BY nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema'),
    'relations', (SELECT jsonb_agg(jsonb_build_array(n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text, c.relrowsecurity, c.relforcerowsecurity) ORDER BY n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_%' AND n.nspname <> 'information_schema'),
    'functions', (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT LIKE 'pg_%' AND n.nspname <> 'information_schema'),
    'policies', (SELECT count(*) FROM pg_policy),
    'triggers', (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal),
    'roles', (SELECT jsonb_agg(rolname ORDER BY rolname) FROM pg_roles WHERE left(rolname, ${prefix.length}) = ${prefix})
  ) AS s`;
  const [reg] = await db<
    { installed: boolean }[]
  >`SELECT to_regclass('pgwarden.applied_objects') IS NOT NULL AS installed`;
  let registry: number | null = null;
  if (reg?.installed) {
    const [r] = await db<{ n: number }[]>`SELECT count(*)::int AS n FROM pgwarden.applied_objects`;
    registry = r?.n ?? 0;
  }
  return { ...(s?.s as object), registry };
}

async function withTables(t: TestDb): Promise<void> {
  await t.sql.begin((tx) => tx.unsafe(readCrmFile('schema.sql')).simple());
}

async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('timed out waiting');
}

describe(`kill -9 of the client during apply (${RUNS} runs, seed ${SEED})`, () => {
  it('leaves the database exactly as before, or (killed after commit) fully applied', async () => {
    let mid = 0;
    for (let run = 0; run < RUNS; run++) {
      const t = await createTestDatabase();
      try {
        await withTables(t);
        const before = await state(t.sql, t.prefix);
        const child: ChildProcess = spawn(
          process.execPath,
          [BIN, 'apply', '--url', t.url, '-m', MODEL, '--role-prefix', t.prefix, '--yes'],
          {
            env: { ...process.env, NO_COLOR: '1', PGAPPNAME: `pgw-kill-${t.name}` },
            stdio: 'ignore',
          },
        );
        const exited = new Promise<void>((r) => child.on('exit', () => r()));
        // wait until the apply's transaction is open, then kill at a random point in it
        await waitFor(async () => {
          const [r] = await t.sql<
            { n: number }[]
          >`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${`pgw-kill-${t.name}`} AND xact_start IS NOT NULL`;
          return (r?.n ?? 0) > 0;
        });
        await new Promise((r) => setTimeout(r, Math.floor(random() * 400)));
        child.kill('SIGKILL');
        await exited;
        // the server notices the dead client and rolls back; wait for the backend to go
        await waitFor(async () => {
          const [r] = await t.sql<
            { n: number }[]
          >`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${`pgw-kill-${t.name}`}`;
          return r?.n === 0;
        });
        const after = await state(t.sql, t.prefix);
        if (JSON.stringify(after) === JSON.stringify(before)) {
          mid += 1;
        } else {
          // killed after the commit: then the apply must be complete, with nothing left to do
          const again = await cli(['plan', '--url', t.url, '-m', MODEL, '--role-prefix', t.prefix]);
          expect(again.stdout, `run ${run}: partial state after a kill`).toMatch(/No changes/);
        }
      } finally {
        await t.cleanup();
      }
    }
    // the kills must really have landed inside the transaction most of the time
    expect(mid).toBeGreaterThanOrEqual(RUNS / 2);
  }, 600_000);
});

describe(`kill -9 of the apply's backend (${RUNS} runs, seed ${SEED}, private server)`, () => {
  let server: { url: string; stop(): Promise<void> } | undefined;
  beforeAll(async () => {
    server = await startEmbeddedPostgres();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

  async function connectRetrying(url: string): Promise<postgres.Sql> {
    const end = Date.now() + 60_000;
    for (;;) {
      const db = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      try {
        await db`SELECT 1`;
        return db;
      } catch (e) {
        await db.end({ timeout: 1 }).catch(() => undefined);
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  it('leaves the database exactly as before', async () => {
    if (!server) throw new Error('no server');
    let mid = 0;
    for (let run = 0; run < RUNS; run++) {
      const name = `pgw_kill_${run}`;
      const prefix = `${name}_`;
      const admin = await connectRetrying(server.url);
      await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      await admin.unsafe(`CREATE DATABASE ${quoteIdent(name)}`);
      await admin.end();
      const url = urlFor(server.url, { database: name });
      const setup = await connectRetrying(url);
      await setup.begin((tx) => tx.unsafe(readCrmFile('schema.sql')).simple());
      const before = await state(setup, prefix);
      await setup.end();

      // the apply runs in the CLI (a child process): the kill may hit it mid-write
      const app = `pgw-kill-backend-${run}`;
      const child = spawn(
        process.execPath,
        [BIN, 'apply', '--url', url, '-m', MODEL, '--role-prefix', prefix, '--yes'],
        {
          env: { ...process.env, NO_COLOR: '1', PGAPPNAME: app },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr?.on('data', (d) => {
        stderr += String(d);
      });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const watcher = await connectRetrying(server.url);
      let pid = 0;
      await waitFor(async () => {
        const [r] = await watcher<
          { pid: number }[]
        >`SELECT pid FROM pg_stat_activity WHERE application_name = ${app} AND xact_start IS NOT NULL LIMIT 1`;
        pid = r?.pid ?? 0;
        return pid > 0;
      });
      await watcher.end();
      await new Promise((r) => setTimeout(r, Math.floor(random() * 300)));
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone: the apply finished first
      }
      const code = await exited;
      const outcome = code === 0 ? 'committed' : 'failed';
      if (outcome === 'failed') expect(stderr, `run ${run}: exit ${code}`).toMatch(/error/);

      const check = await connectRetrying(url);
      const after = await state(check, prefix);
      if (outcome === 'failed') {
        expect(after, `run ${run}: killed backend left changes`).toEqual(before);
        mid += 1;
      } else {
        expect((after as { registry: number | null }).registry).toBeGreaterThan(0);
      }
      await check.end();
    }
    expect(mid).toBeGreaterThanOrEqual(RUNS / 2);
  }, 900_000);
});

describe('concurrent applies', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDatabase();
    await withTables(t);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('two applies at once never interleave: one applies, the other then finds nothing to do', async () => {
    const model = await crmModel();
    const desired = compile(model, { rolePrefix: t.prefix });
    const a = postgres(t.url, { max: 1, onnotice: () => {} });
    const b = postgres(t.url, { max: 1, onnotice: () => {} });
    try {
      const results = await Promise.all([
        apply(a, desired, { modelName: model.name, modelHash: 'a' }),
        apply(b, desired, { modelName: model.name, modelHash: 'b' }),
      ]);
      expect(results.map((r) => r.applied).sort()).toEqual([false, true]);
      const [{ n } = { n: 0 }] = await t.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM pgwarden.applies`;
      expect(n).toBe(1);
    } finally {
      await a.end();
      await b.end();
    }
  }, 60_000);

  it('an apply that cannot get the lock within --lock-timeout exits 4 and changes nothing', async () => {
    const holder = postgres(t.url, { max: 1, onnotice: () => {} });
    try {
      await holder.unsafe(`SELECT pg_advisory_lock(${APPLY_LOCK_KEY})`);
      const [{ before } = { before: 0 }] = await t.sql<
        { before: number }[]
      >`SELECT count(*)::int AS before FROM pgwarden.applies`;
      const r = await cli([
        'apply',
        '--url',
        t.url,
        '-m',
        MODEL,
        '--role-prefix',
        t.prefix,
        '--yes',
        '--lock-timeout',
        '300ms',
      ]);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/another pgwarden apply/);
      expect(r.stderr).toMatch(/--lock-timeout/);
      const [{ after } = { after: 0 }] = await t.sql<
        { after: number }[]
      >`SELECT count(*)::int AS after FROM pgwarden.applies`;
      expect(after).toBe(before);
    } finally {
      await holder.end();
    }
  }, 60_000);
});
