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

import { canonicalJson, fingerprint } from '../catalog/fingerprint.js';
import type { CatalogObject, FunctionObject, ObjectKind } from '../catalog/objects.js';
import { cmp, dependsOn, objectKey, rank } from '../catalog/objects.js';
import { PgwardenError } from '../errors.js';
import type { LiveState } from '../introspect/index.js';
import {
  describe,
  type Effect,
  effectOf,
  isHelperView,
  renderCreate,
  renderDrop,
} from '../sql/render.js';
import {
  canonicalStatements,
  exprNarrowerOrEqual,
  returnedSelect,
  selectNarrowerOrEqual,
} from '../sql/tree.js';

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
  /** nothing has been applied to this database yet (its first apply installs everything) */
  firstApply: boolean;
}

/**
 * Steps that need the user's explicit permission when nobody can be asked: destructive steps
 * always; widening steps that come from the model (new or changed objects), unless this is the
 * database's first apply (which grants access from nothing and is reviewed as a whole).
 * Repairs of drift (re-creating what was applied before, and objects living on it) restore a
 * state that was reviewed when it was first applied, so they are not gated for widening.
 */
export function stepsNeedingPermission(
  plan: Plan,
  allow: { widen?: boolean; destructive?: boolean },
): { widen: PlanStep[]; destructive: PlanStep[] } {
  return {
    widen:
      allow.widen || plan.firstApply
        ? []
        : plan.steps.filter(
            (s) => s.effect === 'widens' && (s.reason === 'new' || s.reason === 'changed'),
          ),
    destructive: allow.destructive ? [] : plan.steps.filter((s) => s.effect === 'destructive'),
  };
}

function step(
  object: CatalogObject,
  action: StepAction,
  reason: StepReason,
  context: {
    previous?: CatalogObject;
    exists?: boolean;
    live?: CatalogObject;
    effect?: Effect;
  } = {},
): PlanStep {
  const sql = (action === 'drop' ? renderDrop(object) : renderCreate(object)).map((s) => s.text);
  const verb = action === 'create' ? (reason === 'new' ? 'create' : 're-create') : action;
  return {
    op: `${action}_${object.kind}`,
    action,
    kind: object.kind,
    key: objectKey(object),
    reason,
    summary: `${reason === 'unknown' && action === 'drop' && object.kind === 'grant' ? 'revoke' : verb} ${describe(object)}${why(object, reason, context.exists)}`,
    effect: context.effect ?? effect(object, action, reason, context),
    sql,
    object,
  };
}

function why(o: CatalogObject, reason: StepReason, exists: boolean | undefined): string {
  switch (reason) {
    case 'drifted':
      if (exists === true) return ' (edited outside pgwarden; restores the applied definition)';
      if (exists === false) return ' (dropped outside pgwarden)';
      return ' (changed or removed outside pgwarden)';
    case 'dependent':
      return ' (lives on a re-created object)';
    case 'unknown':
      if (o.kind === 'grant') return ' (not granted by the model)';
      if (o.kind === 'revoke_public') return ' (PUBLIC holds privileges)';
      if (o.kind !== 'policy') return ' (not created by pgwarden)';
      return ` (not created by pgwarden: ${o.permissive ? 'PERMISSIVE' : 'RESTRICTIVE'} ${o.command} TO ${o.to.join(', ')}${o.using !== null ? ` USING (${o.using})` : ''}${o.check !== null ? ` WITH CHECK (${o.check})` : ''})`;
    default:
      return '';
  }
}

function effect(
  o: CatalogObject,
  action: StepAction,
  reason: StepReason,
  context: { previous?: CatalogObject; exists?: boolean; live?: CatalogObject },
): Effect {
  // dropping a restrictive policy lifts a restriction; creating one adds one
  if (o.kind === 'policy' && !o.permissive && action !== 'replace')
    return action === 'drop' ? 'widens' : 'narrows';
  if (action === 'drop') return effectOf(o, 'drop');
  // put back on an object that is re-created: what was already there
  if (reason === 'dependent') return 'neutral';
  // an object edited by hand: compared with what is in the database now
  if (reason === 'drifted' && context.exists === true) return replaceEffect(o, context.live);
  if (action === 'replace') return replaceEffect(o, context.previous);
  return effectOf(o, 'create');
}

/** A function's query and how its names resolve, when its body is only a query (see above). */
function returnedForm(f: FunctionObject): { query: string; useColumn: boolean } | null {
  if (f.language === 'sql') return { query: f.body, useColumn: true };
  return returnedSelect(f.body);
}

/**
 * A changed object narrows access only when that is proven: a policy whose expressions imply the
 * old ones (syntactically, on the parse trees) for no more roles; anything else that can grant
 * access and is not proven narrower is classed as widening.
 */
export function replaceEffect(o: CatalogObject, previous: CatalogObject | undefined): Effect {
  if (o.kind === 'policy' && previous?.kind === 'policy') {
    if (o.command !== previous.command || o.permissive !== previous.permissive) return 'widens';
    const roles = o.permissive
      ? o.to.every((r) => previous.to.includes(r))
      : previous.to.every((r) => o.to.includes(r));
    const narrower =
      roles &&
      exprNarrowerOrEqual(o.using, previous.using) &&
      exprNarrowerOrEqual(o.check, previous.check);
    return narrower ? 'narrows' : 'widens';
  }
  if (o.kind === 'view' && previous?.kind === 'view') {
    const sameQuery =
      canonicalStatements(`SELECT * FROM (${o.query}) AS q`) ===
      canonicalStatements(`SELECT * FROM (${previous.query}) AS q`);
    if (sameQuery) return 'neutral';
    // a `_rows_*` lookup returns rows; one whose WHERE implies the old one returns no new row
    if (
      isHelperView(o) &&
      o.owner === previous.owner &&
      canonicalJson(o.defaults) === canonicalJson(previous.defaults) &&
      selectNarrowerOrEqual(o.query, previous.query)
    )
      return 'narrows';
    return 'widens';
  }
  // `_many_<parent>` only picks which of two exact tests a child's policy runs (the array of
  // visible parent keys, or a lookup of the one parent): no value of it changes a row's fate
  if (
    o.kind === 'function' &&
    previous?.kind === 'function' &&
    o.schema === 'pgwarden' &&
    o.name.startsWith('_many_') &&
    canonicalJson({ ...o, body: '', comment: '' }) ===
      canonicalJson({ ...previous, body: '', comment: '' })
  )
    return 'neutral';
  if (o.kind === 'function' && previous?.kind === 'function') {
    // The rule of a SQL function, or of a PL/pgSQL one that only does RETURN (query), is its
    // query's WHERE clause. A SQL function returns the first row; RETURN (query) the only row,
    // or an error when there are several: the rows it may return are the query's either way.
    // Names resolve as in SQL with use_column; without it an ambiguous name is an error, so
    // the strict form may follow the lenient one but not the other way round.
    const now = returnedForm(o);
    const before = returnedForm(previous);
    const sameShell =
      now !== null &&
      before !== null &&
      (!now.useColumn || before.useColumn) &&
      canonicalJson({ ...o, body: '', language: '' }) ===
        canonicalJson({ ...previous, body: '', language: '' });
    if (sameShell && selectNarrowerOrEqual(now.query, before.query))
      // the same query in the other form (a SQL helper of an earlier release in PL/pgSQL)
      return selectNarrowerOrEqual(before.query, now.query) ? 'neutral' : 'narrows';
  }
  // functions carry rules too (a table's visible keys, write checks): unproven means widening
  if (o.kind === 'membership' || o.kind === 'policy' || o.kind === 'view' || o.kind === 'function')
    return 'widens';
  if (o.kind === 'role' && previous?.kind === 'role') {
    const gains =
      (o.bypassrls && !previous.bypassrls) ||
      (o.createrole && !previous.createrole) ||
      (o.login && !previous.login);
    return gains ? 'widens' : 'neutral';
  }
  return 'neutral';
}

export function diff(desired: readonly CatalogObject[], live: LiveState): Plan {
  const steps: PlanStep[] = [];
  const recreated = new Set<string>();
  let unchanged = 0;
  const desiredKeys = new Set<string>();
  const pending: {
    o: CatalogObject;
    action: StepAction;
    reason: StepReason;
    previous?: CatalogObject;
    exists?: boolean | undefined;
    live?: CatalogObject | undefined;
  }[] = [];

  for (const o of desired) {
    const key = objectKey(o);
    desiredKeys.add(key);
    const applied = live.registry.get(key);
    if (!applied) {
      pending.push({ o, action: 'create', reason: 'new' });
      recreated.add(key);
    } else if (applied.fingerprint !== fingerprint(o)) {
      if (o.kind === 'catalog') {
        const before = applied.object.kind === 'catalog' ? applied.object.owner : o.owner;
        if (before !== o.owner) {
          throw new PgwardenError(
            'role_prefix_mismatch',
            `this database was set up with other role names (its catalog is owned by "${before}", this model would use "${o.owner}")`,
            'Use the same --role-prefix as the apply that set the database up (see `pgwarden diff` for the last apply).',
          );
        }
        throw new PgwardenError(
          'catalog_changed',
          `pgwarden catalog file ${o.file} differs from the version applied to this database`,
          'Catalog files are append-only: restore the file and add the change as a new numbered file in sql/.',
        );
      }
      pending.push({ o, action: 'replace', reason: 'changed', previous: applied.object });
      recreated.add(key);
    } else if (live.present.get(key) !== true) {
      pending.push({
        o,
        action: 'create',
        reason: 'drifted',
        exists: live.exists.get(key),
        live: live.livePolicies.get(key),
      });
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
  for (const g of live.unknownGrants) drops.push(step(g, 'drop', 'unknown'));
  drops.sort((a, b) => rank(b.object) - rank(a.object) || cmp(a.key, b.key));
  // a grant whose privileges shrink is a drop of the old grant and a create of the new one
  const droppedGrants = drops.filter((d) => d.object.kind === 'grant').map((d) => d.object);
  const creates = pending
    .map((p) =>
      step(p.o, p.action, p.reason, {
        ...(p.previous ? { previous: p.previous } : {}),
        ...(p.exists !== undefined ? { exists: p.exists } : {}),
        ...(p.live ? { live: p.live } : {}),
        ...(p.reason === 'new' && p.o.kind === 'grant' && grantShrinks(p.o, droppedGrants)
          ? { effect: 'narrows' as const }
          : {}),
      }),
    )
    .concat(live.unknownPublic.map((r) => step(r, 'create', 'unknown')))
    .sort((a, b) => rank(a.object) - rank(b.object) || cmp(a.key, b.key));
  // functions and pgwarden's own views are dropped last: a policy or view that names one (a
  // `_keys_*` helper, a `_rows_*` lookup) is replaced first, and PostgreSQL refuses to drop what
  // a policy or view still depends on
  const late = (d: PlanStep) => d.object.kind === 'function' || isHelperView(d.object);
  steps.push(...drops.filter((d) => !late(d)), ...creates, ...drops.filter(late));
  return { steps, unchanged, firstApply: live.registry.size === 0 };
}

function grantShrinks(g: CatalogObject, dropped: readonly CatalogObject[]): boolean {
  if (g.kind !== 'grant') return false;
  const t = canonicalJson(g.target);
  return dropped.some(
    (d) =>
      d.kind === 'grant' &&
      d.grantee === g.grantee &&
      canonicalJson(d.target) === t &&
      g.privileges.every((p) => d.privileges.includes(p)) &&
      // column grants: no column the dropped grant did not cover (no columns: all of them)
      (d.columns === undefined || (g.columns ?? []).every((c) => d.columns?.includes(c))) &&
      (g.columns !== undefined || d.columns === undefined),
  );
}

/** Steps that do something in the database (drops of never-dropped kinds only update the registry). */
export function isEmpty(plan: Plan): boolean {
  return plan.steps.length === 0;
}
