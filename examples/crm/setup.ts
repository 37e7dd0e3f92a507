/**
 * Builds the reference CRM in a database: tables (schema.sql, as drizzle-kit generates them),
 * the pgwarden model applied, and the seed. Used by `pgwarden demo` and the behaviour tests.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type postgres from 'postgres';
import { apply } from '../../src/apply/index.js';
import { canonicalJson, sha256 } from '../../src/catalog/fingerprint.js';
import { compile, type Target } from '../../src/compile/index.js';
import type { Model } from '../../src/model/types.js';
import { validateModel } from '../../src/model/validate.js';
import input from './model.js';

/** examples/crm, also when this module runs compiled from dist/examples/crm (the compiled CLI's
 * demo): its SQL files are not compiled, they stay next to the sources */
function crmDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(here, 'schema.sql'))) return here;
  return join(here, '..', '..', '..', 'examples', 'crm');
}
const here = crmDir();
export const CRM_DIR = here;

export async function crmModel(): Promise<Model> {
  const { model, problems } = await validateModel(input);
  if (!model)
    throw new Error(`examples/crm/model.ts is invalid: ${JSON.stringify(problems, null, 2)}`);
  return model;
}

export function readCrmFile(name: 'schema.sql' | 'seed.sql'): string {
  return readFileSync(join(here, name), 'utf8');
}

export interface SetupResult {
  model: Model;
  tablesCreated: boolean;
  seeded: boolean;
}

/**
 * Idempotent: creates the tables if schema crm is missing, applies the model, seeds if nobody
 * exists yet. customers.id_number is encrypted: the seed needs a key, from `options.keys` (64 hex,
 * several comma-separated, the first one is registered) or from the connection's own
 * `pgwarden.keys`; when no key is registered yet, the first one supplied becomes the active key
 * (pgwarden.add_key()).
 */
export async function setupCrm(
  db: postgres.Sql,
  options: { rolePrefix?: string; keys?: string; target?: Target; model?: Model } = {},
): Promise<SetupResult> {
  // a variant of the CRM model (tests); its tables must be the CRM's
  const model = options.model ?? (await crmModel());
  const [{ exists } = { exists: false }] = await db<
    { exists: boolean }[]
  >`SELECT to_regclass('crm.customers') IS NOT NULL AS exists`;
  if (!exists) await db.begin((tx) => tx.unsafe(readCrmFile('schema.sql')).simple());
  const target = options.target ?? 'postgres';
  await apply(db, compile(model, { rolePrefix: options.rolePrefix ?? '', target }), {
    modelName: model.name,
    modelHash: sha256(canonicalJson(model)),
  });
  const [{ n } = { n: 0 }] = await db<
    { n: number }[]
  >`SELECT count(*)::int AS n FROM pgwarden.people`;
  let seeded = false;
  await db.begin(async (tx) => {
    if (options.keys)
      await tx`SELECT pg_catalog.set_config('pgwarden.keys', ${options.keys}, true)`;
    // the first key of the session becomes the active one, if there is none yet
    await tx`SELECT pgwarden.add_key()
             WHERE pg_catalog.cardinality(pgwarden.session_key_ids()) > 0
               AND NOT EXISTS (SELECT FROM pgwarden.encryption_keys WHERE state = 'active')`;
    if (n === 0) {
      await tx.unsafe(readCrmFile('seed.sql')).simple();
      seeded = true;
    }
  });
  return { model, tablesCreated: !exists, seeded };
}
