/**
 * Runs a `pgwarden test` spec against a database. Everything happens inside transactions that
 * are rolled back: one transaction per person block, one savepoint per expectation (rolled back
 * after it, so expectations do not see each other's writes). Each expectation acts as the
 * application does: `SET LOCAL ROLE <prefix><person>` (through set_config, the name a bind
 * parameter). When the connection is a superuser's and the model's authenticator role exists,
 * the role is set from the authenticator's session (`SET LOCAL SESSION AUTHORIZATION`), so the
 * same membership checks apply as for the application.
 *
 * Reads go through the views of the exposed schema; `full` / `masked` / `hidden` compare a cell
 * with the stored value, read from the base table as the connecting user before the role is
 * set. Sequences are not transactional: an insert expectation advances the table's sequence.
 */
import type postgres from 'postgres';
import { PgwardenError } from '../errors.js';
import { ident, int, join, literal, qualified, type Sql, sql } from '../sql/fragment.js';
import type {
  Expectation,
  OutcomeExpectation,
  Spec,
  SpecCatalog,
  SpecProblem,
  SpecStatement,
} from './types.js';
import { checkSpec } from './validate.js';

export interface SpecContext {
  schema: string;
  rolePrefix: string;
  /** the authenticator role the people's roles are set from, or null (directly from the connection) */
  via: string | null;
  connectedAs: string;
  tables: Record<string, SpecTable>;
  catalog: SpecCatalog;
}

interface SpecTable {
  columns: string[];
  key: string;
  /** the base table, for comparing cells with stored values (from pgwarden.tables) */
  base?: {
    schema: string;
    table: string;
    key: string;
    /** encrypted columns -> associated data (pgwarden.encrypted_columns): stored values are decrypted */
    encrypted?: Record<string, string>;
  };
}

export interface ContextOptions {
  /** prefix of the person roles; default: the one pgwarden apply recorded, else none */
  rolePrefix?: string;
}

type Db = postgres.Sql | postgres.TransactionSql;

async function tryRows<T>(q: () => Promise<T[]>): Promise<T[] | null> {
  try {
    return await q();
  } catch {
    return null;
  }
}

/** Reads what a spec needs to know about the database: schema, prefix, people, views. */
export async function readSpecContext(
  db: postgres.Sql,
  spec: Spec,
  options: ContextOptions = {},
): Promise<SpecContext> {
  const settingRows = await tryRows(
    () => db<{ key: string; value: string }[]>`SELECT key, value FROM pgwarden.settings`,
  );
  const settings = new Map((settingRows ?? []).map((r) => [r.key, r.value]));
  const schema = spec.schema ?? settings.get('exposed_schema');
  if (!schema)
    throw new PgwardenError(
      'no_schema',
      'cannot tell which schema holds the views: the spec names none and pgwarden.settings cannot be read',
      `Add \`schema: <exposed schema>\` (e.g. crm_api) at the top of ${spec.file}, or connect as a user who may read pgwarden.settings.`,
    );
  const rolePrefix = options.rolePrefix ?? settings.get('role_prefix') ?? '';
  const [me] = await db<
    { name: string; superuser: boolean }[]
  >`SELECT current_user::text AS name, COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS superuser`;
  let via: string | null = null;
  const authenticator = settings.get('authenticator');
  if (me?.superuser && authenticator) {
    const [r] = await db`SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = ${authenticator}`;
    if (r) via = authenticator;
  }

  const views = await db<{ name: string; columns: string[] }[]>`
    SELECT c.relname::text AS name,
           pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) AS columns
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = ${schema} AND c.relkind IN ('v', 'r', 'm', 'f', 'p')
    GROUP BY c.relname`;
  if (views.length === 0)
    throw new PgwardenError(
      'no_views',
      `schema ${JSON.stringify(schema)} has no views in this database`,
      'Connect to the database the model was applied to (pgwarden apply), or fix `schema:` in the spec.',
    );
  const baseRows =
    (await tryRows(
      () =>
        db<
          { name: string; schema_name: string; table_name: string; key_column: string }[]
        >`SELECT name, schema_name, table_name, key_column FROM pgwarden.tables`,
    )) ?? [];
  const bases = new Map(baseRows.map((r) => [r.name, r]));
  // encrypted columns (sql/015): their stored values are compared decrypted
  const encRows =
    (await tryRows(
      () =>
        db<
          { table_name: string; column_name: string; associated_data: string }[]
        >`SELECT table_name, column_name, associated_data FROM pgwarden.encrypted_columns`,
    )) ?? [];
  const tables: Record<string, SpecTable> = {};
  for (const v of views) {
    const b = bases.get(v.name);
    const encrypted = Object.fromEntries(
      encRows.filter((e) => e.table_name === v.name).map((e) => [e.column_name, e.associated_data]),
    );
    tables[v.name] = {
      columns: v.columns,
      key: b?.key_column ?? 'id',
      ...(b
        ? {
            base: {
              schema: b.schema_name,
              table: b.table_name,
              key: b.key_column,
              ...(Object.keys(encrypted).length > 0 ? { encrypted } : {}),
            },
          }
        : {}),
    };
  }

  const people = [...new Set(spec.blocks.map((b) => b.person))];
  const roles = new Set(
    (
      await db<{ rolname: string }[]>`
        SELECT rolname::text AS rolname FROM pg_catalog.pg_roles
        WHERE rolname = ANY (${people.map((p) => rolePrefix + p)}::text[])`
    ).map((r) => r.rolname),
  );
  const known =
    (await tryRows(() => db<{ name: string }[]>`SELECT name FROM pgwarden.people ORDER BY name`)) ??
    [];
  const catalog: SpecCatalog = {
    schema,
    rolePrefix,
    hasPerson: (p) => roles.has(rolePrefix + p),
    knownPeople: known.map((r) => r.name),
    tables: Object.fromEntries(Object.entries(tables).map(([k, t]) => [k, { columns: t.columns }])),
  };
  return { schema, rolePrefix, via, connectedAs: me?.name ?? '', tables, catalog };
}

/** The problems of a spec in this database (unknown people, tables, columns). */
export function checkSpecIn(spec: Spec, ctx: SpecContext): SpecProblem[] {
  return checkSpec(spec, ctx.catalog);
}

// ------------------------------------------------------------------ results

export interface ExpectationResult {
  file: string;
  line: number;
  column: number;
  person: string;
  /** the statement as written */
  statement: string;
  /** `<person>: <label or statement>` */
  label: string;
  ok: boolean;
  /** what the spec expects, in words */
  expected: string;
  /** what the database did, in words */
  actual: string;
}

export interface SpecReport {
  file: string;
  schema: string;
  rolePrefix: string;
  via: string | null;
  ok: boolean;
  passed: number;
  failed: number;
  results: ExpectationResult[];
}

export interface RunOptions {
  /** called after each expectation, in order */
  onResult?: (r: ExpectationResult) => void;
}

class Rollback extends Error {
  constructor() {
    super('rolled back on purpose');
  }
}

/** Runs every expectation of the spec; the database is left as it was. */
export async function runSpec(
  db: postgres.Sql,
  spec: Spec,
  ctx: SpecContext,
  options: RunOptions = {},
): Promise<SpecReport> {
  const results: ExpectationResult[] = [];
  for (const block of spec.blocks) {
    try {
      await db.begin(async (tx) => {
        await tx`SET LOCAL lock_timeout = '5s'`;
        await tx`SET LOCAL statement_timeout = '60s'`;
        for (const e of block.expectations) {
          const r = await runOne(tx, e, ctx);
          results.push(r);
          options.onResult?.(r);
        }
        throw new Rollback();
      });
    } catch (e) {
      if (!(e instanceof Rollback)) throw e;
    }
  }
  const failed = results.filter((r) => !r.ok).length;
  return {
    file: spec.file,
    schema: ctx.schema,
    rolePrefix: ctx.rolePrefix,
    via: ctx.via,
    ok: failed === 0,
    passed: results.length - failed,
    failed,
    results,
  };
}

// ------------------------------------------------------------------ one expectation

interface DbError {
  code: string;
  message: string;
}

type Outcome =
  | { kind: 'act_failed'; error: DbError }
  | { kind: 'error'; error: DbError }
  | { kind: 'keys'; keys: string[] }
  | {
      kind: 'row';
      seen: (string | null)[] | null;
      stored: (string | null)[] | null;
      storedError?: string;
    }
  | { kind: 'count'; count: number }
  | { kind: 'done'; detail: string }
  | {
      kind: 'decision';
      ok: boolean;
      reason?: string;
      rows?: number;
      columns?: string[];
    };

function dbError(e: unknown): DbError {
  const err = e as { code?: unknown; message?: unknown };
  return {
    code: typeof err.code === 'string' ? err.code : '',
    message: typeof err.message === 'string' ? err.message : String(e),
  };
}

/** An error that means "the database refused", as opposed to a broken statement. */
function isRefusal(code: string): boolean {
  return (
    code === '42501' ||
    code === '0A000' ||
    code === '44000' ||
    code.startsWith('23') ||
    code.startsWith('P0')
  );
}

async function runOne(
  tx: postgres.TransactionSql,
  e: Expectation,
  ctx: SpecContext,
): Promise<ExpectationResult> {
  let outcome: Outcome | undefined;
  try {
    await tx.savepoint(async (sp) => {
      outcome = await perform(sp, e, ctx);
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) outcome = { kind: 'error', error: dbError(err) };
  }
  const { ok, expected, actual } = evaluate(
    e,
    outcome ?? { kind: 'error', error: { code: '', message: 'no result' } },
  );
  return {
    file: e.location.file,
    line: e.location.line,
    column: e.location.column,
    person: e.person,
    statement: e.text,
    label: e.label,
    ok,
    expected,
    actual,
  };
}

function table(ctx: SpecContext, name: string): SpecTable {
  const t = ctx.tables[name];
  if (!t) throw new Error(`unknown table ${name} (the spec was not checked)`);
  return t;
}

async function query(db: Db, q: Sql, params: (string | null)[] = []) {
  return await db.unsafe(q.text, params as never[]);
}

async function perform(
  sp: postgres.TransactionSql,
  e: Expectation,
  ctx: SpecContext,
): Promise<Outcome> {
  const s = e.statement;
  const t = table(ctx, s.table);
  const view = qualified(ctx.schema, s.table);

  // the stored values, read as the connecting user before acting as the person
  let stored: (string | null)[] | null = null;
  let storedError: string | undefined;
  if (s.kind === 'row' && s.cells.some((c) => 'level' in c.expect)) {
    const fix = 'connect as a superuser (as for plan and apply), or expect the exact value';
    if (!t.base)
      storedError = `cannot read the stored value as ${ctx.connectedAs} (pgwarden.tables is not readable, so the base table is unknown); ${fix}`;
    else {
      const base = t.base;
      try {
        await sp.savepoint(async (inner) => {
          const rows = await query(
            inner,
            sql`SELECT ${cellList(
              s.cells.map((c) => c.column),
              base.encrypted,
            )} FROM ${qualified(base.schema, base.table)} WHERE ${ident(base.key)} = $1`,
            [s.key],
          );
          stored = rows[0] ? cellValues(rows[0], s.cells.length) : null;
          if (!rows[0]) storedError = `${base.schema}.${base.table} has no row ${s.key}`;
          const locked = s.cells.filter((_, i) => rows[0]?.[`k${i}`] === true).map((c) => c.column);
          if (locked.length > 0)
            storedError = `${locked.join(', ')} of ${base.schema}.${base.table} ${s.key} is encrypted and this connection supplied no key for it; give the key with --key or PGWARDEN_KEY`;
        });
      } catch (err) {
        const d = dbError(err);
        storedError = `cannot read the stored value as ${ctx.connectedAs} (${d.message}); ${fix}`;
      }
    }
  }

  try {
    if (ctx.via) await query(sp, sql`SET LOCAL SESSION AUTHORIZATION ${ident(ctx.via)}`);
    await sp`SELECT pg_catalog.set_config('role', ${ctx.rolePrefix + e.person}, true)`;
  } catch (err) {
    return { kind: 'act_failed', error: dbError(err) };
  }

  try {
    switch (s.kind) {
      case 'sees': {
        const rows = await query(sp, sql`SELECT ${ident(t.key)}::text AS k FROM ${view}`);
        return { kind: 'keys', keys: rows.map((r) => String(r.k)) };
      }
      case 'row': {
        const rows = await query(
          sp,
          sql`SELECT ${cellList(s.cells.map((c) => c.column))} FROM ${view} WHERE ${ident(t.key)} = $1`,
          [s.key],
        );
        return {
          kind: 'row',
          seen: rows[0] ? cellValues(rows[0], s.cells.length) : null,
          stored,
          ...(storedError ? { storedError } : {}),
        };
      }
      case 'update': {
        const sets = join(
          s.set.map((a, i) => sql`${ident(a.column)} = $${int(i + 1)}`),
          ', ',
        );
        const r = await query(
          sp,
          sql`UPDATE ${view} SET ${sets} WHERE ${ident(t.key)} = $${int(s.set.length + 1)}`,
          [...s.set.map((a) => a.value), s.key],
        );
        return { kind: 'count', count: r.count };
      }
      case 'insert': {
        const cols = join(
          s.set.map((a) => ident(a.column)),
          ', ',
        );
        const vals = join(
          s.set.map((_, i) => sql`$${int(i + 1)}`),
          ', ',
        );
        const r = await query(
          sp,
          sql`INSERT INTO ${view} (${cols}) VALUES (${vals})`,
          s.set.map((a) => a.value),
        );
        return { kind: 'count', count: r.count };
      }
      case 'delete': {
        const r = await query(sp, sql`DELETE FROM ${view} WHERE ${ident(t.key)} = $1`, [s.key]);
        return { kind: 'count', count: r.count };
      }
      case 'claim': {
        const [r] = await sp`SELECT pgwarden.claim(${s.table}, ${s.key}) AS left`;
        return { kind: 'done', detail: `claimed; ${String(r?.left)} claim(s) left today` };
      }
      case 'release': {
        await sp`SELECT pgwarden.release(${s.table}, ${s.key})`;
        return { kind: 'done', detail: 'released to the pool' };
      }
      case 'reveal': {
        const [r] = await sp`SELECT pgwarden.reveal(${s.table}, ${s.key}, ${s.column}) AS d`;
        const d = (r?.d ?? {}) as { ok?: boolean; reason?: string };
        return { kind: 'decision', ok: d.ok === true, ...(d.reason ? { reason: d.reason } : {}) };
      }
      case 'export': {
        const [r] = await sp`SELECT pgwarden.export(${s.table}, ${s.columns ?? null}::text[]) AS d`;
        const d = (r?.d ?? {}) as {
          ok?: boolean;
          reason?: string;
          rows?: number;
          columns?: string[];
        };
        return {
          kind: 'decision',
          ok: d.ok === true,
          ...(d.reason ? { reason: d.reason } : {}),
          ...(typeof d.rows === 'number' ? { rows: d.rows } : {}),
          ...(Array.isArray(d.columns) ? { columns: d.columns } : {}),
        };
      }
    }
  } catch (err) {
    return { kind: 'error', error: dbError(err) };
  }
}

/**
 * `encrypted` (column -> associated data): those columns are read decrypted, with a flag
 * k<i> that is true when the stored value is encrypted under a key the session did not supply.
 */
function cellList(columns: string[], encrypted?: Record<string, string>): Sql {
  return join(
    columns.map((c, i) => {
      const ad = encrypted?.[c];
      if (ad === undefined) return sql`${ident(c)}::text AS ${ident(`c${i}`)}`;
      const dec = sql`pgwarden.decrypt_value(${ident(c)}::text, ${literal(ad)})`;
      return sql`${dec} AS ${ident(`c${i}`)}, (${ident(c)} IS NOT NULL AND ${dec} IS NULL) AS ${ident(`k${i}`)}`;
    }),
    ', ',
  );
}

function cellValues(row: Record<string, unknown>, n: number): (string | null)[] {
  return Array.from({ length: n }, (_, i) => {
    const v = row[`c${i}`];
    return v === null || v === undefined ? null : String(v);
  });
}

// ------------------------------------------------------------------ judging

interface Verdict {
  ok: boolean;
  expected: string;
  actual: string;
}

const describeError = (e: DbError) => `${e.message}${e.code ? ` [${e.code}]` : ''}`;

function compareKeys(a: string, b: string): number {
  const na = /^-?\d+$/.test(a);
  const nb = /^-?\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `1-8, 19, 29-44`: sorted, consecutive integers as ranges. */
export function formatKeys(keys: readonly string[]): string {
  if (keys.length === 0) return 'none';
  const sorted = [...new Set(keys)].sort(compareKeys);
  const out: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i] as string;
    let j = i;
    if (/^\d+$/.test(start)) {
      while (
        j + 1 < sorted.length &&
        /^\d+$/.test(sorted[j + 1] as string) &&
        Number(sorted[j + 1]) === Number(sorted[j]) + 1
      )
        j += 1;
    }
    out.push(j - i >= 2 ? `${start}-${sorted[j]}` : sorted.slice(i, j + 1).join(', '));
    i = j + 1;
  }
  return out.join(', ');
}

const rowsWord = (n: number) => `${n} row${n === 1 ? '' : 's'}`;

function evaluate(e: Expectation, o: Outcome): Verdict {
  const s = e.statement;
  const expected = describeExpected(s);
  if (o.kind === 'act_failed')
    return {
      ok: false,
      expected,
      actual: `could not act as ${e.person}: ${describeError(o.error)}`,
    };
  switch (s.kind) {
    case 'sees':
      return judgeSees(s, o, expected);
    case 'row':
      return judgeRow(e, s, o, expected);
    default:
      return judgeOutcome(s, s.outcome, o, expected);
  }
}

function describeExpected(s: SpecStatement): string {
  if (s.kind === 'sees') {
    const parts: string[] = [];
    if (s.exactly)
      parts.push(
        s.exactly.length === 0
          ? 'no rows'
          : `exactly ${formatKeys(s.exactly)} (${rowsWord(s.exactly.length)})`,
      );
    if (s.includes) parts.push(`including ${formatKeys(s.includes)}`);
    if (s.excludes) parts.push(`not ${formatKeys(s.excludes)}`);
    if (s.count !== undefined) parts.push(rowsWord(s.count));
    return parts.join('; ');
  }
  if (s.kind === 'row')
    return s.cells
      .map(
        (c) =>
          `${c.column} ${'level' in c.expect ? c.expect.level : c.expect.value === null ? 'NULL' : JSON.stringify(c.expect.value)}`,
      )
      .join(', ');
  const o = s.outcome;
  if (o.verdict === 'refused') return o.refusedWith ? `refused with "${o.refusedWith}"` : 'refused';
  const parts = ['allowed'];
  if (o.rows !== undefined) parts.push(rowsWord(o.rows));
  if (o.columns) parts.push(`columns ${o.columns.join(', ')}`);
  return parts.join(', ');
}

function judgeSees(
  s: Extract<SpecStatement, { kind: 'sees' }>,
  o: Outcome,
  expected: string,
): Verdict {
  if (o.kind !== 'keys')
    return {
      ok: false,
      expected,
      actual: o.kind === 'error' ? `error: ${describeError(o.error)}` : 'no rows read',
    };
  const got = new Set(o.keys);
  const problems: string[] = [];
  if (s.exactly) {
    const want = new Set(s.exactly);
    const missing = [...want].filter((k) => !got.has(k));
    const extra = [...got].filter((k) => !want.has(k));
    if (missing.length) problems.push(`missing ${formatKeys(missing)}`);
    if (extra.length) problems.push(`not expected ${formatKeys(extra)}`);
  }
  if (s.includes) {
    const missing = s.includes.filter((k) => !got.has(k));
    if (missing.length) problems.push(`missing ${formatKeys(missing)}`);
  }
  if (s.excludes) {
    const extra = s.excludes.filter((k) => got.has(k));
    if (extra.length) problems.push(`sees excluded ${formatKeys(extra)}`);
  }
  if (s.count !== undefined && got.size !== s.count) problems.push(`${rowsWord(got.size)}`);
  const seen = got.size === 0 ? 'no rows' : `${formatKeys(o.keys)} (${rowsWord(got.size)})`;
  return {
    ok: problems.length === 0,
    expected,
    actual: problems.length === 0 ? seen : `${seen}: ${problems.join('; ')}`,
  };
}

function judgeRow(
  e: Expectation,
  s: Extract<SpecStatement, { kind: 'row' }>,
  o: Outcome,
  expected: string,
): Verdict {
  if (o.kind !== 'row')
    return {
      ok: false,
      expected,
      actual: o.kind === 'error' ? `error: ${describeError(o.error)}` : 'no row read',
    };
  if (!o.seen)
    return {
      ok: false,
      expected,
      actual: `row ${s.key} of ${s.table} is not visible to ${e.person}`,
    };
  const wrong: string[] = [];
  for (const [i, c] of s.cells.entries()) {
    const seen = o.seen[i] ?? null;
    const shown = seen === null ? 'NULL' : JSON.stringify(seen);
    if ('value' in c.expect) {
      if (seen !== c.expect.value) wrong.push(`${c.column} is ${shown}`);
      continue;
    }
    if (!o.stored) {
      wrong.push(`${c.column}: ${o.storedError ?? 'the stored value is unknown'}`);
      continue;
    }
    const stored = o.stored[i] ?? null;
    if (stored === null) {
      wrong.push(
        `${c.column}: the stored value is NULL, so full, masked and hidden look the same (pick a row with a value, or expect null)`,
      );
      continue;
    }
    const level = seen === null ? 'hidden' : seen === stored ? 'full' : 'masked';
    if (level !== c.expect.level)
      wrong.push(`${c.column} is ${level}${level === 'hidden' ? '' : ` (${shown})`}`);
  }
  return {
    ok: wrong.length === 0,
    expected,
    actual: wrong.length === 0 ? 'as expected' : wrong.join('; '),
  };
}

function judgeOutcome(
  s: SpecStatement,
  want: OutcomeExpectation,
  o: Outcome,
  expected: string,
): Verdict {
  if (o.kind === 'error') {
    const refusal = isRefusal(o.error.code);
    const actual = `${refusal ? 'refused' : 'failed (not a refusal)'}: ${describeError(o.error)}`;
    const ok =
      refusal &&
      want.verdict === 'refused' &&
      (!want.refusedWith || o.error.message.toLowerCase().includes(want.refusedWith.toLowerCase()));
    return { ok, expected, actual };
  }
  if (o.kind === 'count') {
    const verb = s.kind === 'insert' ? 'inserted' : s.kind === 'delete' ? 'deleted' : 'changed';
    const actual =
      o.count === 0
        ? `no error, 0 rows ${verb} (the row is not visible to the person, or not there)`
        : `allowed: ${rowsWord(o.count)} ${verb}`;
    const ok =
      want.verdict === 'allowed' &&
      (want.rows !== undefined ? o.count === want.rows : o.count >= 1);
    return { ok, expected, actual };
  }
  if (o.kind === 'done') {
    return { ok: want.verdict === 'allowed', expected, actual: `allowed: ${o.detail}` };
  }
  if (o.kind === 'decision') {
    if (!o.ok) {
      const ok =
        want.verdict === 'refused' &&
        (!want.refusedWith ||
          (o.reason ?? '').toLowerCase().includes(want.refusedWith.toLowerCase()));
      return { ok, expected, actual: `refused: ${o.reason ?? 'no reason given'}` };
    }
    const parts = ['allowed'];
    if (o.rows !== undefined) parts.push(rowsWord(o.rows));
    if (o.columns) parts.push(`columns ${o.columns.join(', ')}`);
    const sameColumns =
      !want.columns ||
      (o.columns !== undefined &&
        want.columns.length === o.columns.length &&
        want.columns.every((c) => o.columns?.includes(c)));
    const ok =
      want.verdict === 'allowed' &&
      (want.rows === undefined || o.rows === want.rows) &&
      sameColumns;
    return { ok, expected, actual: parts.join(', ') };
  }
  return { ok: false, expected, actual: 'no result' };
}
