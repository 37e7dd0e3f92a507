/** What most commands share: finding and loading the model, connecting, error printing. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
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
  return postgres(url, { onnotice: () => {}, max: 2, connect_timeout: 10 });
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
