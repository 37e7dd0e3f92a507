/**
 * canonicalStatements (src/sql/tree.ts) leaves source positions out while writing the JSON. It
 * must give exactly the text of JSON.stringify over the stripped tree (parseTree), as it did
 * before: fingerprints of applied databases are stored in pgwarden.objects, and a different
 * text would show every policy and view as changed. No database: the parser is libpg-query.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as pg from '../src/sql/pg-parser.js';
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

  it('gives the same text as the stripped tree for every statement of every generated file', () => {
    let n = 0;
    for (const f of readdirSync(GOLDEN).filter((x) => x.endsWith('.sql'))) {
      for (const s of readFileSync(join(GOLDEN, f), 'utf8').split(/;\n(?=[A-Z])/)) {
        let slow: string;
        try {
          slow = JSON.stringify(parseTree(s));
        } catch {
          continue; // a piece cut inside a body
        }
        expect(canonicalStatements(s)).toBe(slow);
        n++;
      }
    }
    expect(n).toBeGreaterThan(500);
  });

  it('gives the same text as the stripped tree for hostile literals and names', () => {
    // every ASCII character and some beyond, in a string, a quoted name and a dollar quote;
    // texts that look like the parser's JSON; escapes next to backslashes; < and > (which the
    // parser escapes as \u003c and \u003e) in operators, strings and names
    const chars = [...Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1))];
    chars.push('é', '€', '😀', '\u2028', '\u00a0', '\ufeff');
    const texts: string[] = [];
    for (const ch of chars) {
      texts.push(`SELECT '${ch === "'" ? "''" : ch}'`, `SELECT "${ch === '"' ? '""' : ch}" FROM t`);
      texts.push(`SELECT $q$${ch}$q$`);
    }
    texts.push(
      `SELECT ',"location":5,{"location":7}' AS x`,
      `SELECT E'\\\\u003c\\u003e<>' < 'a>b', "x<y" FROM t WHERE a <> b AND c >= d`,
      `SELECT '\\' || '\\\\' || E'\\\\u003c', $$\\u003c$$, '{"stmts":[]}'`,
      `SELECT 1; SELECT 2;; SELECT '"stmt_len":3'`,
      '',
      '-- only a comment',
      `CREATE POLICY p ON s.t FOR SELECT TO r USING (a < (SELECT max(x) FROM u WHERE u.y > 'z<'))`,
      `CREATE VIEW v AS SELECT CASE WHEN a > 1 THEN '>' ELSE '<' END AS "<>" FROM t`,
    );
    let n = 0;
    for (const s of texts) {
      let slow: string;
      try {
        slow = JSON.stringify(parseTree(s));
      } catch {
        continue; // not SQL (a NUL, an unterminated quote)
      }
      expect(canonicalStatements(s)).toBe(slow);
      n++;
    }
    expect(n).toBeGreaterThan(350);
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

describe("the parser without libpg-query's index module (src/sql/pg-parser.ts)", () => {
  const golden = readdirSync(GOLDEN)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => readFileSync(join(GOLDEN, f), 'utf8'));

  it("gives the package's own trees and tokens for every generated file of the CRM", async () => {
    const lib = await import('libpg-query');
    await lib.loadModule();
    // the files, and each statement of the files that carry the model's expressions
    const texts = [...golden, ...golden.flatMap((t) => t.split(/;\n/))];
    let compared = 0;
    for (const text of texts) {
      let theirs: unknown;
      try {
        theirs = lib.parseSync(text);
      } catch {
        continue; // a fragment cut inside a function body, or the package's ERROR quirk below
      }
      expect(pg.parseSync(text)).toEqual(theirs);
      compared++;
    }
    expect(compared).toBeGreaterThan(100);
    // (the scanner writes a token's text unescaped: a token over several lines is not JSON, in
    // either; expressions are scanned, one line each)
    for (const text of ["status IN ('lead', 'active')", "E'a\\\\b' = x", '$$x$$ = y', "x ~ 'a;b'"])
      expect(pg.scanSync(text)).toEqual(lib.scanSync(text));
  });

  it('scans literals with a newline or a tab in them (the scanner leaves them unescaped)', () => {
    const tokens = pg.scanSync("x = 'line1\nline2' OR y = 'a\tb'").tokens.map((t) => t.text);
    expect(tokens).toEqual(['x', '=', "'line1\nline2'", 'OR', 'y', '=', "'a\tb'"]);
  });

  it("reports the parser's message on an error, and does not mistake ERROR in a tree for one", () => {
    expect(() => pg.parseSync('SELECT (')).toThrow('syntax error at end of input');
    expect(() => pg.parseSync('SELECT /* x')).toThrow('unterminated /* comment at or near "/* x"');
    expect(() => pg.scanSync("SELECT 'abc")).toThrow('unterminated quoted string');
    const tree = pg.parseSync("SELECT status <> 'ERROR'");
    expect(JSON.stringify(tree)).toContain('"sval":"ERROR"');
  });
});
