/**
 * Reveal and export from an application or the CLI. Each runs in two transactions as the
 * person (see sql/005_reveal_export.sql): the decision is recorded and committed first, then
 * the data is read. A refusal becomes a PgwardenError (code `refused_<reason>`) whose message
 * names the rule; the refusal itself is already recorded and alerted.
 *
 *   const phone = await reveal(sql, 'alice', 'customers', '42', 'id_number');
 *   const { value, masked, notice } = await revealCell(sql, 'alice', 'customers', '42', 'id_number', { keys });
 *   const started = await startExport(sql, 'carol', { table: 'customers' });
 *   for await (const rows of exportBatches(sql, 'carol', started.export)) ...
 */
import type postgres from 'postgres';
import { PgwardenError } from '../errors.js';
import { setTransactionKeys } from './keys.js';
import { type PersonOptions, transactionKeys, withPerson } from './with-person.js';

interface Decision {
  ok: boolean;
  reason?: string;
  code?: string;
  reveal?: number;
  export?: number;
  rows?: number;
  columns?: string[];
}

function refused(d: Decision, what: string): PgwardenError {
  const hint =
    d.code === 'quota'
      ? 'The quota resets at midnight UTC.'
      : d.code === 'needs_approval'
        ? 'Request it (pgwarden request export ...) and have an approver approve it.'
        : 'The model does not allow it; the attempt was recorded.';
  const err = new PgwardenError(
    `refused_${d.code ?? 'denied'}`,
    `${what} refused: ${d.reason ?? 'not allowed'}`,
    hint,
  );
  (err as unknown as { sqlstate: string }).sqlstate = '42501';
  return err;
}

/** What a reveal returns: the cell, or its mask when the session lacks the key, and why. */
export interface RevealResult {
  /** the cell in full; '****' when `masked` */
  value: string | null;
  /**
   * true when the column is encrypted and the session supplied no key for this value: the
   * reveal was allowed and recorded, but only the mask can be shown
   */
  masked: boolean;
  /** why it is masked, from the database (names the column and the key id, never a key) */
  notice?: string;
}

export interface RevealOptions extends PersonOptions {
  /** called with the database's explanation when the value comes back masked (no key) */
  onNotice?: (notice: string) => void;
}

/**
 * Reveal one cell and say whether it could be decrypted. Refusals throw, as with reveal();
 * a missing key does not: the result is the mask with `masked: true` and a `notice`.
 *
 *   const r = await revealCell(sql, 'alice', 'customers', '1', 'id_number', { keys: envKey() });
 *   // { value: '110101199001011000', masked: false }, or without the key:
 *   // { value: '****', masked: true, notice: 'crm.customers.id_number is encrypted and ...' }
 */
export async function revealCell(
  sql: postgres.Sql,
  person: string,
  table: string,
  key: string,
  column: string,
  options: PersonOptions = {},
): Promise<RevealResult> {
  const [row] = await withPerson(
    sql,
    person,
    (tx) => tx`SELECT pgwarden.reveal(${table}, ${key}, ${column}) AS d`,
    options,
  );
  const d = row?.d as Decision & { masked?: boolean; notice?: string };
  if (!d?.ok) throw refused(d, `reveal of ${table} ${key} ${column}`);
  const [value] = await withPerson(
    sql,
    person,
    (tx) => tx`SELECT pgwarden.revealed(${d.reveal as number}) AS v`,
    options,
  );
  const v = (value?.v as string | null) ?? null;
  return d.masked === true
    ? { value: v, masked: true, ...(d.notice ? { notice: d.notice } : {}) }
    : { value: v, masked: false };
}

/**
 * Reveal one cell: its value, or, for an encrypted column whose key the session did not
 * supply, the mask '****' (options.onNotice then gets the reason; revealCell returns it).
 */
export async function reveal(
  sql: postgres.Sql,
  person: string,
  table: string,
  key: string,
  column: string,
  options: RevealOptions = {},
): Promise<string | null> {
  const { onNotice, ...rest } = options;
  const r = await revealCell(sql, person, table, key, column, rest);
  if (r.masked && onNotice)
    onNotice(r.notice ?? `${table}.${column} is encrypted and no key was supplied`);
  return r.value;
}

export interface ExportRequest {
  table: string;
  /** default: every column the person may export */
  columns?: readonly string[];
  /** column -> value or values (equality) */
  filter?: Readonly<Record<string, string | readonly string[]>>;
  /** an approved export request, for columns that need one */
  request?: number;
}

export interface ExportStarted {
  export: number;
  rows: number;
  columns: string[];
}

/** Step 1: the decision, recorded and committed. Throws on refusal. */
export async function startExport(
  sql: postgres.Sql,
  person: string,
  req: ExportRequest,
  options: PersonOptions = {},
): Promise<ExportStarted> {
  const [row] = await withPerson(
    sql,
    person,
    (tx) =>
      tx`SELECT pgwarden.export(${req.table}, ${(req.columns as string[] | undefined) ?? null}::text[], ${tx.json((req.filter ?? {}) as never)}, ${req.request ?? null}::bigint) AS d`,
    options,
  );
  const d = row?.d as Decision;
  if (!d?.ok) throw refused(d, `export of ${req.table}`);
  return { export: d.export as number, rows: d.rows as number, columns: d.columns as string[] };
}

/** Step 2: the rows, in batches, with a cursor (memory does not grow with the row count). */
export async function* exportBatches(
  sql: postgres.Sql,
  person: string,
  exportId: number,
  options: PersonOptions & { batch?: number } = {},
): AsyncGenerator<Record<string, unknown>[]> {
  const keys = await transactionKeys(options);
  const reserved = await sql.reserve();
  try {
    await reserved`BEGIN`;
    await reserved`SELECT pg_catalog.set_config('role', ${(options.rolePrefix ?? '') + person}, true)`;
    if (keys)
      await setTransactionKeys(
        (v) => reserved`SELECT pg_catalog.set_config('pgwarden.keys', ${v}, true)`,
        keys,
      );
    for await (const rows of reserved`SELECT r FROM pgwarden.export_rows(${exportId}) AS r`.cursor(
      options.batch ?? 1000,
    )) {
      yield rows.map((x) => x.r as Record<string, unknown>);
    }
    await reserved`COMMIT`;
  } catch (e) {
    await reserved`ROLLBACK`.catch(() => undefined);
    throw e;
  } finally {
    reserved.release();
  }
}

/**
 * Parses a --where text into an export filter: column = 'value', column IN ('a', 'b'), joined
 * by AND. Anything else is refused: the filter runs inside pgwarden's export function, which
 * takes data, never SQL.
 */
export async function parseWhere(text: string): Promise<Record<string, string[]>> {
  const { parse } = await import('../sql/pg-parser.js');
  const bad = () =>
    new PgwardenError(
      'invalid_filter',
      `--where ${JSON.stringify(text)} is not a supported filter`,
      "Use column = 'value' and column IN ('a', 'b'), joined by AND.",
    );
  let tree: { stmts: { stmt: { SelectStmt?: { whereClause?: unknown } } }[] };
  try {
    tree = (await parse(`SELECT 1 WHERE ${text}`)) as typeof tree;
  } catch {
    throw bad();
  }
  if (tree.stmts.length !== 1) throw bad();
  const out: Record<string, string[]> = {};
  const constant = (n: unknown): string => {
    const c = (n as { A_Const?: { sval?: { sval: string }; ival?: { ival?: number } } }).A_Const;
    if (c?.sval) return c.sval.sval;
    if (c?.ival) return String(c.ival.ival ?? 0);
    throw bad();
  };
  const column = (n: unknown): string => {
    const f = (n as { ColumnRef?: { fields: { String?: { sval: string } }[] } }).ColumnRef?.fields;
    const name = f?.length === 1 ? f[0]?.String?.sval : undefined;
    if (name === undefined) throw bad();
    return name;
  };
  const walk = (n: unknown): void => {
    const b = (n as { BoolExpr?: { boolop: string; args: unknown[] } }).BoolExpr;
    if (b) {
      if (b.boolop !== 'AND_EXPR') throw bad();
      for (const a of b.args) walk(a);
      return;
    }
    const e = (
      n as {
        A_Expr?: {
          kind: string;
          name: { String: { sval: string } }[];
          lexpr: unknown;
          rexpr: unknown;
        };
      }
    ).A_Expr;
    if (!e) throw bad();
    const col = column(e.lexpr);
    let values: string[];
    if (e.kind === 'AEXPR_OP' && e.name[0]?.String.sval === '=') values = [constant(e.rexpr)];
    else if (e.kind === 'AEXPR_IN' && e.name[0]?.String.sval === '=') {
      values = ((e.rexpr as { List?: { items: unknown[] } }).List?.items ?? []).map(constant);
    } else throw bad();
    out[col] = out[col] ? out[col].filter((v) => values.includes(v)) : values;
  };
  walk(tree.stmts[0]?.stmt.SelectStmt?.whereClause);
  return out;
}
