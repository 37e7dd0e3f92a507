/**
 * The one quoting module against the server's own quote_ident / quote_literal, on hostile
 * strings; and the sql`` tag refusing plain strings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ident, sql } from '../src/sql/fragment.js';
import { QuoteError, quoteIdent, quoteLiteral } from '../src/sql/quote.js';
import { createTestDatabase, type TestDb } from './helpers/db.js';

const HOSTILE = [
  'plain',
  'UpperCase',
  'with space',
  'quo"te',
  '""',
  "single'quote",
  "''; DROP TABLE x; --",
  'semi;colon',
  'dot.ted',
  'back\\slash',
  "back\\'slash-quote",
  '$$dollar$$',
  '$pgw$',
  'select',
  'ünïcödé 客户',
  'emoji 🙂',
  'tab\there',
  'new\nline',
  '-- comment',
  '/* c */',
  'a'.repeat(63),
];

let t: TestDb;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.cleanup();
});

describe('quoting matches the server', () => {
  it('quote_literal: the server reads back exactly the string, and agrees with quote_literal', async () => {
    for (const s of HOSTILE) {
      const [row] = await t.sql.unsafe(
        `SELECT ${quoteLiteral(s)}::text AS v, quote_literal(${quoteLiteral(s)}::text) AS q`,
      );
      expect(row?.v).toBe(s);
      expect(quoteLiteral(s)).toBe(row?.q);
    }
  });

  it('quote_ident: every hostile name works as a table and column name', async () => {
    for (const s of HOSTILE) {
      const [row] = await t.sql.unsafe(`SELECT quote_ident(${quoteLiteral(s)}) AS q`);
      // the server quotes only when needed; we always quote, and both name the same thing
      const ours = quoteIdent(s);
      expect(ours === row?.q || ours === `"${String(row?.q)}"`).toBe(true);
      await t.sql
        .unsafe(`CREATE TABLE ${ours} (${ours} int); INSERT INTO ${ours} VALUES (1);`)
        .simple();
      const [n] = await t.sql.unsafe(`SELECT count(${ours}) AS n FROM ${ours}`);
      expect(Number(n?.n)).toBe(1);
      const [found] =
        await t.sql`SELECT relname FROM pg_class WHERE relname = ${s} AND relkind = 'r'`;
      expect(found?.relname).toBe(s);
      await t.sql.unsafe(`DROP TABLE ${ours}`);
    }
  });

  it('refuses names Postgres would truncate, and NUL bytes', () => {
    expect(() => quoteIdent('a'.repeat(64))).toThrow(QuoteError);
    expect(() => quoteIdent('é'.repeat(32))).toThrow(/64 bytes/);
    expect(() => quoteIdent('')).toThrow(QuoteError);
    expect(() => quoteIdent('a\0b')).toThrow(QuoteError);
    expect(() => quoteLiteral('a\0b')).toThrow(QuoteError);
  });
});

describe('the sql fragment tag', () => {
  it('refuses plain strings and look-alike objects', () => {
    const name = 'customers';
    expect(() => sql`SELECT * FROM ${name as never}`).toThrow(/not an SQL fragment/);
    expect(() => sql`SELECT * FROM ${{ text: 'x' } as never}`).toThrow(/not an SQL fragment/);
    expect(sql`SELECT * FROM ${ident(name)}`.text).toBe('SELECT * FROM "customers"');
  });
});
