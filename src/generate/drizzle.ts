/**
 * generate --drizzle: pgwarden's SQL as a custom drizzle-kit migration (what
 * `drizzle-kit generate --custom` would create, with pgwarden's SQL in it), so that
 * `drizzle-kit migrate` applies it with the application's own migrations.
 *
 * Pure: takes the folder's contents (relative path -> text) and returns the files to write.
 * How drizzle-kit 0.31 / drizzle-orm 0.45 read a folder:
 *   - meta/_journal.json lists the migrations ({idx, version, when, tag, breakpoints}); each is
 *     `<tag>.sql`, split on `--> statement-breakpoint`, every piece executed as one statement
 *     (postgres.js runs them with the extended protocol: one statement per piece).
 *   - All pending migrations run in one transaction; a migration runs when its `when` is later
 *     than the `created_at` of the last one recorded in drizzle.__drizzle_migrations.
 *   - `drizzle-kit generate` diffs the schema against the last meta/*_snapshot.json (sorted by
 *     name); a custom migration copies the previous snapshot with a fresh id and prevId.
 *
 * The migration is the whole pgwarden SQL and can run on a database in any earlier state:
 * roles, schemas and grants are idempotent, functions are CREATE OR REPLACE, views, policies
 * and triggers are dropped if they exist and created again, model rows and registry entries are
 * upserts, and each runtime-catalog file runs only if the registry does not list it yet (the
 * catalog files are versioned migrations, not re-runnable). Objects the previous pgwarden
 * migration of this folder created and the model no longer has are dropped, as apply would.
 */

import { randomUUID } from 'node:crypto';
import { fingerprint } from '../catalog/fingerprint.js';
import type { CatalogObject } from '../catalog/objects.js';
import { objectKey, sortObjects } from '../catalog/objects.js';
import { registryDelete, registryUpsert } from '../catalog/registry.js';
import { PgwardenError } from '../errors.js';
import { dollar, literal, sql, unsafeRaw } from '../sql/fragment.js';
import { describe, renderCreate, renderDrop } from '../sql/render.js';
import { appliesRow, groupObjects } from './index.js';

export const BREAKPOINT = '--> statement-breakpoint';
const JOURNAL = 'meta/_journal.json';
/** drizzle-kit 0.31's journal and PostgreSQL snapshot version */
const SNAPSHOT_VERSION = '7';
const ORIGIN_UUID = '00000000-0000-0000-0000-000000000000';

export interface JournalEntry {
  idx: number;
  version: string;
  when: number;
  tag: string;
  breakpoints: boolean;
}

export interface Journal {
  version: string;
  dialect: string;
  entries: JournalEntry[];
}

export interface DrizzleInput {
  /** the migrations folder, only for messages */
  folder: string;
  /** its files: relative path (`meta/_journal.json`, `0000_x.sql`, `meta/0000_snapshot.json`) -> text */
  files: ReadonlyMap<string, string>;
  objects: readonly CatalogObject[];
  meta: { modelName: string; modelHash: string };
  /** defaults: Date.now() and crypto.randomUUID() */
  now?: number;
  uuid?: () => string;
}

export type DrizzleResult =
  | { status: 'unchanged'; tag: string }
  | {
      status: 'added';
      tag: string;
      idx: number;
      /** files to write, relative to the folder; never one that exists already */
      files: { path: string; content: string }[];
      removed: string[];
    };

/** The tag suffix of a model's migrations: `pgwarden_<model name as [a-z0-9_]>`. */
export function tagSuffix(modelName: string): string {
  const slug = modelName
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 40);
  return `pgwarden_${slug || 'model'}`;
}

export function drizzleMigration(input: DrizzleInput): DrizzleResult {
  const { folder, files } = input;
  const journal = readJournal(folder, files.get(JOURNAL));
  const suffix = tagSuffix(input.meta.modelName);
  const desired = sortObjects(input.objects);

  // the latest pgwarden migration of this model in the folder: what the database has after it
  const previous = [...journal.entries]
    .reverse()
    .find((e) => e.tag === suffix || e.tag.endsWith(`_${suffix}`));
  let before = new Map<string, { fingerprint: string; object: CatalogObject }>();
  if (previous) {
    const text = files.get(`${previous.tag}.sql`);
    if (text === undefined)
      throw new PgwardenError(
        'drizzle_missing_migration',
        `${folder}/meta/_journal.json lists migration ${previous.tag}, but ${folder}/${previous.tag}.sql does not exist`,
        'Restore the file from version control (drizzle-kit migrate needs it too), or remove its entry from the journal if it was never applied.',
      );
    before = objectsOf(text, `${folder}/${previous.tag}.sql`);
    const same =
      before.size === desired.length &&
      desired.every((o) => before.get(objectKey(o))?.fingerprint === fingerprint(o));
    if (same) return { status: 'unchanged', tag: previous.tag };
  }

  const desiredKeys = new Set(desired.map(objectKey));
  const removed = sortObjects(
    [...before.entries()].filter(([k]) => !desiredKeys.has(k)).map(([, v]) => v.object),
  ).reverse();
  const content = migrationSql(desired, removed, input.meta);

  const last = journal.entries.at(-1);
  const idx = last === undefined ? 0 : last.idx + 1;
  const prefix = tagPrefix(idx, last?.tag, input.now ?? Date.now());
  const tag = `${prefix}_${suffix}`;
  const snapshotPath = `meta/${prefix}_snapshot.json`;
  for (const p of [`${tag}.sql`, snapshotPath])
    if (files.has(p))
      throw new PgwardenError(
        'drizzle_file_exists',
        `${folder}/${p} exists but meta/_journal.json does not list it`,
        'Remove the stray file (or add its journal entry with drizzle-kit), then run pgwarden generate --drizzle again.',
      );

  // drizzle-kit generate --custom: the previous snapshot with a fresh id, pointing at it
  const snapshots = [...files.keys()]
    .filter((p) => /^meta\/[^_/][^/]*\.json$/.test(p))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const lastSnapshot = snapshots.at(-1);
  const prev: Record<string, unknown> =
    lastSnapshot === undefined
      ? emptySnapshot()
      : parseJson(files.get(lastSnapshot) as string, `${folder}/${lastSnapshot}`);
  if (prev.dialect !== undefined && prev.dialect !== 'postgresql')
    throw new PgwardenError(
      'drizzle_wrong_dialect',
      `${folder}/${lastSnapshot} is a ${String(prev.dialect)} snapshot; pgwarden writes PostgreSQL migrations`,
      'Point --drizzle at the migrations folder of your PostgreSQL database (drizzle.config `out`).',
    );
  const { id: prevId, prevId: _ignored, ...rest } = prev;
  const snapshot: Record<string, unknown> = { id: (input.uuid ?? randomUUID)(), prevId, ...rest };
  snapshot._meta = { columns: {}, schemas: {}, tables: {} };

  const entry: JournalEntry = {
    idx,
    version: typeof prev.version === 'string' ? prev.version : SNAPSHOT_VERSION,
    // drizzle runs a migration only if it is later than the last one applied
    when: Math.max(input.now ?? Date.now(), (last?.when ?? 0) + 1),
    tag,
    breakpoints: true,
  };
  const nextJournal: Journal = { ...journal, entries: [...journal.entries, entry] };
  return {
    status: 'added',
    tag,
    idx,
    removed: removed.map(objectKey),
    files: [
      { path: `${tag}.sql`, content },
      { path: snapshotPath, content: JSON.stringify(snapshot, null, 2) },
      { path: JOURNAL, content: JSON.stringify(nextJournal, null, 2) },
    ],
  };
}

/** The migration: one statement per breakpoint-separated piece. */
export function migrationSql(
  desired: readonly CatalogObject[],
  removed: readonly CatalogObject[],
  meta: { modelName: string; modelHash: string },
): string {
  const pieces: string[] = [];
  // SET LOCAL, and the session's values restored at the end: drizzle runs every pending
  // migration (and its own bookkeeping) in the same transaction.
  pieces.push(
    `-- pgwarden: model "${meta.modelName}" ${meta.modelHash}
-- Generated by pgwarden generate --drizzle; do not edit. drizzle-kit migrate runs it in one
-- transaction. Re-runnable: it brings a database in any earlier pgwarden state to this model.
SELECT pg_catalog.set_config('pgwarden.saved_search_path', pg_catalog.current_setting('search_path'), true),
  pg_catalog.set_config('pgwarden.saved_check_function_bodies', pg_catalog.current_setting('check_function_bodies'), true);`,
    'SET LOCAL search_path = pg_catalog, pg_temp;',
    'SET LOCAL check_function_bodies = off;',
  );
  for (const o of removed) {
    const drops = renderDrop(o).map((s) => `${s.text};`);
    drops.push(`${registryDelete(objectKey(o)).text};`);
    drops[0] = `-- removed from the model: ${describe(o)}\n${drops[0]}`;
    pieces.push(...drops);
  }
  for (const g of groupObjects(desired)) {
    g.objects.forEach((o, i) => {
      const statements =
        o.kind === 'catalog' ? [guardedCatalog(o)] : renderCreate(o).map((s) => `${s.text};`);
      const head = `${i === 0 ? `-- pgwarden: ${g.title}\n` : ''}-- ${describe(o)}\n`;
      statements[0] = head + statements[0];
      pieces.push(...statements);
    });
  }
  pieces.push(...desired.map((o) => `${registryUpsert(o).text};`));
  pieces.push(appliesRow(meta, [{ op: 'generate --drizzle', objects: desired.length }]));
  pieces.push(
    `SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('pgwarden.saved_search_path'), true),
  pg_catalog.set_config('check_function_bodies', pg_catalog.current_setting('pgwarden.saved_check_function_bodies'), true);`,
  );
  for (const p of pieces)
    if (p.includes(BREAKPOINT))
      throw new PgwardenError(
        'drizzle_breakpoint_in_sql',
        `the generated SQL contains "${BREAKPOINT}" (in: ${p.split('\n').slice(0, 3).join(' ')}), which drizzle-kit would split the statement at`,
        'Remove that text from the model (an expression or a description), or use pgwarden apply instead.',
      );
  return `${pieces.join(`\n${BREAKPOINT}\n`)}\n`;
}

/** A runtime-catalog file runs once: only if the registry does not list its version yet. */
function guardedCatalog(o: CatalogObject & { kind: 'catalog' }): string {
  const key = objectKey(o);
  const body = renderCreate(o)
    .map((s) => sql`  EXECUTE ${literal(s.text)};`.text)
    .join('\n');
  return `${
    sql`DO ${dollar(
      sql`BEGIN
  IF pg_catalog.to_regclass('pgwarden.applied_objects') IS NOT NULL THEN
    IF EXISTS (SELECT FROM pgwarden.applied_objects WHERE key = ${literal(key)}) THEN
      RETURN;
    END IF;
  END IF;
${unsafeRaw(body)}
END`,
    )}`.text
  };`;
}

/** The objects a previous pgwarden migration recorded in the registry, from its upserts. */
function objectsOf(
  text: string,
  file: string,
): Map<string, { fingerprint: string; object: CatalogObject }> {
  const lit = "(E?'(?:[^']|'')*')";
  const re = new RegExp(
    `^INSERT INTO pgwarden\\.applied_objects \\(key, kind, fingerprint, definition, server_form\\)\\s+VALUES \\(${lit}, ${lit}, ${lit}, ${lit},`,
    'gm',
  );
  const out = new Map<string, { fingerprint: string; object: CatalogObject }>();
  for (const m of text.matchAll(re)) {
    const [key, , fp, definition] = [m[1], m[2], m[3], m[4]].map((s) => unquote(s as string));
    out.set(key as string, {
      fingerprint: fp as string,
      object: parseJson(definition as string, file) as unknown as CatalogObject,
    });
  }
  if (out.size === 0)
    throw new PgwardenError(
      'drizzle_unreadable_migration',
      `${file} looks like a pgwarden migration (by its name) but lists no pgwarden objects`,
      'Restore the file as pgwarden generate --drizzle wrote it (migrations that may have been applied must not be edited).',
    );
  return out;
}

/** The inverse of quoteLiteral: '...' with '' for ', or E'...' with \\ for \ as well. */
function unquote(s: string): string {
  const e = s.startsWith('E');
  const body = s.slice(e ? 2 : 1, -1).replaceAll("''", "'");
  return e ? body.replaceAll('\\\\', '\\') : body;
}

function readJournal(folder: string, text: string | undefined): Journal {
  if (text === undefined) return { version: SNAPSHOT_VERSION, dialect: 'postgresql', entries: [] };
  const j = parseJson(text, `${folder}/${JOURNAL}`);
  if (j.dialect !== 'postgresql')
    throw new PgwardenError(
      'drizzle_wrong_dialect',
      `${folder}/${JOURNAL} is a journal for dialect ${JSON.stringify(j.dialect)}; pgwarden writes PostgreSQL migrations`,
      'Point --drizzle at the migrations folder of your PostgreSQL database (drizzle.config `out` with dialect: "postgresql").',
    );
  const entries = j.entries;
  const valid =
    Array.isArray(entries) &&
    entries.every(
      (e: unknown) =>
        typeof e === 'object' &&
        e !== null &&
        typeof (e as JournalEntry).idx === 'number' &&
        typeof (e as JournalEntry).when === 'number' &&
        typeof (e as JournalEntry).tag === 'string',
    );
  if (!valid)
    throw new PgwardenError(
      'drizzle_bad_journal',
      `${folder}/${JOURNAL} has no valid "entries" list (each needs idx, when and tag)`,
      'Restore the journal from version control; drizzle-kit migrate cannot read it either.',
    );
  return j as unknown as Journal;
}

function parseJson(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new PgwardenError(
      'drizzle_bad_json',
      `${file} is not valid JSON: ${(e as Error).message}`,
      'Restore the file from version control (drizzle-kit cannot read it either), then run pgwarden generate --drizzle again.',
      e,
    );
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new PgwardenError(
      'drizzle_bad_json',
      `${file} is not a JSON object`,
      'Restore the file from version control, then run pgwarden generate --drizzle again.',
    );
  return v as Record<string, unknown>;
}

/** drizzle-kit's prefix modes, taken from the last tag: index (default), timestamp or unix. */
function tagPrefix(idx: number, lastTag: string | undefined, now: number): string {
  if (lastTag && /^\d{14}_/.test(lastTag))
    return new Date(now).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  if (lastTag && /^\d{10}_/.test(lastTag)) return String(Math.floor(now / 1000));
  return String(idx).padStart(4, '0');
}

function emptySnapshot(): Record<string, unknown> {
  return {
    id: ORIGIN_UUID,
    prevId: '',
    version: SNAPSHOT_VERSION,
    dialect: 'postgresql',
    tables: {},
    enums: {},
    schemas: {},
    views: {},
    sequences: {},
    roles: {},
    policies: {},
    _meta: { columns: {}, schemas: {}, tables: {} },
  };
}
