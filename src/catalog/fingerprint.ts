import { createHash } from 'node:crypto';
import { renderCreate } from '../sql/render.js';
import type { CatalogObject } from './objects.js';

/** sha256 of the SQL that creates the object: equal definitions give equal fingerprints. */
export function fingerprint(o: CatalogObject): string {
  const text = renderCreate(o)
    .map((s) => s.text)
    .join(';\n');
  return createHash('sha256').update(text).digest('hex');
}

/** Canonical JSON: object keys sorted, so hashes do not depend on key order. */
export function canonicalJson(value: unknown): string {
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
