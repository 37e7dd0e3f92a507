/**
 * Canonical JSON (object keys sorted), as stored in the registry and hashed for the model: one
 * writer for both, without dependencies.
 */

/**
 * Canonical JSON: object keys sorted, so hashes do not depend on key order. The text is stored
 * in every registry row and compared on every plan, so it must never change: it is what
 * JSON.stringify writes for a copy of the value with each object's entries sorted (slowCanonical
 * below). canonicalJson writes that text directly, without the copies (a third of the time for
 * a plan's 6,680 objects), for plain data; anything else goes the slow way.
 * test/fingerprint.test.ts compares the two.
 */
export function canonicalJson(value: unknown): string {
  const fast = writeCanonical(value, false);
  return fast === null ? slowCanonical(value) : (fast as string);
}

/**
 * Canonical JSON of plain data, written directly: the text of JSON.stringify over copies with
 * sorted entries (bigints as their decimal text when `bigints`, as the model's hash writes
 * them); undefined where JSON.stringify gives undefined; null when the value is not plain data
 * (a class instance, a toJSON, a bigint otherwise), for the caller's slow way.
 */
export function writeCanonical(value: unknown, bigints: boolean): string | undefined | null {
  const out = write(value, false, bigints);
  return out === NOT_PLAIN ? null : out;
}

const NOT_PLAIN = Symbol('not plain data');
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** an array index: how JavaScript orders an object's keys (these first, by number) */
const INDEX = /^(?:0|[1-9]\d{0,9})$/;
const isIndex = (k: string): boolean => INDEX.test(k) && Number(k) < 4294967295;

/** The value as canonical JSON; undefined where JSON.stringify leaves a member out. */
function write(
  v: unknown,
  inArray: boolean,
  bigints: boolean,
): string | undefined | typeof NOT_PLAIN {
  switch (typeof v) {
    case 'string':
    case 'number':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? 'null' : undefined;
    case 'bigint':
      return bigints ? JSON.stringify(v.toString()) : NOT_PLAIN;
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      const x = write(v[i], true, bigints);
      if (x === NOT_PLAIN) return NOT_PLAIN;
      out += (i > 0 ? ',' : '') + x;
    }
    return `${out}]`;
  }
  const proto = Object.getPrototypeOf(v);
  if ((proto !== Object.prototype && proto !== null) || 'toJSON' in (v as object)) return NOT_PLAIN;
  // sorted, then as a copy built in that order enumerates them: array indexes first, by number
  const keys = Object.keys(v as object).sort(byCodeUnits);
  const indexes = keys.filter(isIndex);
  const ordered =
    indexes.length === 0
      ? keys
      : [...indexes.sort((a, b) => Number(a) - Number(b)), ...keys.filter((k) => !isIndex(k))];
  let out = '{';
  let first = true;
  for (const k of ordered) {
    const x = write((v as Record<string, unknown>)[k], false, bigints);
    if (x === NOT_PLAIN) return NOT_PLAIN;
    if (x === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${x}`;
    first = false;
  }
  return `${out}}`;
}

/** canonicalJson by definition: JSON.stringify over sorted copies. */
export function slowCanonical(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
          a < b ? -1 : a > b ? 1 : 0,
        ),
      );
    }
    return v;
  });
}
