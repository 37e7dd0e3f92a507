/**
 * The internal SQL fragment type. A fragment is marked with a private Symbol, so a look-alike
 * object or a plain string cannot pass as SQL: interpolating anything else into `sql` throws.
 *
 *   sql`CREATE POLICY ${ident(name)} ON ${qualified(schema, table)}`
 *
 * The escape hatch is `unsafeRaw`, used only for text that was produced by this module or parsed
 * by the Postgres parser (see src/model/expression.ts); grep for it.
 */
import { dollarQuote, quoteIdent, quoteLiteral, quoteQualified, quoteTextArray } from './quote.js';

const FRAGMENT: unique symbol = Symbol('pgwarden.sql');

export interface Sql {
  readonly [FRAGMENT]: true;
  readonly text: string;
}

function make(text: string): Sql {
  return Object.freeze({ [FRAGMENT]: true as const, text });
}

export function isSql(value: unknown): value is Sql {
  return typeof value === 'object' && value !== null && (value as Sql)[FRAGMENT] === true;
}

export function sql(strings: TemplateStringsArray, ...values: readonly Sql[]): Sql {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    if (!isSql(v)) {
      throw new TypeError(
        `sql\`\`: value ${i + 1} is a ${typeof v}, not an SQL fragment; wrap names in ident(), values in literal()`,
      );
    }
    out += v.text + (strings[i + 1] ?? '');
  });
  return make(out);
}

export const ident = (name: string): Sql => make(quoteIdent(name));
export const qualified = (schema: string, name: string): Sql => make(quoteQualified(schema, name));
export const literal = (value: string): Sql => make(quoteLiteral(value));
export const textArray = (values: readonly string[]): Sql => make(quoteTextArray(values));
export const dollar = (body: Sql): Sql => make(dollarQuote(body.text));
export const int = (n: number): Sql => {
  if (!Number.isSafeInteger(n)) throw new TypeError(`not an integer: ${n}`);
  return make(String(n));
};

/** Text already known to be safe SQL (parsed by the Postgres parser, or a keyword chosen from a closed set). */
export const unsafeRaw = (text: string): Sql => make(text);

export function join(parts: readonly Sql[], separator: string): Sql {
  return make(parts.map((p) => p.text).join(separator));
}

export const empty = make('');
