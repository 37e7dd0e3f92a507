/**
 * The audit log (issue #4): one record per row change on every write path, with the true
 * person; append-only for everyone; tampering by a superuser detected by verify; concurrent
 * writers never fork the chain; readers only.
 */
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { anchor, seal, verify } from '../src/report/audit.js';
import { withPerson } from '../src/runtime/with-person.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';
import { sealAll } from './helpers/seal.js';

let t: TestDb;
let app: postgres.Sql;
const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withPerson(app, person, fn, { rolePrefix: t.prefix });
const records = async (where: string) =>
  (await t.sql.unsafe(
    `SELECT id::int, kind, table_name, operation, row_key, changes, person, actor, authenticator FROM pgwarden_audit.records WHERE ${where} ORDER BY id`,
  )) as unknown as {
    id: number;
    operation: string;
    row_key: string;
    changes: Record<string, { old?: unknown; new?: unknown }>;
    person: string | null;
    actor: string;
    authenticator: string;
  }[];
/** The table behind the records view that holds record `id`: the events or a data log. */
const holder = async (db: postgres.Sql | postgres.TransactionSql, id: number) => {
  const logs = await db<{ log: string }[]>`SELECT log FROM pgwarden_audit.data_logs ORDER BY log`;
  for (const table of ['events', ...logs.map((l) => l.log)]) {
    const found = await db.unsafe(
      `SELECT 1 FROM pgwarden_audit.${quoteIdent(table)} WHERE id = $1`,
      [id],
    );
    if (found.length > 0) return `pgwarden_audit.${quoteIdent(table)}`;
  }
  throw new Error(`record ${id} is in no audit table`);
};
const auditTables = async (db: postgres.Sql | postgres.TransactionSql) => [
  'pgwarden_audit.events',
  ...(await db<{ log: string }[]>`SELECT log FROM pgwarden_audit.data_logs ORDER BY log`).map(
    (l) => `pgwarden_audit.${quoteIdent(l.log)}`,
  ),
];
const maxId = async () =>
  Number((await t.sql`SELECT COALESCE(max(id), 0)::int AS m FROM pgwarden_audit.records`)[0]?.m);

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { max: 8 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('every write path leaves exactly one record per changed row, with the true person', () => {
  it('UPDATE through the view as alice (via crm_app): person, authenticator, hashed phone', async () => {
    const before = await maxId();
    const [c] =
      await t.sql`SELECT id::int, phone FROM crm.customers WHERE owner = 'alice' ORDER BY id LIMIT 1`;
    await as(
      'alice',
      (tx) =>
        tx`UPDATE crm_api.customers SET phone = '13999998888', status = 'active' WHERE id = ${c?.id as number}`,
    );
    const recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs).toHaveLength(1);
    expect(recs[0]).toMatchObject({
      operation: 'UPDATE',
      row_key: String(c?.id),
      person: 'alice',
      actor: `${t.prefix}alice`,
      authenticator: `${t.prefix}crm_app`,
    });
    const phone = recs[0]?.changes.phone as { old: string; new: string };
    expect(phone.new).toMatch(/^hmac:[0-9a-f]{32}$/);
    expect(JSON.stringify(recs)).not.toContain('13999998888');
    expect(JSON.stringify(recs)).not.toContain(String(c?.phone));
    expect(Object.keys(recs[0]?.changes ?? {}).sort()).toEqual(['phone', 'status'].sort());
  });

  it('INSERT and bulk UPDATE through the view, and DELETE into the bin with its children', async () => {
    let before = await maxId();
    await as(
      'bob',
      (tx) =>
        tx`INSERT INTO crm_api.customers (name, region, customer_type, email) VALUES ('Audit Co', 'east', 'retail', 'secret@audit.example.com')`,
    );
    let recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs.map((r) => r.operation)).toEqual(['INSERT']);
    expect(JSON.stringify(recs)).not.toContain('secret@audit.example.com');

    before = await maxId();
    const r = await as('bob', (tx) => tx`UPDATE crm_api.customers SET status = status`);
    recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs).toHaveLength(r.count);

    before = await maxId();
    const [victim] =
      await t.sql`SELECT c.id::int, (SELECT count(*)::int FROM crm.contacts k WHERE k.customer_id = c.id) + (SELECT count(*)::int FROM crm.deals d WHERE d.customer_id = c.id) + (SELECT count(*)::int FROM crm.contracts k WHERE k.customer_id = c.id) AS kids
      FROM crm.customers c WHERE c.owner = 'pat' ORDER BY id LIMIT 1`;
    await as('carol', (tx) => tx`DELETE FROM crm_api.customers WHERE id = ${victim?.id as number}`);
    recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs.filter((x) => x.operation === 'DELETE')).toHaveLength(1 + (victim?.kids as number));
    expect(recs.every((x) => x.person === 'carol')).toBe(true);
    // the bin's copy of the row is in the log only as a keyed hash
    const bin = await records(`id > ${before} AND table_name = 'pgwarden.recycle_bin'`);
    expect(bin).toHaveLength(1);
    expect(String((bin[0]?.changes.row_data as { new: string } | undefined)?.new)).toMatch(
      /^hmac:/,
    );
  });

  it('upsert, MERGE and COPY FROM on the base table (by the administrator) are recorded too', async () => {
    let before = await maxId();
    await t.sql`INSERT INTO crm.customers (id, name, owner, region, customer_type) VALUES (5001, 'Upsert Co', 'bob', 'east', 'retail')
      ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`;
    await t.sql`INSERT INTO crm.customers (id, name, owner, region, customer_type) VALUES (5001, 'Upsert Co 2', 'bob', 'east', 'retail')
      ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`;
    let recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs.map((r) => `${r.operation} ${r.row_key}`)).toEqual(['INSERT 5001', 'UPDATE 5001']);
    expect(recs[1]?.person).toBeNull();
    expect(recs[1]?.actor).toBe('postgres');

    before = await maxId();
    await t.sql`MERGE INTO crm.customers c USING (VALUES (5001, 'Merged'), (5002, 'Merged new')) AS v(id, name) ON c.id = v.id
      WHEN MATCHED THEN UPDATE SET name = v.name
      WHEN NOT MATCHED THEN INSERT (id, name, owner, region, customer_type) VALUES (v.id, v.name, 'bob', 'west', 'vip')`;
    recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs.map((r) => `${r.operation} ${r.row_key}`).sort()).toEqual([
      'INSERT 5002',
      'UPDATE 5001',
    ]);

    before = await maxId();
    const copy = await t.sql`COPY crm.contacts (customer_id, name, phone) FROM STDIN`.writable();
    copy.write('5001\tCopied One\t13811112222\n5002\tCopied Two\t13833334444\n');
    await new Promise<void>((res, rej) => copy.end((e?: Error | null) => (e ? rej(e) : res())));
    recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs.map((r) => r.operation)).toEqual(['INSERT', 'INSERT']);
    expect(JSON.stringify(recs)).not.toContain('13811112222');
  });

  it('a bulk UPDATE (planned for its size) and a single-row UPDATE after it in the same session are both recorded', async () => {
    await t.sql`INSERT INTO crm.contacts (customer_id, name) SELECT 5, 'Bulk ' || g FROM generate_series(1, 150) g`;
    const before = await maxId();
    const r = await t.sql.begin(async (tx) => {
      const bulk = await tx`UPDATE crm.contacts SET title = title`;
      const one =
        await tx`UPDATE crm.contacts SET title = title WHERE id = (SELECT min(id) FROM crm.contacts)`;
      return bulk.count + one.count;
    });
    const recs = await records(`id > ${before} AND kind = 'data'`);
    expect(recs).toHaveLength(r);
    expect(r).toBeGreaterThan(150);
  });

  it('TRUNCATE of a protected table is refused, even for a superuser, except as the owner role', async () => {
    await expect(t.sql`TRUNCATE crm.deals`).rejects.toMatchObject({
      code: '42501',
      message: expect.stringContaining('TRUNCATE of crm.deals is refused'),
    });
  });

  it('session_replication_role = replica does not silence the triggers', async () => {
    const before = await maxId();
    await t.sql.begin(async (tx) => {
      await tx`SET LOCAL session_replication_role = replica`;
      await tx`UPDATE crm.customers SET status = status WHERE id = 5002`;
    });
    expect(await records(`id > ${before} AND kind = 'data'`)).toHaveLength(1);
  });

  it('permission changes and applies are recorded', async () => {
    const before = await maxId();
    await as('adam', (tx) => tx`SELECT pgwarden.share('customers', '5', 'dave')`);
    await as('adam', (tx) => tx`SELECT pgwarden.grant_job('dave', 'marketing')`);
    const recs = await records(`id > ${before}`);
    expect(
      recs.map((r) => `${r.operation} ${(r as unknown as { table_name: string }).table_name}`),
    ).toEqual(['INSERT pgwarden.shares', 'INSERT pgwarden.job_grants']);
    expect(recs.every((r) => r.person === 'adam')).toBe(true);
    const applies =
      await t.sql`SELECT count(*)::int AS n FROM pgwarden_audit.records WHERE kind = 'apply'`;
    expect(applies[0]?.n).toBeGreaterThanOrEqual(1);
  });
});

describe('append-only for everyone', () => {
  const who = ['adam', 'audrey', 'alice', 'carol', 'olga'];
  it('people (through crm_app) cannot insert, update, delete or truncate audit rows, or silence triggers', async () => {
    for (const p of who) {
      for (const stmt of [
        `INSERT INTO pgwarden_audit.records (kind, operation, actor, authenticator) VALUES ('data', 'X', 'x', 'x')`,
        'UPDATE pgwarden_audit.records SET person = NULL',
        'DELETE FROM pgwarden_audit.records',
        'DELETE FROM pgwarden_audit.chain',
        // the tables behind the records view: the events and a data log (sql/018)
        ...['events', 'data_customers'].flatMap((tbl) => [
          `INSERT INTO pgwarden_audit.${tbl} (recorded_at, actor, authenticator) VALUES (now(), 'x', 'x')`,
          `UPDATE pgwarden_audit.${tbl} SET person = NULL`,
          `DELETE FROM pgwarden_audit.${tbl}`,
          `TRUNCATE pgwarden_audit.${tbl}`,
          `ALTER TABLE pgwarden_audit.${tbl} DISABLE TRIGGER ALL`,
        ]),
        'ALTER TABLE crm.customers DISABLE TRIGGER ALL',
        'SET session_replication_role = replica',
      ]) {
        await expect(
          as(p, (tx) => tx.unsafe(stmt)),
          `${p}: ${stmt}`,
        ).rejects.toMatchObject({ code: '42501' });
      }
    }
  });

  it('crm_app itself cannot either', async () => {
    for (const stmt of [
      'DELETE FROM pgwarden_audit.records',
      'DELETE FROM pgwarden_audit.data_customers',
      'TRUNCATE pgwarden_audit.events',
      'TRUNCATE pgwarden_audit.chain',
      'SET session_replication_role = replica',
    ]) {
      await expect(app.unsafe(stmt), stmt).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('only audit readers read the log: audrey yes, adam no', async () => {
    const rows = await as('audrey', (tx) => tx`SELECT count(*)::int AS n FROM pgwarden_audit.log`);
    expect(rows[0]?.n).toBeGreaterThan(0);
    await expect(
      as('adam', (tx) => tx`SELECT count(*) FROM pgwarden_audit.log`),
    ).rejects.toMatchObject({
      code: '42501',
      message: 'permission denied: adam may not read the audit log',
    });
    await expect(
      as('adam', (tx) => tx`SELECT count(*) FROM pgwarden_audit.records`),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      as('audrey', (tx) => tx`SELECT count(*) FROM crm_api.customers`),
    ).resolves.toBeTruthy();
    const seen = await as('audrey', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    expect(seen[0]?.n).toBe(0); // no customer data for the auditor
  });
});

describe('concurrent writers and the chain', () => {
  it('8 writers for 30 seconds: one record per change, and the chain verifies under any TimeZone/DateStyle', {
    timeout: 120_000,
  }, async () => {
    await seal(t.sql);
    const before = await maxId();
    const reps = ['bob', 'dave', 'alice', 'bob', 'dave', 'alice', 'bob', 'dave'];
    const targets = new Map<string, number[]>();
    for (const p of new Set(reps)) {
      targets.set(
        p,
        (await t.sql`SELECT id::int FROM crm.customers WHERE owner = ${p} ORDER BY id`).map(
          (r) => r.id as number,
        ),
      );
    }
    const stopAt = Date.now() + 30_000;
    let changes = 0;
    const sealer = (async () => {
      while (Date.now() < stopAt) {
        await seal(t.sql);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    await Promise.all(
      reps.map(async (p, w) => {
        const ids = targets.get(p) as number[];
        let i = w;
        while (Date.now() < stopAt) {
          const id = ids[i % ids.length] as number;
          i += 1;
          const r = await as(
            p,
            (tx) => tx`UPDATE crm_api.customers SET name = ${`w${w} ${i}`} WHERE id = ${id}`,
          );
          changes += r.count;
        }
      }),
    );
    await sealer;
    const n = Number(
      (
        await t.sql`SELECT count(*)::int AS n FROM pgwarden_audit.records WHERE id > ${before} AND kind = 'data'`
      )[0]?.n,
    );
    expect(changes).toBeGreaterThan(100);
    expect(n).toBe(changes);
    // the sealer only seals transactions older than the oldest one running anywhere in the
    // cluster (other test files run beside this one): seal until nothing is left
    await sealAll(t.sql);
    const odd = postgres(t.url, {
      max: 1,
      onnotice: () => {},
      connection: {
        TimeZone: 'Pacific/Kiritimati',
        DateStyle: 'SQL, DMY',
        extra_float_digits: '-3',
      },
    });
    try {
      const a = await verify(t.sql);
      const b = await verify(odd);
      expect(a.problems).toEqual([]);
      expect(a.ok).toBe(true);
      expect(b).toEqual(a);
      expect(a.unsealed).toBe(0);
      // the chain has no fork: links are consecutive, one per record
      const [links] =
        await t.sql`SELECT count(*)::int AS n, max(seq)::int AS m, count(DISTINCT record_id)::int AS r FROM pgwarden_audit.chain`;
      expect(links?.n).toBe(links?.m);
      expect(links?.r).toBe(links?.n);
    } finally {
      await odd.end();
    }
  });
});

describe('tampering by a superuser is detected', () => {
  it('an edited, a deleted and an inserted record, and a cut-off tail', async () => {
    await seal(t.sql);
    const head = await anchor(t.sql);
    expect((await verify(t.sql, { anchor: head })).ok).toBe(true);
    const ids = (
      await t.sql`SELECT record_id::int AS id FROM pgwarden_audit.chain ORDER BY seq`
    ).map((r) => r.id as number);
    // one record of each kind of table behind the view: a row change in a data log, an event
    const inLog = async (id: number) => (await holder(t.sql, id)) !== 'pgwarden_audit.events';
    let editedId = ids[10] as number;
    for (const id of ids.slice(10)) {
      if (await inLog(id)) {
        editedId = id;
        break;
      }
    }
    let deleted = ids[20] as number;
    for (const id of ids.slice(20)) {
      if (!(await inLog(id))) {
        deleted = id;
        break;
      }
    }
    const forgedFrom = ids[30] as number;
    await t.sql.begin(async (tx) => {
      const tables = await auditTables(tx);
      for (const tbl of [...tables, 'pgwarden_audit.chain'])
        await tx.unsafe(`ALTER TABLE ${tbl} DISABLE TRIGGER USER`);
      await tx.unsafe(`UPDATE ${await holder(tx, editedId)} SET person = 'nobody' WHERE id = $1`, [
        editedId,
      ]);
      await tx.unsafe(`DELETE FROM ${await holder(tx, deleted)} WHERE id = $1`, [deleted]);
      // a row change forged into the customers' data log, placed among old records
      await tx`INSERT INTO pgwarden_audit.data_customers (id, recorded_at, op, key, actor, authenticator, txid, statement_at)
        SELECT ${forgedFrom} * 1000, r.recorded_at, 'D', 1, 'alice', 'alice', r.txid, r.statement_at
        FROM pgwarden_audit.records r WHERE r.id = ${forgedFrom}`;
      // the tail: the last three records and their links
      const tail = ids.slice(-3);
      for (const id of tail)
        await tx.unsafe(`DELETE FROM ${await holder(tx, id)} WHERE id = $1`, [id]);
      await tx`DELETE FROM pgwarden_audit.chain WHERE record_id = ANY (${tail})`;
      for (const tbl of [...tables, 'pgwarden_audit.chain']) {
        await tx.unsafe(`ALTER TABLE ${tbl} ENABLE ALWAYS TRIGGER append_only`);
        await tx.unsafe(`ALTER TABLE ${tbl} ENABLE ALWAYS TRIGGER append_only_truncate`);
      }
    });
    const r = await verify(t.sql, { anchor: head });
    expect(r.ok).toBe(false);
    const kinds = r.problems.map((p) => `${p.kind} ${p.recordId ?? p.seq}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        `edited ${editedId}`,
        `missing_record ${deleted}`,
        `not_in_chain ${forgedFrom * 1000}`,
        `tail_cut ${head.seq}`,
      ]),
    );
    expect(r.problems.find((p) => p.kind === 'edited')?.message).toContain(`record ${editedId}`);
    // without the anchor the cut tail is invisible; with it, it is not
    expect((await verify(t.sql)).problems.some((p) => p.kind === 'tail_cut')).toBe(false);
    // the sealer refuses to legitimise the inserted record
    await seal(t.sql);
    expect((await verify(t.sql)).problems.some((p) => p.kind === 'not_in_chain')).toBe(true);
  });
});

describe('a rewritten chain', () => {
  it('a superuser who rebuilds the whole chain after editing history is caught by the anchor', async () => {
    await seal(t.sql);
    // start from a consistent state, and keep an anchor outside the database
    await t.sql.begin(async (tx) => {
      await tx.unsafe('ALTER TABLE pgwarden_audit.chain DISABLE TRIGGER USER');
      await tx`DELETE FROM pgwarden_audit.chain`;
      await tx`UPDATE pgwarden_audit.seal_state SET horizon = NULL`;
      await tx.unsafe('ALTER TABLE pgwarden_audit.chain ENABLE ALWAYS TRIGGER append_only');
      await tx.unsafe(
        'ALTER TABLE pgwarden_audit.chain ENABLE ALWAYS TRIGGER append_only_truncate',
      );
    });
    await seal(t.sql);
    const head = await anchor(t.sql);
    expect((await verify(t.sql, { anchor: head })).ok).toBe(true);
    // rewrite history: change a record, then rebuild every link so the chain is consistent again
    const [victim] =
      await t.sql`SELECT record_id::int AS id FROM pgwarden_audit.chain WHERE seq = 3`;
    await t.sql.begin(async (tx) => {
      const table = await holder(tx, victim?.id as number);
      await tx.unsafe(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
      await tx.unsafe('ALTER TABLE pgwarden_audit.chain DISABLE TRIGGER USER');
      await tx.unsafe(`UPDATE ${table} SET person = 'someone else' WHERE id = $1`, [
        victim?.id as number,
      ]);
      await tx`DELETE FROM pgwarden_audit.chain`;
      await tx`UPDATE pgwarden_audit.seal_state SET horizon = NULL`;
      for (const tbl of [table, 'pgwarden_audit.chain']) {
        await tx.unsafe(`ALTER TABLE ${tbl} ENABLE ALWAYS TRIGGER append_only`);
        await tx.unsafe(`ALTER TABLE ${tbl} ENABLE ALWAYS TRIGGER append_only_truncate`);
      }
    });
    await seal(t.sql);
    const withoutAnchor = await verify(t.sql);
    expect(withoutAnchor.problems.filter((p) => p.kind === 'edited')).toEqual([]);
    const withAnchor = await verify(t.sql, { anchor: head });
    expect(withAnchor.problems.map((p) => p.kind)).toContain('anchor_mismatch');
  });
});
