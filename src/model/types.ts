/**
 * The permission model: what a team writes (ModelInput) and what the compiler reads (Model,
 * normalized, validated and frozen). See docs/model.md for the reference.
 */

export const COMMANDS = ['select', 'insert', 'update', 'delete'] as const;
export type Command = (typeof COMMANDS)[number];

/** Scopes that need no argument. */
export const SIMPLE_SCOPES = [
  'own',
  'unit',
  'subtree',
  'shared',
  'pool',
  'granted',
  'all',
] as const;
export type SimpleScope = (typeof SIMPLE_SCOPES)[number];

/** Relations between a viewer and a row, used to pick a column's level. */
export const ROW_RELATIONS = [
  'own',
  'unit',
  'subtree',
  'shared',
  'pool',
  'granted',
  'assigned',
] as const;
export type RowRelation = (typeof ROW_RELATIONS)[number];

/** Visibility follows a foreign key: rows whose parent row the person can see. */
export interface ParentScopeInput<C extends string = string> {
  parent: {
    /** the foreign-key column of this table */
    column: C;
    /** the model name of the parent table */
    table: string;
    /** only parents related to the person this way (default: any parent row the person can see) */
    via?: readonly RowRelation[];
  };
}

/** An escape-hatch SQL expression over the table's columns (parsed by the Postgres parser). */
export interface FilterScopeInput {
  filter: string;
}

/**
 * Attribute scope: rows whose columns are among the values assigned to the person (directly or
 * through a team) for these attributes, all of them (AND). A list names attributes that are also
 * the column names; an object maps attribute -> column.
 */
export interface AssignedScopeInput<C extends string = string> {
  assigned: readonly string[] | Readonly<Record<string, C>>;
}

export type ScopeInput<C extends string = string> =
  | SimpleScope
  | FilterScopeInput
  | ParentScopeInput<C>
  | AssignedScopeInput<C>;

/** In a rule's jobs (or a `job:*` cell key): any active person, whatever their jobs. */
export const ANY_JOB = '*';

export interface RuleInput<C extends string = string> {
  /** job names this rule applies to; `*` = any active person */
  jobs: readonly string[];
  /** commands; default all four */
  commands?: readonly Command[];
  /** rows the rule reaches: any of these */
  scopes: readonly ScopeInput<C>[];
}

/** 'full' | 'hidden' | 'mask:<name>' | { mask: name } */
export type LevelInput = 'full' | 'hidden' | `mask:${string}` | { mask: string };

/**
 * Level per viewer relation, first match wins, in the order written:
 * keys are row relations (own, unit, subtree, shared, pool, granted), `parent:<relation>` (the
 * row's parent row, through the table's parent scope, relates so), `job:<name>`, or `default`.
 */
export type CellInput = Readonly<Record<string, LevelInput>>;

export interface TableSpecInput<C extends string = string> {
  /** primary-key column (default `id`) */
  key?: C;
  /** column holding the owning person's name (needed by own / unit / subtree) */
  owner?: C;
  /** column holding a unit name; when set, unit / subtree compare it instead of the owner's unit */
  unit?: C;
  /** boolean column marking rows of the public pool */
  pool?: C;
  /** columns a temporary grant may filter on (equality on any of the listed values) */
  grantable?: readonly C[];
  rules: readonly RuleInput<C>[];
  /** column levels; columns not listed are shown in full to everyone who sees the row */
  cells?: Partial<Record<C, CellInput>>;
  /**
   * Who may change which column, by their relation to the row (the same keys as cells:
   * own, unit, subtree, shared, pool, granted, parent:<relation>, job:<name>, job:*). When given,
   * every column not listed is read-only for everyone, and writes through the view go through
   * generated INSTEAD OF triggers that check each changed column and say which rule refused.
   */
  edits?: Partial<Record<C, readonly string[]>>;
  /**
   * Edits that wait for a second person: a change of one of these columns by a requester (relation
   * to the row as it is) becomes a pending change, applied when an approver (relation to the row as
   * it would be) approves it, never by the requester, and dropped after expiresAfterHours (72).
   * It needs approval when the person may not edit the column directly (edits), or, with
   * crossUnit (owner or unit column), when the new value is in another unit than the old one.
   */
  changeApproval?: {
    expiresAfterHours?: number;
    columns: Partial<
      Record<
        C,
        { requesters: readonly string[]; approvers: readonly string[]; crossUnit?: boolean }
      >
    >;
  };
  /** the public pool: who may claim a pool row (becoming its owner), and how many per day */
  claims?: { jobs: readonly string[]; perDay: number };
  /** a delete through the view moves the row (and its child rows) to the recycle bin */
  recycleBin?: { retentionDays: number };
  /** columns whose values the audit log stores as keyed hashes (default: the columns with cells) */
  sensitive?: readonly C[];
  /**
   * Columns stored encrypted (pgcrypto, authenticated encryption; keys supplied by the session,
   * never stored): a list, or `{ column: { search: 'equality' } }` for deterministic ones that
   * equality search and unique indexes can use (`{}` or `true`: randomized). Decrypted only in
   * the views (full and mask levels), reveal and export. See docs/model.md#encrypted-columns.
   */
  encrypted?: readonly C[] | Partial<Record<C, EncryptedInput>>;
  /** one cell unmasked on purpose: who may reveal which column (relations as in cells), per-person daily quota */
  reveal?: { columns: Partial<Record<C, readonly string[]>>; perDay: number };
  /** rows one statement may read through the view, per job (see docs/security.md for its limits) */
  readCap?: Readonly<Record<string, number>>;
  /**
   * Export per job: the columns it may export (others are refused even if visible on screen),
   * a daily row quota, and columns that need an approved request (by one or two approvers).
   * Jobs not listed may not export.
   */
  exports?: Readonly<
    Record<
      string,
      {
        columns: readonly C[];
        perDay: number;
        approval?: { columns: readonly C[]; approvers?: 1 | 2 };
      }
    >
  >;
}

/** How one encrypted column is stored: `search: 'equality'` makes it deterministic. */
export type EncryptedInput = true | { search?: 'equality' | 'none' };

/** A table as given in YAML / JSON or as resolved from drizzle. */
export interface TableInput extends TableSpecInput {
  /** table name in the protected schema (default: the model key) */
  name?: string;
  /** column names, in order; from drizzle, or listed in YAML/JSON, or read from the live database */
  columns?: readonly (string | { name: string; type?: string })[];
  /** SQL type of the key column (default bigint) */
  keyType?: string;
}

export interface JobInput {
  description?: string;
  /** may manage people, units, jobs, shares and temporary grants through pgwarden's functions */
  admin?: boolean;
  /** granting this job needs an approver (enforced from the lifecycle issue on) */
  privileged?: boolean;
}

export interface MaskInput {
  /** an SQL expression over `value` (text), e.g. `left(value, 2) || '***'` */
  sql: string;
  description?: string;
}

export interface ModelInput {
  name?: string;
  schemas: { protected: string; exposed: string };
  roles?: {
    authenticator?: string;
    tableOwner?: string;
    viewOwner?: string;
    people?: string;
  };
  jobs: readonly string[] | Readonly<Record<string, JobInput>>;
  /** jobs whose holders approve grants of privileged jobs (never their own request, never for themselves) */
  approvals?: { approvers: readonly string[] };
  /** jobs whose holders read the audit log */
  audit?: { readers: readonly string[] };
  /** alerts: an export of more rows than this raises one (default 1000) */
  alerts?: { exportRowsAbove?: number };
  /** attributes people and teams are assigned values of (pgwarden assign), used by `assigned` scopes */
  attributes?: readonly string[] | Readonly<Record<string, { description?: string }>>;
  masks?: Readonly<Record<string, MaskInput>>;
  tables: Readonly<Record<string, TableInput>>;
}

// ---------------------------------------------------------------- normalized model

export type Level = { kind: 'full' } | { kind: 'hidden' } | { kind: 'mask'; mask: string };

export type CellWhen =
  | { kind: 'relation'; relation: RowRelation }
  | { kind: 'job'; job: string }
  /** the row's parent (through the table's parent scope) is related to the person this way */
  | { kind: 'parent'; column: string; table: string; relation: RowRelation };

export interface CellCase {
  when: CellWhen;
  level: Level;
}

export interface Cell {
  column: string;
  cases: readonly CellCase[];
  otherwise: Level;
}

export type Scope =
  | { kind: SimpleScope }
  | { kind: 'filter'; sql: string }
  | { kind: 'parent'; column: string; table: string; via: readonly RowRelation[] | null }
  /** every listed column is among the person's assigned values of its attribute (sorted by attribute) */
  | { kind: 'assigned'; match: readonly { attribute: string; column: string }[] };

export interface Rule {
  jobs: readonly string[];
  commands: readonly Command[];
  scopes: readonly Scope[];
}

export interface Column {
  name: string;
  type: string | null;
}

export interface TableModel {
  /** model name (also the view name) */
  name: string;
  /** table name in the protected schema */
  table: string;
  columns: readonly Column[];
  key: string;
  keyType: string;
  owner: string | null;
  unit: string | null;
  pool: string | null;
  grantable: readonly string[];
  rules: readonly Rule[];
  cells: readonly Cell[];
  /** null: no column rules (the view is auto-updatable under the row rules) */
  edits: readonly EditRule[] | null;
  /** approval-gated edits; null when none */
  changeApproval: { expiresAfterHours: number; columns: readonly GatedEdit[] } | null;
  claims: { jobs: readonly string[]; perDay: number } | null;
  recycleBin: { retentionDays: number } | null;
  /** columns stored as keyed hashes in the audit log (encrypted columns always are) */
  sensitive: readonly string[];
  /** columns stored encrypted (sorted); deterministic ones allow equality search */
  encrypted: readonly EncryptedColumn[];
  reveal: { columns: readonly EditRule[]; perDay: number } | null;
  exports: readonly ExportRule[];
  readCaps: readonly { job: string; rows: number }[];
}

export interface EncryptedColumn {
  column: string;
  /** same plaintext -> same stored value (SIV-style IV), for equality search */
  deterministic: boolean;
}

export interface ExportRule {
  job: string;
  columns: readonly string[];
  perDay: number;
  approvalColumns: readonly string[];
  approvers: 1 | 2;
}

/** A column whose changes wait for an approver. */
export interface GatedEdit {
  column: string;
  /** who may request (relation to the row before the change) */
  requesters: readonly CellWhen[];
  /** who may approve (relation to the row after the change) */
  approvers: readonly CellWhen[];
  /** owner / unit column: a change into another unit needs approval even from people who may edit it */
  crossUnit: boolean;
}

/** A column that may be changed by people related to the row in one of these ways. */
export interface EditRule {
  column: string;
  who: readonly CellWhen[];
}

export interface Job {
  name: string;
  description: string | null;
  admin: boolean;
  privileged: boolean;
}

export interface Mask {
  name: string;
  /** expression over `value`; null for built-in masks implemented in sql/ */
  sql: string | null;
  builtin: boolean;
}

export interface Model {
  name: string;
  schemas: { protected: string; exposed: string };
  roles: { authenticator: string; tableOwner: string; viewOwner: string; people: string };
  jobs: readonly Job[];
  /** jobs that approve grants of privileged jobs */
  approvers: readonly string[];
  /** jobs that read the audit log */
  auditReaders: readonly string[];
  alerts: { exportRowsAbove: number };
  /** attributes of assignments (pgwarden.attributes) */
  attributes: readonly { name: string; description: string | null }[];
  masks: readonly Mask[];
  tables: readonly TableModel[];
}

export const BUILTIN_MASKS = ['phone', 'email', 'id_number', 'null'] as const;
