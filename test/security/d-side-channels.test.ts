/**
 * SECURITY.md D (side channels) and F (functions and search_path), as attacks. People have TEMP
 * on the database (PostgreSQL grants it to PUBLIC), so they CAN create functions, operators, types
 * and tables in pg_temp: these tests show that what such objects receive is only what the person
 * may see, and that naming them like pgwarden's own objects changes nothing.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Crm, crm, failure } from './helpers.js';

let c: Crm;
let before: Record<string, string>;
let spy: postgres.Sql & { notices: postgres.Notice[] };
type Real = {
  id: string;
  name: string;
  phone: string | null;
  email: string | null;
  id_number: string | null;
  address: string | null;
};
let real: Real[];
const COLS =
  'id, name, owner, region, customer_type, status, in_pool, phone, email, id_number, address';

beforeAll(async () => {
  c = await crm();
  spy = await c.login('crm_app'); // a second application connection whose notices we read
  real = await c.t.sql<
    Real[]
  >`SELECT id::text, name, phone, email, id_number, address FROM crm.customers`;
  await c.t.sql`ANALYZE`;
  before = await c.fingerprint();
});
afterAll(async () => {
  await c?.end();
});

const asSpy = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  spy.begin(async (tx) => {
    await tx`SELECT set_config('role', ${c.role(person)}, true)`;
    return fn(tx);
  }) as Promise<T>;

const LEAK = `CREATE FUNCTION pg_temp.leak(v text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
  BEGIN RAISE NOTICE 'leak:%', COALESCE(v, '<null>'); RETURN true; END $$`;

describe('D. a function or operator of the person, in pg_temp, receives only what she may see', () => {
  for (const [person, col] of [
    ['alice', 'phone'],
    ['bob', 'phone'],
    ['tom', 'email'],
    ['erin', 'id_number'],
    ['fiona', 'address'],
  ] as const) {
    it(`${person}: RAISE NOTICE from a cheap leaky function on ${col} sees exactly her visible cells`, async () => {
      spy.notices.length = 0;
      const visible = await asSpy(person, async (tx) => {
        await tx.unsafe(LEAK);
        const v = await tx.unsafe(`SELECT ${col} AS v FROM crm_api.customers ORDER BY id`);
        await tx.unsafe(`SELECT count(*) FROM crm_api.customers WHERE pg_temp.leak(${col}::text)`);
        await tx.unsafe('DROP FUNCTION pg_temp.leak(text)');
        return v.map((r) => (r.v === null ? '<null>' : String(r.v)));
      });
      const leaked = spy.notices
        .map((n) => String(n.message))
        .filter((m) => m.startsWith('leak:'))
        .map((m) => m.slice(5));
      expect(leaked.sort()).toEqual(visible.sort());
      // and nothing of a row or cell she cannot see
      const seen = new Set(visible);
      for (const r of real) {
        const v = r[col];
        if (v && !seen.has(v))
          expect(leaked.includes(v), `${person} got ${col} of ${r.id}`).toBe(false);
      }
    });
  }

  it("a cheap leaky function over pgwarden's parent lookups (_rows_*) sees only her own parents' keys", async () => {
    const views = await c.t.sql<{ name: string }[]>`
      SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'pgwarden' AND c.relkind = 'v' AND c.relname LIKE '\\_rows\\_%' ORDER BY 1`;
    expect(views.length).toBeGreaterThan(0);
    for (const person of ['alice', 'carol', 'tom']) {
      for (const { name } of views) {
        spy.notices.length = 0;
        const own = await asSpy(person, async (tx) => {
          await tx.unsafe(LEAK);
          const v = await tx.unsafe(`SELECT id::text AS v FROM pgwarden."${name}"`);
          await tx.unsafe(`SELECT count(*) FROM pgwarden."${name}" WHERE pg_temp.leak(id::text)`);
          await tx.unsafe('DROP FUNCTION pg_temp.leak(text)');
          return v.map((r) => String(r.v));
        });
        const leaked = spy.notices
          .map((n) => String(n.message))
          .filter((m) => m.startsWith('leak:'))
          .map((m) => m.slice(5));
        expect(leaked.sort(), `${person} through ${name}`).toEqual(own.sort());
      }
    }
  });

  it('a leaky operator in pg_temp (<<< over text) used in WHERE sees only masked cells', async () => {
    spy.notices.length = 0;
    await asSpy('tom', async (tx) => {
      await tx.unsafe(
        LEAK.replace('leak(v text)', 'leak2(v text, w text)').replace(
          "COALESCE(v, '<null>')",
          "COALESCE(v, '<null>')",
        ),
      );
      await tx.unsafe(
        'CREATE OPERATOR pg_temp.<<< (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.leak2)',
      );
      await tx.unsafe(
        `SELECT count(*) FROM crm_api.customers WHERE phone OPERATOR(pg_temp.<<<) 'x' OR email OPERATOR(pg_temp.<<<) 'x'`,
      );
    });
    const leaked = spy.notices
      .map((n) => String(n.message))
      .filter((m) => m.startsWith('leak:'))
      .map((m) => m.slice(5));
    expect(leaked.length).toBeGreaterThan(0);
    for (const v of leaked)
      expect(v === '<null>' || v.includes('****') || v.includes('***@'), v).toBe(true);
  });

  it('a failing cast on a hidden row never fires: the probe errors only on rows she sees, with masked values', async () => {
    const hidden = (
      await c.t.sql<
        { id: string }[]
      >`SELECT id::text FROM crm.customers WHERE owner = 'dave' AND id NOT IN (SELECT row_key::bigint FROM pgwarden.shares) LIMIT 1`
    )[0]?.id as string;
    // division by zero only on the hidden row: never evaluated, so no error
    const n = await c.as('alice', (tx) =>
      tx.unsafe(
        `SELECT count(*)::int AS n FROM crm_api.customers WHERE 1 / (CASE WHEN id = ${hidden} THEN 0 ELSE 1 END) = 1`,
      ),
    );
    expect(n[0]?.n).toBe(25);
    // a cast of a masked cell errors with the masked value in the message, never the stored one
    const e = await failure(
      c.as('tom', (tx) =>
        tx.unsafe(`SELECT count(*) FROM crm_api.customers WHERE phone::bigint > 0`),
      ),
    );
    expect(e.code).toBe('22P02');
    expect(e.message).toMatch(/^invalid input syntax for type bigint: "\d{3}\*{4}\d{4}"$/);
    const e2 = await failure(
      c.as('bob', (tx) =>
        tx.unsafe(`SELECT count(*) FROM crm_api.customers WHERE id_number::bigint > 0`),
      ),
    );
    expect(e2.message).toMatch(/\*{4}/);
    // a cast of a hidden cell (NULL) cannot error at all
    const ok = await c.as('fiona', (tx) =>
      tx.unsafe(
        `SELECT count(*)::int AS n FROM crm_api.customers WHERE phone::bigint > 0 OR phone IS NULL`,
      ),
    );
    expect(ok[0]?.n).toBeGreaterThan(0);
    expect(await c.fingerprint()).toEqual(before);
  });

  it('no function in the pgwarden schemas is LEAKPROOF', async () => {
    const r = await c.t
      .sql`SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('pgwarden', 'pgwarden_audit', 'crm', 'crm_api') AND p.proleakproof`;
    expect([...r]).toEqual([]);
  });

  it('pg_stats shows a person nothing about crm or crm_api (after ANALYZE)', async () => {
    const r = await c.as(
      'vera',
      (tx) =>
        tx`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname IN ('crm', 'crm_api', 'pgwarden', 'pgwarden_audit')`,
    );
    expect(r[0]?.n).toBe(0);
    expect((await failure(c.as('vera', (tx) => tx`SELECT * FROM pg_statistic`))).code).toBe(
      '42501',
    );
    // the superuser does see them: the statistics exist
    const [s] = await c.t.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'crm'`;
    expect(s?.n).toBeGreaterThan(0);
  });

  it("EXPLAIN shows no stored value: only the query's own constants (row estimates are a documented residual)", async () => {
    const plans = await c.as('alice', async (tx) => {
      const out: string[] = [];
      for (const q of [
        `SELECT * FROM crm_api.customers WHERE phone > '0'`,
        `SELECT * FROM crm_api.customers WHERE name > 'A' ORDER BY name`,
        `SELECT region, count(*) FROM crm_api.customers GROUP BY region`,
      ]) {
        const r = await tx.unsafe(`EXPLAIN (VERBOSE, FORMAT JSON) ${q}`);
        out.push(JSON.stringify(r));
      }
      return out;
    });
    for (const p of plans) {
      for (const r of real) {
        for (const v of [r.phone, r.email, r.id_number, r.address])
          if (v) expect(p.includes(v), v).toBe(false);
      }
    }
  });
});

describe('F. definer functions and search_path', () => {
  it('every SECURITY DEFINER function pins search_path with pg_temp last, and none is executable by PUBLIC', async () => {
    const r = await c.t.sql<{ f: string; config: string[] | null; public_exec: boolean }[]>`
      SELECT p.oid::regprocedure::text AS f, p.proconfig AS config,
        EXISTS (SELECT FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_exec
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;
    expect(r.length).toBeGreaterThan(20);
    const bad = r.filter(
      (x) =>
        x.public_exec || !(x.config ?? []).some((s) => /^search_path=pg_catalog, pg_temp$/.test(s)),
    );
    expect(bad).toEqual([]);
  });

  it("temp tables, functions, types and operators named like pgwarden's, and a hostile search_path, change nothing", async () => {
    const person = 'carol';
    const q = (tx: postgres.TransactionSql) =>
      tx.unsafe(`SELECT ${COLS} FROM crm_api.customers ORDER BY id`).then((rows) => [...rows]);
    const me = (tx: postgres.TransactionSql) =>
      tx`SELECT pgwarden.me() AS me`.then((r) => r[0]?.me);
    const [clean, cleanMe] = await c.as(person, async (tx) => [await q(tx), await me(tx)]);
    const tables = await c.t.sql<
      { t: string }[]
    >`SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('pgwarden', 'crm', 'crm_api') AND c.relkind IN ('r', 'v', 'p') AND NOT c.relispartition`;
    const funcs = await c.t.sql<
      { f: string; args: string; ret: string }[]
    >`SELECT p.proname AS f, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS ret FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgwarden' AND p.prokind = 'f' AND pg_get_function_result(p.oid) IN ('boolean', 'text', 'name', 'text[]', 'bigint[]', 'integer', 'jsonb')`;
    const [shadowed, shadowedMe] = await c.as(person, async (tx) => {
      for (const { t } of tables) {
        await tx.unsafe(
          `CREATE TEMP TABLE IF NOT EXISTS "${t}" (name text, person text, role name, unit text, job text, owner text, id bigint, active boolean DEFAULT true) ON COMMIT DROP`,
        );
        await tx.unsafe(
          `INSERT INTO pg_temp."${t}" (name, person, role, unit, job, owner, id) VALUES ('${person}', '${person}', CURRENT_USER, 'hq', 'sales_director', '${person}', 1)`,
        );
      }
      for (const { f, args, ret } of funcs) {
        const body =
          ret === 'boolean'
            ? 'true'
            : ret === 'integer'
              ? '1000000'
              : ret === 'jsonb'
                ? `'[{}]'::jsonb`
                : ret.endsWith('[]')
                  ? `'{}'::${ret}`
                  : `'${person}'::${ret}`;
        const params = args.replace(/\bp\b|\btbl\b|\bjob\b|\bv\b|\br\b/g, '');
        await tx
          .unsafe(
            `CREATE FUNCTION pg_temp."${f}"(${params}) RETURNS ${ret} LANGUAGE sql AS $$ SELECT ${body} $$`,
          )
          .catch(() => undefined);
      }
      await tx.unsafe(
        `CREATE FUNCTION pg_temp.always(name, name) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$`,
      );
      await tx.unsafe(
        `CREATE OPERATOR pg_temp.= (LEFTARG = name, RIGHTARG = name, FUNCTION = pg_temp.always)`,
      );
      await tx.unsafe(
        `CREATE FUNCTION pg_temp.always_t(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$`,
      );
      await tx.unsafe(
        `CREATE OPERATOR pg_temp.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_temp.always_t)`,
      );
      await tx.unsafe(`SET LOCAL search_path = pg_temp, pgwarden, crm_api, crm, public`);
      return [await q(tx), await me(tx)];
    });
    expect(shadowed).toEqual(clean);
    expect(shadowedMe).toEqual(cleanMe);
    // writes under the hostile path are still checked: a rep's update of a row outside her reach
    const e = await failure(
      c.as('alice', async (tx) => {
        await tx.unsafe(
          `CREATE TEMP TABLE people (name text, role name, unit text, active boolean) ON COMMIT DROP`,
        );
        await tx.unsafe(`SET LOCAL search_path = pg_temp, pgwarden, crm_api`);
        await tx.unsafe(
          `UPDATE crm_api.customers SET owner = 'alice' WHERE owner = 'bob' AND NOT in_pool AND id IN (SELECT row_key::bigint FROM (VALUES ('1')) s(row_key))`,
        );
        return tx.unsafe(`UPDATE customers SET id_number = '1' WHERE owner = 'alice'`);
      }),
    );
    expect(e.code).toBe('42501');
    expect(await c.fingerprint()).toEqual(before);
  });
});
