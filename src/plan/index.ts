/**
 * diff: desired objects vs the live state -> a plan of typed steps. Pure.
 *
 *   new       desired, never applied               -> create
 *   changed   applied with another definition      -> replace
 *   drifted   applied as desired, but the database no longer has it so -> create again
 *   removed   applied, no longer desired           -> drop
 *   dependent lives on an object that is recreated (grants on a replaced view) -> create again
 *   unknown   a policy on a protected table that pgwarden did not create (e.g. a hand-written
 *             USING (true)) -> drop; shown first, since it may widen access for everyone
 */

import { fingerprint } from '../catalog/fingerprint.js';
import type { CatalogObject, ObjectKind } from '../catalog/objects.js';
import { cmp, dependsOn, objectKey, rank } from '../catalog/objects.js';
import { PgwardenError } from '../errors.js';
import type { LiveState } from '../introspect/index.js';
import { describe, type Effect, effectOf, renderCreate, renderDrop } from '../sql/render.js';

export type StepAction = 'create' | 'replace' | 'drop';
export type StepReason = 'new' | 'changed' | 'drifted' | 'removed' | 'dependent' | 'unknown';

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

function step(object: CatalogObject, action: StepAction, reason: StepReason): PlanStep {
  const sql = (action === 'drop' ? renderDrop(object) : renderCreate(object)).map((s) => s.text);
  const verb = action === 'create' ? (reason === 'new' ? 'create' : 're-create') : action;
  return {
    op: `${action}_${object.kind}`,
    action,
    kind: object.kind,
    key: objectKey(object),
    reason,
    summary: `${verb} ${describe(object)}${why(object, reason)}`,
    effect: effect(object, action, reason),
    sql,
    object,
  };
}

function why(o: CatalogObject, reason: StepReason): string {
  switch (reason) {
    case 'drifted':
      return ' (changed or removed outside pgwarden)';
    case 'dependent':
      return ' (lives on a re-created object)';
    case 'unknown':
      if (o.kind !== 'policy') return ' (not created by pgwarden)';
      return ` (not created by pgwarden: ${o.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} ${o.command} TO ${o.to.join(', ')}${o.using !== null ? ` USING (${o.using})` : ''}${o.check !== null ? ` WITH CHECK (${o.check})` : ''})`;
    default:
      return '';
  }
}

function effect(o: CatalogObject, action: StepAction, reason: StepReason): Effect {
  // dropping a restrictive policy lifts a restriction
  if (action === 'drop' && o.kind === 'policy' && !o.permissive) return 'widens';
  if (reason === 'drifted' && (o.kind === 'policy' || o.kind === 'view')) return 'widens';
  if (action === 'drop') return effectOf(o, 'drop');
  if (action === 'replace') return replaceEffect(o);
  return effectOf(o, 'create');
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
        throw new PgwardenError(
          'catalog_changed',
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
  for (const p of live.unknownPolicies) drops.push(step(p, 'drop', 'unknown'));
  drops.sort((a, b) => rank(b.object) - rank(a.object) || cmp(a.key, b.key));
  const creates = pending
    .map((p) => step(p.o, p.action, p.reason))
    .sort((a, b) => rank(a.object) - rank(b.object) || cmp(a.key, b.key));
  steps.push(...drops, ...creates);
  return { steps, unchanged };
}

/** Steps that do something in the database (drops of never-dropped kinds only update the registry). */
export function isEmpty(plan: Plan): boolean {
  return plan.steps.length === 0;
}
