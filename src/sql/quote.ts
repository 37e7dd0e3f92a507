/**
 * The one place that writes quote characters into SQL.
 *
 * `quoteIdent` and `quoteLiteral` follow the server's own `quote_ident` / `quote_literal`
 * (checked against the server on a table of hostile strings in test/quote.test.ts), except that
 * `quoteIdent` always quotes: a name is never interpreted, so keywords and case never matter.
 */

/** Postgres truncates identifiers longer than this many bytes (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;

export class QuoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuoteError';
  }
}

/** Always-quoted identifier: `"a""b"`. Refuses NUL and names over 63 bytes (Postgres would truncate them silently). */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new QuoteError('an SQL identifier cannot be empty');
  if (name.includes('\0'))
    throw new QuoteError(`identifier ${JSON.stringify(name)} contains a NUL byte`);
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new QuoteError(
      `identifier ${JSON.stringify(name)} is ${Buffer.byteLength(name, 'utf8')} bytes; Postgres allows ${MAX_IDENTIFIER_BYTES}`,
    );
  }
  return `"${name.replaceAll('"', '""')}"`;
}

/** `schema.name`, each part quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * String literal like the server's `quote_literal`: doubles `'`; when the value holds a
 * backslash, doubles it and uses the E'' form, so the result is correct whatever
 * standard_conforming_strings says.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new QuoteError('a string literal cannot contain a NUL byte');
  const body = value.replaceAll("'", "''");
  if (value.includes('\\')) return `E'${body.replaceAll('\\', '\\\\')}'`;
  return `'${body}'`;
}

/** A dollar-quoted body whose tag does not occur in the body. */
export function dollarQuote(body: string): string {
  let tag = 'pgw';
  let n = 0;
  while (body.includes(`$${tag}$`)) {
    n += 1;
    tag = `pgw${n}`;
  }
  return `$${tag}$${body}$${tag}$`;
}

/** `ARRAY['a','b']::text[]` */
export function quoteTextArray(values: readonly string[]): string {
  if (values.length === 0) return `'{}'::text[]`;
  return `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]`;
}
