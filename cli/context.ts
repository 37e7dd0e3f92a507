/** What most commands share: finding and loading the model, connecting, error printing. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import postgres from 'postgres';
import { PgwardenError } from '../src/errors.js';
import { readColumns } from '../src/introspect/columns.js';
import { loadModel } from '../src/model/load.js';
import type { Model } from '../src/model/types.js';
import { validateModel, withColumns } from '../src/model/validate.js';
import { c, EXIT, printProblems } from './output.js';

export class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message = '',
  ) {
    super(message);
  }
}

const MODEL_CANDIDATES = [
  'pgwarden.model.ts',
  'pgwarden.model.yaml',
  'pgwarden.model.yml',
  'pgwarden.model.json',
];

export function findModelFile(given: string | undefined): string {
  const file = given ?? process.env.PGWARDEN_MODEL;
  if (file) return resolve(file);
  for (const f of MODEL_CANDIDATES) if (existsSync(f)) return resolve(f);
  throw new PgwardenError(
    'no_model',
    'no model file given and none found in this folder',
    `Pass --model FILE, set PGWARDEN_MODEL, or create one of: ${MODEL_CANDIDATES.join(', ')}.`,
  );
}

export function databaseUrl(given: string | undefined): string {
  const url = given ?? process.env.DATABASE_URL;
  if (!url)
    throw new PgwardenError(
      'no_url',
      'no database to connect to',
      'Pass --url postgres://... or set DATABASE_URL.',
    );
  return url;
}

export function connect(url: string): postgres.Sql {
  // application_name shows DBAs who is connected (pg_stat_activity); PGAPPNAME overrides it
  return postgres(url, {
    onnotice: () => {},
    max: 2,
    connect_timeout: 10,
    connection: { application_name: process.env.PGAPPNAME ?? 'pgwarden' },
  });
}

export interface LoadedModel {
  model: Model;
  hash: string;
  file: string;
}

/** Load and validate; exits 3 on problems. With a database, fills missing column lists from it. */
export async function loadValidModel(file: string, db?: postgres.Sql): Promise<LoadedModel> {
  // Offline, every table must list its columns; with a database, missing lists are read from it.
  const loaded = await loadModel(file, { requireColumns: !db });
  let { model, problems } = loaded;
  if (
    db &&
    loaded.input &&
    typeof loaded.input === 'object' &&
    problems.every(
      (p) => p.code !== 'invalid_syntax' && p.code !== 'file_not_found' && p.code !== 'load_failed',
    )
  ) {
    const input = loaded.input as Parameters<typeof withColumns>[0];
    const missing = Object.entries(input.tables ?? {}).filter(([, t]) => !t.columns);
    if (missing.length > 0 && input.schemas?.protected) {
      const names = missing.map(([k, t]) => t.name ?? k);
      const cols = await readColumns(db, input.schemas.protected, names);
      const byModelName: Record<string, { name: string; type: string }[]> = {};
      for (const [k, t] of missing) {
        const found = cols[t.name ?? k];
        if (found) byModelName[k] = found;
      }
      const again = await validateModel(withColumns(input, byModelName), {
        requireColumns: true,
        ...(loaded.source ? { source: loaded.source } : {}),
      });
      model = again.model;
      problems = again.problems;
    }
  }
  if (problems.length > 0 || !model) {
    printProblems(problems);
    process.stderr.write(c.dim('Nothing was changed.\n'));
    throw new ExitError(EXIT.invalidModel);
  }
  return { model, hash: loaded.hash, file };
}

// ------------------------------------------------------------------ shared by the commands

export interface PersonOptions {
  url?: string;
  as?: string;
}

/** --url and --as, the options of every command that acts in the database. */
export function personOptions(cmd: Command): Command {
  return cmd
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL)')
    .option(
      '--as <role>',
      'act as this person role, as the application would (the database decides)',
    );
}

/** Opens a connection for one command; a server error becomes a PgwardenError (message and hint). */
export async function withDb<T>(
  o: PersonOptions,
  fn: (db: postgres.Sql) => Promise<T>,
): Promise<T> {
  const db = connect(databaseUrl(o.url));
  try {
    return await fn(db);
  } catch (e) {
    const err = e as { code?: string; message?: string; hint?: string };
    if (
      !(e instanceof PgwardenError) &&
      typeof err.code === 'string' &&
      /^[0-9A-Z]{5}$/.test(err.code)
    ) {
      throw new PgwardenError(
        `sqlstate_${err.code}`,
        err.message ?? String(e),
        err.hint ?? 'See the message above.',
        e,
      );
    }
    throw e;
  } finally {
    await db.end();
  }
}

/** One transaction, as the person given with --as (if any). */
export async function asPerson<T>(
  db: postgres.Sql,
  role: string | undefined,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return (await db.begin(async (tx) => {
    if (role) await tx`SELECT pg_catalog.set_config('role', ${role}, true)`;
    return await fn(tx);
  })) as T;
}

/** A time relative to now (12h, 7d, 30m; `sign` -1 for the past) or an ISO time. */
export function relativeTime(option: string, v: string, sign: 1 | -1 = 1): string {
  const rel = /^(\d+)(m|h|d)$/.exec(v);
  if (rel) {
    const ms =
      Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd'];
    return new Date(Date.now() + sign * ms).toISOString();
  }
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) {
    throw new PgwardenError(
      'invalid_option',
      `${option} ${JSON.stringify(v)} is not a time`,
      'Use an ISO time with a zone (2026-12-11T23:59:59+08:00) or a duration like 30m, 12h, 7d.',
    );
  }
  return d.toISOString();
}
