/**
 * Checks user-written SQL expressions (filter scopes, custom masks) with the real Postgres parser
 * (libpg-query, PG 17 grammar) before they are ever emitted. They are always emitted parenthesised:
 * `(<text>)`.
 *
 * Why the check is sound. Let T be the text. We require:
 *   (0) T is not blank and contains no NUL. (libpg-query takes a C string: a NUL would end the
 *       parsed text while the emitted SQL would still carry what follows.)
 *   (1) `SELECT T` parses to exactly one statement: a SelectStmt whose only fields are one
 *       unnamed target (plus the defaults `op = SETOP_NONE`, `limitOption = DEFAULT`).
 *   (2) `SELECT (T)` parses to exactly the same shape.
 *   (3) no token of T is `;`, and no plain '...' string literal of T contains a backslash.
 * From (1): the lexer ends T in its initial state except possibly inside a trailing `--` comment
 * (an unterminated string, quoted identifier, dollar quote or block comment is a lexer error);
 * and T's parentheses/brackets are balanced and properly nested, because T sits at the top level
 * of `SELECT T`, where a `)` closing something T did not open, or a `(` left open, is a syntax
 * error. (This is what rejects `true) OR (1=1`, which (2) alone would accept.) Nor can T smuggle a
 * second statement: a top-level `;` yields two statements.
 * From (2): a trailing `--` comment would swallow the closing `)` and fail, so T ends in the
 * initial lexer state; `)` cannot merge with T's last token. Hence wherever `(T)` is emitted,
 * T is lexed exactly as checked, the closing `)` is ours, and `(T)` is one parenthesised
 * expression; the surrounding SQL cannot change its meaning (precedence included).
 * (3) is belt and braces for (1) and gives a clear message; the backslash rule makes the meaning
 * independent of `standard_conforming_strings` (with it off, `'a\'` would not end at the second
 * quote). Use E'...' for backslash escapes.
 *
 * What this does NOT check: that the columns and functions exist, or that the expression is
 * cheap or side-effect free. Those are the model author's responsibility (the author is trusted
 * with SQL); Postgres checks names when the policy or view is created.
 */
import { parse, scan } from '../sql/pg-parser.js';

export type ExpressionCheck = { ok: true; normalized: string } | { ok: false; reason: string };

const ALLOWED_SELECT_FIELDS = new Set(['targetList', 'op', 'limitOption']);
const ALLOWED_TARGET_FIELDS = new Set(['val', 'location']);

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The parser's own message, e.g. `unterminated /* comment at or near "/* x"`. */
function parseError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** null when `sql` is `SELECT <one unnamed expression>` and nothing else; otherwise the reason. */
async function singleExpression(sql: string): Promise<string | null> {
  let tree: unknown;
  try {
    tree = await parse(sql);
  } catch (e) {
    return `syntax error: ${parseError(e)}`;
  }
  const stmts = isObj(tree) && Array.isArray(tree.stmts) ? tree.stmts : [];
  if (stmts.length !== 1) {
    return `it contains ${stmts.length} statements; write one expression`;
  }
  const raw = stmts[0];
  const stmt = isObj(raw) && isObj(raw.stmt) ? raw.stmt : null;
  const keys = stmt ? Object.keys(stmt) : [];
  const select = stmt && keys.length === 1 && isObj(stmt.SelectStmt) ? stmt.SelectStmt : null;
  if (!select) return 'it is not an expression';
  for (const k of Object.keys(select)) {
    if (k === 'larg' || k === 'rarg')
      return 'it is not a single expression (UNION/INTERSECT/EXCEPT)';
    if (!ALLOWED_SELECT_FIELDS.has(k)) {
      return `it is not a single expression (it has a ${k.replace(/Clause$/, '').toUpperCase()} part)`;
    }
  }
  if (select.op !== undefined && select.op !== 'SETOP_NONE')
    return 'it is not a single expression (UNION/INTERSECT/EXCEPT)';
  if (select.limitOption !== undefined && select.limitOption !== 'LIMIT_OPTION_DEFAULT') {
    return 'it is not a single expression (LIMIT)';
  }
  const targets = Array.isArray(select.targetList) ? select.targetList : [];
  if (targets.length !== 1) {
    return targets.length === 0
      ? 'it is empty'
      : `it is a list of ${targets.length} expressions; write one`;
  }
  const t = targets[0];
  const res = isObj(t) && isObj(t.ResTarget) ? t.ResTarget : null;
  if (!res || !('val' in res)) return 'it is not an expression';
  for (const k of Object.keys(res)) {
    if (!ALLOWED_TARGET_FIELDS.has(k)) return 'it is not a single expression (it has an alias)';
  }
  const val = res.val;
  if (isObj(val) && isObj(val.ColumnRef)) {
    const fields = val.ColumnRef.fields;
    if (Array.isArray(fields) && fields.some((f) => isObj(f) && 'A_Star' in f)) {
      return '`*` is not an expression';
    }
  }
  return null;
}

export async function checkExpression(text: string): Promise<ExpressionCheck> {
  if (typeof text !== 'string') return { ok: false, reason: 'expected a string' };
  const trimmed = text.trim();
  if (trimmed === '') return { ok: false, reason: 'it is empty' };
  if (text.includes('\0')) return { ok: false, reason: 'it contains a NUL character' };

  const bare = await singleExpression(`SELECT ${trimmed}`);
  if (bare !== null) return { ok: false, reason: bare };
  const wrapped = await singleExpression(`SELECT (${trimmed})`);
  if (wrapped !== null) {
    return {
      ok: false,
      reason: `it does not stay one expression when parenthesised (${wrapped}); a trailing -- comment, for example, would swallow the closing parenthesis`,
    };
  }

  let tokens: unknown;
  try {
    tokens = await scan(trimmed);
  } catch (e) {
    return { ok: false, reason: `syntax error: ${parseError(e)}` };
  }
  const list = isObj(tokens) && Array.isArray(tokens.tokens) ? tokens.tokens : [];
  for (const tok of list) {
    if (!isObj(tok) || typeof tok.text !== 'string') continue;
    if (tok.text === ';') return { ok: false, reason: 'it contains a statement separator `;`' };
    if (tok.tokenName === 'SCONST' && tok.text.startsWith("'") && tok.text.includes('\\')) {
      return {
        ok: false,
        reason: `the string literal ${tok.text} contains a backslash, whose meaning depends on standard_conforming_strings; write it as E'...'`,
      };
    }
  }
  return { ok: true, normalized: trimmed };
}
