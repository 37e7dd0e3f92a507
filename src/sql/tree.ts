/**
 * SQL as the Postgres parser sees it (libpg-query, the server's own grammar): a text's parse
 * tree without source positions. Two texts with the same tree differ only in formatting
 * (whitespace, comments, keyword case, redundant parentheses, unquoted identifier case), so
 * fingerprints and plan comparisons use the tree, never the text.
 *
 * The parser is WebAssembly and loads asynchronously: `loadParser()` must have run once before
 * the synchronous functions here are used. validateModel, apply and planAgainst do it.
 */

import { PgwardenError } from '../errors.js';
import { loadPgParser, parseJsonSync, parseSync } from './pg-parser.js';

let loaded = false;

export async function loadParser(): Promise<void> {
  if (loaded) return;
  await loadPgParser();
  loaded = true;
}

type Json = unknown;

/** The parser's source positions: left out, so that formatting does not change a tree. */
const POSITION_KEYS = new Set(['location', 'stmt_location', 'stmt_len']);

function strip(v: Json): Json {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v as Record<string, Json>)) {
      if (POSITION_KEYS.has(k)) continue;
      out[k] = strip(x);
    }
    return out;
  }
  return v;
}

function requireLoaded(): void {
  if (!loaded) {
    throw new PgwardenError(
      'parser_not_loaded',
      'the SQL parser was used before it was loaded',
      'This is a bug in the caller: await loadParser() (src/sql/tree.ts) before comparing SQL.',
    );
  }
}

function parseRaw(text: string): Json {
  requireLoaded();
  return (parseSync(text) as { stmts?: Json }).stmts ?? [];
}

/** The statements' parse trees without positions (canonicalStatements writes the same as JSON). */
export function parseTree(text: string): Json {
  return strip(parseRaw(text));
}

/**
 * The statements' parse trees as canonical JSON (formatting-independent): the same text as
 * JSON.stringify(parseTree(text)), made from the parser's JSON text without parsing it (below).
 */
export function canonicalStatements(text: string): string {
  requireLoaded();
  return canonicalText(parseJsonSync(text)) ?? slowCanonical(text);
}

function slowCanonical(text: string): string {
  return JSON.stringify(parseRaw(text), (k, v) => (POSITION_KEYS.has(k) ? undefined : v));
}

// The parser writes compact JSON, escaping strings as JSON.stringify does except for `<` and `>`
// (\u003c, \u003e), and every position is an integer member. So the canonical text is the
// parser's own with the positions cut out and those two escapes undone: the same text as
// parsing and writing it again, at a fraction of the time and memory (generate and plan
// canonicalize every policy, view and SQL function; test/sql-tree.test.ts compares the two).
// In JSON text a `"` inside a string is escaped, so `,"location":` and `{"location":` match
// members only.
const POSITION_MEMBER = /,"(?:location|stmt_location|stmt_len)":-?\d+/g;
const FIRST_POSITION_MEMBER = /\{"(?:location|stmt_location|stmt_len)":-?\d+,?/g;
const ANY_POSITION_MEMBER = /[{,]"(?:location|stmt_location|stmt_len)":/;
// an escape \u003c or \u003e: preceded by an even number of backslashes (they escape each other)
const ANGLE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u003([cCeE])/g;
const STATEMENTS = /^\{"version":\d+,"stmts":/;
const NO_STATEMENTS = /^\{"version":\d+\}$/;

/** The canonical text from the parser's JSON; null when it is not of the expected form. */
function canonicalText(json: string): string | null {
  let s = json.replace(POSITION_MEMBER, '').replace(FIRST_POSITION_MEMBER, '{');
  if (ANY_POSITION_MEMBER.test(s)) return null;
  if (s.includes('\\u003'))
    s = s.replace(ANGLE_ESCAPE, (_m, pairs: string, c: string) =>
      c === 'c' || c === 'C' ? `${pairs}<` : `${pairs}>`,
    );
  if (NO_STATEMENTS.test(s)) return '[]';
  const head = STATEMENTS.exec(s);
  if (!head || !s.endsWith('}')) return null;
  return s.slice(head[0].length, -1);
}

/** The parse tree of one SQL expression, or null when it does not parse as one. */
export function expressionTree(expr: string): Json | null {
  try {
    const stmts = parseTree(`SELECT (${expr})`) as {
      stmt: { SelectStmt: { targetList: { ResTarget: { val: Json } }[] } };
    }[];
    return stmts[0]?.stmt.SelectStmt.targetList[0]?.ResTarget.val ?? null;
  } catch (e) {
    if (e instanceof PgwardenError) throw e;
    return null;
  }
}

function boolArgs(t: Json, op: 'AND_EXPR' | 'OR_EXPR'): Json[] | null {
  const b = (t as { BoolExpr?: { boolop: string; args: Json[] } } | null)?.BoolExpr;
  return b && b.boolop === op ? b.args : null;
}

function boolConst(t: Json): boolean | null {
  const c = (t as { A_Const?: { boolval?: { boolval?: boolean } } } | null)?.A_Const;
  if (!c || !('boolval' in c)) return null;
  return c.boolval?.boolval === true;
}
const isTrue = (t: Json) => boolConst(t) === true;
const isFalse = (t: Json) => boolConst(t) === false;

const same = (a: Json, b: Json) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A syntactic proof that `a` implies `b` (every row `a` admits, `b` admits). Sound, not
 * complete: false means "not proven", never "proven not".
 */
export function implies(a: Json, b: Json): boolean {
  if (same(a, b) || isTrue(b) || isFalse(a)) return true;
  const bOr = boolArgs(b, 'OR_EXPR');
  if (bOr?.some((x) => implies(a, x))) return true;
  const aAnd = boolArgs(a, 'AND_EXPR');
  if (aAnd?.some((x) => implies(x, b))) return true;
  const aOr = boolArgs(a, 'OR_EXPR');
  if (aOr?.every((x) => implies(x, b))) return true;
  const bAnd = boolArgs(b, 'AND_EXPR');
  if (bAnd?.every((x) => implies(a, x))) return true;
  return false;
}

/** `newExpr` admits no row `oldExpr` did not (null means no restriction, i.e. true). */
export function exprNarrowerOrEqual(newExpr: string | null, oldExpr: string | null): boolean {
  if (oldExpr === null) return true;
  if (newExpr === null) return false;
  const a = expressionTree(newExpr);
  const b = expressionTree(oldExpr);
  if (a === null || b === null) return false;
  return implies(a, b);
}

/**
 * The query of a PL/pgSQL body that is only `BEGIN RETURN (query); END` (pgwarden's generated
 * `_keys_*` helpers), with or without `#variable_conflict use_column` (names then resolve as in
 * a SQL function), or null. The text between the parentheses must still parse as SQL where it
 * is used (canonicalStatements; selectNarrowerOrEqual also requires exactly one SELECT), and an
 * unbalanced `)` that would end the RETURN early does not, so nothing else can hide in the body.
 */
export function returnedSelect(body: string): { query: string; useColumn: boolean } | null {
  const m =
    /^\s*(#variable_conflict\s+use_column\s+)?BEGIN\s+RETURN\s*\(([\s\S]*)\)\s*;\s*END\s*;?\s*$/i.exec(
      body,
    );
  return m ? { query: m[2] as string, useColumn: m[1] !== undefined } : null;
}

/**
 * `newSql` returns no row `oldSql` did not: both are one SELECT that differ only in their WHERE
 * clause, and the new WHERE implies the old one (e.g. the `_keys_*` helpers, whose WHERE holds a
 * table's row rules).
 */
export function selectNarrowerOrEqual(newSql: string, oldSql: string): boolean {
  const one = (text: string): Record<string, Json> | null => {
    try {
      const stmts = parseTree(text) as { stmt?: { SelectStmt?: Record<string, Json> } }[];
      return stmts.length === 1 ? (stmts[0]?.stmt?.SelectStmt ?? null) : null;
    } catch (e) {
      if (e instanceof PgwardenError) throw e;
      return null;
    }
  };
  const a = one(newSql);
  const b = one(oldSql);
  if (!a || !b) return false;
  const { whereClause: aw, ...aRest } = a;
  const { whereClause: bw, ...bRest } = b;
  if (!same(aRest, bRest)) return false;
  if (bw === undefined) return true;
  if (aw === undefined) return false;
  return implies(aw, bw);
}

function walk(v: Json, visit: (node: Record<string, Json>) => void): void {
  if (Array.isArray(v)) for (const x of v) walk(x, visit);
  else if (v && typeof v === 'object') {
    visit(v as Record<string, Json>);
    for (const x of Object.values(v as Record<string, Json>)) walk(x, visit);
  }
}

/**
 * The expression contains a subquery (`EXISTS (...)`, `IN (SELECT ...)`, `(SELECT ...)`, ...):
 * a SubLink node anywhere in its parse tree. Citus refuses policies with one (see
 * docs/distributed.md). An expression that does not parse counts as having one.
 */
export function hasSubLink(expr: string): boolean {
  const tree = expressionTree(expr);
  if (tree === null) return true;
  let found = false;
  walk(tree, (n) => {
    if ('SubLink' in n) found = true;
  });
  return found;
}

/** Every column reference of the expression, as its dotted parts (`["customers", "id"]`, `["status"]`). */
export function columnRefs(expr: string): string[][] {
  const tree = expressionTree(expr);
  const out: string[][] = [];
  walk(tree, (n) => {
    const ref = n.ColumnRef as { fields?: Json[] } | undefined;
    if (!ref?.fields) return;
    out.push(ref.fields.map((f) => (f as { String?: { sval?: string } }).String?.sval ?? '*'));
  });
  return out;
}
