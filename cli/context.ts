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
import { envKey, KEY_ENV, keyConnectionOptions, resolveKeysSync } from '../src/runtime/keys.js';
import { loadParser } from '../src/sql/tree.js';
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

// ------------------------------------------------------------------ encryption keys (--key)

let keyRefs: readonly string[] = [];
let resolvedKeys: string[] | undefined;

/** Called once by the program (global option --key, repeatable) before any command runs. */
export function setKeyRefs(refs: readonly string[] | undefined): void {
  keyRefs = refs ?? [];
  resolvedKeys = undefined;
}

/**
 * The keys of this CLI run: every --key (env:NAME, file:PATH or hex keys, comma-separated), in
 * order, else $PGWARDEN_KEY when it is set (one key or several, comma-separated), else none.
 * Resolved when first needed, so that a command without a database never reads them.
 */
export function cliKeys(): string[] {
  if (resolvedKeys) return resolvedKeys;
  const env = process.env[KEY_ENV];
  const spec = keyRefs.length > 0 ? keyRefs.flatMap(splitRefs) : env?.trim() ? [envKey()] : [];
  resolvedKeys = resolveKeysSync(spec);
  return resolvedKeys;
}

/**
 * `--key env:NEW,env:OLD` is two references, as is `--key <hex>,<hex>`; a comma inside a file
 * path stays in the path (`file:/keys/a,b`) unless what follows is a reference or a hex key.
 */
function splitRefs(ref: string): string[] {
  const out: string[] = [];
  for (const raw of ref.split(',')) {
    const p = raw.trim();
    const last = out[out.length - 1];
    if (/^(env|file):/.test(p) || /^[0-9a-fA-F]{64}$/.test(p) || !last?.startsWith('file:'))
      out.push(p);
    else out[out.length - 1] = `${last},${raw}`;
  }
  return out.filter(Boolean);
}

const noticesShown = new Set<string>();

/** Prints a "no key" notice on stderr, once per run and text (the value stays masked). */
export function printKeyNotice(message: string, hint?: string): void {
  const text = message.replace(/^pgwarden: /, '');
  if (noticesShown.has(text)) return;
  noticesShown.add(text);
  process.stderr.write(
    `${c.yellow('notice:')} ${text}\n${hint ? `${c.dim('hint:')} ${hint}\n` : ''}`,
  );
}

/**
 * A connection of the CLI. The keys (default: cliKeys()) go in the startup packet as the
 * setting pgwarden.keys: never in a statement, so never in the server's statement log, and
 * never printed (--debug included).
 */
export function connect(url: string, options: { keys?: readonly string[] } = {}): postgres.Sql {
  const keys = options.keys ?? cliKeys();
  // application_name shows DBAs who is connected (pg_stat_activity); PGAPPNAME overrides it
  return postgres(url, {
    onnotice: (n) => {
      // the database's word that an encrypted value is shown masked for want of its key
      if (/supplied no key/.test(String(n.message))) printKeyNotice(String(n.message), n.hint);
    },
    max: 2,
    connect_timeout: 10,
    connection: {
      application_name: process.env.PGAPPNAME ?? 'pgwarden',
      ...keyConnectionOptions(keys),
    },
  });
}

export interface LoadedModel {
  model: Model;
  hash: string;
  file: string;
}

/** Load and validate; exits 3 on problems. With a database, fills missing column lists from it. */
export async function loadValidModel(file: string, db?: postgres.Sql): Promise<LoadedModel> {
  // The SQL parser (WebAssembly, compiled on other threads) checks the model's expressions:
  // start it now, so that it compiles while the file is read.
  loadParser().catch(() => undefined);
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
  options: { keys?: readonly string[] } = {},
): Promise<T> {
  const db = connect(databaseUrl(o.url), options);
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
