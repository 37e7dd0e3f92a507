/**
 * The target a database was applied for (docs/distributed.md): the Citus target records
 * `target = citus` in pgwarden.settings; a database without that row was applied for
 * PostgreSQL. plan and apply compile for the recorded target unless told otherwise, and refuse
 * to switch a database from one target to the other.
 */
import type postgres from 'postgres';
import { TARGETS, type Target } from '../compile/index.js';
import { PgwardenError } from '../errors.js';

type Db = postgres.Sql | postgres.TransactionSql;

/** The recorded target; null when pgwarden was never applied to this database. */
export async function appliedTarget(db: Db): Promise<Target | null> {
  const [row] = await db.unsafe<{ installed: boolean }[]>(
    `SELECT pg_catalog.to_regclass('pgwarden.applied_objects') IS NOT NULL AS installed`,
  );
  if (!row?.installed) return null;
  const [setting] = await db.unsafe<{ value: string }[]>(
    `SELECT value FROM pgwarden.settings WHERE key = 'target'`,
  );
  const value = setting?.value ?? 'postgres';
  if (!(TARGETS as readonly string[]).includes(value))
    throw new PgwardenError(
      'unknown_target',
      `this database was applied for target "${value}", which this pgwarden does not know`,
      `Use the pgwarden version that applied it; targets known here: ${TARGETS.join(', ')}.`,
    );
  return value as Target;
}

/**
 * The target to compile for: the one given, else the recorded one, else PostgreSQL. A given
 * target other than the recorded one is an error: switching would re-create every policy for
 * other roles and drop or create the views in one apply; set up a new database instead.
 */
export async function resolveTarget(db: Db, given: Target | undefined): Promise<Target> {
  const recorded = await appliedTarget(db);
  if (given && recorded && given !== recorded) {
    throw new PgwardenError(
      'target_mismatch',
      `this database was applied with --target ${recorded}, not --target ${given}`,
      `Leave out --target (plan and apply use the recorded target), or pass --target ${recorded}. Switching a database between targets is not supported: apply the model to a new database.`,
    );
  }
  return given ?? recorded ?? 'postgres';
}
