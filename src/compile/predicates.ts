/**
 * Scope and relation predicates. One compiler serves policies (person = pgwarden.caller()), views
 * (the same) and the parent-key helpers (person = the helper's argument). Every helper call is
 * wrapped as (SELECT ...) so it runs once per statement, and membership tests are written
 * `col = ANY ((SELECT ...)::type[])` so the scope column's index can be used (without the cast,
 * `= ANY ((SELECT ...))` parses as ANY over a subquery and compares the column with an array).
 */
import type { Model, RowRelation, Scope, TableModel } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { typeName } from '../sql/render.js';

export interface PredicateContext {
  model: Model;
  table: TableModel;
  /** the expression naming the person: pgwarden.caller() in policies, views and triggers */
  person: Sql;
  /** the access a temporary grant must give for `granted` (select for reads) */
  access: 'select' | 'insert' | 'update' | 'delete';
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

export function hasJob(person: Sql, job: string): Sql {
  if (job === ANY_JOB) return sql`((SELECT ${pw('person_name')}(${person})) IS NOT NULL)`;
  return sql`(SELECT ${pw('has_job')}(${person}, ${literal(job)}))`;
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
    case 'own':
      return sql`${col(table, need(table.owner, table, 'own'))} = (SELECT ${pw('person_name')}(${person}))`;
    case 'unit':
      return table.unit
        ? sql`${col(table, table.unit)} = ANY ((SELECT ${pw('my_units')}(${person}))::text[])`
        : sql`${col(table, need(table.owner, table, 'unit'))} = ANY ((SELECT ${pw('unit_people')}(${person}))::text[])`;
    case 'subtree':
      return table.unit
        ? sql`${col(table, table.unit)} = ANY ((SELECT ${pw('subtree_units')}(${person}))::text[])`
        : sql`${col(table, need(table.owner, table, 'subtree'))} = ANY ((SELECT ${pw('subtree_people')}(${person}))::text[])`;
    case 'shared':
      return sql`${col(table, table.key)} = ANY ((SELECT ${pw('shared_keys')}(${person}, ${literal(table.name)}))::${typeName(table.keyType)}[])`;
    case 'pool':
      return sql`${col(table, need(table.pool, table, 'pool'))} IS TRUE`;
    case 'granted': {
      if (table.grantable.length === 0) return FALSE;
      const g = unsafeRaw('pgw_grant.f');
      const conds = table.grantable.map(
        (c) =>
          sql`(NOT (${g} OPERATOR(pg_catalog.?) ${literal(c)}) OR (${g} OPERATOR(pg_catalog.->) ${literal(c)}) OPERATOR(pg_catalog.?) (${col(table, c)})::text)`,
      );
      return sql`EXISTS (SELECT FROM pg_catalog.jsonb_array_elements((SELECT ${pw('grant_filters')}(${person}, ${literal(table.name)}, ${literal(ctx.access)}))) AS pgw_grant(f) WHERE ${join(conds, ' AND ')})`;
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
    const t = type && !isTextLike(type) ? typeName(type) : unsafeRaw('text');
    return sql`${col(ctx.table, m.column)} = ANY ((SELECT ${pw('assigned')}(${ctx.person}, ${literal(m.attribute)}))::${t}[])`;
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
    case 'filter':
      return sql`(${unsafeRaw(scope.sql)})`;
    case 'assigned':
      return assignedPredicate(ctx, scope);
    case 'parent': {
      const parent = ctx.model.tables.find((t) => t.name === scope.table);
      if (!parent) throw new Error(`unknown parent table ${scope.table}`);
      return sql`${col(ctx.table, scope.column)} = ANY ((SELECT ${pw(parentKeysFunction(parent, scope.via))}(${ctx.person}))::${typeName(parent.keyType)}[])`;
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
  const parts = rules.map((r) => {
    const jobs =
      r.jobs.length === 1
        ? hasJob(ctx.person, r.jobs[0] as string)
        : sql`(${join(
            r.jobs.map((j) => hasJob(ctx.person, j)),
            ' OR ',
          )})`;
    const scopes = r.scopes.map((s) => scopePredicate({ ...ctx, access: command }, s));
    const scopeSql = scopes.length === 1 ? (scopes[0] as Sql) : sql`(${join(scopes, ' OR ')})`;
    return sql`${jobs} AND ${scopeSql}`;
  });
  return or(parts);
}
