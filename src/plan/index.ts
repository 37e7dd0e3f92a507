/**
 * diff: desired objects vs the live state -> a plan of typed steps. Pure.
 *
 *   new       desired, never applied               -> create
 *   changed   applied with another definition      -> replace
 *   drifted   applied as desired, but the database no longer has it so -> create again
 *   removed   applied, no longer desired           -> drop
 *   dependent lives on an object that is recreated (grants on a replaced view) -> create again
 */
import { fingerprint } from '../catalog/fingerprint.js';
import type { CatalogObject, ObjectKind } from '../catalog/objects.js';
import { cmp, dependsOn, KIND_RANK, objectKey } from '../catalog/objects.js';
import type { LiveState } from '../introspect/index.js';
import { describe, type Effect, effectOf, renderCreate, renderDrop } from '../sql/render.js';

export type StepAction = 'create' | 'replace' | 'drop';
export type StepReason = 'new' | 'changed' | 'drifted' | 'removed' | 'dependent';

export interface PlanStep {
  /** e.g. create_policy, replace_view, drop_grant */
  op: `${StepAction}_${ObjectKind}`;
  action: StepAction;
  kind: ObjectKind;
  key: string;
  reason: StepReason;
  summary: string;
  effect: Effect;
  sql: string[];
  object: CatalogObject;
}

export interface Plan {
  steps: PlanStep[];
  /** objects that need no change */
  unchanged: number;
}

export class PlanError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'PlanError';
  }
}

function step(object: CatalogObject, action: StepAction, reason: StepReason): PlanStep {
  const sql = (action === 'drop' ? renderDrop(object) : renderCreate(object)).map((s) => s.text);
  const verb = action === 'create' ? (reason === 'new' ? 'create' : 're-create') : action;
  const why =
    reason === 'drifted'
      ? ' (changed or removed outside pgwarden)'
      : reason === 'dependent'
        ? ' (lives on a re-created object)'
        : '';
  return {
    op: `${action}_${object.kind}`,
    action,
    kind: object.kind,
    key: objectKey(object),
    reason,
    summary: `${verb} ${describe(object)}${why}`,
    effect:
      action === 'drop'
        ? effectOf(object, 'drop')
        : action === 'replace'
          ? replaceEffect(object)
          : effectOf(object, 'create'),
    sql,
    object,
  };
}

function replaceEffect(o: CatalogObject): Effect {
  // A changed policy or view may widen access; without comparing predicates we cannot tell it
  // narrows, so it is flagged as widening (issue #6 refines this with normalized comparison).
  return o.kind === 'policy' || o.kind === 'view' || o.kind === 'membership' ? 'widens' : 'neutral';
}

export function diff(desired: readonly CatalogObject[], live: LiveState): Plan {
  const steps: PlanStep[] = [];
  const recreated = new Set<string>();
  let unchanged = 0;
  const desiredKeys = new Set<string>();
  const pending: { o: CatalogObject; action: StepAction; reason: StepReason }[] = [];

  for (const o of desired) {
    const key = objectKey(o);
    desiredKeys.add(key);
    const applied = live.registry.get(key);
    const fp = fingerprint(o);
    if (!applied) {
      pending.push({ o, action: 'create', reason: 'new' });
      recreated.add(key);
    } else if (applied.fingerprint !== fp) {
      if (o.kind === 'catalog') {
        throw new PlanError(
          `pgwarden catalog file ${o.file} differs from the version applied to this database`,
          'Catalog files are append-only: restore the file and add the change as a new numbered file in sql/.',
        );
      }
      pending.push({ o, action: 'replace', reason: 'changed' });
      recreated.add(key);
    } else if (live.present.get(key) !== true) {
      pending.push({ o, action: 'create', reason: 'drifted' });
      recreated.add(key);
    } else {
      unchanged += 1;
    }
  }
  // objects living on re-created objects
  for (const o of desired) {
    const key = objectKey(o);
    if (recreated.has(key)) continue;
    if (dependsOn(o).some((d) => recreated.has(d))) {
      pending.push({ o, action: 'create', reason: 'dependent' });
      unchanged -= 1;
    }
  }
  const drops: PlanStep[] = [];
  for (const [key, entry] of live.registry) {
    if (desiredKeys.has(key)) continue;
    drops.push(step(entry.object, 'drop', 'removed'));
  }
  drops.sort((a, b) => KIND_RANK[b.kind] - KIND_RANK[a.kind] || cmp(a.key, b.key));
  const creates = pending
    .map((p) => step(p.o, p.action, p.reason))
    .sort((a, b) => KIND_RANK[a.kind] - KIND_RANK[b.kind] || cmp(a.key, b.key));
  steps.push(...drops, ...creates);
  return { steps, unchanged };
}

/** Steps that do something in the database (drops of never-dropped kinds only update the registry). */
export function isEmpty(plan: Plan): boolean {
  return plan.steps.length === 0;
}
