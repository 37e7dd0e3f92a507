import { createHash } from 'node:crypto';
import { renderCreate } from '../sql/render.js';
import { canonicalStatements, returnedSelect } from '../sql/tree.js';
import type { CatalogObject } from './objects.js';

export { canonicalJson, slowCanonical } from './canonical-json.js';

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

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
