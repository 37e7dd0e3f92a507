/**
 * The typed data logs behind pgwarden_audit.records (sql/018, issue 4): what a record of a row
 * change looks like when read back, that it reads the same under any session settings, and what
 * happens when a protected table changes shape under the audit (a new column, a new sensitive
 * column, a column whose type changed).
 */

import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupCrm } from '../examples/crm/setup.js';
import { apply, planAgainst } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import { dataLogColumns, dataLogName } from '../src/compile/audit.js';
import { compile } from '../src/compile/index.js';
import type { Model, TableModel } from '../src/model/types.js';
import { anchor, parseAnchor, seal, verify } from '../src/report/audit.js';
import { createTestDatabase, type TestDb, urlFor } from './helpers/db.js';
import { sealAll } from './helpers/seal.js';

let t: TestDb;
let model: Model;
beforeAll(async () => {
  t = await createTestDatabase();
  ({ model } = await setupCrm(t.sql, { rolePrefix: t.prefix }));
});
afterAll(async () => {
  await t?.cleanup();
});

/** The CRM model with one table changed. */
const withTable = (name: string, change: (x: TableModel) => TableModel): Model => ({
  ...model,
  tables: model.tables.map((x) => (x.table === name ? change(x) : x)),
});
const applyModel = (m: Model) =>
  apply(t.sql, compile(m, { rolePrefix: t.prefix }), {
    modelName: m.name,
    modelHash: sha256(canonicalJson(m)),
  });
const lastChange = async (table: string, settings = '') =>
  t.sql.begin(async (tx) => {
    if (settings) await tx.unsafe(settings);
    const [r] = await tx<{ id: string; operation: string; changes: Record<string, unknown> }[]>`
      SELECT id, operation, changes FROM pgwarden_audit.records
      WHERE table_name = ${table} ORDER BY id DESC LIMIT 1`;
    return r;
  });

describe('a row change read back through pgwarden_audit.records', () => {
  it('an INSERT lists the non-NULL values, times in UTC, sensitive ones as keyed hashes; the same under any TimeZone, DateStyle, extra_float_digits', async () => {
    await t.sql`INSERT INTO crm.customers (name, owner, region, customer_type, phone, email, created_at)
      VALUES ('Typed Ltd', 'alice', 'north', 'smb', '+1-555-0100', NULL, '2026-11-30 23:30:00+00')`;
    const plain = await lastChange('crm.customers');
    expect(plain?.operation).toBe('INSERT');
    const row = (plain?.changes as { new: Record<string, unknown> } | undefined)?.new ?? {};
    expect(row.name).toBe('Typed Ltd');
    expect(row.in_pool).toBe(false);
    expect(row.created_at).toBe('2026-11-30T23:30:00.000000Z');
    expect(row.phone).toMatch(/^hmac:[0-9a-f]{32}$/);
    // the same keyed hash as pgwarden_audit.hash_value() gives, which the catalog's records use
    const [h] = await t.sql`SELECT pgwarden_audit.hash_value('+1-555-0100') AS h`;
    expect(row.phone).toBe(h?.h);
    // NULL columns are left out (email, id_number, address)
    expect(Object.keys(row)).not.toContain('email');
    expect(Object.keys(row)).not.toContain('id_number');
    const odd = await lastChange(
      'crm.customers',
      "SET LOCAL TimeZone = 'Asia/Kathmandu'; SET LOCAL DateStyle = 'SQL, DMY'; SET LOCAL extra_float_digits = -3",
    );
    expect(odd).toEqual(plain);
  });

  it('an UPDATE lists only the changed columns, old and new; a DELETE the old row', async () => {
    const [c] = await t.sql`SELECT id FROM crm.customers WHERE name = 'Typed Ltd'`;
    await t.sql`UPDATE crm.customers SET status = 'active', email = 'x@typed.example' WHERE id = ${c?.id}`;
    const upd = await lastChange('crm.customers');
    expect(upd?.operation).toBe('UPDATE');
    expect(Object.keys(upd?.changes ?? {}).sort()).toEqual(['email', 'status']);
    expect(upd?.changes.status).toEqual({ old: 'lead', new: 'active' });
    // NULL to a value: only the new side, as a keyed hash
    expect(upd?.changes.email).toEqual({ new: expect.stringMatching(/^hmac:[0-9a-f]{32}$/) });
    await t.sql`DELETE FROM crm.customers WHERE id = ${c?.id}`;
    const del = await lastChange('crm.customers');
    expect(del?.operation).toBe('DELETE');
    expect((del?.changes as { old: Record<string, unknown> } | undefined)?.old.status).toBe(
      'active',
    );
  });

  it('nobody writes through the view, not even its owner or a superuser', async () => {
    for (const stmt of [
      `INSERT INTO pgwarden_audit.records (kind, operation, actor, authenticator) VALUES ('data', 'X', 'x', 'x')`,
      `UPDATE pgwarden_audit.records SET person = 'nobody'`,
      'DELETE FROM pgwarden_audit.records',
    ]) {
      await expect(t.sql.unsafe(stmt), stmt).rejects.toMatchObject({ code: '42501' });
    }
  });
});

describe('sealing and anchors', () => {
  it('an anchor taken before the first seal is link 0 without a hash, and every chain that follows verifies against it', async () => {
    const empty = await anchor(t.sql);
    expect(empty).toMatchObject({ seq: 0, hash: null });
    // (as `pgwarden audit verify --anchor` reads it back)
    const parsed = parseAnchor(JSON.stringify(empty));
    expect(await verify(t.sql, { anchor: parsed })).toMatchObject({ ok: true, problems: [] });
    await sealAll(t.sql);
    const r = await verify(t.sql, { anchor: parsed });
    expect(r.problems).toEqual([]);
    expect(r.checked).toBeGreaterThan(0);
    // a link 0 with a hash, or a later link without one, is not an anchor
    expect(() => parseAnchor('{"seq":0,"hash":"00"}')).toThrow(/link 0/);
    expect(() => parseAnchor('{"seq":3,"hash":null}')).toThrow(/link 3 needs the hash/);
    expect(() => parseAnchor('{"seq":-1,"hash":null}')).toThrow(/an anchor is/);
  });

  it('a transaction running in another database holds sealing back: the newer records wait, and none is reported as forged', async () => {
    const other = postgres(urlFor(t.url, { database: 'postgres' }), { max: 1, onnotice: () => {} });
    try {
      const held = await other.reserve();
      await held`BEGIN`;
      await held`SELECT pg_current_xact_id()`;
      try {
        await t.sql`UPDATE crm.deals SET stage = 'lost' WHERE id = (SELECT max(id) FROM crm.deals)`;
        await seal(t.sql);
        const waiting = await verify(t.sql);
        expect(waiting.problems).toEqual([]);
        expect(waiting.unsealed).toBeGreaterThan(0);
      } finally {
        await held`COMMIT`;
        held.release();
      }
      await sealAll(t.sql);
      const r = await verify(t.sql);
      expect(r.problems).toEqual([]);
      expect(r.unsealed).toBe(0);
    } finally {
      await other.end();
    }
  });
});

describe('a protected table that changes shape', () => {
  it('a new column and a newly sensitive column widen the log; sealed records still verify against the anchor', async () => {
    await t.sql`UPDATE crm.deals SET stage = 'won' WHERE id = (SELECT min(id) FROM crm.deals)`;
    await sealAll(t.sql);
    const head = await anchor(t.sql);
    expect(head.seq).toBeGreaterThan(0);
    expect(await verify(t.sql, { anchor: head })).toMatchObject({ ok: true, problems: [] });

    await t.sql`ALTER TABLE crm.deals ADD COLUMN note text`;
    const m = withTable('deals', (x) => ({
      ...x,
      columns: [...x.columns, { name: 'note', type: 'text' }],
      // title becomes sensitive: from now on its values are stored as keyed hashes
      sensitive: [...x.sensitive, 'title'].sort(),
    }));
    const plan = await planAgainst(t.sql, compile(m, { rolePrefix: t.prefix }));
    expect(plan.steps.map((s) => s.summary)).toContain(
      'replace audit log "pgwarden_audit"."data_deals" of "crm"."deals"',
    );
    await applyModel(m);
    const cols = await t.sql<{ c: string; type: string }[]>`
      SELECT column_name || ':' || old_column || '/' || new_column AS c, type::text AS type
      FROM pgwarden_audit.data_log_columns WHERE log = 'data_deals' AND column_name IN ('note', 'title')
      ORDER BY 1`;
    expect(cols).toEqual([
      { c: 'note:o_note/n_note', type: 'text' },
      { c: 'title:o_title/n_title', type: 'text' },
      { c: 'title:oh_title/nh_title', type: 'bytea' },
    ]);
    expect((await planAgainst(t.sql, compile(m, { rolePrefix: t.prefix }))).steps).toEqual([]);

    await t.sql`UPDATE crm.deals SET note = 'call back', title = 'Renamed deal' WHERE id = (SELECT min(id) FROM crm.deals)`;
    const upd = await lastChange('crm.deals');
    expect(upd?.changes.note).toEqual({ new: 'call back' });
    expect(upd?.changes.title).toEqual({
      old: expect.stringMatching(/^hmac:/),
      new: expect.stringMatching(/^hmac:/),
    });
    // the records sealed before read the same as when they were sealed
    await sealAll(t.sql);
    const r = await verify(t.sql, { anchor: head });
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('a column whose type changed: the plan shows the log as drifted, and apply stops naming the column', async () => {
    // (the view reads the column: a DBA drops it to change the type, and apply makes it again)
    await t.sql`DROP VIEW crm_api.deals CASCADE`;
    await t.sql`ALTER TABLE crm.deals ALTER COLUMN stage TYPE varchar(40)`;
    const m = withTable('deals', (x) => ({
      ...x,
      columns: [...x.columns, { name: 'note', type: 'text' }],
      sensitive: [...x.sensitive, 'title'].sort(),
    }));
    const plan = await planAgainst(t.sql, compile(m, { rolePrefix: t.prefix }));
    expect(plan.steps.map((s) => s.summary)).toEqual(
      expect.arrayContaining([
        're-create audit log "pgwarden_audit"."data_deals" of "crm"."deals" (changed or removed outside pgwarden)',
      ]),
    );
    const failed = await applyModel(m).then(
      () => null,
      (e: Error) => e,
    );
    expect(failed?.message).toMatch(
      /column crm\.deals\.stage changed type from text to character varying: its data log pgwarden_audit\.data_deals keeps text values in n_stage/,
    );
    // nothing was applied, and writes are still recorded (varchar goes into the text column)
    await t.sql`UPDATE crm.deals SET stage = 'lost' WHERE id = (SELECT min(id) FROM crm.deals)`;
    expect((await lastChange('crm.deals'))?.changes.stage).toEqual({ old: 'won', new: 'lost' });
  });
});

describe('names of data logs and their columns', () => {
  it('stay within 63 bytes with room for a partition suffix, and differ for different long names', () => {
    const long = (n: string) => `${n}_${'x'.repeat(58)}`;
    const table = (name: string, columns: string[], sensitive: string[] = []) =>
      ({
        ...model.tables[0],
        name,
        table: name,
        columns: columns.map((c) => ({ name: c, type: 'text' })),
        sensitive,
      }) as TableModel;
    const t1 = table(long('a'), [long('c1'), long('c2'), 'short'], [long('c2')]);
    const t2 = table(long('b'), []);
    expect(dataLogName(table('deals', []))).toBe('data_deals');
    for (const n of [dataLogName(t1), dataLogName(t2)]) {
      expect(Buffer.byteLength(`${n}_2026_12`)).toBeLessThanOrEqual(63);
      expect(Buffer.byteLength(`${n}_default`)).toBeLessThanOrEqual(63);
    }
    expect(dataLogName(t1)).not.toBe(dataLogName(t2));
    const cols = t1.columns.map((c) => dataLogColumns(t1, c.name));
    const names = cols.flatMap((c) => [c.old, c.new]);
    for (const n of names) expect(Buffer.byteLength(n)).toBeLessThanOrEqual(63);
    expect(new Set(names).size).toBe(names.length);
    expect(cols[1]).toMatchObject({ hashed: true, old: expect.stringMatching(/^oh_/) });
    expect(cols[2]).toEqual({ column: 'short', old: 'o_short', new: 'n_short', hashed: false });
  });
});
