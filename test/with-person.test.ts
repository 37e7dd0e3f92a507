/**
 * withPerson (postgres.js) and withPersonDrizzle: one transaction as the person; nothing
 * survives it; an error rolls back.
 */

import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { withPersonDrizzle } from '../src/runtime/drizzle.js';
import { withPerson } from '../src/runtime/with-person.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

let t: TestDb;
let app: postgres.Sql;
beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  // one connection, so every call reuses the same session, as behind a pooler
  app = await loginAs(t, 'crm_app', { max: 1 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('withPerson', () => {
  it('runs as the person, and the session is the authenticator again afterwards', async () => {
    const inside = await withPerson(
      app,
      'alice',
      (tx) => tx`SELECT current_user AS u, session_user AS s`,
      { rolePrefix: t.prefix },
    );
    expect(inside[0]).toEqual({ u: `${t.prefix}alice`, s: `${t.prefix}crm_app` });
    const after = await app`SELECT current_user AS u, current_setting('role') AS r`;
    expect(after[0]).toEqual({ u: `${t.prefix}crm_app`, r: 'none' });
  });

  it('interleaved people on one connection each see their own rows', async () => {
    const counts: Record<string, number> = {};
    for (const p of ['alice', 'dave', 'alice', 'erin', 'dave']) {
      const [r] = await withPerson(
        app,
        p,
        (tx) =>
          tx`SELECT count(*)::int AS n, min(owner) FILTER (WHERE NOT in_pool AND owner <> ${p}) AS other FROM crm_api.customers WHERE NOT in_pool`,
        { rolePrefix: t.prefix },
      );
      if (p !== 'erin') expect(r?.other === null || p === 'alice').toBe(true);
      if (counts[p] !== undefined) expect(r?.n).toBe(counts[p]);
      counts[p] = r?.n as number;
    }
    expect(counts.alice).not.toBe(counts.dave);
  });

  it('an error rolls back and leaves no identity behind', async () => {
    await expect(
      withPerson(
        app,
        'alice',
        async (tx) => {
          await tx`UPDATE crm_api.customers SET status = 'churned' WHERE id = 1`;
          throw new Error('boom');
        },
        { rolePrefix: t.prefix },
      ),
    ).rejects.toThrow('boom');
    const [r] = await t.sql`SELECT status FROM crm.customers WHERE id = 1`;
    expect(r?.status).not.toBe('churned');
    const [s] = await app`SELECT current_user AS u`;
    expect(s?.u).toBe(`${t.prefix}crm_app`);
  });

  it("what the person's SQL leaves on the session is gone before the next request", async () => {
    await withPerson(
      app,
      'alice',
      async (tx) => {
        await tx.unsafe(`SET SESSION ROLE "${t.prefix}alice"`);
        await tx.unsafe('SET SESSION search_path = pg_temp, crm_api');
        await tx.unsafe('CREATE TEMP TABLE customers (id bigint)');
        await tx.unsafe(
          'DECLARE mine CURSOR WITH HOLD FOR SELECT id, phone FROM crm_api.customers',
        );
        await tx.unsafe('LISTEN alice_channel');
      },
      { rolePrefix: t.prefix },
    );
    const [after] =
      await app`SELECT current_user AS u, current_setting('search_path') AS p, to_regclass('pg_temp.customers') IS NULL AS no_temp,
        (SELECT count(*)::int FROM pg_cursors WHERE is_holdable) AS cursors, (SELECT count(*)::int FROM pg_listening_channels()) AS listening`;
    expect(after).toEqual({
      u: `${t.prefix}crm_app`,
      p: '"$user", public',
      no_temp: true,
      cursors: 0,
      listening: 0,
    });
  });

  it('refuses an unknown or empty person', async () => {
    await expect(withPerson(app, '', async () => 1)).rejects.toThrow(/person name is required/);
    await expect(
      withPerson(app, 'nobody', async () => 1, { rolePrefix: t.prefix }),
    ).rejects.toMatchObject({ code: '22023' });
  });
});

describe('withPersonDrizzle', () => {
  it('runs drizzle queries as the person', async () => {
    const db = drizzle(app);
    const rows = await withPersonDrizzle(
      db,
      'bob',
      (tx) => tx.execute(dsql`SELECT current_user AS u, count(*)::int AS n FROM crm_api.customers`),
      { rolePrefix: t.prefix },
    );
    const row = (rows as unknown as { u: string; n: number }[])[0];
    expect(row?.u).toBe(`${t.prefix}bob`);
    expect(row?.n).toBeGreaterThan(0);
    const [after] = await app`SELECT current_user AS u`;
    expect(after?.u).toBe(`${t.prefix}crm_app`);
  });

  it('leaves no session state behind either', async () => {
    const db = drizzle(app);
    await withPersonDrizzle(
      db,
      'bob',
      async (tx) => {
        await tx.execute(dsql.raw(`SET SESSION ROLE "${t.prefix}bob"`));
        await tx.execute(dsql`SET SESSION search_path = pg_temp, crm_api`);
      },
      { rolePrefix: t.prefix },
    );
    const [after] = await app`SELECT current_user AS u, current_setting('search_path') AS p`;
    expect(after).toEqual({ u: `${t.prefix}crm_app`, p: '"$user", public' });
  });
});
