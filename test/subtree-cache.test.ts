/**
 * Issue 8: the people below each unit are kept ready (sql/019_subtree_cache.sql). subtree_people
 * must give the same answer as the live walk of the org tree after every kind of change, in the
 * same transaction, under concurrent changes, and when the cache is missing a row.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { withPerson } from '../src/runtime/with-person.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';

let t: TestDb;
let app: postgres.Sql;
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, { rolePrefix: t.prefix });

/** what the person's subtree_people answers, in their own session */
const subtree = async (person: string): Promise<string[]> => {
  const [r] = await as(person, (tx) => tx`SELECT pgwarden.subtree_people(pgwarden.caller()) AS a`);
  return r?.a as string[];
};
/** the live walk (sql/019's _subtree_people_live) of the units the person manages now */
const live = async (person: string): Promise<string[]> => {
  const [r] = await t.sql`
    SELECT pgwarden._subtree_people_live(ARRAY(
      SELECT m.unit FROM pgwarden.unit_managers m
      WHERE m.person = ${person} AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at))) AS a`;
  return r?.a as string[];
};
const problems = async () =>
  t.sql<{ unit: string; problem: string }[]>`SELECT * FROM pgwarden.subtree_cache_problems()`;
const owners = async (person: string) =>
  (
    await as(
      person,
      (tx) => tx`SELECT DISTINCT owner FROM crm_api.customers WHERE NOT in_pool ORDER BY owner`,
    )
  ).map((r) => r.owner as string);

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 2 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('the subtree cache', () => {
  it('holds every unit after the migration, and answers as the live walk', async () => {
    expect(await problems()).toEqual([]);
    const [n] = await t.sql`SELECT (SELECT count(*) FROM pgwarden.units)::int AS units,
      (SELECT count(*) FROM pgwarden.subtree_people_cache)::int AS rows`;
    expect(n?.rows).toBe(n?.units);
    expect(await subtree('vera')).toEqual(await live('vera'));
    expect(await subtree('carol')).toEqual(await live('carol'));
    expect(await subtree('carol')).toEqual(expect.arrayContaining(['alice', 'bob', 'carol']));
    expect(await subtree('vera')).toEqual([...(await subtree('vera'))].sort());
    // not a manager: nothing, as before
    expect(await subtree('alice')).toEqual([]);
  });

  it('follows people added, moved, renamed and units added and moved, from the next statement', async () => {
    // a new person deep below sales_east: carol and vera see them at once, in the same transaction
    await as('adam', async (tx) => {
      await tx`SELECT pgwarden.add_unit('sales_east_k', 'sales_east')`;
      await tx`SELECT pgwarden.add_person('kim', 'sales_east_k', ARRAY['sales_rep'])`;
    });
    expect(await subtree('carol')).toContain('kim');
    expect(await subtree('vera')).toContain('kim');
    expect(await problems()).toEqual([]);

    // kim moves to sales_west: carol no longer, walt (sales_west) does, vera still
    await as('adam', (tx) => tx`SELECT pgwarden.move_person('kim', 'sales_west')`);
    expect(await subtree('carol')).not.toContain('kim');
    expect(await subtree('walt')).toContain('kim');
    expect(await subtree('vera')).toContain('kim');

    // the unit under sales_east moves under sales_west, with a person in it
    await as('adam', async (tx) => {
      await tx`SELECT pgwarden.move_person('kim', 'sales_east_k')`;
      await tx`SELECT pgwarden.move_unit('sales_east_k', 'sales_west')`;
    });
    expect(await subtree('carol')).not.toContain('kim');
    expect(await subtree('walt')).toContain('kim');
    expect(await problems()).toEqual([]);
    for (const p of ['carol', 'walt', 'vera']) expect(await subtree(p), p).toEqual(await live(p));

    // a direct statement on the table (the owner's bulk import), several units at once
    await t.sql`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name = 'kim'`;
    expect(await subtree('carol')).toContain('kim');
    expect(await problems()).toEqual([]);
    // deactivating changes no membership (the old helper listed inactive people too)
    await t.sql`UPDATE pgwarden.people SET active = false, deactivated_at = now() WHERE name = 'kim'`;
    expect(await subtree('carol')).toEqual(await live('carol'));
    expect(await problems()).toEqual([]);
  });

  it('units added (nested, in one statement), moved with their people, renamed and removed', async () => {
    await t.sql`INSERT INTO pgwarden.units (name, parent) VALUES ('ops', 'hq'), ('ops_a', 'ops'), ('ops_b', 'ops')`;
    expect(await problems()).toEqual([]);
    const rows =
      await t.sql`SELECT unit, people FROM pgwarden.subtree_people_cache WHERE unit LIKE 'ops%' ORDER BY unit`;
    expect(rows.map((r) => [r.unit, r.people])).toEqual([
      ['ops', []],
      ['ops_a', []],
      ['ops_b', []],
    ]);
    await t.sql`INSERT INTO pgwarden.people (name, role, unit) VALUES ('oa', ${`${t.prefix}x_oa`}, 'ops_a'), ('ob', ${`${t.prefix}x_ob`}, 'ops_b')`;
    // ops (with its people) moves under sales: vera's subtree gains them, carol's does not
    await t.sql`UPDATE pgwarden.units SET parent = 'sales' WHERE name = 'ops'`;
    expect(await problems()).toEqual([]);
    expect(await subtree('vera')).toEqual(expect.arrayContaining(['oa', 'ob']));
    expect(await subtree('carol')).not.toContain('oa');
    // a unit nothing references may be renamed: every row is recomputed
    await t.sql`DELETE FROM pgwarden.people WHERE name = 'ob'`;
    await t.sql`UPDATE pgwarden.units SET name = 'ops_c' WHERE name = 'ops_b'`;
    expect(await problems()).toEqual([]);
    await t.sql`DELETE FROM pgwarden.units WHERE name = 'ops_c'`;
    await t.sql`UPDATE pgwarden.units SET parent = 'hq' WHERE name = 'ops'`;
    expect(await problems()).toEqual([]);
    expect(await subtree('vera')).not.toContain('oa');
    await t.sql`DELETE FROM pgwarden.people WHERE name = 'oa'`;
    await t.sql`DELETE FROM pgwarden.units WHERE name IN ('ops_a')`;
    await t.sql`DELETE FROM pgwarden.units WHERE name IN ('ops')`;
    expect(await problems()).toEqual([]);
  });

  it('what a manager sees through the view follows the cache (the policy and the cells)', async () => {
    const before = await owners('carol');
    await t.sql`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'bob'`;
    const after = await owners('carol');
    expect(before).toContain('bob');
    expect(after).not.toContain('bob');
    const [cell] = await as(
      'walt',
      (tx) => tx`SELECT phone FROM crm_api.customers WHERE owner = 'bob' AND NOT in_pool LIMIT 1`,
    );
    expect(cell?.phone).toMatch(/\d{7}/); // full for the manager above the owner (SCENARIO.md)
    await t.sql`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name = 'bob'`;
    expect(await owners('carol')).toEqual(before);
  });

  it('many people in one statement: one by one up to 100 changes, recomputed above that', async () => {
    // names that sort before, between and after the existing ones: the binary-search insert
    const names = (n: number, tag: string) =>
      Array.from(
        { length: n },
        (_, i) => [`0${tag}${i}`, `m${tag}${i}`, `~${tag}${i}`][i % 3] as string,
      );
    for (const [n, tag] of [
      [60, 'a'],
      [150, 'b'],
    ] as const) {
      const people = names(n, tag);
      await t.sql`
        INSERT INTO pgwarden.people (name, role, unit)
        SELECT p, ${`${t.prefix}`} || 'x_' || p, CASE WHEN i % 2 = 0 THEN 'sales_east' ELSE 'sales_west' END
        FROM unnest(${people}::text[]) WITH ORDINALITY AS x(p, i)`;
      expect(await problems(), `${n} added`).toEqual([]);
      expect(await subtree('vera')).toEqual(expect.arrayContaining(people));
      expect(await subtree('carol')).toEqual(await live('carol'));
      // all of them move across, in one statement
      await t.sql`
        UPDATE pgwarden.people SET unit = CASE unit WHEN 'sales_east' THEN 'sales_west' ELSE 'sales_east' END
        WHERE name = ANY (${people}::text[])`;
      expect(await problems(), `${n} moved`).toEqual([]);
      await t.sql`DELETE FROM pgwarden.people WHERE name = ANY (${people}::text[])`;
      expect(await problems(), `${n} removed`).toEqual([]);
      expect(await subtree('vera')).toEqual(await live('vera'));
    }
  });

  it('managing several units (one below another) gives their union, each name once', async () => {
    await as('adam', (tx) => tx`SELECT pgwarden.set_manager('carol', 'sales_west')`);
    await as('adam', (tx) => tx`SELECT pgwarden.set_manager('carol', 'sales')`);
    const s = await subtree('carol');
    expect(s).toEqual(await live('carol'));
    expect(new Set(s).size).toBe(s.length);
    await as('adam', (tx) => tx`SELECT pgwarden.unset_manager('carol', 'sales_west')`);
    await as('adam', (tx) => tx`SELECT pgwarden.unset_manager('carol', 'sales')`);
    expect(await subtree('carol')).toEqual(await live('carol'));
  });

  it('a missing or wrong row is computed live, and subtree_cache_problems names it', async () => {
    const right = await subtree('carol');
    await t.sql`DELETE FROM pgwarden.subtree_people_cache WHERE unit = 'sales_east'`;
    expect(await problems()).toEqual([{ unit: 'sales_east', problem: 'missing' }]);
    expect(await subtree('carol')).toEqual(right);
    await t.sql`SELECT pgwarden._refresh_subtree_cache(NULL)`;
    await t.sql`UPDATE pgwarden.subtree_people_cache SET people = '{}' WHERE unit = 'sales_west'`;
    expect(await problems()).toEqual([{ unit: 'sales_west', problem: 'stale' }]);
    await t.sql`SELECT pgwarden._refresh_subtree_cache(NULL)`;
    expect(await problems()).toEqual([]);
  });

  it('nobody but its owner reads or writes the cache; replica mode does not skip its triggers', async () => {
    for (const person of ['adam', 'carol', 'audrey']) {
      await expect(
        as(person, (tx) => tx`SELECT * FROM pgwarden.subtree_people_cache`),
        person,
      ).rejects.toMatchObject({ code: '42501' });
      await expect(
        as(person, (tx) => tx`UPDATE pgwarden.subtree_people_cache SET people = '{}'`),
        person,
      ).rejects.toMatchObject({ code: '42501' });
      await expect(
        as(person, (tx) => tx`SELECT pgwarden._refresh_subtree_cache(NULL)`),
        person,
      ).rejects.toMatchObject({ code: '42501' });
    }
    const triggers = await t.sql<{ tgname: string; tgenabled: string }[]>`
      SELECT tgname, tgenabled FROM pg_trigger
      WHERE tgname LIKE 'subtree_cache_%' ORDER BY tgname`;
    expect(triggers.map((x) => x.tgenabled)).toEqual(Array(8).fill('A'));
    await t.sql.begin(async (tx) => {
      await tx`SET LOCAL session_replication_role = replica`;
      await tx`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'alice'`;
      const [p] = await tx`SELECT count(*)::int AS n FROM pgwarden.subtree_cache_problems()`;
      expect(p?.n).toBe(0);
      await tx`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name = 'alice'`;
    });
  });

  it('concurrent moves of different people both land in the cache', async () => {
    // two sessions, each moving one person in its own transaction, overlapping
    const s1 = await t.sql.reserve();
    const s2 = await t.sql.reserve();
    try {
      await s1`BEGIN`;
      await s2`BEGIN`;
      await s1`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'alice'`;
      // s2's refresh waits for s1's lock, then sees alice's move
      const second = s2`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'bob'`.then(
        () => s2`COMMIT`,
      );
      await new Promise((r) => setTimeout(r, 300));
      await s1`COMMIT`;
      await second;
      expect(await problems()).toEqual([]);
      expect(await subtree('walt')).toEqual(expect.arrayContaining(['alice', 'bob']));
      expect(await subtree('carol')).not.toContain('alice');
      await t.sql`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name IN ('alice', 'bob')`;
      expect(await problems()).toEqual([]);
    } finally {
      s1.release();
      s2.release();
    }
  });

  it('a move and a change of the tree at the same time: the recompute waits for the move', async () => {
    const s1 = await t.sql.reserve();
    const s2 = await t.sql.reserve();
    try {
      await s1`BEGIN`;
      await s2`BEGIN`;
      // one person moved (applied to the rows one by one), not yet committed
      await s1`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'alice'`;
      // a new unit: every row recomputed; it must not write rows from before alice's move
      const second =
        s2`INSERT INTO pgwarden.units (name, parent) VALUES ('sales_new', 'sales')`.then(
          () => s2`COMMIT`,
        );
      await new Promise((r) => setTimeout(r, 300));
      await s1`COMMIT`;
      await second;
      expect(await problems()).toEqual([]);
      expect(await subtree('walt')).toContain('alice');
      await t.sql`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name = 'alice'`;
      await t.sql`DELETE FROM pgwarden.units WHERE name = 'sales_new'`;
      expect(await problems()).toEqual([]);
    } finally {
      s1.release();
      s2.release();
    }
  });

  it('a REPEATABLE READ move that overlaps another fails instead of writing an old answer', async () => {
    const s1 = await t.sql.reserve();
    const s2 = await t.sql.reserve();
    try {
      await s1`BEGIN ISOLATION LEVEL REPEATABLE READ`;
      await s2`BEGIN ISOLATION LEVEL REPEATABLE READ`;
      await s2`SELECT 1`; // s2's snapshot, before s1's change
      await s1`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'alice'`;
      const second = s2`UPDATE pgwarden.people SET unit = 'sales_west' WHERE name = 'bob'`;
      await new Promise((r) => setTimeout(r, 300));
      await s1`COMMIT`;
      await expect(second).rejects.toMatchObject({ code: '40001' });
      await s2`ROLLBACK`;
      expect(await problems()).toEqual([]);
      await t.sql`UPDATE pgwarden.people SET unit = 'sales_east' WHERE name = 'alice'`;
      expect(await problems()).toEqual([]);
    } finally {
      s1.release();
      s2.release();
    }
  });
});
