/**
 * apply: the whole plan in one transaction under an advisory lock; records what it applied.
 * On any failure the transaction rolls back and the error names the step.
 */
import type postgres from 'postgres';
import type { CatalogObject } from '../catalog/objects.js';
import { registryDelete, registryUpsertMany } from '../catalog/registry.js';
import { PgwardenError } from '../errors.js';
import { introspect, readRegistry } from '../introspect/index.js';
import { preflight } from '../introspect/preflight.js';
import { type DriftFinding, driftReport } from '../plan/drift.js';
import { diff, type Plan, type PlanStep } from '../plan/index.js';
import { loadParser } from '../sql/tree.js';

/** pg_advisory_xact_lock key shared by every pgwarden apply ("pgwarden" as hex bytes). */
export const APPLY_LOCK_KEY = '8103780893474906990';

export interface ApplyOptions {
  modelName: string;
  modelHash: string;
  /** e.g. '10s'; how long to wait for the advisory lock and table locks */
  lockTimeout?: string;
  /** called with the plan computed under the lock; return false to abort (nothing changes) */
  confirm?: (plan: Plan) => boolean | Promise<boolean>;
}

export interface ApplyResult {
  plan: Plan;
  applied: boolean;
}

export class ApplyAborted extends Error {}

export async function planAgainst(
  db: postgres.Sql,
  desired: readonly CatalogObject[],
): Promise<Plan> {
  await loadParser();
  return await db.begin(async (tx) => {
    await tx.unsafe('SET TRANSACTION READ ONLY');
    await preflight(tx, desired);
    const live = await introspect(tx, desired);
    return diff(desired, live);
  });
}

export interface DriftResult {
  /** pgwarden has applied something to this database */
  installed: boolean;
  /** objects recorded in the registry */
  objects: number;
  findings: DriftFinding[];
  lastApply: { at: string; by: string; modelName: string; modelHash: string } | null;
}

/** The live database against what pgwarden last applied; read-only. */
export async function driftAgainst(db: postgres.Sql): Promise<DriftResult> {
  await loadParser();
  return await db.begin(async (tx) => {
    await tx.unsafe('SET TRANSACTION READ ONLY');
    const { installed, registry } = await readRegistry(tx);
    if (!installed) return { installed, objects: 0, findings: [], lastApply: null };
    const applied = [...registry.values()].map((e) => e.object);
    const live = await introspect(tx, applied);
    const [last] = await tx<
      { at: Date; by: string; model_name: string; model_hash: string }[]
    >`SELECT applied_at AS at, applied_by AS by, model_name, model_hash FROM pgwarden.applies ORDER BY id DESC LIMIT 1`;
    return {
      installed,
      objects: applied.length,
      findings: driftReport(applied, live),
      lastApply: last
        ? {
            at: last.at.toISOString(),
            by: last.by,
            modelName: last.model_name,
            modelHash: last.model_hash,
          }
        : null,
    };
  });
}

export async function apply(
  db: postgres.Sql,
  desired: readonly CatalogObject[],
  options: ApplyOptions,
): Promise<ApplyResult> {
  await loadParser();
  try {
    return await db.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL lock_timeout = ${quoteTimeout(options.lockTimeout ?? '10s')}`);
      await tx.unsafe('SET LOCAL search_path = pg_catalog, pg_temp');
      // function bodies may name objects whose grants come later in the plan (as pg_dump does)
      await tx.unsafe('SET LOCAL check_function_bodies = off');
      await tx.unsafe(`SELECT pg_catalog.pg_advisory_xact_lock(${APPLY_LOCK_KEY})`);
      await preflight(tx, desired);
      const live = await introspect(tx, desired);
      const plan = diff(desired, live);
      if (plan.steps.length === 0) return { plan, applied: false };
      if (options.confirm && !(await options.confirm(plan)))
        throw new ApplyAborted('apply cancelled; nothing was changed');
      for (const [i, s] of plan.steps.entries()) await runStep(tx, s, i, plan.steps.length);
      await record(tx, plan, options);
      return { plan, applied: true };
    });
  } catch (e) {
    if (e instanceof ApplyAborted || e instanceof PgwardenError) throw e;
    const err = e as { code?: string; message?: string };
    if (err.code === '55P03') {
      throw new PgwardenError(
        'lock_timeout',
        'another pgwarden apply (or a long transaction) holds a lock this apply needs; nothing was changed',
        'Wait for it to finish, or raise --lock-timeout.',
        e,
      );
    }
    throw e;
  }
}

async function runStep(
  tx: postgres.TransactionSql,
  s: PlanStep,
  i: number,
  n: number,
): Promise<void> {
  for (const statement of s.sql) {
    try {
      await tx.unsafe(statement).simple();
    } catch (e) {
      const err = e as { message?: string; detail?: string; hint?: string };
      throw new PgwardenError(
        'apply_step_failed',
        `step ${i + 1}/${n} failed: ${s.summary}\n  server said: ${err.message ?? String(e)}${err.detail ? `\n  detail: ${err.detail}` : ''}\n  SQL: ${statement.split('\n').slice(0, 12).join('\n       ')}`,
        err.hint ??
          'Nothing was changed: the whole apply was rolled back. Fix the cause and run pgwarden apply again.',
        e,
      );
    }
  }
}

/** Registry rows per statement when apply records what it did. */
const RECORD_ROWS = 500;

async function record(
  tx: postgres.TransactionSql,
  plan: Plan,
  options: ApplyOptions,
): Promise<void> {
  // repairs of objects pgwarden never created are not recorded as pgwarden's
  const recorded = plan.steps.filter((s) => s.reason !== 'unknown');
  // a plan drops only keys it does not create: deleting first, then upserting, is the same
  for (const s of recorded) if (s.action === 'drop') await tx.unsafe(registryDelete(s.key).text);
  const upserts = recorded.filter((s) => s.action !== 'drop').map((s) => s.object);
  for (let i = 0; i < upserts.length; i += RECORD_ROWS)
    await tx.unsafe(registryUpsertMany(upserts.slice(i, i + RECORD_ROWS)).text);
  const summary = plan.steps.map((s) => ({
    op: s.op,
    key: s.key,
    reason: s.reason,
    effect: s.effect,
    summary: s.summary,
  }));
  await tx`INSERT INTO pgwarden.applies (model_name, model_hash, plan) VALUES (${options.modelName}, ${options.modelHash}, ${tx.json(summary)})`;
}

function quoteTimeout(t: string): string {
  if (!/^\d+(ms|s|min)?$/.test(t))
    throw new PgwardenError(
      'invalid_option',
      `--lock-timeout ${JSON.stringify(t)} is not a duration`,
      'Use e.g. 500ms, 10s or 1min.',
    );
  return `'${t}'`;
}
