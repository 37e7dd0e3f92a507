/**
 * pgwarden explain (issue #7): for every person of SCENARIO.md and ten rows of the CRM, the
 * rule-by-rule explanation, evaluated in the database as the person, agrees with what the person
 * actually sees through crm_api, and names the granting rule.
 */
import type postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmModel, setupCrm } from '../examples/crm/setup.js';
import type { Model } from '../src/model/types.js';
import { evaluateExplain, explainRow, explainSet } from '../src/report/explain.js';
import { parseWhere } from '../src/runtime/reveal-export.js';
import { withPerson } from '../src/runtime/with-person.js';
import { cli } from './helpers/cli.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';
import { PEOPLE } from './helpers/people.js';

// owned by alice, bob, pat, dave (north), dave (west), carol, walt, vera; pool rows; a shared row (1, 19)
const ROWS = ['1', '2', '9', '15', '19', '20', '26', '27', '28', '42'];
const CELLS = ['phone', 'email', 'id_number', 'address'] as const;

let t: TestDb;
let app: postgres.Sql;
let model: Model;

beforeAll(async () => {
  t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  model = await crmModel();
  app = await loginAs(t, 'crm_app', { max: 4 });
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

function level(base: string | null, shown: string | null): string {
  if (base === null) return 'empty';
  if (shown === null) return 'hidden';
  return shown === base ? 'full' : 'masked';
}

describe('explain agrees with the database, person by person', () => {
  it('for every person and ten rows: visibility, granting rule and every cell level match crm_api', async () => {
    const base = new Map(
      (
        await t.sql<
          Record<string, string | null>[]
        >`SELECT id::text AS id, phone, email, pgwarden.decrypt_value(id_number, 'crm.customers.id_number') AS id_number, address FROM crm.customers WHERE id::text = ANY (${ROWS})`
      ).map((r) => [r.id as string, r]),
    );
    let compared = 0;
    for (const person of PEOPLE) {
      const seen = new Map(
        (
          await withPerson(
            app,
            person,
            (tx) =>
              tx<
                Record<string, string | null>[]
              >`SELECT id::text AS id, phone, email, id_number, address FROM crm_api.customers WHERE id::text = ANY (${ROWS})`,
            { rolePrefix: t.prefix },
          )
        ).map((r) => [r.id as string, r]),
      );
      const ev = await evaluateExplain(t.sql, model, {
        person,
        table: 'customers',
        where: { id: ROWS },
      });
      expect(ev.rows.map((r) => r.key).sort()).toEqual([...ROWS].sort());
      for (const row of ev.rows) {
        const e = explainRow(ev, row);
        const visible = seen.has(row.key);
        expect(e.see.allowed, `${person} ${row.key}: ${e.see.why.join(' | ')}`).toBe(visible);
        expect(e.actualVisible).toBe(visible);
        expect(e.agrees, `${person} ${row.key}: ${e.disagreements.join(' | ')}`).toBe(true);
        if (visible) {
          expect(e.grantedBy.length, `${person} ${row.key}`).toBeGreaterThan(0);
          expect(e.see.why[0]).toMatch(/^rule \d+ /);
          for (const c of CELLS) {
            const cell = e.cells.find((x) => x.column === c);
            const actual = level(base.get(row.key)?.[c] ?? null, seen.get(row.key)?.[c] ?? null);
            expect(cell?.level, `${person} ${row.key} ${c}: ${cell?.why}`).toBe(actual);
          }
        } else {
          expect(e.see.why[0]).toMatch(/^no rule grants it/);
        }
        compared += 1;
      }
    }
    expect(compared).toBe(PEOPLE.length * ROWS.length);
  });

  it('names the granting rule: own, subtree via the managed unit, share with its end, temporary grant, pool, filter', async () => {
    const one = async (person: string, key: string, column?: string) => {
      const ev = await evaluateExplain(t.sql, model, {
        person,
        table: 'customers',
        key,
        ...(column ? { column } : {}),
      });
      return explainRow(ev, ev.rows[0] as (typeof ev.rows)[number]);
    };
    const own = await one('alice', '1');
    expect(own.grantedBy).toEqual(['own']);
    expect(own.see.why[0]).toContain('owner is alice');
    expect(own.change.allowed).toBe(true);

    const sub = await one('vera', '19');
    expect(sub.grantedBy).toEqual(['subtree']);
    expect(sub.see.why[0]).toContain(
      'owner dave is in sales_west, under sales, which vera manages',
    );

    const walt = await one('walt', '20');
    expect(walt.see.why[0]).toContain('sales_west, which walt manages');
    expect(walt.delete.allowed).toBe(true);

    const shared = await one('alice', '19', 'phone');
    expect(shared.grantedBy).toEqual(['shared']);
    expect(shared.see.why[0]).toMatch(/shared with alice by .* \(share #\d+\) until \d{4}-/);
    expect(shared.cells[0]?.level).toBe('masked');
    expect(shared.change.allowed).toBe(false);

    const tom = await one('tom', '2');
    expect(tom.grantedBy).toEqual(['granted']);
    expect(tom.see.why[0]).toMatch(
      /temporary grant "double11" #\d+ \(region in east, customer_type in retail; select\) until \d{4}-/,
    );
    const tomNo = await one('tom', '1');
    expect(tomNo.see.allowed).toBe(false);
    expect(tomNo.see.why[0]).toContain('customer_type is enterprise, not retail');

    const pool = await one('bob', '42');
    expect(pool.grantedBy).toEqual(['pool']);
    expect(pool.export.allowed).toBe(false);

    const erin = await one('erin', '9');
    expect(erin.grantedBy).toEqual(['filter']);
    const fiona = await one('fiona', '1');
    expect(fiona.see.allowed).toBe(true);

    const denied = await one('alice', '20');
    expect(denied.see.allowed).toBe(false);
    expect(denied.see.why[0]).toContain('no rule grants it: owner is dave in sales_west');
    expect(denied.see.why[0]).toContain('alice manages nothing');

    const reveal = await one('alice', '1', 'id_number');
    expect(reveal.reveal.allowed).toBe(true);
    expect(reveal.cells[0]?.level).toBe('masked');
    const carolExport = await one('carol', '1', 'phone');
    expect(carolExport.cells[0]?.export.allowed).toBe(false);
    const carolName = await one('carol', '1', 'name');
    expect(carolName.cells[0]?.export.allowed).toBe(true);
  });

  it('contacts follow their customer (parent scope)', async () => {
    const ev = await evaluateExplain(t.sql, model, {
      person: 'alice',
      table: 'contacts',
      where: {},
    });
    const s = explainSet(ev);
    const seen = await withPerson(
      app,
      'alice',
      (tx) => tx`SELECT count(*)::int AS n FROM crm_api.contacts`,
      {
        rolePrefix: t.prefix,
      },
    );
    expect(s.visible).toBe(seen[0]?.n);
    expect(s.disagreements).toEqual([]);
    expect(Object.keys(s.byReason)).toContain('parent');
  });

  it('--where counts per reason', async () => {
    const ev = await evaluateExplain(t.sql, model, {
      person: 'alice',
      table: 'customers',
      where: await parseWhere("region IN ('east', 'north')"),
    });
    const s = explainSet(ev);
    expect(s.byReason.own).toBeGreaterThan(0);
    expect(s.byReason.pool).toBeGreaterThan(0);
    expect(s.byReason.shared).toBe(1);
    expect(s.byReason.none).toBeGreaterThan(0);
    expect(s.disagreements).toEqual([]);
  });
});

describe('pgwarden explain (CLI)', () => {
  const env = () => ({ DATABASE_URL: t.url, PGWARDEN_MODEL: 'examples/crm/model.ts' });
  it('explains a row and a cell', async () => {
    const r = await cli(
      ['explain', 'customers', '19', '--as', 'alice', '--column', 'phone'],
      env(),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('see      yes');
    expect(r.stdout).toContain('shared with alice');
    expect(r.stdout).toContain('(agrees)');
    const j = await cli(['explain', 'customers', '20', '--as', 'alice', '--json'], env());
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout).see.allowed).toBe(false);
  });
  it('explains a set with --where', async () => {
    const r = await cli(
      ['explain', 'customers', '--as', 'carol', '--where', "region = 'east'", '--exit-code'],
      env(),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/carol on customers: \d+ of \d+ row\(s\) visible/);
    expect(r.stdout).toContain('the view agrees on every row');
  });
  it('exit codes and help', async () => {
    expect((await cli(['explain', '--help'])).stdout).toContain('--where');
    const none = await cli(['explain', 'customers', '--as', 'alice'], env());
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('explain needs a row key or --where');
    const bad = await cli(['explain', 'customers', '--as', 'alice', '--where', 'id > 3'], env());
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('not a supported filter');
    const nobody = await cli(['explain', 'customers', '1', '--as', 'zed'], env());
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain('not a person');
    const missing = await cli(['explain', 'customers', '99999', '--as', 'alice'], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('has no row');
  });
});
