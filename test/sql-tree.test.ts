/**
 * canonicalStatements (src/sql/tree.ts) leaves source positions out while writing the JSON. It
 * must give exactly the text of JSON.stringify over the stripped tree (parseTree), as it did
 * before: fingerprints of applied databases are stored in pgwarden.objects, and a different
 * text would show every policy and view as changed. No database: the parser is libpg-query.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalStatements,
  loadParser,
  parseTree,
  returnedSelect,
  selectNarrowerOrEqual,
} from '../src/sql/tree.js';

const GOLDEN = join(import.meta.dirname, 'golden', 'crm');

beforeAll(async () => {
  await loadParser();
});

describe('canonicalStatements', () => {
  it('gives the same text as the stripped tree for every policy and view of the CRM', () => {
    const text = ['06_views.sql', '07_policies.sql']
      .map((f) => readFileSync(join(GOLDEN, f), 'utf8'))
      .join('\n');
    const statements = text
      .split(/;\n/)
      .filter((s) => /CREATE (POLICY|VIEW)/.test(s))
      .map((s) => s.slice(s.indexOf('CREATE')));
    expect(statements.length).toBeGreaterThan(15);
    for (const s of statements) {
      expect(canonicalStatements(s)).toBe(JSON.stringify(parseTree(s)));
    }
  });

  it('ignores formatting and keeps no positions', () => {
    const a = canonicalStatements('SELECT a, b FROM t WHERE x = 1');
    const b = canonicalStatements('select  a,\n  b\nfrom T -- comment\nwhere (x = 1)');
    expect(a).toBe(b);
    expect(a).not.toMatch(/"(stmt_)?location"|"stmt_len"/);
    expect(canonicalStatements('SELECT 1')).not.toBe(canonicalStatements('SELECT 2'));
  });
});

describe('returnedSelect: a PL/pgSQL body that only returns a query', () => {
  it('finds the query, and whether names resolve as in SQL', () => {
    expect(returnedSelect('\nBEGIN\n  RETURN (SELECT 1 FROM t WHERE a);\nEND\n')).toEqual({
      query: 'SELECT 1 FROM t WHERE a',
      useColumn: false,
    });
    expect(
      returnedSelect('#variable_conflict use_column\nbegin return (\nSELECT x FROM t); end;'),
    ).toEqual({ query: '\nSELECT x FROM t', useColumn: true });
  });
  it('is null for any other body', () => {
    for (const body of [
      'BEGIN PERFORM 1; RETURN (SELECT 1); END',
      'BEGIN RETURN (SELECT 1); RETURN (SELECT 2); END x',
      'DECLARE n int; BEGIN RETURN (SELECT 1); END',
      '#variable_conflict use_variable\nBEGIN RETURN (SELECT 1); END',
      'BEGIN RETURN 1; END',
      'SELECT 1',
    ])
      expect(returnedSelect(body), body).toBeNull();
  });
  it('leaves it to the parser that the text between the parentheses is one SELECT', () => {
    // the pattern matches; canonicalStatements and selectNarrowerOrEqual reject what is not
    const sneaky = returnedSelect(
      'BEGIN RETURN (SELECT 1); PERFORM evil(); RETURN (SELECT 2); END',
    );
    expect(sneaky?.query).toBe('SELECT 1); PERFORM evil(); RETURN (SELECT 2');
    expect(selectNarrowerOrEqual(sneaky?.query as string, 'SELECT 1')).toBe(false);
  });
});
