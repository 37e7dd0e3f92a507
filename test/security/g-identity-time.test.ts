/**
 * SECURITY.md G (identity and sessions) and H (time), as attacks. Already covered elsewhere, not
 * repeated: crm_app after RESET ROLE reads nothing, `app.user` spoofing (test/crm-behaviour.test.ts
 * "crm_app itself (RESET ROLE) reads no customer data", "a GUC claiming another identity changes
 * nothing"), a session TimeZone on an expired grant ("a session TimeZone does not stretch an
 * expired grant"). The pooler is test/security/pgbouncer.test.ts.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Crm, crm, failure, sleep } from './helpers.js';

let c: Crm;
let before: Record<string, string>;
const ids = (rows: readonly postgres.Row[]) => rows.map((r) => String(r.id));
const visible = (person: string) =>
  c
    .as(person, (tx) => tx`SELECT id::text, phone FROM crm_api.customers ORDER BY id`)
    .then((r) => [...r]);

beforeAll(async () => {
  c = await crm();
  before = await c.fingerprint();
});
afterAll(async () => {
  await c?.end();
});

describe("G. GUC spoofing: setting pgwarden's own settings, or identity-looking ones, changes no decision", () => {
  it('role-like and pgwarden.* settings, transaction- and session-level, leave her rows and cells as they are', async () => {
    const own = await visible('alice');
    const spoofed = await c.as('alice', async (tx) => {
      for (const [k, v] of [
        ['app.user', 'vera'],
        ['request.jwt.claim.sub', 'vera'],
        ['pgwarden.person', 'vera'],
        ['pgwarden.caller', c.role('vera')],
        ['pgwarden.role', c.role('vera')],
        ['pgwarden.write_done', '1'],
        ['pgwarden.write_skipped', ''],
        ['application_name', 'vera'],
      ] as const) {
        await tx`SELECT set_config(${k}, ${v}, true)`;
      }
      return [...(await tx`SELECT id::text, phone FROM crm_api.customers ORDER BY id`)];
    });
    expect(spoofed).toEqual(own);
  });

  it('write_done set by hand before a refused update: still refused (the statement trigger resets it)', async () => {
    const [s] = await c.t.sql<
      { k: string }[]
    >`SELECT row_key AS k FROM pgwarden.shares WHERE person = 'bob' ORDER BY id LIMIT 1`;
    const e = await failure(
      c.as('bob', async (tx) => {
        await tx`SELECT set_config('pgwarden.write_done', '5', true)`;
        return tx`UPDATE crm_api.customers SET name = 'pwned' WHERE id = ${s?.k as string}`;
      }),
    );
    expect(e.code).toBe('42501');
  });

  it('residual (documented): write_done set mid-statement turns the refusal into a silent 0, and changes nothing', async () => {
    const [s] = await c.t.sql<
      { k: string }[]
    >`SELECT row_key AS k FROM pgwarden.shares WHERE person = 'bob' ORDER BY id LIMIT 1`;
    const r = await c.as('bob', async (tx) => {
      await tx.unsafe(
        `CREATE FUNCTION pg_temp.fake() RETURNS boolean LANGUAGE sql AS $$ SELECT set_config('pgwarden.write_done', '1', true) IS NOT NULL $$`,
      );
      const out =
        await tx`UPDATE crm_api.customers SET name = 'pwned' WHERE id = ${s?.k as string} AND pg_temp.fake()`;
      await tx.unsafe('DROP FUNCTION pg_temp.fake()');
      return out.count;
    });
    expect(r).toBe(0);
    expect(await c.fingerprint()).toEqual(before);
  });

  it('the read cap counter cannot be reset by SET before the statement (it is keyed by statement start and backend)', async () => {
    // a rep's cap is 200 rows per statement; give the pool enough rows to pass it
    await c.t
      .sql`INSERT INTO crm.customers (name, region, customer_type, status, in_pool) SELECT 'SecPool ' || g, 'east', 'retail', 'lead', true FROM generate_series(1, 220) g`;
    try {
      const e = await failure(
        c.as('alice', async (tx) => {
          await tx`SELECT set_config('pgwarden.read_' || md5('customers'), '', true)`;
          return tx`SELECT id FROM crm_api.customers`;
        }),
      );
      expect(e.code).toBe('42501');
      expect(e.message).toContain('may read at most 200 rows of customers in one statement');
    } finally {
      await c.t.sql`DELETE FROM crm.customers WHERE name LIKE 'SecPool %'`;
    }
  });
});

describe('G. RESET ROLE / SET ROLE', () => {
  it('a person logged in directly: RESET ROLE stays herself; SET ROLE / SESSION AUTHORIZATION to another person, the authenticator or an owner is refused (42501)', async () => {
    const alice = await c.login('alice');
    const own = ids(await visible('alice'));
    await alice`RESET ROLE`;
    const [me] = await alice`SELECT current_user AS u, session_user AS s`;
    expect(me).toEqual({ u: c.role('alice'), s: c.role('alice') });
    expect(ids(await alice`SELECT id::text FROM crm_api.customers ORDER BY id`)).toEqual(own);
    for (const target of [
      'bob',
      'vera',
      'crm_app',
      'crm_owner',
      'crm_api_owner',
      'pgwarden_owner',
      'pgwarden_audit',
    ]) {
      expect((await failure(alice.unsafe(`SET ROLE ${c.role(target)}`))).code, target).toBe(
        '42501',
      );
      expect(
        (await failure(alice`SELECT set_config('role', ${c.role(target)}, false)`)).code,
        target,
      ).toBe('42501');
      expect(
        (await failure(alice.unsafe(`SET SESSION AUTHORIZATION ${c.role(target)}`))).code,
        target,
      ).toBe('42501');
    }
    // the one role above her she may become is the people role, which is nobody
    const r = await alice.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL ROLE ${c.role('crm_people')}`);
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    expect(r[0]?.n).toBe(0);
    await alice.end();
    await c.t.sql.unsafe(`ALTER ROLE ${c.role('alice')} NOLOGIN`);
  });

  it('the authenticator holds no data privilege of its own: no table, view, sequence or function grant', async () => {
    const r = await c.t.sql`
      SELECT cl.oid::regclass::text AS obj FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE n.nspname IN ('crm', 'crm_api', 'pgwarden', 'pgwarden_audit')
        AND (has_table_privilege(${c.role('crm_app')}, cl.oid, 'SELECT') OR has_table_privilege(${c.role('crm_app')}, cl.oid, 'INSERT')
          OR has_table_privilege(${c.role('crm_app')}, cl.oid, 'UPDATE') OR has_table_privilege(${c.role('crm_app')}, cl.oid, 'DELETE'))`;
    expect([...r]).toEqual([]);
  });

  // Design boundary, documented in docs/security.md ("Residual risks"): PostgreSQL checks SET ROLE
  // against the *session* user, and the authenticator is a member of every person. So SQL that
  // runs inside a person's transaction on the application's connection (an SQL injection, a BI
  // tool given the application's login) can become any other person. Only a person logged in
  // directly is bound to herself (previous test). This test pins the behaviour.
  it("through the authenticator, SQL in alice's transaction can SET ROLE bob (the authenticator is trusted code)", async () => {
    const got = await c.as('alice', async (tx) => {
      await tx`SELECT set_config('role', ${c.role('bob')}, true)`;
      return tx`SELECT current_user AS u`;
    });
    expect(got[0]?.u).toBe(c.role('bob'));
  });
});

describe('G. prepared statements across people', () => {
  it("force_generic_plan: the same prepared statement, alternating alice/bob/carol on one connection, returns each one's rows", async () => {
    const expected: Record<string, string[]> = {};
    for (const p of ['alice', 'bob', 'carol']) expected[p] = ids(await visible(p));
    await c.app`SET plan_cache_mode = force_generic_plan`;
    try {
      for (let round = 0; round < 3; round++) {
        for (const p of ['alice', 'bob', 'carol', 'bob', 'alice']) {
          // postgres.js prepares this text once per connection and reuses the statement
          const rows = await c.as(
            p,
            (tx) => tx`SELECT id::text, phone FROM crm_api.customers WHERE id > ${0} ORDER BY id`,
          );
          expect(ids(rows), `${p} round ${round}`).toEqual(expected[p]);
        }
      }
      // an SQL-level PREPARE made as alice, EXECUTEd as bob
      await c.as('alice', (tx) =>
        tx.unsafe(`PREPARE grab AS SELECT id::text FROM crm_api.customers ORDER BY id`),
      );
      const asAlice = await c.as('alice', (tx) => tx.unsafe('EXECUTE grab'));
      const asBob = await c.as('bob', (tx) => tx.unsafe('EXECUTE grab'));
      expect(ids(asAlice)).toEqual(expected.alice);
      expect(ids(asBob)).toEqual(expected.bob);
      await c.app.unsafe('DEALLOCATE grab');
    } finally {
      await c.app`RESET plan_cache_mode`;
    }
  });
});

describe('G. session-level state left on a pooled connection by one person', () => {
  // Found by this suite: a person's transaction on the application's connection could leave
  // session-level state that the next transaction on the same connection (another person's, with
  // pgbouncer in transaction mode: another client's) inherits: a session-level `SET ROLE`,
  // `SET search_path`, and temporary tables that the next person's unqualified names resolve to.
  // withPerson now clears it before commit (SESSION_CLEANUP in src/runtime/with-person.ts).
  it('a session-level SET ROLE / search_path / temp table made by alice does not survive her transaction', async () => {
    await c.as('alice', async (tx) => {
      await tx.unsafe(`SET SESSION ROLE ${c.role('alice')}`);
      await tx.unsafe(`SET SESSION search_path = pg_temp, crm_api`);
      await tx.unsafe(`CREATE TEMP TABLE customers (id bigint, phone text)`);
      await tx.unsafe(`GRANT ALL ON pg_temp.customers TO PUBLIC`);
    });
    try {
      const [after] =
        await c.app`SELECT current_user AS u, current_setting('search_path') AS p, to_regclass('pg_temp.customers') IS NOT NULL AS t`;
      expect(after).toEqual({ u: c.role('crm_app'), p: '"$user", public', t: false });
    } finally {
      await c.app.unsafe(`RESET ROLE; RESET search_path; DISCARD TEMP`);
    }
  });

  it("the next person's withPerson still runs as that person, with exactly her rows", async () => {
    const expected = ids(await visible('bob'));
    await c.as('alice', (tx) => tx.unsafe(`SET SESSION ROLE ${c.role('alice')}`));
    try {
      const r = await c.as(
        'bob',
        (tx) =>
          tx`SELECT current_user AS u, (SELECT array_agg(id::text ORDER BY id) FROM crm_api.customers) AS ids`,
      );
      expect({ ...r[0], ids: [...(r[0]?.ids ?? [])].sort() }).toEqual({
        u: c.role('bob'),
        ids: [...expected].sort(),
      });
    } finally {
      await c.app.unsafe('RESET ROLE');
    }
  });
});

describe('H. time', () => {
  it("tom's grant that ends during an open READ COMMITTED and REPEATABLE READ transaction stops at the next statement", async () => {
    for (const level of ['read committed', 'repeatable read']) {
      await c.t
        .sql`UPDATE pgwarden.temp_grants SET valid_until = clock_timestamp() + interval '1500 milliseconds' WHERE person = 'tom'`;
      // the application's transaction, opened at this isolation level (withPerson opens READ COMMITTED)
      const [first, second] = (await c.app.begin(`isolation level ${level}`, async (tx) => {
        await tx`SELECT set_config('role', ${c.role('tom')}, true)`;
        await tx.unsafe(`SET LOCAL TimeZone = 'Pacific/Kiritimati'`);
        const a = await tx`SELECT count(*)::int AS n FROM crm_api.customers`;
        await sleep(2000);
        const b = await tx`SELECT count(*)::int AS n FROM crm_api.customers`;
        return [a[0]?.n, b[0]?.n];
      })) as unknown as [number, number];
      expect(first, level).toBeGreaterThan(0);
      expect(second, level).toBe(0);
    }
  });

  it("a share that ends during bob's open transaction stops at the next statement; TimeZone does not move it", async () => {
    const [s] = await c.t.sql<
      { id: string; k: string }[]
    >`SELECT id::text, row_key AS k FROM pgwarden.shares WHERE person = 'bob' ORDER BY id LIMIT 1`;
    await c.t
      .sql`UPDATE pgwarden.shares SET valid_until = clock_timestamp() + interval '1500 milliseconds' WHERE id = ${s?.id as string}`;
    const [a, b] = await c.as('bob', async (tx) => {
      await tx.unsafe(`SET LOCAL TimeZone = 'America/Adak'`);
      const x =
        await tx`SELECT count(*)::int AS n FROM crm_api.customers WHERE id = ${s?.k as string}`;
      await sleep(2000);
      const y =
        await tx`SELECT count(*)::int AS n FROM crm_api.customers WHERE id = ${s?.k as string}`;
      return [x[0]?.n, y[0]?.n];
    });
    expect([a, b]).toEqual([1, 0]);
  });

  it('the clock a person can influence is not the one expiry reads: SET TimeZone and a timestamp-typed probe change nothing', async () => {
    const rows = await c.as('tom', async (tx) => {
      await tx.unsafe(`SET LOCAL TimeZone = 'Etc/GMT+12'`);
      await tx.unsafe(`SET LOCAL DateStyle = 'SQL, DMY'`);
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    expect(rows[0]?.n).toBe(0);
  });
});
