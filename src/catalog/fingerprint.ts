import { createHash } from 'node:crypto';
import { renderCreate } from '../sql/render.js';
import { canonicalStatements, returnedSelect } from '../sql/tree.js';
import type { CatalogObject } from './objects.js';

/**
 * sha256 of the SQL that creates the object: equal definitions give equal fingerprints. For
 * policies, views and SQL functions, whose SQL carries the model's own expressions, it is the
 * hash of the parse tree (src/sql/tree.ts), so re-formatting an expression in the model is not
 * a change. (Other PL/pgSQL bodies are compared as text; pgwarden writes them, not the model.)
 */
export function fingerprint(o: CatalogObject): string {
  const known = fingerprints.get(o);
  if (known !== undefined) return known;
  const fp = computeFingerprint(o);
  fingerprints.set(o, fp);
  return fp;
}

/**
 * Fingerprints by object: plan and apply ask for the same object's fingerprint several times
 * (introspect, diff, the registry row), and parsing its SQL is most of the cost. Catalog objects
 * are plain data that nothing changes once built, so the object is the key.
 */
const fingerprints = new WeakMap<CatalogObject, string>();

function computeFingerprint(o: CatalogObject): string {
  const text = renderCreate(o)
    .map((s) => s.text)
    .join(';\n');
  let canonical = text;
  if (o.kind === 'policy' || o.kind === 'view') canonical = `tree:${canonicalStatements(text)}`;
  else if (o.kind === 'function') {
    // an SQL function's body carries the model's expressions too (e.g. the keys a person sees),
    // and so does a PL/pgSQL body that only returns a query (the `_keys_*` helpers)
    const returned = o.language === 'plpgsql' ? returnedSelect(o.body) : null;
    if (o.language === 'sql' || returned) {
      const shell = renderCreate({ ...o, body: '' })
        .map((s) => s.text)
        .join(';\n');
      canonical = returned
        ? `tree:${shell}\nreturn${returned.useColumn ? ' use_column' : ''}:${canonicalStatements(returned.query)}`
        : `tree:${shell}\n${canonicalStatements(o.body)}`;
    }
  }
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * Canonical JSON: object keys sorted, so hashes do not depend on key order. The text is stored
 * in every registry row and compared on every plan, so it must never change: it is what
 * JSON.stringify writes for a copy of the value with each object's entries sorted (slowCanonical
 * below). canonicalJson writes that text directly, without the copies (a third of the time for
 * a plan's 6,680 objects), for plain data; anything else goes the slow way.
 * test/fingerprint.test.ts compares the two.
 */
export function canonicalJson(value: unknown): string {
  const fast = write(value, false);
  return fast === NOT_PLAIN ? slowCanonical(value) : (fast as string);
}

const NOT_PLAIN = Symbol('not plain data');
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** an array index: how JavaScript orders an object's keys (these first, by number) */
const INDEX = /^(?:0|[1-9]\d{0,9})$/;
const isIndex = (k: string): boolean => INDEX.test(k) && Number(k) < 4294967295;

/** The value as canonical JSON; undefined where JSON.stringify leaves a member out. */
function write(v: unknown, inArray: boolean): string | undefined | typeof NOT_PLAIN {
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
      return NOT_PLAIN;
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      const x = write(v[i], true);
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
    const x = write((v as Record<string, unknown>)[k], false);
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

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
