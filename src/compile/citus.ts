/**
 * The Citus target (`--target citus`, docs/distributed.md): the objects compile makes for
 * PostgreSQL, rendered for a Citus cluster. A pass over the same catalog objects, with the same
 * predicate compiler, not a second compiler:
 *
 *   - policies contain no subquery (Citus refuses them on distributed tables): helper calls are
 *     bare (STABLE, run per row), and the scopes that need a subquery call generated helpers
 *     (`_has_<parent>` for parent scopes, `_filter_<table>_<hash>` for filters with a subquery,
 *     `_grant_matches` for temporary grants);
 *   - policies apply to the people role itself: on distributed tables the shard queries run as
 *     the querying person, so views give no owner semantics. There are no masking views and no
 *     write triggers on views; people use the base tables, and the columns with `cells` are
 *     withheld by column privileges (SELECT on the other columns only). Edit rights per column
 *     are checked by a BEFORE UPDATE row trigger on the base table;
 *   - audit: row triggers writing to one audit table per protected table, distributed
 *     co-located with it (audit.ts);
 *   - the distribution itself (create_distributed_table, reference tables) is a separate step
 *     the DBA runs: citusDistribution() below.
 */
import type {
  CatalogObject,
  FunctionObject,
  GrantObject,
  PolicyObject,
  TriggerObject,
} from '../catalog/objects.js';
import { PgwardenError } from '../errors.js';
import type { Command, Model, RowRelation, Scope, TableModel } from '../model/types.js';
import { COMMANDS } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { quoteLiteral, quoteQualified } from '../sql/quote.js';
import { hasSubLink } from '../sql/tree.js';
import { AUDIT_SCHEMA, citusAuditTableName } from './audit.js';
import { policyName, type RoleNames } from './index.js';
import {
  CURRENT_USER,
  col,
  commandPredicate,
  filterFunction,
  GRANT_MATCH_FUNCTION,
  or,
  type PredicateContext,
  parentHasFunction,
  relationPredicate,
} from './predicates.js';
import {
  approverFunctionName,
  msg,
  P,
  triggerFunctionName,
  whenLabel,
  whenPredicate,
} from './writes.js';

/** Catalog rows of features that read through the views, which the Citus target does not make. */
const VIEW_FEATURE_ROWS = new Set(['reveal_rules', 'export_rules', 'read_caps', 'change_rules']);

const pw = (fn: string) => qualified('pgwarden', fn);

function grant(
  target: GrantObject['target'],
  privileges: string[],
  grantee: string,
  columns?: readonly string[],
): GrantObject {
  return { kind: 'grant', target, privileges, grantee, ...(columns ? { columns } : {}) };
}

/** The columns people may read on the base table: all but those with a `cells` entry that is not full for everyone. */
export function citusReadableColumns(table: TableModel): string[] {
  const withheld = new Set(
    table.cells
      .filter((c) => ![...c.cases.map((x) => x.level), c.otherwise].every((l) => l.kind === 'full'))
      .map((c) => c.column),
  );
  return table.columns.map((c) => c.name).filter((c) => !withheld.has(c));
}

export function citusTarget(
  objects: readonly CatalogObject[],
  model: Model,
  roles: RoleNames,
): CatalogObject[] {
  const { protected: prot, exposed } = model.schemas;
  // what reads or writes through the views goes: the views, their write triggers and functions,
  // the approval checks, the parent-key helpers and lookups (`_keys_*`, `_many_*`, `_rows_*`;
  // replaced by per-row _has_ helpers), the grants
  // on all of those, and the view owner's privileges on the base tables
  const gone = new Set<string>();
  for (const t of model.tables) {
    for (const c of ['insert', 'update', 'delete'] as const)
      gone.add(`pgwarden.${triggerFunctionName(t, c)}`);
    gone.add(`pgwarden.${approverFunctionName(t)}`);
  }
  const goneFn = (schema: string, name: string) =>
    gone.has(`${schema}.${name}`) ||
    (schema === 'pgwarden' && (name.startsWith('_keys_') || name.startsWith('_many_')));
  const out: CatalogObject[] = objects.filter((o) => {
    switch (o.kind) {
      case 'view':
        // the exposed views, and the `_rows_*` lookups (per-row `_has_*` helpers here)
        return o.schema !== exposed && !(o.schema === 'pgwarden' && o.name.startsWith('_rows_'));
      case 'policy':
        return !(o.schema === prot && model.tables.some((t) => t.table === o.table));
      case 'trigger':
        return o.schema !== exposed;
      case 'function':
        return !goneFn(o.schema, o.name);
      case 'catalog_row':
        return !VIEW_FEATURE_ROWS.has(o.table);
      case 'grant': {
        const t = o.target;
        if (t.kind === 'function') return !goneFn(t.schema, t.name);
        if (t.kind === 'table')
          return (
            t.schema !== exposed &&
            !(t.schema === 'pgwarden' && t.name.startsWith('_rows_')) &&
            !(t.schema === prot && o.grantee === roles.viewOwner)
          );
        return true;
      }
      default:
        return true;
    }
  });

  // the target a database was applied with, so that a later plan compiles for it (cli)
  out.push(
    {
      kind: 'catalog_row',
      table: 'settings',
      keyColumn: 'key',
      key: 'target',
      values: { value: 'citus' },
    },
    grant({ kind: 'schema', name: prot }, ['USAGE'], roles.people),
  );
  const helpers = new Map<string, FunctionObject>();
  for (const table of model.tables) {
    const commands = COMMANDS.filter((c) => table.rules.some((r) => r.commands.includes(c)));
    for (const c of commands) out.push(policy(model, table, c, roles));
    out.push(...tableGrants(model, table, commands, roles));
    out.push(...editCheck(model, table, roles));
    for (const r of table.rules)
      for (const s of r.scopes) needScope(helpers, model, table, s, roles);
    if (table.edits && commands.includes('update')) {
      for (const e of table.edits)
        for (const w of e.who) {
          if (w.kind === 'relation') needRelation(helpers, model, table, w.relation, roles);
          if (w.kind === 'parent') needParent(helpers, model, w.table, [w.relation], roles);
        }
    }
  }
  for (const fn of helpers.values()) {
    out.push(
      fn,
      grant(
        { kind: 'function', schema: fn.schema, name: fn.name, args: fn.args.map((a) => a.type) },
        ['EXECUTE'],
        roles.people,
      ),
    );
  }
  return out;
}

function policy(model: Model, table: TableModel, command: Command, roles: RoleNames): PolicyObject {
  const ctx: PredicateContext = {
    model,
    table,
    person: CURRENT_USER,
    access: command,
    inline: true,
  };
  const pred = (commandPredicate(ctx, command) as Sql).text;
  return {
    kind: 'policy',
    schema: model.schemas.protected,
    table: table.table,
    name: policyName(table, command),
    command,
    permissive: true,
    to: [roles.people],
    using: command === 'insert' ? null : pred,
    check: command === 'select' || command === 'delete' ? null : pred,
  };
}

/**
 * People's privileges on the base table: SELECT on the readable columns, INSERT, UPDATE on the
 * editable columns (the model's `edits`, else the readable ones), DELETE unless deletes go to the
 * recycle bin (which needs the view's trigger).
 */
function tableGrants(
  model: Model,
  table: TableModel,
  commands: readonly Command[],
  roles: RoleNames,
): GrantObject[] {
  const target = { kind: 'table' as const, schema: model.schemas.protected, name: table.table };
  const readable = citusReadableColumns(table);
  const out: GrantObject[] = [];
  if (commands.includes('select')) out.push(grant(target, ['SELECT'], roles.people, readable));
  if (commands.includes('insert')) out.push(grant(target, ['INSERT'], roles.people));
  if (commands.includes('update')) {
    const editable = table.edits
      ? table.columns.map((c) => c.name).filter((c) => table.edits?.some((e) => e.column === c))
      : readable;
    if (editable.length > 0) out.push(grant(target, ['UPDATE'], roles.people, editable));
  }
  if (commands.includes('delete') && !table.recycleBin)
    out.push(grant(target, ['DELETE'], roles.people));
  return out;
}

export function editCheckFunctionName(table: TableModel): string {
  const name = `_edit_check_${table.name}`;
  if (Buffer.byteLength(name, 'utf8') <= 63) return name;
  let h = 0;
  for (const ch of table.name) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return `_edit_check_${h.toString(16).padStart(8, '0')}`;
}

/**
 * The model's per-column edit rights, checked on the row before the change by a BEFORE UPDATE
 * row trigger on the base table (column privileges alone cannot say "only the owner's manager
 * may change owner"). pgwarden's own functions (claims, offboarding, restore) write as the
 * catalog owner, so a row they change is not checked as the person's edit.
 */
function editCheck(model: Model, table: TableModel, roles: RoleNames): CatalogObject[] {
  if (!table.edits || !table.rules.some((r) => r.commands.includes('update'))) return [];
  const ctx: PredicateContext = {
    model,
    table,
    person: CURRENT_USER,
    access: 'update',
    inline: true,
  };
  const key = ident(table.key);
  const checks = table.edits.map((e) => {
    const C = ident(e.column);
    const rule = `edits.${e.column}: ${e.who.map(whenLabel).join(', ')}`;
    return sql`  IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
    SELECT (${or(e.who.map((w) => whenPredicate(ctx, w)))}) INTO ok FROM (SELECT OLD.*) AS ${ident(table.table)};
    IF ok IS NOT TRUE THEN
      RAISE EXCEPTION ${msg`permission denied: ${P} may not change column "${e.column}" of ${table.name} ${P} (rule ${rule})`}, who, OLD.${key}
        USING ERRCODE = '42501', HINT = ${literal(`Only people related to the row as ${e.who.map(whenLabel).join(' or ')} may change it.`)};
    END IF;
  END IF;`;
  });
  const body = sql`
DECLARE
  ok boolean;
  who text;
BEGIN
  -- a person writing the table; pgwarden's functions (claims, offboarding) write as their owner
  IF current_user <> ${CURRENT_USER} THEN
    RETURN NEW;
  END IF;
  who := ${pw('person_name')}(${CURRENT_USER});
  IF who IS NULL THEN
    RETURN NEW;
  END IF;
${join(checks, '\n')}
  RETURN NEW;
END
`;
  const name = editCheckFunctionName(table);
  const fn: FunctionObject = {
    kind: 'function',
    schema: 'pgwarden',
    name,
    args: [],
    returns: 'trigger',
    language: 'plpgsql',
    volatility: 'volatile',
    securityDefiner: false,
    owner: roles.catalogOwner,
    body: body.text,
    comment: `pgwarden: per-column edit rights on ${model.schemas.protected}.${table.table} (Citus target; runs as the person)`,
  };
  const trigger: TriggerObject = {
    kind: 'trigger',
    schema: model.schemas.protected,
    table: table.table,
    name: 'pgwarden_edit_check',
    timing: 'before',
    level: 'row',
    events: ['update'],
    function: { schema: 'pgwarden', name },
  };
  return [fn, trigger];
}

// ------------------------------------------------------------------ helpers the policies call

function needScope(
  h: Map<string, FunctionObject>,
  model: Model,
  table: TableModel,
  scope: Scope,
  roles: RoleNames,
): void {
  if (scope.kind === 'filter' && hasSubLink(scope.sql)) {
    const fn = filterHelper(table, scope.sql, roles);
    h.set(fn.name, fn);
  } else if (scope.kind === 'parent') needParent(h, model, scope.table, scope.via, roles);
  else if (scope.kind === 'granted') needRelation(h, model, table, 'granted', roles);
}

function needRelation(
  h: Map<string, FunctionObject>,
  _model: Model,
  table: TableModel,
  relation: RowRelation,
  roles: RoleNames,
): void {
  if (relation === 'granted' && table.grantable.length > 0 && !h.has(GRANT_MATCH_FUNCTION))
    h.set(GRANT_MATCH_FUNCTION, grantMatchHelper(roles));
}

function needParent(
  h: Map<string, FunctionObject>,
  model: Model,
  parentName: string,
  via: readonly RowRelation[] | null,
  roles: RoleNames,
): void {
  const parent = model.tables.find((t) => t.name === parentName);
  if (!parent) throw new Error(`unknown parent table ${parentName}`);
  const name = parentHasFunction(parent, via);
  if (h.has(name)) return;
  h.set(name, parentHasHelper(model, parent, via, roles));
  if (via) for (const r of via) needRelation(h, model, parent, r, roles);
  else
    for (const r of parent.rules)
      if (r.commands.includes('select'))
        for (const s of r.scopes) needScope(h, model, parent, s, roles);
}

/**
 * Is one parent row visible to the person (Citus target)? The PostgreSQL target computes the
 * array of visible parent keys once per statement (`_keys_*`); a policy without a subquery
 * would compute that array per row, so here each row looks up its own parent by key instead.
 */
function parentHasHelper(
  model: Model,
  parent: TableModel,
  via: readonly RowRelation[] | null,
  roles: RoleNames,
): FunctionObject {
  const p = unsafeRaw('p');
  const ctx: PredicateContext = { model, table: parent, person: p, access: 'select', inline: true };
  const pred = via
    ? or(via.map((r) => relationPredicate(ctx, r)))
    : (commandPredicate(ctx, 'select') ?? unsafeRaw('false'));
  const body = sql`
  SELECT EXISTS (
    SELECT FROM ${qualified(model.schemas.protected, parent.table)}
    WHERE ${col(parent, parent.key)} = $2
      AND p = ${pw('caller')}() AND ${pw('person_name')}(p) IS NOT NULL
      AND (${pred}))
`;
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: parentHasFunction(parent, via),
    args: [
      { name: 'p', type: 'name' },
      { name: 'k', type: parent.keyType },
    ],
    returns: 'boolean',
    language: 'sql',
    volatility: 'stable',
    securityDefiner: true,
    owner: roles.catalogOwner,
    body: body.text,
    comment: via
      ? `pgwarden: is this ${parent.name} row related to the caller by ${via.join(', ')} (Citus target: per row, for child tables' policies)`
      : `pgwarden: may the caller see this ${parent.name} row (Citus target: per row, for child tables' policies)`,
  };
}

/**
 * A `filter` scope with a subquery, as a function of the columns it names (Citus target). It
 * runs as the person, like the filter inside a policy, over a one-row table named like the
 * table, so `customers.id` and `status` mean what they meant in the policy.
 */
function filterHelper(table: TableModel, expr: string, roles: RoleNames): FunctionObject {
  const f = filterFunction(table, expr);
  const args = f.columns.map((c, i) => {
    const type = table.columns.find((x) => x.name === c)?.type ?? null;
    if (type === null)
      throw new PgwardenError(
        'citus_filter_needs_types',
        `the filter of table "${table.name}" has a subquery, so the Citus target makes it a function of the columns it names, and the type of column "${c}" is not known`,
        'Give the column types in the model (drizzle, or columns: [{ name, type }]), or run plan/apply, which read them from the database.',
      );
    return { name: `pgw_${i + 1}`, type };
  });
  const from =
    args.length === 0
      ? unsafeRaw('')
      : sql` FROM (VALUES (${join(
          args.map((a) => ident(a.name)),
          ', ',
        )})) AS ${ident(table.table)}(${join(f.columns.map(ident), ', ')})`;
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: f.name,
    args,
    returns: 'boolean',
    language: 'sql',
    volatility: 'stable',
    securityDefiner: false,
    owner: roles.catalogOwner,
    body: sql`\n  SELECT (${unsafeRaw(expr)})${from}\n`.text,
    comment: `pgwarden: the filter scope of ${table.name} ${quoteLiteral(expr)} (Citus target: policies may not hold its subquery)`,
  };
}

/**
 * A temporary grant's filters against the row's grantable values (Citus target), as the
 * PostgreSQL target's `EXISTS (... jsonb_array_elements(grant_filters(...)) ...)` does: some
 * grant in force whose every filtered column lists the row's value.
 */
function grantMatchHelper(roles: RoleNames): FunctionObject {
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: GRANT_MATCH_FUNCTION,
    args: [
      { name: 'p', type: 'name' },
      { name: 'tbl', type: 'text' },
      { name: 'acc', type: 'text' },
      { name: 'vals', type: 'jsonb' },
    ],
    returns: 'boolean',
    language: 'sql',
    volatility: 'stable',
    securityDefiner: false,
    owner: roles.catalogOwner,
    body: `
  SELECT EXISTS (
    SELECT FROM pg_catalog.jsonb_array_elements("pgwarden"."grant_filters"(p, tbl, acc)) AS g(f)
    WHERE NOT EXISTS (
      SELECT FROM pg_catalog.jsonb_each(vals) AS v(k, x)
      WHERE g.f OPERATOR(pg_catalog.?) v.k
        AND NOT COALESCE((g.f OPERATOR(pg_catalog.->) v.k) OPERATOR(pg_catalog.?) (v.x OPERATOR(pg_catalog.#>>) '{}'), false)))
`,
    comment:
      'pgwarden: does a temporary grant of the caller in force cover a row with these values (Citus target)',
  };
}

// ------------------------------------------------------------------ the DBA's distribution step

/**
 * The Citus distribution, as two scripts the DBA runs on the coordinator (pgwarden never runs
 * them, and they were not run on a Citus cluster: see docs/distributed.md).
 */
export function citusDistribution(model: Model): { name: string; content: string }[] {
  const prot = model.schemas.protected;
  const head = (step: string) =>
    `-- pgwarden: Citus distribution, ${step}\n-- model "${model.name}". Generated by pgwarden generate --target citus; run with psql on the\n-- coordinator as a superuser. pgwarden does not run this: see docs/distributed.md (not verified\n-- on a Citus cluster).\n\n`;
  const dbSetting = (name: string) =>
    `DO $pgw$ BEGIN\n  EXECUTE pg_catalog.format('ALTER DATABASE %I SET ${name} = on', pg_catalog.current_database());\nEND $pgw$;\n`;
  const tables = model.tables.map(
    (t) =>
      `SELECT create_distributed_table(${quoteLiteral(quoteQualified(prot, t.table))}, ${quoteLiteral(t.key)});`,
  );
  // step 2 may run again after a later apply: what is distributed already is skipped
  const unless = (rel: string) =>
    `\nWHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = ${quoteLiteral(rel)}::regclass);`;
  const audit = model.tables.map((t) => {
    const rel = quoteQualified(AUDIT_SCHEMA, citusAuditTableName(t));
    return `SELECT create_distributed_table(${quoteLiteral(rel)}, 'dist_key', colocate_with => ${quoteLiteral(quoteQualified(prot, t.table))})${unless(rel)}`;
  });
  const before = `${head('step 1 of 2: before `pgwarden apply --target citus`')}-- Triggers on distributed tables (pgwarden's audit and edit-check row triggers) need this;
-- policy helpers that read pgwarden's tables (reference tables) inside shard queries need the
-- second. Both apply to new sessions; set them on the workers too if your Citus version does
-- not propagate ALTER DATABASE ... SET.
${dbSetting('citus.enable_unsafe_triggers')}${dbSetting('citus.allow_nested_distributed_execution')}
-- The protected tables, distributed by their key (the model's \`key\`). pgwarden's audit tables
-- are distributed by the same value, co-located, in step 2.
${tables.join('\n')}
`;
  const after = `${head('step 2 of 2: after `pgwarden apply --target citus`')}-- Run it again after an apply that adds tables or functions: what is distributed is skipped.
SET citus.enable_unsafe_triggers = on;

-- pgwarden's catalog (people, units, jobs, grants, shares, ...): reference tables, a copy on
-- every node, read by the policy helpers inside the shard queries. Tables referenced by foreign
-- keys go first. NOT VERIFIED: these tables carry pgwarden's statement-level audit triggers
-- (permission changes, into pgwarden_audit.records on the coordinator), the kind DESIGN.md found
-- firing once per shard; see docs/distributed.md.
DO $pgw$
DECLARE
  t regclass;
BEGIN
  LOOP
    SELECT c.oid::regclass INTO t
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'pgwarden' AND c.relkind = 'r'
      AND NOT EXISTS (SELECT FROM pg_dist_partition d WHERE d.logicalrelid = c.oid)
      AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint f
        WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid
          AND NOT EXISTS (SELECT FROM pg_dist_partition d WHERE d.logicalrelid = f.confrelid))
    ORDER BY c.relname
    LIMIT 1;
    EXIT WHEN t IS NULL;
    PERFORM create_reference_table(t);
  END LOOP;
END $pgw$;
-- the audit hash key, read by the audit row triggers on the workers (readable by its owner only)
SELECT create_reference_table('pgwarden_audit.hash_key')${unless('pgwarden_audit.hash_key')}

-- pgwarden's functions (policy helpers, audit and edit-check trigger functions) on every node
DO $pgw$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('pgwarden', 'pgwarden_audit')
      AND NOT EXISTS (SELECT FROM pg_dist_object o WHERE o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid)
    ORDER BY 1
  LOOP
    PERFORM create_distributed_function(f);
  END LOOP;
END $pgw$;

-- The audit tables, co-located with their tables: each row trigger writes to the shard next
-- to the row's shard.
${audit.join('\n')}
`;
  return [
    { name: '1_before_apply.sql', content: before },
    { name: '2_after_apply.sql', content: after },
  ];
}
