/**
 * The intermediate representation: catalog objects. Both the model (through compile) and the
 * live database (through introspect and the applied-object registry) are described with these,
 * and the differ compares only these. Plain, readonly, JSON-serializable data.
 */

export interface RoleObject {
  kind: 'role';
  name: string;
  login: boolean;
  inherit: boolean;
  bypassrls: boolean;
  createrole: boolean;
  comment: string;
}

/** `member` may act as `role`. With `admin` (PG16+ semantics), `member` may grant `role` but does not inherit it. */
export interface MembershipObject {
  kind: 'membership';
  role: string;
  member: string;
  admin: boolean;
}

export interface SchemaObject {
  kind: 'schema';
  name: string;
  owner: string;
  /** created by pgwarden when missing; otherwise it must exist (protected schema) */
  create: boolean;
}

/** A versioned file of sql/, run as the catalog owner. */
export interface CatalogMigrationObject {
  kind: 'catalog';
  version: number;
  file: string;
  owner: string;
  sql: string;
}

/**
 * The typed data log of a protected table (pgwarden_audit.<log>, sql/018): created, or widened
 * with the columns it lacks, by pgwarden_audit.ensure_data_log(); never narrowed or dropped,
 * since it holds audit records.
 */
export interface AuditLogObject {
  kind: 'audit_log';
  log: string;
  schema: string;
  table: string;
  key: string;
  /** per table column: its old and new value columns in the log; hashed: keyed hashes (bytea) */
  columns: readonly { column: string; old: string; new: string; hashed: boolean }[];
  owner: string;
}

/** A row of one of pgwarden's own tables that the model owns. */
export interface CatalogRowObject {
  kind: 'catalog_row';
  table:
    | 'settings'
    | 'jobs'
    | 'tables'
    | 'reveal_rules'
    | 'export_rules'
    | 'read_caps'
    | 'attributes'
    | 'change_rules'
    | 'encrypted_columns'
    | 'row_checks';
  /** primary-key column and value */
  keyColumn: string;
  key: string;
  values: Readonly<Record<string, CatalogValue>>;
}

/** A value of a catalog row; `{ json }` is stored in a jsonb column. */
export type CatalogValue = string | number | boolean | readonly string[] | { json: string } | null;

export interface TableOwnerObject {
  kind: 'table_owner';
  schema: string;
  table: string;
  owner: string;
}

/** ENABLE and FORCE row level security. */
export interface RlsObject {
  kind: 'rls';
  schema: string;
  table: string;
}

export interface FunctionObject {
  kind: 'function';
  schema: string;
  name: string;
  args: readonly { name: string; type: string }[];
  returns: string;
  language: 'sql' | 'plpgsql';
  volatility: 'immutable' | 'stable' | 'volatile';
  securityDefiner: boolean;
  owner: string;
  body: string;
  comment: string;
  /** extra settings of the function (SET name = value), besides the pinned search_path */
  config?: Readonly<Record<string, string>>;
}

export interface ViewObject {
  kind: 'view';
  schema: string;
  name: string;
  owner: string;
  /** the SELECT, rendered */
  query: string;
  /** column defaults on the view (evaluated as the inserting person) */
  defaults: Readonly<Record<string, string>>;
  comment: string;
}

export interface PolicyObject {
  kind: 'policy';
  schema: string;
  table: string;
  name: string;
  command: 'select' | 'insert' | 'update' | 'delete' | 'all';
  permissive: boolean;
  to: readonly string[];
  using: string | null;
  check: string | null;
}

export type GrantTarget =
  | { kind: 'schema'; name: string }
  | { kind: 'table'; schema: string; name: string }
  | { kind: 'function'; schema: string; name: string; args: readonly string[] };

export interface GrantObject {
  kind: 'grant';
  target: GrantTarget;
  privileges: readonly string[];
  grantee: string;
  /**
   * Column privileges on a table (the Citus target): exactly these columns, no table-level
   * privilege. Absent: the privileges on the whole object.
   */
  columns?: readonly string[];
}

/** A row trigger; INSTEAD OF triggers make writes through a view go through checked functions. */
export interface TriggerObject {
  kind: 'trigger';
  schema: string;
  /** the table or view it is on */
  table: string;
  name: string;
  timing: 'instead of' | 'before' | 'after';
  level: 'row' | 'statement';
  events: readonly ('insert' | 'update' | 'delete' | 'truncate')[];
  function: { schema: string; name: string };
  /** string arguments (TG_ARGV) */
  args?: readonly string[];
  /** transition table names (statement-level AFTER triggers) */
  transition?: { old?: string; new?: string };
  /** ENABLE ALWAYS: fires even with session_replication_role = replica */
  always?: boolean;
}

/** Revoke what PUBLIC holds on an object (tables and functions of protected schemas). */
export interface RevokePublicObject {
  kind: 'revoke_public';
  target: GrantTarget;
}

export type CatalogObject =
  | RoleObject
  | MembershipObject
  | SchemaObject
  | CatalogMigrationObject
  | CatalogRowObject
  | AuditLogObject
  | TableOwnerObject
  | RlsObject
  | FunctionObject
  | ViewObject
  | PolicyObject
  | TriggerObject
  | GrantObject
  | RevokePublicObject;

export type ObjectKind = CatalogObject['kind'];
export type ObjectOf<K extends ObjectKind> = Extract<CatalogObject, { kind: K }>;

/** Creation order; drops go in reverse. Every kind must be listed (checked by the type). */
export const KIND_RANK: { readonly [K in ObjectKind]: number } = {
  role: 10,
  membership: 15,
  schema: 20,
  catalog: 30,
  catalog_row: 35,
  audit_log: 37,
  table_owner: 40,
  revoke_public: 45,
  rls: 50,
  function: 60,
  view: 70,
  trigger: 75,
  policy: 80,
  grant: 90,
};

function targetKey(t: GrantTarget): string {
  switch (t.kind) {
    case 'schema':
      return `schema:${t.name}`;
    case 'table':
      return `table:${t.schema}.${t.name}`;
    case 'function':
      return `function:${t.schema}.${t.name}(${t.args.join(',')})`;
  }
}

/** A stable key: the same object in the model and in the database has the same key. */
export function objectKey(o: CatalogObject): string {
  switch (o.kind) {
    case 'role':
      return `role:${o.name}`;
    case 'membership':
      return `membership:${o.role}>${o.member}`;
    case 'schema':
      return `schema:${o.name}`;
    case 'catalog':
      return `catalog:${String(o.version).padStart(3, '0')}`;
    case 'catalog_row':
      return `catalog_row:${o.table}:${o.key}`;
    case 'audit_log':
      return `audit_log:${o.log}`;
    case 'table_owner':
      return `table_owner:${o.schema}.${o.table}`;
    case 'rls':
      return `rls:${o.schema}.${o.table}`;
    case 'function':
      return `function:${o.schema}.${o.name}(${o.args.map((a) => a.type).join(',')})`;
    case 'view':
      return `view:${o.schema}.${o.name}`;
    case 'policy':
      return `policy:${o.schema}.${o.table}:${o.name}`;
    case 'trigger':
      return `trigger:${o.schema}.${o.table}:${o.name}`;
    case 'grant':
      return `grant:${targetKey(o.target)}:${o.grantee}:${o.privileges.join(',')}${o.columns ? `(${o.columns.join(',')})` : ''}`;
    case 'revoke_public':
      return `revoke_public:${targetKey(o.target)}`;
  }
}

/** Keys of the objects this one lives on: recreating those recreates this one. */
export function dependsOn(o: CatalogObject): string[] {
  switch (o.kind) {
    case 'grant':
    case 'revoke_public':
      if (o.target.kind === 'table') return [`view:${o.target.schema}.${o.target.name}`];
      if (o.target.kind === 'function') {
        return [`function:${o.target.schema}.${o.target.name}(${o.target.args.join(',')})`];
      }
      return [];
    case 'trigger':
      return [`view:${o.schema}.${o.table}`];
    default:
      return [];
  }
}

/** Rows of pgwarden's own tables that reference other rows come after them (foreign keys). */
const CATALOG_ROW_RANK: { readonly [T in CatalogRowObject['table']]: number } = {
  settings: 0,
  jobs: 0.1,
  tables: 0.2,
  reveal_rules: 0.3,
  export_rules: 0.3,
  read_caps: 0.3,
  attributes: 0.1,
  change_rules: 0.3,
  encrypted_columns: 0.3,
  row_checks: 0.3,
};

/** Creation order of an object: its kind's rank, refined for catalog rows. */
export function rank(o: CatalogObject): number {
  if (o.kind === 'catalog_row') return KIND_RANK[o.kind] + CATALOG_ROW_RANK[o.table];
  // pgwarden's own views (the `_rows_*` lookups) before the exposed views that name them
  if (o.kind === 'view' && o.schema === 'pgwarden') return KIND_RANK.view - 1;
  return KIND_RANK[o.kind];
}

/** Deterministic order: by rank, then key. */
export function sortObjects<T extends CatalogObject>(objects: readonly T[]): T[] {
  // each object's rank and key once, not once per comparison
  return objects
    .map((o) => ({ o, rank: rank(o), key: objectKey(o) }))
    .sort((a, b) => a.rank - b.rank || cmp(a.key, b.key))
    .map((x) => x.o);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
