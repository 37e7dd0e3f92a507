/**
 * Writing the model in TypeScript: `defineModel` (typed identity) and `table(drizzleTable, spec)`,
 * which takes the table name, columns, SQL types and primary key from a drizzle definition and
 * makes every column name in the spec type-checked (`owner: 'ownr'` does not compile).
 */
import { type Column as DrizzleColumn, getTableColumns } from 'drizzle-orm';
import { getTableConfig, type PgTable } from 'drizzle-orm/pg-core';
import type {
  CellInput,
  EncryptedInput,
  ModelInput,
  RuleInput,
  ScopeInput,
  TableInput,
  TableSpecInput,
} from './types.js';
import { normalizeKeyType } from './validate.js';

/** The identity, typed: gives editor completion and checks the model's shape at compile time. */
export function defineModel<const M extends ModelInput>(m: M): M {
  return m;
}

/** Column keys of a drizzle table, as written in the drizzle definition. */
export type ColumnNames<T extends PgTable> = Extract<keyof T['_']['columns'], string>;

/**
 * A protected table from its drizzle definition. Column names in `spec` are the drizzle keys;
 * they are mapped to SQL names (for our examples both are the same). Filters are SQL and use SQL
 * names. The table's drizzle schema is not checked here; see `protectedSchemaOf`.
 */
export function table<T extends PgTable>(t: T, spec: TableSpecInput<ColumnNames<T>>): TableInput {
  const config = getTableConfig(t);
  const byKey = getTableColumns(t) as Record<string, DrizzleColumn>;
  const sqlName = (key: string): string => byKey[key]?.name ?? key;

  const columns = config.columns.map((c) => ({ name: c.name, type: c.getSQLType() }));
  const primary = config.columns.filter((c) => c.primary);
  const keyColumn =
    spec.key !== undefined
      ? sqlName(spec.key)
      : primary.length === 1
        ? primary[0]?.name
        : undefined;
  const keyType = config.columns.find((c) => c.name === keyColumn)?.getSQLType();

  const scope = (s: ScopeInput<ColumnNames<T>>): ScopeInput =>
    typeof s === 'object' && 'parent' in s
      ? { parent: { ...s.parent, column: sqlName(s.parent.column) } }
      : typeof s === 'object' && 'assigned' in s && !Array.isArray(s.assigned)
        ? {
            assigned: Object.fromEntries(
              Object.entries(s.assigned as Record<string, string>).map(([a, c]) => [a, sqlName(c)]),
            ),
          }
        : s;
  const rules: RuleInput[] = spec.rules.map((r) => ({ ...r, scopes: r.scopes.map(scope) }));

  const out: TableInput = { name: config.name, columns, rules };
  if (keyColumn !== undefined) out.key = keyColumn;
  if (keyType !== undefined) out.keyType = normalizeKeyType(keyType);
  if (spec.owner !== undefined) out.owner = sqlName(spec.owner);
  if (spec.unit !== undefined) out.unit = sqlName(spec.unit);
  if (spec.pool !== undefined) out.pool = sqlName(spec.pool);
  if (spec.grantable !== undefined) out.grantable = spec.grantable.map(sqlName);
  if (spec.cells !== undefined) {
    const cells: Record<string, CellInput> = {};
    for (const [k, cell] of Object.entries(spec.cells) as [string, CellInput | undefined][]) {
      if (cell !== undefined) cells[sqlName(k)] = cell;
    }
    out.cells = cells;
  }
  if (spec.edits !== undefined) {
    const edits: Record<string, readonly string[]> = {};
    for (const [k, who] of Object.entries(spec.edits) as [
      string,
      readonly string[] | undefined,
    ][]) {
      if (who !== undefined) edits[sqlName(k)] = who;
    }
    out.edits = edits;
  }
  if (spec.changeApproval !== undefined) {
    const columns: Record<string, unknown> = {};
    for (const [k, g] of Object.entries(spec.changeApproval.columns)) {
      if (g !== undefined) columns[sqlName(k)] = g;
    }
    out.changeApproval = {
      ...(spec.changeApproval.expiresAfterHours !== undefined
        ? { expiresAfterHours: spec.changeApproval.expiresAfterHours }
        : {}),
      columns: columns as NonNullable<TableInput['changeApproval']>['columns'],
    };
  }
  if (spec.claims !== undefined) out.claims = spec.claims;
  if (spec.recycleBin !== undefined) out.recycleBin = spec.recycleBin;
  if (spec.sensitive !== undefined) out.sensitive = spec.sensitive.map(sqlName);
  if (spec.encrypted !== undefined) {
    if (Array.isArray(spec.encrypted)) out.encrypted = (spec.encrypted as string[]).map(sqlName);
    else {
      const enc: Record<string, EncryptedInput> = {};
      for (const [k, e] of Object.entries(spec.encrypted) as [string, EncryptedInput | undefined][])
        if (e !== undefined) enc[sqlName(k)] = e;
      out.encrypted = enc;
    }
  }
  if (spec.reveal !== undefined) {
    const columns: Record<string, readonly string[]> = {};
    for (const [k, who] of Object.entries(spec.reveal.columns) as [
      string,
      readonly string[] | undefined,
    ][]) {
      if (who !== undefined) columns[sqlName(k)] = who;
    }
    out.reveal = { columns, perDay: spec.reveal.perDay };
  }
  if (spec.readCap !== undefined) out.readCap = spec.readCap;
  if (spec.exports !== undefined) {
    const exports: Record<
      string,
      { columns: string[]; perDay: number; approval?: { columns: string[]; approvers?: 1 | 2 } }
    > = {};
    for (const [job, e] of Object.entries(spec.exports)) {
      exports[job] = {
        columns: e.columns.map(sqlName),
        perDay: e.perDay,
        ...(e.approval
          ? {
              approval: {
                columns: e.approval.columns.map(sqlName),
                ...(e.approval.approvers ? { approvers: e.approval.approvers } : {}),
              },
            }
          : {}),
      };
    }
    out.exports = exports;
  }
  return out;
}

/** The schema a drizzle table is declared in (`public` when none). */
export function protectedSchemaOf(t: PgTable): string {
  return getTableConfig(t).schema ?? 'public';
}
