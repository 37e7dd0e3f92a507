/**
 * `pgwarden explain`: why can a person see, change, reveal and export a row (or a cell)?
 *
 * Three separate parts:
 *   1. buildChecks (pure): every model rule, scope, cell case, edit and reveal relation of one
 *      table becomes one SQL predicate, built by the same functions that compile the policies
 *      and views (src/compile/predicates.ts), naming the person as pgwarden.caller().
 *   2. evaluateExplain (database): reads the row(s) and the catalog context as the connecting
 *      superuser, then, in a transaction that is always rolled back, SET LOCAL ROLE to the
 *      person and evaluates every predicate over the row values through the same helper
 *      functions the policies call, and reads the row through the exposed view as the person
 *      (the ground truth).
 *   3. narrate / formatExplain (pure): turns the verdicts and the context into reasons, and
 *      flags every place where the per-rule explanation disagrees with what the view returned.
 */
import type postgres from 'postgres';
import {
  CURRENT_USER,
  hasJob,
  type PredicateContext,
  relationPredicate,
  scopePredicate,
} from '../compile/predicates.js';
import { PgwardenError } from '../errors.js';
import type { CellWhen, Command, Level, Model, Rule, Scope, TableModel } from '../model/types.js';
import { ident, int, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { typeName } from '../sql/render.js';

type Db = postgres.Sql;

// ------------------------------------------------------------------ 1. checks (pure)

export type CheckKind = 'job' | 'scope' | 'cell' | 'edit' | 'reveal';

export interface Check {
  id: string;
  kind: CheckKind;
  /** the predicate, over the table's columns (qualified by the table name) */
  sql: Sql;
  /** an escape-hatch filter: may read relations the person has no privilege on */
  filter: boolean;
}

const ROW_COMMANDS = ['select', 'update', 'delete'] as const;
type RowCommand = (typeof ROW_COMMANDS)[number];

export function findTable(model: Model, name: string): TableModel {
  const t = model.tables.find((x) => x.name === name || x.table === name);
  if (!t) {
    throw new PgwardenError(
      'unknown_table',
      `table "${name}" is not in the model`,
      `Use one of: ${model.tables.map((x) => x.name).join(', ')}.`,
    );
  }
  return t;
}

export function ruleJobPredicate(rule: Rule): Sql {
  const parts = rule.jobs.map((j) => hasJob(CURRENT_USER, j));
  return parts.length === 1 ? (parts[0] as Sql) : sql`(${join(parts, ' OR ')})`;
}

/** The condition of a cell case, an edit or a reveal relation (as the view compiles it). */
export function whenPredicate(model: Model, table: TableModel, when: CellWhen): Sql {
  const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: 'select' };
  if (when.kind === 'job') return hasJob(CURRENT_USER, when.job);
  if (when.kind === 'parent') {
    return scopePredicate(ctx, {
      kind: 'parent',
      column: when.column,
      table: when.table,
      via: [when.relation],
    });
  }
  return relationPredicate(ctx, when.relation);
}

export const ruleCheckId = (rule: number) => `rule${rule}.jobs`;
export const scopeCheckId = (rule: number, command: RowCommand, scope: number) =>
  `rule${rule}.${command}.scope${scope}`;

/** Every predicate explain evaluates for one table (and, with `column`, only that cell). */
export function buildChecks(model: Model, table: TableModel, column?: string): Check[] {
  const checks: Check[] = [];
  table.rules.forEach((rule, i) => {
    checks.push({ id: ruleCheckId(i), kind: 'job', sql: ruleJobPredicate(rule), filter: false });
    for (const command of ROW_COMMANDS) {
      if (!rule.commands.includes(command)) continue;
      rule.scopes.forEach((scope, j) => {
        const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: command };
        checks.push({
          id: scopeCheckId(i, command, j),
          kind: 'scope',
          sql: scopePredicate(ctx, scope),
          filter: scope.kind === 'filter',
        });
      });
    }
  });
  for (const cell of table.cells) {
    if (column && cell.column !== column) continue;
    cell.cases.forEach((c, k) => {
      checks.push({
        id: `cell.${cell.column}.${k}`,
        kind: 'cell',
        sql: whenPredicate(model, table, c.when),
        filter: false,
      });
    });
  }
  for (const e of table.edits ?? []) {
    if (column && e.column !== column) continue;
    e.who.forEach((w, k) => {
      checks.push({
        id: `edit.${e.column}.${k}`,
        kind: 'edit',
        sql: whenPredicate(model, table, w),
        filter: false,
      });
    });
  }
  for (const r of table.reveal?.columns ?? []) {
    if (column && r.column !== column) continue;
    r.who.forEach((w, k) => {
      checks.push({
        id: `reveal.${r.column}.${k}`,
        kind: 'reveal',
        sql: whenPredicate(model, table, w),
        filter: false,
      });
    });
  }
  return checks;
}

/**
 * SELECT key, check1, check2, ... over the row values given as a jsonb array of
 * {column: text} objects ($1), cast back to the columns' types, aliased as the table so the
 * predicates read exactly as in the policies.
 */
export function checksQuery(
  table: TableModel,
  columns: readonly { name: string; type: string }[],
  checks: readonly Check[],
): Sql {
  const x = unsafeRaw('pgw_row.x');
  const cols = columns.map(
    (c) =>
      sql`(${x} OPERATOR(pg_catalog.->>) ${literal(c.name)})::${safeType(c.type)} AS ${ident(c.name)}`,
  );
  const outs = checks.map((c, i) => sql`(${c.sql}) AS ${ident(`c${i}`)}`);
  return sql`SELECT ${ident(table.table)}.${ident(table.key)}::text AS "pgw_key"${outs.length ? sql`, ${join(outs, ', ')}` : unsafeRaw('')}
FROM (SELECT ${join(cols, ', ')} FROM pg_catalog.jsonb_array_elements($1::text::jsonb) AS pgw_row(x)) AS ${ident(table.table)}`;
}

function safeType(t: string): Sql {
  try {
    return typeName(t);
  } catch {
    return unsafeRaw('text');
  }
}

// ------------------------------------------------------------------ 2. the database

export interface ExplainPersonContext {
  name: string;
  role: string;
  unit: string;
  active: boolean;
  deactivatedAt: string | null;
  jobs: { job: string; until: string | null; active: boolean }[];
  manages: { unit: string; until: string | null; active: boolean }[];
  shares: {
    id: number;
    rowKey: string;
    until: string | null;
    from: string;
    grantedBy: string;
    revokedAt: string | null;
    active: boolean;
  }[];
  grants: {
    id: number;
    label: string | null;
    access: string;
    filter: Record<string, string[]>;
    until: string;
    revokedAt: string | null;
    active: boolean;
  }[];
  /** attribute values assigned now or before (directly, or through a team: `team`) */
  assignments: {
    id: number;
    attribute: string;
    value: string;
    team: string | null;
    until: string | null;
    active: boolean;
  }[];
  /** project teams the person is or was a member of */
  teams: { team: string; until: string | null; active: boolean }[];
  revealsToday: number;
  exportedToday: number;
}

export interface ExplainContext {
  person: ExplainPersonContext;
  /** unit -> parent */
  units: Record<string, string | null>;
  /** person name -> unit */
  unitOf: Record<string, string>;
}

export interface RowEvaluation {
  key: string;
  /** the row as stored (text), read by the superuser */
  values: Record<string, string | null>;
  /** check id -> verdict (null: could not be evaluated) */
  verdicts: Record<string, boolean | null>;
  /** check ids evaluated as the connecting superuser because the person may not run them */
  asSuperuser: string[];
  /** what the view returned as the person: null when the row is not visible */
  actual: Record<string, string | null> | null;
  /** the view could not be read (e.g. refused); the message */
  actualError: string | null;
}

export interface EvaluateOptions {
  person: string;
  table: string;
  key?: string;
  where?: Record<string, string[]>;
  column?: string;
  /** at most this many rows for --where (default 1000) */
  limit?: number;
}

export interface Evaluation {
  model: Model;
  table: TableModel;
  column: string | null;
  checks: Check[];
  context: ExplainContext;
  rows: RowEvaluation[];
}

class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super('rollback');
  }
}

/** Runs fn in a transaction that is always rolled back; returns fn's result. */
export async function rolledBack<T>(
  db: Db,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  try {
    await db.begin(async (tx) => {
      throw new Rollback(await fn(tx));
    });
  } catch (e) {
    if (e instanceof Rollback) return e.value as T;
    throw e;
  }
  throw new Error('unreachable');
}

/** The person by name or role (as given to --as). */
export async function readPersonContext(
  db: Db | postgres.TransactionSql,
  who: string,
  tableName: string | null,
): Promise<ExplainPersonContext> {
  const [p] = await db<
    { name: string; role: string; unit: string; active: boolean; deactivated_at: Date | null }[]
  >`SELECT name, role::text AS role, unit, active, deactivated_at FROM pgwarden.people WHERE name = ${who} OR role::text = ${who} ORDER BY (name = ${who}) DESC LIMIT 1`;
  if (!p) {
    throw new PgwardenError(
      'unknown_person',
      `"${who}" is not a person of pgwarden.people`,
      'Pass a person name (or role) listed by pgwarden person list.',
    );
  }
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const jobs = await db<{ job: string; until: Date | null; active: boolean }[]>`
    SELECT job, valid_until AS until, pgwarden._active(valid_from, valid_until, revoked_at) AS active
    FROM pgwarden.job_grants WHERE person = ${p.name} ORDER BY job, id`;
  const manages = await db<{ unit: string; until: Date | null; active: boolean }[]>`
    SELECT unit, valid_until AS until, pgwarden._active(valid_from, valid_until, revoked_at) AS active
    FROM pgwarden.unit_managers WHERE person = ${p.name} ORDER BY unit, id`;
  const shares = await db<
    {
      id: string;
      row_key: string;
      until: Date | null;
      from: Date;
      granted_by: string;
      revoked_at: Date | null;
      active: boolean;
    }[]
  >`SELECT id, row_key, valid_until AS until, valid_from AS "from", granted_by::text AS granted_by, revoked_at,
      pgwarden._active(valid_from, valid_until, revoked_at) AS active
    FROM pgwarden.shares WHERE person = ${p.name} AND (${tableName}::text IS NULL OR table_name = ${tableName}) ORDER BY id`;
  const grants = await db<
    {
      id: string;
      label: string | null;
      access: string;
      filter: Record<string, string[]>;
      until: Date;
      revoked_at: Date | null;
      active: boolean;
    }[]
  >`SELECT id, label, access, filter, valid_until AS until, revoked_at,
      pgwarden._active(valid_from, valid_until, revoked_at) AS active
    FROM pgwarden.temp_grants WHERE person = ${p.name} AND (${tableName}::text IS NULL OR table_name = ${tableName}) ORDER BY id`;
  // team grants reach members as `granted` rows: listed with the temporary grants
  const teamGrants = await db<
    {
      id: string;
      team: string;
      access: string;
      filter: Record<string, string[]>;
      until: Date;
      revoked_at: Date | null;
      active: boolean;
    }[]
  >`SELECT g.id, g.team, g.access, g.filter, LEAST(t.ends_at, COALESCE(m.valid_until, t.ends_at)) AS until,
      COALESCE(g.revoked_at, m.revoked_at) AS revoked_at,
      g.revoked_at IS NULL AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at) AND t.ends_at > statement_timestamp() AS active
    FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team JOIN pgwarden.team_grants g ON g.team = m.team
    WHERE m.person = ${p.name} AND (${tableName}::text IS NULL OR g.table_name = ${tableName}) ORDER BY g.id, m.id`;
  const assignments = await db<
    {
      id: string;
      attribute: string;
      value: string;
      team: string | null;
      until: Date | null;
      active: boolean;
    }[]
  >`SELECT a.id, a.attribute, a.value, a.team,
      NULLIF(LEAST(COALESCE(a.valid_until, 'infinity'), COALESCE(m.valid_until, 'infinity'), COALESCE(t.ends_at, 'infinity')), 'infinity') AS until,
      pgwarden._active(a.valid_from, a.valid_until, a.revoked_at)
        AND (a.team IS NULL OR (pgwarden._active(m.valid_from, m.valid_until, m.revoked_at) AND t.ends_at > statement_timestamp())) AS active
    FROM pgwarden.assignments a
    LEFT JOIN pgwarden.team_members m ON m.team = a.team AND m.person = ${p.name}
    LEFT JOIN pgwarden.teams t ON t.name = a.team
    WHERE a.person = ${p.name} OR m.person IS NOT NULL
    ORDER BY a.attribute, a.value, a.id`;
  const teams = await db<{ team: string; until: Date; active: boolean }[]>`
    SELECT m.team, LEAST(t.ends_at, COALESCE(m.valid_until, t.ends_at)) AS until,
      pgwarden._active(m.valid_from, m.valid_until, m.revoked_at) AND t.ends_at > statement_timestamp() AS active
    FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team
    WHERE m.person = ${p.name} ORDER BY m.team, m.id`;
  const [q] = await db<{ reveals: number; exported: number }[]>`
    SELECT (SELECT count(*)::int FROM pgwarden.reveals v WHERE v.person = ${p.name} AND v.table_name = ${tableName} AND v.granted AND v.at >= pgwarden._today()) AS reveals,
           (SELECT COALESCE(sum(e.rows), 0)::int FROM pgwarden.exports e WHERE e.person = ${p.name} AND e.table_name = ${tableName} AND e.allowed AND e.at >= pgwarden._today()) AS exported`;
  return {
    name: p.name,
    role: p.role,
    unit: p.unit,
    active: p.active,
    deactivatedAt: iso(p.deactivated_at),
    jobs: jobs.map((j) => ({ job: j.job, until: iso(j.until), active: j.active })),
    manages: manages.map((m) => ({ unit: m.unit, until: iso(m.until), active: m.active })),
    shares: shares.map((s) => ({
      id: Number(s.id),
      rowKey: s.row_key,
      until: iso(s.until),
      from: s.from.toISOString(),
      grantedBy: s.granted_by,
      revokedAt: iso(s.revoked_at),
      active: s.active,
    })),
    grants: [
      ...grants.map((g) => ({
        id: Number(g.id),
        label: g.label,
        access: g.access,
        filter: g.filter,
        until: g.until.toISOString(),
        revokedAt: iso(g.revoked_at),
        active: g.active,
      })),
      ...teamGrants.map((g) => ({
        id: Number(g.id),
        label: `team ${g.team}`,
        access: g.access,
        filter: g.filter,
        until: g.until.toISOString(),
        revokedAt: iso(g.revoked_at),
        active: g.active,
      })),
    ],
    assignments: assignments.map((a) => ({
      id: Number(a.id),
      attribute: a.attribute,
      value: a.value,
      team: a.team,
      until: iso(a.until),
      active: a.active,
    })),
    teams: teams.map((m) => ({ team: m.team, until: iso(m.until), active: m.active })),
    revealsToday: Number(q?.reveals ?? 0),
    exportedToday: Number(q?.exported ?? 0),
  };
}

async function tableColumns(
  db: Db,
  model: Model,
  table: TableModel,
): Promise<{ name: string; type: string }[]> {
  const rows = await db<{ name: string; type: string }[]>`
    SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ${`${qualified(model.schemas.protected, table.table).text}`}::regclass
      AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;
  if (rows.length === 0) {
    throw new PgwardenError(
      'missing_table',
      `${model.schemas.protected}.${table.table} has no columns in the database`,
      'Apply the model first (pgwarden apply).',
    );
  }
  return rows;
}

/** Lifts the read caps inside a rolled-back transaction so that counting rows is not refused. */
export async function liftReadCaps(tx: postgres.TransactionSql): Promise<void> {
  const [r] = await tx<
    { ok: boolean }[]
  >`SELECT to_regclass('pgwarden.read_caps') IS NOT NULL AS ok`;
  if (r?.ok) await tx`DELETE FROM pgwarden.read_caps`;
}

/**
 * Evaluates every check of the table for the row(s) as the person. `db` must be a superuser
 * connection (it reads the base table and the catalog); nothing is changed: the person's part
 * runs in a rolled-back transaction.
 */
export async function evaluateExplain(
  db: Db,
  model: Model,
  o: EvaluateOptions,
): Promise<Evaluation> {
  const table = findTable(model, o.table);
  if (o.column && !table.columns.some((c) => c.name === o.column)) {
    throw new PgwardenError(
      'unknown_column',
      `column "${o.column}" is not a column of ${table.name}`,
      `Use one of: ${table.columns.map((c) => c.name).join(', ')}.`,
    );
  }
  const columns = await tableColumns(db, model, table);
  const base = qualified(model.schemas.protected, table.table);
  const keyType = columns.find((c) => c.name === table.key)?.type ?? table.keyType;
  const textCols = join(
    columns.map((c) => sql`${ident(c.name)}::text AS ${ident(c.name)}`),
    ', ',
  );
  let rows: Record<string, string | null>[];
  if (o.key !== undefined) {
    rows = await db.unsafe(
      sql`SELECT ${textCols} FROM ${base} WHERE ${ident(table.key)}::text = $1`.text,
      [o.key],
    );
    if (rows.length === 0) {
      throw new PgwardenError(
        'row_not_found',
        `${table.name} has no row with ${table.key} = ${o.key}`,
        'Check the key (the base table was read as the connecting superuser).',
      );
    }
  } else {
    const where = o.where ?? {};
    const params: string[][] = [];
    const conds = Object.entries(where).map(([c, values]) => {
      if (!columns.some((x) => x.name === c)) {
        throw new PgwardenError(
          'unknown_column',
          `--where names column "${c}", which ${table.name} does not have`,
          `Use one of: ${columns.map((x) => x.name).join(', ')}.`,
        );
      }
      params.push(values);
      return sql`pgw_t.${ident(c)}::text = ANY (${unsafeRaw(`$${params.length}`)}::text[])`;
    });
    const limit = o.limit ?? 1000;
    rows = await db.unsafe(
      sql`SELECT ${textCols} FROM ${base} AS pgw_t${conds.length ? sql` WHERE ${join(conds, ' AND ')}` : unsafeRaw('')} ORDER BY pgw_t.${ident(table.key)} LIMIT ${int(limit)}`
        .text,
      params,
    );
  }
  const person = await readPersonContext(db, o.person, table.name);
  const units = await db<
    { name: string; parent: string | null }[]
  >`SELECT name, parent FROM pgwarden.units`;
  const people = await db<{ name: string; unit: string }[]>`SELECT name, unit FROM pgwarden.people`;
  const context: ExplainContext = {
    person,
    units: Object.fromEntries(units.map((u) => [u.name, u.parent])),
    unitOf: Object.fromEntries(people.map((p) => [p.name, p.unit])),
  };

  const checks = buildChecks(model, table, o.column);
  const payload = JSON.stringify(rows);
  const keys = rows.map((r) => r[table.key] as string);
  const main = checks.filter((c) => !c.filter);
  const filters = checks.filter((c) => c.filter);
  const viewCols = o.column ? [o.column] : table.cells.map((c) => c.column);
  const view = qualified(model.schemas.exposed, table.name);
  const viewQuery = sql`SELECT ${ident(table.key)}::text AS "pgw_key"${
    viewCols.length
      ? sql`, ${join(
          viewCols.map((c) => sql`${ident(c)}::text AS ${ident(c)}`),
          ', ',
        )}`
      : unsafeRaw('')
  } FROM ${view} WHERE ${ident(table.key)} = ANY ($1::${safeType(keyType)}[])`;

  const verdicts = new Map<string, Record<string, boolean | null>>(keys.map((k) => [k, {}]));
  const asSuperuser = new Set<string>();
  const failed: string[] = [];
  const actual = new Map<string, Record<string, string | null>>();
  let actualError: string | null = null;

  const store = (set: readonly Check[], result: Record<string, unknown>[]) => {
    for (const r of result) {
      const v = verdicts.get(String(r.pgw_key));
      if (!v) continue;
      set.forEach((c, i) => {
        const b = r[`c${i}`];
        v[c.id] = b === null || b === undefined ? null : Boolean(b);
      });
    }
  };

  await rolledBack(db, async (tx) => {
    await liftReadCaps(tx);
    await tx`SELECT pg_catalog.set_config('role', ${person.role}, true)`;
    if (main.length)
      store(main, await tx.unsafe(checksQuery(table, columns, main).text, [payload]));
    for (const f of filters) {
      try {
        await tx.savepoint(async (sp) =>
          store([f], await sp.unsafe(checksQuery(table, columns, [f]).text, [payload])),
        );
      } catch (e) {
        if ((e as { code?: string }).code !== '42501') throw e;
        failed.push(f.id);
      }
    }
    try {
      await tx.savepoint(async (sp) => {
        for (const r of await sp.unsafe(viewQuery.text, [keys])) {
          const { pgw_key, ...rest } = r as Record<string, string | null>;
          actual.set(String(pgw_key), rest);
        }
      });
    } catch (e) {
      actualError = (e as Error).message;
    }
  });
  // a filter that reads relations the person has no privilege on (inside the policy they are
  // read with the view owner's privileges): evaluated on the same values as the superuser
  if (failed.length) {
    const set = filters.filter((f) => failed.includes(f.id));
    await rolledBack(db, async (tx) => {
      store(set, await tx.unsafe(checksQuery(table, columns, set).text, [payload]));
    });
    for (const id of failed) asSuperuser.add(id);
  }
  return {
    model,
    table,
    column: o.column ?? null,
    checks,
    context,
    rows: rows.map((r) => {
      const key = r[table.key] as string;
      return {
        key,
        values: r,
        verdicts: verdicts.get(key) ?? {},
        asSuperuser: [...asSuperuser],
        actual: actualError ? null : (actual.get(key) ?? null),
        actualError,
      };
    }),
  };
}

// ------------------------------------------------------------------ 3. reasons (pure)

export interface ScopeResult {
  scope: string;
  holds: boolean | null;
  why: string;
}

export interface RuleResult {
  rule: number;
  jobs: readonly string[];
  commands: readonly Command[];
  scopes: readonly string[];
  holdsJob: boolean | null;
  jobWhy: string;
  /** per row command the rule covers: its scopes' verdicts */
  byCommand: Partial<Record<RowCommand, ScopeResult[]>>;
}

export interface Decision {
  allowed: boolean;
  why: string[];
}

export type LevelName = 'full' | 'masked' | 'hidden' | 'empty';

export interface CellResult {
  column: string;
  /** the level the model gives (first case that holds) */
  level: LevelName;
  why: string;
  /** the level the view actually returned (null: row not visible) */
  actual: LevelName | null;
  edit: Decision;
  reveal: Decision;
  export: Decision;
}

export interface RowExplanation {
  person: string;
  table: string;
  key: string;
  owner: string | null;
  see: Decision;
  change: Decision;
  delete: Decision;
  reveal: Decision;
  export: Decision;
  /** the rules that grant seeing the row, as short labels (own, subtree, shared, pool, ...) */
  grantedBy: string[];
  rules: RuleResult[];
  cells: CellResult[];
  /** what the view returned as the person */
  actualVisible: boolean | null;
  agrees: boolean;
  disagreements: string[];
  summary: string;
  notes: string[];
}

function ancestors(units: Record<string, string | null>, unit: string): string[] {
  const out: string[] = [];
  let u: string | null | undefined = unit;
  const seen = new Set<string>();
  while (u && !seen.has(u)) {
    out.push(u);
    seen.add(u);
    u = units[u];
  }
  return out;
}

const until = (t: string | null) => (t ? `until ${t}` : 'with no end');

function scopeLabel(s: Scope): string {
  if (s.kind === 'filter') return `filter ${s.sql}`;
  if (s.kind === 'parent')
    return `parent ${s.table} via ${s.column}${s.via ? ` (${s.via.join(', ')})` : ''}`;
  if (s.kind === 'assigned') return `assigned ${s.match.map((m) => m.attribute).join(' + ')}`;
  return s.kind;
}

function levelName(l: Level): LevelName {
  if (l.kind === 'full') return 'full';
  if (l.kind === 'hidden' || (l.kind === 'mask' && l.mask === 'null')) return 'hidden';
  return 'masked';
}

function whenLabel(w: CellWhen): string {
  if (w.kind === 'job') return `job:${w.job}`;
  if (w.kind === 'parent') return `parent:${w.relation}`;
  return w.relation;
}

/** Explains one relation (own, subtree, ...) for a row, true or false, in words. */
function relationWhy(
  ev: Evaluation,
  row: RowEvaluation,
  relation: string,
  holds: boolean | null,
  access: RowCommand = 'select',
): string {
  const { table } = ev;
  const p = ev.context.person;
  const owner = table.owner ? (row.values[table.owner] ?? null) : null;
  const ownerUnit = owner ? (ev.context.unitOf[owner] ?? null) : null;
  const managed = p.manages.filter((m) => m.active);
  switch (relation) {
    case 'own':
      if (!table.owner) return 'the table has no owner column';
      return holds
        ? `owner is ${p.name}`
        : owner
          ? `owner is ${owner}, not ${p.name}`
          : `the row has no owner`;
    case 'unit': {
      if (table.unit) {
        const u = row.values[table.unit];
        return holds
          ? `its ${table.unit} ${u} is ${p.name}'s unit`
          : `its ${table.unit} is ${u ?? 'empty'}, ${p.name} is in ${p.unit}`;
      }
      return holds
        ? `owner ${owner} is in ${p.name}'s unit ${p.unit}`
        : owner
          ? `owner ${owner} is in ${ownerUnit ?? 'no unit'}, ${p.name} is in ${p.unit}`
          : 'the row has no owner';
    }
    case 'subtree': {
      const rowUnit = table.unit ? (row.values[table.unit] ?? null) : ownerUnit;
      const what = table.unit
        ? `its ${table.unit} ${rowUnit ?? '(empty)'}`
        : owner
          ? `owner ${owner} is in ${rowUnit ?? 'no unit'}`
          : 'the row has no owner';
      if (managed.length === 0) return `${what}; ${p.name} manages nothing`;
      const chain = rowUnit ? ancestors(ev.context.units, rowUnit) : [];
      const via = managed.find((m) => chain.includes(m.unit));
      if (holds && via) {
        return `${what}${via.unit === rowUnit ? '' : `, under ${via.unit}`}, which ${p.name} manages (${until(via.until)})`;
      }
      if (holds) return `${what}, in the subtree ${p.name} manages`;
      return `${what}, not under ${managed.map((m) => m.unit).join(', ')}, which ${p.name} manages`;
    }
    case 'shared': {
      const mine = p.shares.filter((s) => s.rowKey === row.key);
      const live = mine.find((s) => s.active);
      if (holds && live)
        return `shared with ${p.name} by ${live.grantedBy} (share #${live.id}) ${until(live.until)}`;
      if (holds) return `shared with ${p.name}`;
      const ended = mine[mine.length - 1];
      if (ended)
        return `share #${ended.id} with ${p.name} ${ended.revokedAt ? `was revoked at ${ended.revokedAt}` : `ended at ${ended.until}`}`;
      return `not shared with ${p.name}`;
    }
    case 'pool':
      return holds ? `the row is in the pool (${table.pool})` : 'the row is not in the pool';
    case 'granted': {
      const grants = p.grants.filter((g) => g.access === access);
      const live = grants.filter((g) => g.active);
      const describe = (g: ExplainPersonContext['grants'][number]) =>
        `temporary grant ${g.label ? `"${g.label}" ` : ''}#${g.id} (${
          Object.entries(g.filter)
            .map(([k, v]) => `${k} in ${v.join('/')}`)
            .join(', ') || 'all rows'
        }; ${g.access})`;
      const matches = (g: ExplainPersonContext['grants'][number]) =>
        Object.entries(g.filter).every(([k, v]) => v.includes(String(row.values[k])));
      if (holds) {
        const g = live.find(matches) ?? live[0];
        return g ? `${describe(g)} until ${g.until}` : 'a temporary grant matches';
      }
      if (live.length) {
        return live
          .map((g) => {
            const miss = Object.entries(g.filter)
              .filter(([k, v]) => !v.includes(String(row.values[k])))
              .map(([k, v]) => `${k} is ${row.values[k] ?? 'empty'}, not ${v.join('/')}`);
            return `${describe(g)} does not match: ${miss.join(', ') || 'no match'}`;
          })
          .join('; ');
      }
      const old = grants[grants.length - 1];
      if (old)
        return `${describe(old)} ${old.revokedAt ? `was revoked at ${old.revokedAt}` : `ended at ${old.until}`}`;
      return `${p.name} holds no temporary grant on ${table.name}`;
    }
    case 'assigned': {
      const combos = new Map<string, Extract<Scope, { kind: 'assigned' }>>();
      for (const r of table.rules)
        for (const s of r.scopes) if (s.kind === 'assigned') combos.set(JSON.stringify(s.match), s);
      return [...combos.values()].map((s) => assignedWhy(p, row, s, holds)).join('; or ');
    }
    default:
      return relation;
  }
}

/** An attribute scope for a row, in words: which assignment matches, or which is missing. */
function assignedWhy(
  p: ExplainPersonContext,
  row: RowEvaluation,
  scope: Extract<Scope, { kind: 'assigned' }>,
  holds: boolean | null,
): string {
  const parts = scope.match.map((m) => {
    const v = row.values[m.column] ?? null;
    const live = p.assignments.filter((a) => a.active && a.attribute === m.attribute);
    const hit = live.find((a) => a.value === v);
    if (hit)
      return `its ${m.column} ${v} is assigned to ${p.name}${hit.team ? ` through team ${hit.team}` : ''} (assignment #${hit.id}, ${until(hit.until)})`;
    const ended = p.assignments.filter(
      (a) => !a.active && a.attribute === m.attribute && a.value === v,
    );
    return `its ${m.column} is ${v ?? 'empty'}, ${p.name} is assigned ${m.attribute} ${live.map((a) => a.value).join('/') || 'nothing'}${ended.length ? ` (an assignment of ${v} ended)` : ''}`;
  });
  return holds
    ? parts.join(' and ')
    : parts.filter((x) => !x.includes('is assigned to')).join(' and ') || parts.join(' and ');
}

function scopeWhy(
  ev: Evaluation,
  row: RowEvaluation,
  scope: Scope,
  holds: boolean | null,
  access: RowCommand,
  checkId: string,
): string {
  const note = row.asSuperuser.includes(checkId)
    ? ' (evaluated on the row values: the person may not read what the filter reads; the policy reads it as the view owner)'
    : '';
  if (holds === null) return `${scopeLabel(scope)} could not be evaluated`;
  switch (scope.kind) {
    case 'all':
      return 'the rule covers every row of the table';
    case 'filter':
      return `filter ${scope.sql} ${holds ? 'holds' : 'does not hold'}${note}`;
    case 'parent': {
      const k = row.values[scope.column];
      return `its ${scope.table} row ${k ?? '(none)'} (${scope.column}) ${holds ? 'is' : 'is not'} ${
        scope.via
          ? `related to ${ev.context.person.name} by ${scope.via.join(' or ')}`
          : `visible to ${ev.context.person.name}`
      }`;
    }
    case 'assigned':
      return assignedWhy(ev.context.person, row, scope, holds);
    default:
      return relationWhy(ev, row, scope.kind, holds, access);
  }
}

function jobWhy(ev: Evaluation, rule: Rule, holds: boolean | null): string {
  const p = ev.context.person;
  const held = p.jobs.filter((j) => j.active).map((j) => j.job);
  if (rule.jobs.includes('*'))
    return holds ? `${p.name} is an active person` : `${p.name} is not an active person`;
  const match = rule.jobs.filter((j) => held.includes(j));
  if (holds)
    return `${p.name} holds ${match.join(', ') || rule.jobs.join(' or ')}${(() => {
      const j = p.jobs.find((x) => x.active && match.includes(x.job));
      return j?.until ? ` until ${j.until}` : '';
    })()}`;
  if (!p.active) return `${p.name} is not active (deactivated ${p.deactivatedAt ?? ''})`.trim();
  return `${p.name} holds none of ${rule.jobs.join(', ')} (holds ${held.join(', ') || 'no job'})`;
}

function classify(base: string | null, shown: string | null): LevelName {
  if (base === null) return 'empty';
  if (shown === null) return 'hidden';
  return shown === base ? 'full' : 'masked';
}

/** Turns the verdicts of one row into decisions and reasons, and compares with the view. */
export function explainRow(ev: Evaluation, row: RowEvaluation): RowExplanation {
  const { table, model } = ev;
  const p = ev.context.person;
  const rules: RuleResult[] = table.rules.map((rule, i) => {
    const holdsJob = row.verdicts[ruleCheckId(i)] ?? null;
    const byCommand: RuleResult['byCommand'] = {};
    for (const command of ROW_COMMANDS) {
      if (!rule.commands.includes(command)) continue;
      byCommand[command] = rule.scopes.map((s, j) => {
        const id = scopeCheckId(i, command, j);
        const holds = row.verdicts[id] ?? null;
        return { scope: scopeLabel(s), holds, why: scopeWhy(ev, row, s, holds, command, id) };
      });
    }
    return {
      rule: i + 1,
      jobs: rule.jobs,
      commands: rule.commands,
      scopes: rule.scopes.map(scopeLabel),
      holdsJob,
      jobWhy: jobWhy(ev, rule, holdsJob),
      byCommand,
    };
  });
  const decide = (command: RowCommand): Decision & { labels: string[] } => {
    const why: string[] = [];
    const labels: string[] = [];
    for (const r of rules) {
      const scopes = r.byCommand[command];
      if (!scopes || !r.holdsJob) continue;
      for (const s of scopes)
        if (s.holds) {
          why.push(
            `rule ${r.rule} (${r.jobs.join(', ')}: ${command}) by ${s.scope}: ${s.why}; ${r.jobWhy}`,
          );
          labels.push(
            s.scope.startsWith('filter ')
              ? 'filter'
              : s.scope.startsWith('parent ')
                ? 'parent'
                : s.scope,
          );
        }
    }
    if (why.length === 0) why.push(denial(command));
    return { allowed: labels.length > 0, why, labels };
  };
  const denial = (command: RowCommand): string => {
    const covering = rules.filter((r) => r.byCommand[command]);
    if (covering.length === 0) return `no rule of the model covers ${command} on ${table.name}`;
    const facts = new Set<string>();
    const owner = table.owner ? row.values[table.owner] : null;
    if (table.owner) {
      facts.add(
        owner
          ? `owner is ${owner} in ${ev.context.unitOf[owner] ?? 'no unit'}`
          : 'the row has no owner',
      );
    }
    const applicable = covering.filter((r) => r.holdsJob);
    if (applicable.length === 0) {
      const held = p.jobs.filter((j) => j.active).map((j) => j.job);
      facts.add(
        p.active
          ? `${p.name} holds ${held.join(', ') || 'no job'}, and no ${command} rule is for ${held.length ? 'those jobs' : 'people without a job'}`
          : `${p.name} is not active`,
      );
    }
    if (p.manages.every((m) => !m.active) && covering.some((r) => r.scopes.includes('subtree')))
      facts.add(`${p.name} manages nothing`);
    for (const r of applicable)
      for (const s of r.byCommand[command] ?? []) {
        if (s.scope === 'own' && owner) continue;
        if (s.scope === 'subtree' && p.manages.every((m) => !m.active)) {
          facts.add(`${p.name} manages nothing`);
          continue;
        }
        facts.add(s.why);
      }
    return `no rule grants it: ${[...facts].join(', ')}`;
  };
  const see = decide('select');
  const upd = decide('update');
  const del = decide('delete');
  const change: Decision = see.allowed
    ? upd
    : { allowed: false, why: [`${p.name} cannot see the row, so cannot change it`] };
  const remove: Decision = see.allowed
    ? {
        allowed: del.allowed,
        why:
          del.allowed && table.recycleBin
            ? [
                ...del.why,
                `a delete moves the row to the recycle bin for ${table.recycleBin.retentionDays} days`,
              ]
            : del.why,
      }
    : { allowed: false, why: [`${p.name} cannot see the row, so cannot delete it`] };

  // cells, edits, reveal, export per column
  const held = p.jobs.filter((j) => j.active).map((j) => j.job);
  const exportRules = table.exports.filter((e) => held.includes(e.job));
  const cellColumns = ev.column ? [ev.column] : table.cells.map((c) => c.column);
  const cells: CellResult[] = cellColumns.map((column) => {
    const cell = table.cells.find((c) => c.column === column);
    let level: LevelName = 'full';
    let why = `${column} has no cell rule: shown in full to everyone who sees the row`;
    if (cell) {
      const k = cell.cases.findIndex((_, i) => row.verdicts[`cell.${column}.${i}`]);
      const c = k >= 0 ? cell.cases[k] : undefined;
      level = levelName(c ? c.level : cell.otherwise);
      why = c
        ? `case ${whenLabel(c.when)} holds${c.when.kind === 'job' ? '' : `: ${whenWhy(ev, row, c.when, true)}`}`
        : `no case holds (${cell.cases.map((x) => whenLabel(x.when)).join(', ')}): default`;
    }
    const baseValue = row.values[column] ?? null;
    if (baseValue === null && level !== 'hidden') level = 'empty';
    const actual = row.actual ? classify(baseValue, row.actual[column] ?? null) : null;
    // edits
    let edit: Decision;
    if (!change.allowed) edit = { allowed: false, why: change.why };
    else if (table.edits === null)
      edit = { allowed: true, why: ['no column rules: the row rule decides'] };
    else {
      const e = table.edits.find((x) => x.column === column);
      if (!e) edit = { allowed: false, why: [`${column} is read-only (not listed under edits)`] };
      else {
        const k = e.who.findIndex((_, i) => row.verdicts[`edit.${column}.${i}`]);
        edit =
          k >= 0
            ? { allowed: true, why: [`edits.${column} allows ${whenLabel(e.who[k] as CellWhen)}`] }
            : {
                allowed: false,
                why: [`edits.${column} needs ${e.who.map(whenLabel).join(' or ')}`],
              };
      }
    }
    // reveal
    let reveal: Decision;
    const rr = table.reveal?.columns.find((x) => x.column === column);
    if (!table.reveal || !rr)
      reveal = { allowed: false, why: [`no reveal rule covers ${table.name}.${column}`] };
    else if (!see.allowed) reveal = { allowed: false, why: [`${p.name} cannot see the row`] };
    else {
      const k = rr.who.findIndex((_, i) => row.verdicts[`reveal.${column}.${i}`]);
      const left = table.reveal.perDay - p.revealsToday;
      reveal =
        k < 0
          ? {
              allowed: false,
              why: [
                `reveal.columns.${column} needs the row to be ${rr.who.map(whenLabel).join(' or ')} to ${p.name}`,
              ],
            }
          : left <= 0
            ? {
                allowed: false,
                why: [
                  `quota: ${p.revealsToday} of ${table.reveal.perDay} reveals used today (UTC)`,
                ],
              }
            : {
                allowed: true,
                why: [
                  `reveal.columns.${column} allows ${whenLabel(rr.who[k] as CellWhen)}; ${left} of ${table.reveal.perDay} reveals left today`,
                ],
              };
    }
    // export
    let exp: Decision;
    if (!see.allowed) exp = { allowed: false, why: [`${p.name} cannot see the row`] };
    else if (exportRules.length === 0)
      exp = {
        allowed: false,
        why: [
          `no export rule for ${held.join(', ') || 'no job'}: ${p.name} may not export ${table.name}`,
        ],
      };
    else {
      const r = exportRules.find((e) => e.columns.includes(column));
      exp = !r
        ? {
            allowed: false,
            why: [
              `${column} is not an export column of ${exportRules.map((e) => e.job).join(', ')}`,
            ],
          }
        : r.approvalColumns.includes(column)
          ? { allowed: true, why: [`exports.${r.job}: ${column} needs an approved request`] }
          : { allowed: true, why: [`exports.${r.job} includes ${column}`] };
    }
    return { column, level, why, actual, edit, reveal, export: exp };
  });

  // row-level reveal / export
  const revealRow: Decision = !table.reveal
    ? { allowed: false, why: [`no reveal rule covers ${table.name}`] }
    : cells.some((c) => c.reveal.allowed)
      ? {
          allowed: true,
          why: cells
            .filter((c) => c.reveal.allowed)
            .map((c) => `${c.column}: ${c.reveal.why.join('; ')}`),
        }
      : {
          allowed: false,
          why: ev.column
            ? (cells[0]?.reveal.why ?? [])
            : table.reveal.columns.map(
                (c) => `${c.column}: needs ${c.who.map(whenLabel).join(' or ')}`,
              ),
        };
  const exportRow: Decision = !see.allowed
    ? { allowed: false, why: [`${p.name} cannot see the row`] }
    : exportRules.length === 0
      ? {
          allowed: false,
          why: [
            `no export rule for ${held.join(', ') || 'no job'}: ${p.name} may not export ${table.name}`,
          ],
        }
      : {
          allowed: true,
          why: exportRules.map(
            (r) =>
              `exports.${r.job}: columns ${r.columns.join(', ')}${r.approvalColumns.length ? ` (${r.approvalColumns.join(', ')} after approval)` : ''}; ${Math.max(0, r.perDay - p.exportedToday)} of ${r.perDay} rows left today`,
          ),
        };

  // ground truth
  const actualVisible = row.actualError ? null : row.actual !== null;
  const disagreements: string[] = [];
  const notes: string[] = [];
  if (row.actualError) notes.push(`the view could not be read as ${p.name}: ${row.actualError}`);
  if (actualVisible !== null && actualVisible !== see.allowed) {
    disagreements.push(
      `the rules say ${p.name} ${see.allowed ? 'can' : 'cannot'} see the row, but the view ${actualVisible ? 'returns' : 'does not return'} it`,
    );
  }
  if (actualVisible) {
    for (const c of cells) {
      if (c.actual === null || c.actual === 'empty' || c.level === 'empty') continue;
      if (c.actual !== c.level)
        disagreements.push(
          `${c.column}: the cell rules say ${c.level}, the view returns it ${c.actual}`,
        );
    }
  }
  const owner = table.owner ? (row.values[table.owner] ?? null) : null;
  const summary = see.allowed
    ? `${p.name} can see ${table.name} ${row.key} by ${[...new Set(see.labels)].join(', ')}`
    : `${p.name} cannot see ${table.name} ${row.key}: ${see.why[0]}`;
  void model;
  return {
    person: p.name,
    table: table.name,
    key: row.key,
    owner,
    see: { allowed: see.allowed, why: see.why },
    change,
    delete: remove,
    reveal: revealRow,
    export: exportRow,
    grantedBy: [...new Set(see.labels)],
    rules,
    cells,
    actualVisible,
    agrees: disagreements.length === 0,
    disagreements,
    summary,
    notes,
  };
}

function whenWhy(ev: Evaluation, row: RowEvaluation, w: CellWhen, holds: boolean): string {
  if (w.kind === 'relation') return relationWhy(ev, row, w.relation, holds);
  if (w.kind === 'parent')
    return `its ${w.table} row ${row.values[w.column] ?? '(none)'} is ${w.relation} to ${ev.context.person.name}`;
  return `${ev.context.person.name} holds ${w.job}`;
}

export interface SetExplanation {
  person: string;
  table: string;
  rows: number;
  visible: number;
  /** reason (granting scopes joined with "+", or "none") -> rows */
  byReason: Record<string, number>;
  /** rows where the explanation and the view disagree */
  disagreements: { key: string; what: string[] }[];
  explanations: RowExplanation[];
}

export function explainSet(ev: Evaluation): SetExplanation {
  const explanations = ev.rows.map((r) => explainRow(ev, r));
  const byReason: Record<string, number> = {};
  for (const e of explanations) {
    const k = e.see.allowed ? e.grantedBy.join('+') : 'none';
    byReason[k] = (byReason[k] ?? 0) + 1;
  }
  return {
    person: ev.context.person.name,
    table: ev.table.name,
    rows: explanations.length,
    visible: explanations.filter((e) => e.see.allowed).length,
    byReason,
    disagreements: explanations
      .filter((e) => !e.agrees)
      .map((e) => ({ key: e.key, what: e.disagreements })),
    explanations,
  };
}

// ------------------------------------------------------------------ terminal text (pure)

const yes = (b: boolean) => (b ? 'yes' : 'no ');

export function formatRowExplanation(e: RowExplanation, verbose = false): string {
  const out: string[] = [];
  out.push(`${e.person} on ${e.table} ${e.key}${e.owner ? ` (owner ${e.owner})` : ''}`);
  const line = (label: string, d: Decision) => {
    out.push(`  ${label.padEnd(8)} ${yes(d.allowed)}  ${d.why[0] ?? ''}`);
    for (const w of d.why.slice(1)) out.push(`  ${''.padEnd(8)}      ${w}`);
  };
  line('see', e.see);
  line('change', e.change);
  line('delete', e.delete);
  line('reveal', e.reveal);
  line('export', e.export);
  if (e.cells.length) {
    out.push('  cells:');
    for (const c of e.cells) {
      out.push(
        `    ${c.column.padEnd(14)} ${c.level.padEnd(7)} ${c.actual !== null ? `(view: ${c.actual}) ` : ''}${c.why}`,
      );
      if (verbose || e.cells.length === 1) {
        out.push(`    ${''.padEnd(14)} edit ${yes(c.edit.allowed)} ${c.edit.why.join('; ')}`);
        out.push(`    ${''.padEnd(14)} reveal ${yes(c.reveal.allowed)} ${c.reveal.why.join('; ')}`);
        out.push(`    ${''.padEnd(14)} export ${yes(c.export.allowed)} ${c.export.why.join('; ')}`);
      }
    }
  }
  if (verbose) {
    out.push('  rules:');
    for (const r of e.rules) {
      out.push(
        `    ${r.rule}. ${r.jobs.join(', ')} [${r.commands.join(', ')}] ${r.scopes.join(', ')}`,
      );
      out.push(`       job: ${r.holdsJob ? 'yes' : 'no'}, ${r.jobWhy}`);
      for (const [cmd, scopes] of Object.entries(r.byCommand))
        for (const s of scopes ?? [])
          out.push(`       ${cmd} ${s.scope}: ${s.holds ? 'holds' : 'no'}, ${s.why}`);
    }
  }
  out.push(
    e.actualVisible === null
      ? '  view:    not checked'
      : `  view:    ${e.actualVisible ? 'returns the row' : 'does not return the row'} as ${e.person}${e.agrees ? ' (agrees)' : ''}`,
  );
  for (const n of e.notes) out.push(`  note:    ${n}`);
  for (const d of e.disagreements) out.push(`  DISAGREES: ${d}`);
  return `${out.join('\n')}\n`;
}

export function formatSetExplanation(s: SetExplanation): string {
  const out: string[] = [];
  out.push(`${s.person} on ${s.table}: ${s.visible} of ${s.rows} row(s) visible`);
  const entries = Object.entries(s.byReason).sort((a, b) => b[1] - a[1]);
  const w = Math.max(...entries.map(([k]) => k.length), 6);
  for (const [k, n] of entries) {
    const keys = s.explanations
      .filter((e) => (e.see.allowed ? e.grantedBy.join('+') : 'none') === k)
      .map((e) => e.key);
    out.push(
      `  ${k.padEnd(w)} ${String(n).padStart(5)}  ${keys.slice(0, 12).join(', ')}${keys.length > 12 ? ', ...' : ''}`,
    );
  }
  if (s.disagreements.length) {
    out.push(`DISAGREES on ${s.disagreements.length} row(s):`);
    for (const d of s.disagreements) out.push(`  ${d.key}: ${d.what.join('; ')}`);
  } else out.push('the view agrees on every row');
  return `${out.join('\n')}\n`;
}
