/**
 * Scope and relation predicates. One compiler serves policies (person = pgwarden.caller()), views
 * (the same) and the parent-key helpers (person = the helper's argument). Every helper call is
 * wrapped as (SELECT ...) so it runs once per statement, and membership tests are written
 * `col = ANY ((SELECT ...)::type[])` so the scope column's index can be used (without the cast,
 * `= ANY ((SELECT ...))` parses as ANY over a subquery and compares the column with an array).
 */
import type { Model, RowRelation, Rule, Scope, TableModel } from '../model/types.js';
import { isTextType } from '../model/validate.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { typeName } from '../sql/render.js';
import { columnRefs, hasSubLink } from '../sql/tree.js';

export interface PredicateContext {
  model: Model;
  table: TableModel;
  /** the expression naming the person: pgwarden.caller() in policies, views and triggers */
  person: Sql;
  /** the access a temporary grant must give for `granted` (select for reads) */
  access: 'select' | 'insert' | 'update' | 'delete';
  /**
   * The Citus target (docs/distributed.md): no subquery anywhere, since Citus refuses policies
   * with one. Helper calls are written bare (so they run per row), and the scopes that need a
   * subquery call generated helpers instead (src/compile/citus.ts).
   */
  inline?: boolean;
  /**
   * A view cell's condition, decided row by row in the SELECT list: memberships are written
   * `col IN (SELECT unnest(<array>))`, a hashed subplan built once per statement, so a row costs
   * one hash probe instead of a walk through the array (a manager's subtree: 3x faster cells).
   */
  cell?: boolean;
  /**
   * A predicate for one row found by its key (the `_rows_*` lookups of child tables): a unit or
   * subtree scope on the owner column looks the owner's unit up instead of walking the array of
   * every person in the caller's units. `unit_people` and `subtree_people` are the people whose
   * unit is among `my_units` and `subtree_units` (sql/016, sql/019), so the two are the same test.
   */
  lookup?: boolean;
}

/** A helper call: `(SELECT call)`, run once per statement; bare on the Citus target. */
function once(ctx: { inline?: boolean | undefined }, call: Sql): Sql {
  return ctx.inline ? call : sql`(SELECT ${call})`;
}

/**
 * The helpers take the person as a `name`, whose collation is "C", and their text results
 * inherit it: compared so, a text column's index (default collation) cannot be used (DESIGN.md:
 * 274x for `owner = current_user`). Text-valued helper results are compared in the default
 * collation (equality is the same in every deterministic collation).
 */
function collated(ctx: PredicateContext, expr: Sql, text: boolean): Sql {
  return text && !ctx.inline ? sql`${expr} COLLATE pg_catalog."default"` : expr;
}

/** `col = ANY (arr)`, or in a view cell the hashed `col IN (SELECT unnest(arr))` (same result). */
function member(ctx: PredicateContext, column: Sql, arr: Sql): Sql {
  return ctx.cell && !ctx.inline
    ? sql`${column} IN (SELECT pg_catalog.unnest(${arr}))`
    : sql`${column} = ANY (${arr})`;
}

/** Whether a column holds text (unknown types count as text: owner and unit columns hold names). */
function textColumn(table: TableModel, column: string): boolean {
  const type = table.columns.find((c) => c.name === column)?.type ?? null;
  return type === null || isTextType(type);
}

/**
 * The acting person's role: the role set by SET [LOCAL] ROLE, else the login role. Unlike
 * current_user it stays the person inside pgwarden's SECURITY DEFINER write triggers, which
 * write the base tables as the view owner (see docs/decisions.md).
 */
export const CURRENT_USER = unsafeRaw('"pgwarden"."caller"()');
export const TRUE = unsafeRaw('true');
export const FALSE = unsafeRaw('false');

/** "table"."column": qualified by the table's own name, valid in policies, views and helpers. */
export function col(table: TableModel, column: string): Sql {
  return sql`${ident(table.table)}.${ident(column)}`;
}

const pw = (fn: string) => qualified('pgwarden', fn);

/** Any active person: rules with `jobs: ['*']` (e.g. temporary grants, which need no job). */
export const ANY_JOB = '*';

export function hasJob(person: Sql, job: string, inline = false): Sql {
  if (job === ANY_JOB)
    return sql`(${once({ inline }, sql`${pw('person_name')}(${person})`)} IS NOT NULL)`;
  return once({ inline }, sql`${pw('has_job')}(${person}, ${literal(job)})`);
}

/** Citus target: the helper that says whether one `parent` row is visible to the person. */
export function parentHasFunction(parent: TableModel, via: readonly RowRelation[] | null): string {
  return parentKeysFunction(parent, via).replace(/^_keys_/, '_has_');
}

/** Citus target: a temporary grant's filters matched against the row's grantable values. */
export const GRANT_MATCH_FUNCTION = '_grant_matches';

/** Citus target: a `filter` scope with a subquery becomes a helper over the columns it names. */
export function filterFunction(
  table: TableModel,
  expr: string,
): { name: string; columns: string[] } {
  let h = 0;
  for (const ch of `${table.name}\u0000${expr}`)
    h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  const suffix = `_${h.toString(16).padStart(8, '0')}`;
  const base = `_filter_${table.name}`;
  const name = Buffer.byteLength(base + suffix, 'utf8') <= 63 ? base + suffix : `_filter${suffix}`;
  const named = new Set(
    columnRefs(expr)
      .filter((f) => f.length === 1 || (f.length === 2 && f[0] === table.table))
      .map((f) => f[f.length - 1] as string),
  );
  return { name, columns: table.columns.map((c) => c.name).filter((c) => named.has(c)) };
}

/**
 * Name of the generated view of the keys of `parent` rows the caller may see (or that relate to
 * the caller by `via`): `_rows_<parent>[_via_…]`, beside the `_keys_*` helper of the same rows.
 */
export function parentRowsView(parent: TableModel, via: readonly RowRelation[] | null): string {
  return parentKeysFunction(parent, via).replace(/^_keys_/, '_rows_');
}

/**
 * Relations whose rows are few for anyone (their own, shared with them, the pool): a child's
 * test against them is an array of parent keys built once per statement. The others (a unit, a
 * subtree, assigned values, grants, filters) can reach most of the parent table, so a child row
 * looks its parent up instead (parentProbe).
 */
const FEW: ReadonlySet<Scope['kind']> = new Set(['own', 'shared', 'pool']);

/** Whether a parent scope's test is an array of keys for everyone (`via` few relations only). */
export function parentKeysOnly(parent: TableModel, via: readonly RowRelation[] | null): boolean {
  if (via) return via.every((r) => FEW.has(r));
  return parent.rules.every(
    (r) =>
      !r.commands.includes('select') ||
      r.scopes.every(
        (s) => FEW.has(s.kind) || (s.kind === 'granted' && parent.grantable.length === 0),
      ),
  );
}

/** Whether a parent scope needs the `_rows_*` view (see parentKeysOnly). */
export function parentNeedsRows(parent: TableModel, via: readonly RowRelation[] | null): boolean {
  return !parentKeysOnly(parent, via);
}

/** Whether a parent scope needs the `_keys_*` helper: unless it is a lookup for everyone. */
export function parentNeedsKeys(parent: TableModel, via: readonly RowRelation[] | null): boolean {
  return via === null || parentKeysOnly(parent, via);
}

/**
 * The child row's parent is among the `_rows_*` view's rows: one lookup of the parent by its key
 * per child row. `OFFSET 0` keeps it a lookup: without it PostgreSQL may hash every visible
 * parent key first when it expects many child rows (a manager's whole subtree for a page of 50).
 */
function parentProbe(
  ctx: PredicateContext,
  parent: TableModel,
  via: readonly RowRelation[] | null,
  column: string,
): Sql {
  const v = unsafeRaw('pgw_parent');
  // text keys compare in the default collation, as the arrays of keys do
  const fk = collated(ctx, col(ctx.table, column), isTextType(parent.keyType));
  return sql`EXISTS (SELECT FROM ${pw(parentRowsView(parent, via))} AS ${v} WHERE ${v}.${ident(parent.key)} = ${fk} OFFSET 0)`;
}

/**
 * Name of the generated helper that says whether the person's visible `parent` rows may be many
 * (manyParents): `_many_<parent>`.
 */
export function parentManyFunction(parent: TableModel): string {
  return parentKeysFunction(parent, null).replace(/^_keys_/, '_many_');
}

/**
 * Whether the person's visible `parent` rows may be many (parentKeysOnly): they hold a job of a
 * select rule with a broad scope, have assigned values for an `assigned` scope, or have grants
 * on the parent. Never NULL: unknown counts as many (the lookup is exact either way).
 */
export function manyParents(ctx: PredicateContext, parent: TableModel): Sql {
  const pctx: PredicateContext = { ...ctx, table: parent, access: 'select' };
  const jobs = new Set<string>();
  const parts: Sql[] = [];
  let grants = false;
  for (const r of parent.rules) {
    if (!r.commands.includes('select')) continue;
    for (const s of r.scopes) {
      if (FEW.has(s.kind)) continue;
      if (s.kind === 'granted') grants ||= parent.grantable.length > 0;
      else if (s.kind !== 'assigned') for (const j of r.jobs) jobs.add(j);
      else {
        // an attribute scope reaches rows only for people with values of each attribute
        const attrs = [...new Set(s.match.map((m) => m.attribute))].sort();
        const gate = jobGate(pctx, r.jobs, true);
        const values = attrs.map(
          (a) => sql`pg_catalog.cardinality(${pw('assigned')}(${ctx.person}, ${literal(a)})) > 0`,
        );
        parts.push(sql`(${join(gate ? [gate, ...values] : values, ' AND ')})`);
      }
    }
  }
  const gate = jobs.size > 0 ? jobGate(pctx, [...jobs].sort(), true) : null;
  const all = [
    ...(gate ? [gate] : jobs.size > 0 ? [TRUE] : []),
    ...(grants
      ? [
          sql`${pw('grant_filters')}(${ctx.person}, ${literal(parent.name)}, ${literal('select')}) <> ${literal('[]')}::jsonb`,
        ]
      : []),
    ...uniqueSql(parts),
  ];
  return sql`COALESCE(${all.length === 0 ? FALSE : join(all, ' OR ')}, true)`;
}

/**
 * A parent scope on the PostgreSQL target. Few parents (parentKeysOnly): `col = ANY (keys)`, the
 * keys built once per statement (an index condition). Broad relations only: a lookup per child
 * row (parentProbe). A whole parent visibility that mixes both: the keys for people whose
 * parents are few (manyParents is false), the lookup for the others:
 *
 *   col IN (SELECT unnest((SELECT CASE WHEN NOT _many_<parent>(p) THEN keys END)))
 *   OR ((SELECT _many_<parent>(p)) AND EXISTS (lookup))
 *
 * Either branch is exact, so a wrong guess costs time, never rows; the guess is a helper, so
 * that the policy's text does not change with the parent's rules (`plan` classes a changed
 * `_many_*` helper as neutral for that reason). `gate` gates both (a rule's jobs); null: none.
 */
function parentPredicate(
  ctx: PredicateContext,
  scope: Extract<Scope, { kind: 'parent' }>,
  gate: Sql | null,
  index: boolean,
): Sql {
  const parent = ctx.model.tables.find((t) => t.name === scope.table);
  if (!parent) throw new Error(`unknown parent table ${scope.table}`);
  const t = typeName(parent.keyType);
  const text = isTextType(parent.keyType);
  const keys = sql`${pw(parentKeysFunction(parent, scope.via))}(${ctx.person})`;
  const c = col(ctx.table, scope.column);
  if (parentKeysOnly(parent, scope.via)) {
    if (index) return sql`${c} = ANY (${collated(ctx, sql`${gated(gate, keys)}::${t}[]`, text)})`;
    return member(ctx, c, collated(ctx, sql`${gated(gate, keys)}::${t}[]`, text));
  }
  const probe = parentProbe(ctx, parent, scope.via, scope.column);
  if (scope.via) return gate ? sql`((SELECT ${gate}) AND ${probe})` : probe;
  const many = sql`${pw(parentManyFunction(parent))}(${ctx.person})`;
  const few = gate ? sql`${gate} AND NOT ${many}` : sql`NOT ${many}`;
  const lots = gate ? sql`${gate} AND ${many}` : many;
  return sql`(${c} IN (SELECT pg_catalog.unnest(${collated(ctx, sql`${gated(few, keys)}::${t}[]`, text)}))
    OR ((SELECT ${lots}) AND ${probe}))`;
}

/** Name of the generated helper that returns the keys of `parent` rows the person may see. */
export function parentKeysFunction(parent: TableModel, via: readonly RowRelation[] | null): string {
  const base = via
    ? `_keys_${parent.name}_via_${[...via].sort().join('_')}`
    : `_keys_${parent.name}`;
  if (Buffer.byteLength(base, 'utf8') <= 63) return base;
  // deterministic short form for long names
  let h = 0;
  for (const ch of base) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return `_keys_${h.toString(16).padStart(8, '0')}`;
}

export function relationPredicate(ctx: PredicateContext, relation: RowRelation): Sql {
  const { table, person } = ctx;
  switch (relation) {
    case 'own': {
      const owner = need(table.owner, table, 'own');
      return sql`${col(table, owner)} = ${collated(ctx, once(ctx, sql`${pw('person_name')}(${person})`), textColumn(table, owner))}`;
    }
    case 'unit':
    case 'subtree': {
      const { column, helper } = orgScope(table, relation);
      if (ctx.lookup && !table.unit) {
        // one row found by its key: the owner's unit among the caller's units (one index probe
        // of people by name, and a walk of a few hundred units at most), not the owner among
        // every person of the subtree (vera's 8,894 names, walked for each row: 0.2 ms)
        const units = relation === 'unit' ? 'my_units' : 'subtree_units';
        return sql`EXISTS (SELECT FROM ${qualified('pgwarden', 'people')} AS pgw_owner WHERE pgw_owner.name = ${collated(ctx, col(table, column), true)} AND pgw_owner.unit = ANY ((SELECT ${pw(units)}(${person}))::text[]))`;
      }
      return member(
        ctx,
        col(table, column),
        collated(ctx, sql`${once(ctx, sql`${pw(helper)}(${person})`)}::text[]`, true),
      );
    }
    case 'shared': {
      const t = typeName(table.keyType);
      const keys = sql`${pw('shared_keys')}(${person}, ${literal(table.name)})`;
      // the cast inside the subquery: outside it would convert the array again for every row
      const arr = ctx.inline ? sql`${keys}::${t}[]` : sql`(SELECT ${keys}::${t}[])::${t}[]`;
      return member(ctx, col(table, table.key), collated(ctx, arr, isTextType(table.keyType)));
    }
    case 'pool':
      return sql`${col(table, need(table.pool, table, 'pool'))} IS TRUE`;
    case 'granted': {
      if (table.grantable.length === 0) return FALSE;
      if (ctx.inline) {
        const values = table.grantable.map((c) => sql`${literal(c)}, (${col(table, c)})::text`);
        return sql`${pw(GRANT_MATCH_FUNCTION)}(${person}, ${literal(table.name)}, ${literal(ctx.access)}, pg_catalog.jsonb_build_object(${join(values, ', ')}))`;
      }
      return grantedPredicate(ctx);
    }
    case 'assigned': {
      // the row is reached by any of the table's attribute scopes
      const seen = new Map<string, Extract<Scope, { kind: 'assigned' }>>();
      for (const r of table.rules)
        for (const s of r.scopes) if (s.kind === 'assigned') seen.set(JSON.stringify(s.match), s);
      const parts = [...seen.keys()]
        .sort()
        .map((k) => assignedPredicate(ctx, seen.get(k) as Extract<Scope, { kind: 'assigned' }>));
      return parts.length <= 1 ? (parts[0] ?? FALSE) : sql`(${join(parts, ' OR ')})`;
    }
  }
}

/** The column and the helper of a `unit` or `subtree` scope: the unit column, else the owner's. */
function orgScope(
  table: TableModel,
  relation: 'unit' | 'subtree',
): { column: string; helper: string } {
  if (table.unit)
    return { column: table.unit, helper: relation === 'unit' ? 'my_units' : 'subtree_units' };
  return {
    column: need(table.owner, table, relation),
    helper: relation === 'unit' ? 'unit_people' : 'subtree_people',
  };
}

/**
 * `granted`: some filter of the person's temporary and team grants matches the row
 * (`{"region": ["east"]}`: the row's region, as text, is one of the values; a filter without a
 * key leaves that column free). The filters are fetched once per statement; people without
 * grants pay one NULL test per row, and the subquery over the filters runs only for people with
 * grants (it is per row by nature; a jsonpath match measured 5x slower).
 */
function grantedPredicate(ctx: PredicateContext): Sql {
  const { table, person } = ctx;
  const filters = sql`${pw('grant_filters')}(${person}, ${literal(table.name)}, ${literal(ctx.access)})`;
  const g = unsafeRaw('pgw_grant.f');
  const conds = table.grantable.map(
    (c) =>
      sql`(NOT (${g} OPERATOR(pg_catalog.?) ${literal(c)}) OR (${g} OPERATOR(pg_catalog.->) ${literal(c)}) OPERATOR(pg_catalog.?) (${col(table, c)})::text)`,
  );
  return sql`((SELECT NULLIF(${filters}, '[]'::jsonb)) IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.jsonb_array_elements((SELECT ${filters})) AS pgw_grant(f) WHERE ${join(conds, ' AND ')}))`;
}

/**
 * `{ assigned: ... }`: each column among the person's assigned values of its attribute, as
 * `col = ANY ((SELECT pgwarden.assigned(person, attr))::type[])`: one array per statement, and
 * the column's index can be used.
 */
export function assignedPredicate(
  ctx: PredicateContext,
  scope: Extract<Scope, { kind: 'assigned' }>,
): Sql {
  const parts = scope.match.map((m) => {
    const type = ctx.table.columns.find((c) => c.name === m.column)?.type ?? null;
    const text = !type || isTextLike(type);
    const t = text ? unsafeRaw('text') : typeName(type);
    return member(
      ctx,
      col(ctx.table, m.column),
      collated(
        ctx,
        sql`${once(ctx, sql`${pw('assigned')}(${ctx.person}, ${literal(m.attribute)})`)}::${t}[]`,
        text,
      ),
    );
  });
  return parts.length === 1 ? (parts[0] as Sql) : sql`(${join(parts, ' AND ')})`;
}

function isTextLike(type: string): boolean {
  const t = type.toLowerCase();
  return t === 'text' || t.startsWith('character varying') || t.startsWith('varchar');
}

function need(column: string | null, table: TableModel, what: string): string {
  if (column === null) throw new Error(`table "${table.name}" has no column for scope ${what}`);
  return column;
}

export function scopePredicate(ctx: PredicateContext, scope: Scope): Sql {
  switch (scope.kind) {
    case 'all':
      return TRUE;
    case 'filter': {
      if (!ctx.inline || !hasSubLink(scope.sql)) return sql`(${unsafeRaw(scope.sql)})`;
      const f = filterFunction(ctx.table, scope.sql);
      return sql`${pw(f.name)}(${join(
        f.columns.map((c) => col(ctx.table, c)),
        ', ',
      )})`;
    }
    case 'assigned':
      return assignedPredicate(ctx, scope);
    case 'parent': {
      const parent = ctx.model.tables.find((t) => t.name === scope.table);
      if (!parent) throw new Error(`unknown parent table ${scope.table}`);
      if (ctx.inline)
        return sql`${pw(parentHasFunction(parent, scope.via))}(${ctx.person}, ${col(ctx.table, scope.column)})`;
      return parentPredicate(ctx, scope, null, false);
    }
    default:
      return relationPredicate(ctx, scope.kind);
  }
}

export function or(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return FALSE;
  if (parts.length === 1) return parts[0] as Sql;
  return sql`(${join(parts, ')\n    OR (')})`;
}

/**
 * The predicate for one command over all rules: for each rule that covers the command,
 * (the person holds one of its jobs) AND (any of its scopes).
 */
export function commandPredicate(
  ctx: PredicateContext,
  command: PredicateContext['access'],
): Sql | null {
  const rules = ctx.table.rules.filter((r) => r.commands.includes(command));
  if (rules.length === 0) return null;
  if (!ctx.inline) return indexablePredicate({ ...ctx, access: command }, rules);
  return orOfRules({ ...ctx, access: command }, rules, (r) =>
    r.jobs.length === 1
      ? hasJob(ctx.person, r.jobs[0] as string, ctx.inline)
      : sql`(${join(
          r.jobs.map((j) => hasJob(ctx.person, j, ctx.inline)),
          ' OR ',
        )})`,
  );
}

/** `(<gate>) AND (<scopes>)` for each rule, ORed; a rule without a gate is its scopes. */
function orOfRules(
  ctx: PredicateContext,
  rules: readonly Rule[],
  gate: (r: Rule) => Sql | null,
): Sql {
  return or(
    rules.map((r) => {
      const scopes = r.scopes.map((s) => scopePredicate(ctx, s));
      const scopeSql = scopes.length === 1 ? (scopes[0] as Sql) : sql`(${join(scopes, ' OR ')})`;
      const g = gate(r);
      return g ? sql`${g} AND ${scopeSql}` : scopeSql;
    }),
  );
}

/**
 * The predicate of a command as the plain OR of its rules, `(SELECT <job gate>) AND (<scopes>)`,
 * each helper once per statement: for a row found by its key (the `_rows_*` lookups of child
 * tables), where the index arms of commandPredicate buy nothing and their initplans, about
 * seventy for the CRM's customers, doubled the planning time of every statement on a child
 * table.
 */
export function rowRulesPredicate(
  ctx: PredicateContext,
  command: PredicateContext['access'],
): Sql | null {
  const rules = ctx.table.rules.filter((r) => r.commands.includes(command));
  if (rules.length === 0) return null;
  const c: PredicateContext = { ...ctx, access: command, inline: false };
  return orOfRules(c, rules, (r) => {
    const gate = jobGate(c, r.jobs, true);
    return gate ? sql`(SELECT ${gate})` : null;
  });
}

/**
 * A rule's job gate, written inside a helper's subquery: `has_job(p, 'j')`, `has_any_job(p,
 * ARRAY[...])`; for `*` (any active person) `person_name(p) IS NOT NULL`, or nothing when the
 * value's helper already answers nothing for anyone but an active caller (`person` false).
 */
function jobGate(ctx: PredicateContext, jobs: readonly string[], person: boolean): Sql | null {
  if (jobs.includes(ANY_JOB))
    return person ? sql`${pw('person_name')}(${ctx.person}) IS NOT NULL` : null;
  if (jobs.length === 1) return sql`${pw('has_job')}(${ctx.person}, ${literal(jobs[0] as string)})`;
  return sql`${pw('has_any_job')}(${ctx.person}, ARRAY[${join(
    jobs.map((j) => literal(j)),
    ', ',
  )}])`;
}

/** `(SELECT CASE WHEN gate THEN value END)`: one initplan; NULL (no row matches) for people the gate refuses. */
function gated(gate: Sql | null, value: Sql): Sql {
  return gate ? sql`(SELECT CASE WHEN ${gate} THEN ${value} END)` : sql`(SELECT ${value})`;
}

const KEY_RANGES: Record<string, [string, string]> = {
  bigint: ['-9223372036854775808', '9223372036854775807'],
  int8: ['-9223372036854775808', '9223372036854775807'],
  integer: ['-2147483648', '2147483647'],
  int: ['-2147483648', '2147483647'],
  int4: ['-2147483648', '2147483647'],
  smallint: ['-32768', '32767'],
  int2: ['-32768', '32767'],
  uuid: ['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'],
};

/**
 * A scope as an index condition, with the rule's job gate folded into the compared value
 * (`owner = (SELECT CASE WHEN has_job(...) THEN person_name(...) END)`): the whole arm is one
 * index condition, so a BitmapOr over the arms needs no re-check per row. Null: not an index
 * condition.
 */
function indexArm(ctx: PredicateContext, scope: Scope, jobs: readonly string[]): Sql | null {
  const { table, person } = ctx;
  switch (scope.kind) {
    case 'own': {
      const owner = need(table.owner, table, 'own');
      return sql`${col(table, owner)} = ${collated(ctx, gated(jobGate(ctx, jobs, false), sql`${pw('person_name')}(${person})`), textColumn(table, owner))}`;
    }
    case 'unit':
    case 'subtree': {
      const { column, helper } = orgScope(table, scope.kind);
      return sql`${col(table, column)} = ANY (${collated(ctx, sql`${gated(jobGate(ctx, jobs, false), sql`${pw(helper)}(${person})`)}::text[]`, true)})`;
    }
    case 'shared': {
      const t = typeName(table.keyType);
      const keys = sql`${pw('shared_keys')}(${person}, ${literal(table.name)})::${t}[]`;
      return sql`${col(table, table.key)} = ANY (${collated(ctx, sql`${gated(jobGate(ctx, jobs, false), keys)}::${t}[]`, isTextType(table.keyType))})`;
    }
    case 'pool': {
      // `>= true`, not `IS TRUE`: the planner proves the index condition implies it (no re-check)
      const c = col(table, need(table.pool, table, 'pool'));
      return sql`(${c} >= true AND ${c} = ${gated(jobGate(ctx, jobs, true), TRUE)})`;
    }
    case 'assigned': {
      // Each column among the person's assigned values of its attribute (one array per
      // attribute and statement), ANDed. A scope that combines attributes (region AND type) is
      // exact only on an index holding all its columns (`check` asks for one): an arm that is
      // not exactly one index's condition makes the planner re-check the whole policy on every
      // row it fetches, for everyone.
      const gate = jobGate(ctx, jobs, false);
      const parts = scope.match.map((m) => {
        const type = table.columns.find((c) => c.name === m.column)?.type ?? null;
        const text = !type || isTextLike(type);
        const t = text ? unsafeRaw('text') : typeName(type);
        const c = col(table, m.column);
        // the cast inside the subquery: outside it would convert the array again for every row
        const values = sql`${pw('assigned')}(${person}, ${literal(m.attribute)})::${t}[]`;
        // The bounds of the values (implied by the membership, so they change no result) make
        // the arm a range for the planner: an attribute has few values (3 regions), so without
        // them `region = ANY ($n)` of an unknown array is estimated at most of the table, and
        // every person's plan turns into a sequential scan. They need no job gate: the array
        // has it, and `= ANY (NULL)` ends the index scan at once. For text, helpers (sql/017):
        // a subquery per bound cost 1.5 ms of planning per statement; another type takes the
        // subquery (its order is not the text's).
        const bound = (agg: 'min' | 'max') =>
          text
            ? collated(
                ctx,
                sql`(SELECT ${pw(`assigned_${agg}`)}(${person}, ${literal(m.attribute)}))`,
                true,
              )
            : sql`(SELECT pg_catalog.${unsafeRaw(agg)}(v) FROM pg_catalog.unnest(${values}) AS pgw_assigned(v))`;
        return sql`${c} = ANY (${collated(ctx, sql`${gated(gate, values)}::${t}[]`, text)}) AND ${c} >= ${bound('min')} AND ${c} <= ${bound('max')}`;
      });
      return sql`(${join(parts, ' AND ')})`;
    }
    case 'parent':
      // an index condition when the parents are few for everyone; else see parentPredicate
      return parentPredicate(ctx, scope, jobGate(ctx, jobs, false), true);
    default:
      return null;
  }
}

/**
 * The predicate of a command for policies, write checks and key helpers (PostgreSQL target).
 *
 * Scopes on indexed columns (own, unit, subtree, shared, pool, parent, assigned) become index
 * arms P, their job gates folded in (indexArm). The other scopes (filters, `all`, temporary
 * grants) become arms Q, checked per row, as `(SELECT gate) AND scope`. With
 * both kinds the predicate is
 *
 *   (P OR (key >= (SELECT CASE WHEN G THEN <min> END) AND key <= <max>))
 *   AND (NOT (SELECT G) OR Q OR P OR Q_grants)
 *
 * where G, `pgwarden.row_checked(person, table, command)`, says whether any Q arm can match
 * for this person (they hold a filter job, have a grant; pgwarden.row_checks,
 * written by apply from rowChecks()). The first part is one BitmapOr of index scans: the key
 * range is empty unless G, so a rep's count reads the owner index, not the table. The second
 * part is decided once per statement for people without Q scopes; the others check P or Q per
 * row. A key type without bounds (text) keeps `P OR Q`. Whatever G says, no row outside P OR Q
 * is admitted: a wrong G can only hide Q rows.
 */
function indexablePredicate(ctx: PredicateContext, rules: readonly Rule[]): Sql {
  const arms: Sql[] = [];
  const residual: Sql[] = [];
  // temporary and team grants: a subquery per row for people with grants, so checked last
  const grantArms: Sql[] = [];
  for (const r of rules) {
    for (const scope of r.scopes) {
      // one arm per rule and scope: a rule that loses a scope loses an OR branch, which the
      // plan's narrowing proof (implies() in src/sql/tree.ts) recognises
      const a = indexArm(ctx, scope, r.jobs);
      if (a) {
        arms.push(a);
        continue;
      }
      if (scope.kind === 'granted' && ctx.table.grantable.length === 0) continue;
      const pred = scopePredicate(ctx, scope);
      const gate = jobGate(ctx, r.jobs, scope.kind === 'filter' || scope.kind === 'all');
      (scope.kind === 'granted' ? grantArms : residual).push(
        gate === null
          ? pred
          : scope.kind === 'all'
            ? sql`(SELECT ${gate})`
            : sql`((SELECT ${gate}) AND ${pred})`,
      );
    }
  }
  const p = uniqueSql(arms);
  const q = uniqueSql(residual);
  const qGrants = uniqueSql(grantArms);
  if (q.length + qGrants.length === 0) return orArms(p);
  const range = KEY_RANGES[ctx.table.keyType.toLowerCase()];
  if (p.length === 0 || !range) return orArms([...p, ...q, ...qGrants]);
  // G, from pgwarden.row_checks (rowChecks below): its text does not change with the rules, so
  // that removing a row-by-row scope stays a removed OR branch for the narrowing proof
  const g = sql`${pw('row_checked')}(${ctx.person}, ${literal(ctx.table.name)}, ${literal(ctx.access)})`;
  const key = col(ctx.table, ctx.table.key);
  const t = typeName(ctx.table.keyType);
  const open = sql`(${key} >= (SELECT CASE WHEN ${g} THEN ${literal(range[0])}::${t} END) AND ${key} <= ${literal(range[1])}::${t})`;
  // Only people with row-by-row scopes evaluate this second part row by row: their own
  // filters first (a support agent's `status = 'active'` decides most rows at once), then the
  // index arms, then the grants' subquery.
  return sql`(${orArms([...p, open])})\n  AND (NOT (SELECT ${g})\n    OR ${join([...q, ...p, ...qGrants], '\n    OR ')})`;
}

/**
 * The row of pgwarden.row_checks for a table and command: who has scopes checked row by row
 * (see indexablePredicate). Null when the command has none.
 */
export function rowChecks(
  table: TableModel,
  command: PredicateContext['access'],
): { jobs: string[]; grants: boolean } | null {
  const jobs: string[] = [];
  let grants = false;
  let any = false;
  for (const r of table.rules) {
    if (!r.commands.includes(command)) continue;
    for (const s of r.scopes) {
      if (s.kind === 'filter' || s.kind === 'all') {
        for (const j of r.jobs) if (!jobs.includes(j)) jobs.push(j);
        any = true;
      } else if (s.kind === 'granted' && table.grantable.length > 0) {
        grants = any = true;
      }
    }
  }
  return any ? { jobs: jobs.sort(), grants } : null;
}

function uniqueSql(parts: readonly Sql[]): Sql[] {
  return [...new Map(parts.map((x) => [x.text, x])).values()];
}

function orArms(parts: readonly Sql[]): Sql {
  if (parts.length === 0) return FALSE;
  return parts.length === 1 ? (parts[0] as Sql) : join(parts, '\n    OR ');
}
