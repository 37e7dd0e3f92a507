/**
 * Audit: statement-level AFTER triggers with transition tables on every protected table, and
 * on pgwarden's own tables, writing one record per changed row into pgwarden_audit.records
 * (see sql/003_audit.sql). Triggers are ENABLE ALWAYS, so session_replication_role = replica
 * does not silence them; TRUNCATE of a protected table is refused except for its owner role.
 *
 * Per protected table the trigger function is generated: INSERT records the new row as
 * {"new": {...}}, DELETE the old row as {"old": {...}}, UPDATE only the changed columns as
 * {"col": {"old": v, "new": w}}; sensitive columns hold keyed hashes ("hmac:...") instead of
 * values. One INSERT statement per trigger call.
 */
import type {
  AuditLogObject,
  CatalogMigrationObject,
  CatalogObject,
  FunctionObject,
  TriggerObject,
} from '../catalog/objects.js';
import type { Model, TableModel } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { typeName } from '../sql/render.js';
import type { RoleNames, Target } from './index.js';

export const AUDIT_SCHEMA = 'pgwarden_audit';

/** pgwarden's own tables whose changes are permission changes (key column for the record). */
export const CATALOG_AUDITED: readonly { table: string; key: string; hashed?: string[] }[] = [
  { table: 'applies', key: 'id' },
  { table: 'job_grants', key: 'id' },
  { table: 'job_requests', key: 'id' },
  { table: 'jobs', key: 'name' },
  { table: 'people', key: 'name' },
  // the bin holds copies of deleted rows: the log keeps only a keyed hash of them
  { table: 'recycle_bin', key: 'id', hashed: ['row_data', 'children'] },
  { table: 'claims', key: 'id' },
  { table: 'settings', key: 'key' },
  { table: 'shares', key: 'id' },
  { table: 'tables', key: 'name' },
  { table: 'temp_grants', key: 'id' },
  { table: 'unit_managers', key: 'id' },
  { table: 'units', key: 'name' },
  // assignments and project teams (sql/010)
  { table: 'attributes', key: 'name' },
  { table: 'assignments', key: 'id' },
  { table: 'teams', key: 'name' },
  { table: 'team_members', key: 'id' },
  { table: 'team_grants', key: 'id' },
  // approval-gated edits (sql/011)
  { table: 'change_rules', key: 'key' },
  { table: 'change_requests', key: 'id' },
  // field encryption (sql/015): key ids (never keys) and the encrypted columns
  { table: 'encryption_keys', key: 'key_id' },
  { table: 'encrypted_columns', key: 'key' },
];

/** A 32-bit hash of a name (for names that would exceed 63 bytes). */
function nameHash(text: string): number {
  let h = 0;
  for (const ch of text) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return h;
}

function shortHash(text: string): string {
  return nameHash(text).toString(16).padStart(8, '0');
}

export function auditFunctionName(table: TableModel): string {
  const name = `changed_${table.name}`;
  return Buffer.byteLength(name, 'utf8') <= 63 ? name : `changed_${shortHash(table.name)}`;
}

/**
 * The typed data log of a protected table (sql/018): `data_<table>`, or `data_<hash>` when the
 * name would leave no room for a partition suffix (`_YYYY_MM`, `_default`) within 63 bytes.
 */
export function dataLogName(table: TableModel): string {
  const name = `data_${table.table}`;
  return Buffer.byteLength(name, 'utf8') <= 55 ? name : `data_${shortHash(table.table)}`;
}

/** The value columns of `column` in its data log: o_/n_ for values, oh_/nh_ for keyed hashes. */
export function dataLogColumns(
  table: TableModel,
  column: string,
): { column: string; old: string; new: string; hashed: boolean } {
  const hashed = table.sensitive.includes(column);
  const name = (side: string) => {
    const n = `${side}${hashed ? 'h' : ''}_${column}`;
    return Buffer.byteLength(n, 'utf8') <= 63
      ? n
      : `${side}${hashed ? 'h' : ''}_${shortHash(column)}`;
  };
  return { column, old: name('o'), new: name('n'), hashed };
}

function dataLogObject(model: Model, table: TableModel, roles: RoleNames): AuditLogObject {
  return {
    kind: 'audit_log',
    log: dataLogName(table),
    schema: model.schemas.protected,
    table: table.table,
    key: table.key,
    columns: table.columns.map((c) => dataLogColumns(table, c.name)),
    owner: roles.auditOwner,
  };
}

/** Text of a value that does not depend on TimeZone, DateStyle or extra_float_digits. */
function stableText(c: Sql, type: string | null): Sql {
  const t = (type ?? '').toLowerCase();
  if (t.startsWith('timestamp') && t.includes('with time zone'))
    return sql`pg_catalog.to_char(${c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  if (t.startsWith('timestamp')) return sql`pg_catalog.to_char(${c}, 'YYYY-MM-DD"T"HH24:MI:SS.US')`;
  if (t === 'date') return sql`pg_catalog.to_char(${c}, 'YYYY-MM-DD')`;
  if (t === 'real' || t === 'double precision' || t.startsWith('float'))
    return sql`(${c})::numeric::text`;
  return sql`${c}::text`;
}

function value(table: TableModel, alias: string, column: string): Sql {
  const c = sql`${unsafeRaw(alias)}.${ident(column)}`;
  if (!table.sensitive.includes(column)) return c;
  const type = table.columns.find((x) => x.name === column)?.type ?? null;
  return sql`CASE WHEN ${c} IS NULL THEN NULL ELSE 'hmac:' || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256((SELECT hk.key FROM pgwarden_audit.hash_key hk) || pg_catalog.convert_to(${stableText(c, type)}, 'UTF8')), 'hex'), 32) END`;
}

/**
 * The Citus target's audit table of one protected table (docs/distributed.md): the columns of
 * `records` plus `dist_key`, the table's key, by which it is distributed co-located with the
 * table, so each row trigger writes to the shard next to the row's. Not partitioned, not chained.
 */
export function citusAuditTableName(table: TableModel): string {
  const name = `changes_${table.name}`;
  if (Buffer.byteLength(name, 'utf8') <= 63) return name;
  return auditFunctionName(table).replace(/^changed_/, 'changes_');
}

function citusAuditTable(
  model: Model,
  table: TableModel,
  roles: RoleNames,
): CatalogMigrationObject {
  const t = qualified(AUDIT_SCHEMA, citusAuditTableName(table)).text;
  // a stable version per table (generated objects of kind catalog run once, like sql/ files)
  return {
    kind: 'catalog',
    version: 900000 + (nameHash(table.name) % 100000),
    file: `citus audit table ${t}`,
    owner: roles.auditOwner,
    sql: `CREATE TABLE ${t} (
  dist_key ${typeName(table.keyType).text} NOT NULL,
  id bigserial NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  kind text NOT NULL DEFAULT 'data' CHECK (kind = 'data'),
  table_name text NOT NULL,
  operation text NOT NULL,
  row_key text,
  changes jsonb,
  person text,
  actor name NOT NULL,
  authenticator name NOT NULL,
  txid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
  statement_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
  detail jsonb
);
COMMENT ON TABLE ${t} IS ${literal(`Citus target: one record per row change of ${model.schemas.protected}.${table.table}, distributed by dist_key co-located with it. Append-only; not in the hash chain.`).text};
REVOKE ALL ON TABLE ${t} FROM PUBLIC;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION pgwarden_audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_audit.refuse_change();
ALTER TABLE ${t} ENABLE ALWAYS TRIGGER append_only;
ALTER TABLE ${t} ENABLE ALWAYS TRIGGER append_only_truncate;`,
  };
}

/**
 * The first variables of every data-change trigger function: the acting role (what
 * pgwarden.caller() computes) and the approved change being applied, if any (sql/011, 012).
 */
const ACTOR_DECLARE = `  actor name := CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
                     ELSE pg_catalog.current_setting('role')::name END;
  chg jsonb := CASE WHEN pg_catalog.current_setting('pgwarden.applying_change', true) <> ''
                    THEN pgwarden_audit.applying_change() END;
`;

/** A data-change trigger function of a protected table, owned by the audit owner. */
function triggerFunction(
  table: TableModel,
  roles: RoleNames,
  body: Sql,
  comment: string,
): FunctionObject {
  return {
    kind: 'function',
    schema: AUDIT_SCHEMA,
    name: auditFunctionName(table),
    args: [],
    returns: 'trigger',
    language: 'plpgsql',
    volatility: 'volatile',
    securityDefiner: true,
    owner: roles.auditOwner,
    body: body.text,
    comment,
  };
}

/** The keyed hash of a sensitive value as stored in a data log: 16 bytes (NULL stays NULL). */
function hashed(table: TableModel, alias: string, column: string): Sql {
  const c = sql`${unsafeRaw(alias)}.${ident(column)}`;
  const type = table.columns.find((x) => x.name === column)?.type ?? null;
  return sql`pg_catalog.substr(pg_catalog.sha256((SELECT pgwarden_audit._hash_key()) || pg_catalog.convert_to(${stableText(c, type)}, 'UTF8')), 1, 16)`;
}

/**
 * The trigger function of a protected table (PostgreSQL target): one INSERT per trigger call
 * into the table's typed data log (sql/018), with no jsonb on the write path. INSERT and
 * DELETE store every column of the row, UPDATE the old and new values of the changed columns
 * only (NULL on both sides: unchanged); sensitive columns as 16-byte keyed hashes.
 */
function dataLogFunction(model: Model, table: TableModel, roles: RoleNames): FunctionObject {
  const name = `${model.schemas.protected}.${table.table}`;
  const log = qualified(AUDIT_SCHEMA, dataLogName(table));
  const pairs = table.columns.map((c) => dataLogColumns(table, c.name));
  const key = ident(table.key);
  const value = (alias: string, column: string, isHashed: boolean) =>
    isHashed ? hashed(table, alias, column) : sql`${unsafeRaw(alias)}.${ident(column)}`;
  const insert = (
    op: 'I' | 'U' | 'D',
    keyExpr: Sql,
    targets: Sql[],
    values: Sql[],
    from: Sql,
    p: { actor: Sql; chg: Sql; at: Sql; tx: Sql; st: Sql },
  ) => {
    // an approved change (sql/011, 012): the requester's change, approved by the approver
    const approved = sql`${p.chg} IS NOT NULL AND ${keyExpr}::text = ${p.chg} ->> 'row_key'`;
    return sql`INSERT INTO ${log} (recorded_at, op, key, person, actor, authenticator, txid, statement_at, detail, ${join(targets, ', ')})
      SELECT ${p.at}, ${literal(op)}, ${keyExpr}, COALESCE(CASE WHEN ${approved} THEN ${p.chg} ->> 'requested_by' END, (SELECT p.name FROM pgwarden.people p WHERE p.role = ${p.actor} AND p.active)), ${p.actor}, session_user, ${p.tx}, ${p.st}, CASE WHEN ${approved} THEN ${p.chg} - 'row_key' END,
        ${join(values, ',\n        ')}
      FROM ${from}`;
  };
  const vars = {
    actor: unsafeRaw('actor'),
    chg: unsafeRaw('chg'),
    at: unsafeRaw('at'),
    tx: unsafeRaw('tx'),
    st: unsafeRaw('st'),
  };
  const params = {
    actor: unsafeRaw('$1::name'),
    chg: unsafeRaw('$2::jsonb'),
    at: unsafeRaw('$3::timestamptz'),
    tx: unsafeRaw('$4::xid8'),
    st: unsafeRaw('$5::timestamptz'),
  };
  const image = (op: 'I' | 'D', alias: string, from: Sql) =>
    insert(
      op,
      sql`${unsafeRaw(alias)}.${key}`,
      pairs.map((x) => ident(op === 'I' ? x.new : x.old)),
      pairs.map((x) => value(alias, x.column, x.hashed)),
      from,
      vars,
    );
  const changed = (c: string) => sql`o.${ident(c)} IS DISTINCT FROM n.${ident(c)}`;
  const update = (p: typeof vars) =>
    insert(
      'U',
      sql`COALESCE(n.${key}, o.${key})`,
      pairs.flatMap((x) => [ident(x.old), ident(x.new)]),
      pairs.flatMap((x) => [
        sql`CASE WHEN ${changed(x.column)} THEN ${value('o', x.column, x.hashed)} END`,
        sql`CASE WHEN ${changed(x.column)} THEN ${value('n', x.column, x.hashed)} END`,
      ]),
      sql`old_rows o FULL JOIN new_rows n ON o.${key} = n.${key}`,
      p,
    );
  // A large UPDATE is planned for its own size (dynamic SQL), so that its plan is never the one
  // cached for the single-row updates that follow in the same session.
  const body = sql`
DECLARE
${unsafeRaw(ACTOR_DECLARE)}  at timestamptz := pg_catalog.clock_timestamp();
  tx xid8 := pg_catalog.pg_current_xact_id();
  st timestamptz := pg_catalog.statement_timestamp();
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${image('I', 'n', unsafeRaw('new_rows n'))};
  ELSIF TG_OP = 'UPDATE' THEN
    IF (SELECT count(*) FROM (SELECT FROM new_rows LIMIT 101) x) > 100 THEN
      EXECUTE ${literal(update(params).text)} USING actor, chg, at, tx, st;
    ELSE
      ${update(vars)};
    END IF;
  ELSE
    ${image('D', 'o', unsafeRaw('old_rows o'))};
  END IF;
  RETURN NULL;
END
`;
  return triggerFunction(
    table,
    roles,
    body,
    `pgwarden: records every row change of ${name} in its audit log ${dataLogName(table)}`,
  );
}

/**
 * The Citus target's trigger function of a protected table: a row trigger (statement triggers
 * fire once per shard there, and INSERT ... SELECT from a transition table into a distributed
 * table fails) writing jsonb records to the co-located table (docs/distributed.md).
 */
function citusAuditFunction(model: Model, table: TableModel, roles: RoleNames): FunctionObject {
  const name = `${model.schemas.protected}.${table.table}`;
  const cols = table.columns.map((c) => c.name);
  const obj = (parts: Sql[]) =>
    sql`pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(\n        ${join(parts, ',\n        ')}))`;
  // INSERT records the new row, DELETE the old one: one to_jsonb of the row, with the
  // sensitive columns replaced by keyed hashes. UPDATE records only the changed columns.
  const sens = cols.filter((c) => table.sensitive.includes(c));
  const rowJson = (alias: string) =>
    sens.length === 0
      ? sql`pg_catalog.to_jsonb(${unsafeRaw(alias)})`
      : sql`pg_catalog.to_jsonb(${unsafeRaw(alias)}) || pg_catalog.jsonb_build_object(${join(
          sens.map((c) => sql`${literal(c)}, ${value(table, alias, c)}`),
          ', ',
        )})`;
  const inserted = sql`pg_catalog.jsonb_build_object('new', ${rowJson('n')})`;
  const deleted = sql`pg_catalog.jsonb_build_object('old', ${rowJson('o')})`;
  const updated = obj(
    cols.map(
      (c) =>
        sql`${literal(c)}, CASE WHEN o.${ident(c)} IS DISTINCT FROM n.${ident(c)} THEN pg_catalog.jsonb_build_object('old', ${value(table, 'o', c)}, 'new', ${value(table, 'n', c)}) END`,
    ),
  );
  const key = ident(table.key);
  const insert = (op: string, keyExpr: Sql, changes: Sql, from: Sql) => {
    // an approved change (sql/011, 012): the requester's change, approved by the approver
    const approved = sql`chg IS NOT NULL AND ${keyExpr} = chg ->> 'row_key'`;
    const dist =
      op === 'INSERT'
        ? sql`n.${key}`
        : op === 'DELETE'
          ? sql`o.${key}`
          : sql`COALESCE(n.${key}, o.${key})`;
    return sql`INSERT INTO ${qualified(AUDIT_SCHEMA, citusAuditTableName(table))} (dist_key, table_name, operation, row_key, changes, person, actor, authenticator, detail)
      SELECT ${dist}, ${literal(name)}, ${literal(op)}, ${keyExpr}, ${changes}, COALESCE(CASE WHEN ${approved} THEN chg ->> 'requested_by' END, (SELECT p.name FROM pgwarden.people p WHERE p.role = actor AND p.active)), actor, session_user, CASE WHEN ${approved} THEN chg - 'row_key' END
      FROM ${from}`;
  };
  const updateKey = sql`COALESCE(n.${key}, o.${key})::text`;
  const body = sql`
DECLARE
${unsafeRaw(ACTOR_DECLARE)}BEGIN
  IF TG_OP = 'INSERT' THEN
    ${insert('INSERT', sql`n.${key}::text`, inserted, unsafeRaw('(SELECT NEW.*) n'))};
  ELSIF TG_OP = 'UPDATE' THEN
    ${insert('UPDATE', updateKey, updated, unsafeRaw('(SELECT OLD.*) o, (SELECT NEW.*) n'))};
  ELSE
    ${insert('DELETE', sql`o.${key}::text`, deleted, unsafeRaw('(SELECT OLD.*) o'))};
  END IF;
  RETURN NULL;
END
`;
  return triggerFunction(
    table,
    roles,
    body,
    `pgwarden: records every row change of ${name} in the audit log`,
  );
}

function changeTriggers(
  schema: string,
  table: string,
  fn: { schema: string; name: string },
  args?: string[],
): TriggerObject[] {
  const base = {
    kind: 'trigger' as const,
    schema,
    table,
    timing: 'after' as const,
    level: 'statement' as const,
    function: fn,
    always: true,
  };
  const withArgs = args ? { args } : {};
  return [
    {
      ...base,
      ...withArgs,
      name: 'pgwarden_audit_insert',
      events: ['insert'],
      transition: { new: 'new_rows' },
    },
    {
      ...base,
      ...withArgs,
      name: 'pgwarden_audit_update',
      events: ['update'],
      transition: { old: 'old_rows', new: 'new_rows' },
    },
    {
      ...base,
      ...withArgs,
      name: 'pgwarden_audit_delete',
      events: ['delete'],
      transition: { old: 'old_rows' },
    },
  ];
}

export function auditObjects(
  model: Model,
  roles: RoleNames,
  target: Target = 'postgres',
): CatalogObject[] {
  const out: CatalogObject[] = [];
  for (const table of model.tables) {
    const fn =
      target === 'citus'
        ? citusAuditFunction(model, table, roles)
        : dataLogFunction(model, table, roles);
    if (target !== 'citus') out.push(dataLogObject(model, table, roles));
    out.push(fn);
    const triggers = changeTriggers(model.schemas.protected, table.table, {
      schema: AUDIT_SCHEMA,
      name: fn.name,
    });
    if (target === 'citus') {
      out.push(citusAuditTable(model, table, roles));
      // the same three triggers, per row: ({ transition, ...t } drops the transition tables)
      for (const { transition: _t, ...t } of triggers) out.push({ ...t, level: 'row' });
    } else out.push(...triggers);
    out.push({
      kind: 'trigger',
      schema: model.schemas.protected,
      table: table.table,
      name: 'pgwarden_no_truncate',
      timing: 'before',
      level: 'statement',
      events: ['truncate'],
      function: { schema: AUDIT_SCHEMA, name: 'refuse_truncate' },
      args: [roles.tableOwner],
      always: true,
    });
  }
  for (const c of CATALOG_AUDITED) {
    const args = c.hashed ? [c.key, c.hashed.join(',')] : [c.key];
    out.push(
      ...changeTriggers(
        'pgwarden',
        c.table,
        { schema: AUDIT_SCHEMA, name: 'catalog_changed' },
        args,
      ),
    );
  }
  return out;
}
