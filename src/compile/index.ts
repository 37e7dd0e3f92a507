/**
 * compile: Model -> desired catalog objects. Pure: no database, deterministic order.
 */
import type {
  CatalogObject,
  FunctionObject,
  GrantObject,
  PolicyObject,
  ViewObject,
} from '../catalog/objects.js';
import { sortObjects } from '../catalog/objects.js';
import type { Cell, Command, Level, Model, RowRelation, TableModel } from '../model/types.js';
import { COMMANDS } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { typeName } from '../sql/render.js';
import { AUDIT_SCHEMA, auditObjects } from './audit.js';
import { loadCatalogMigrations } from './catalog-sql.js';
import { citusTarget } from './citus.js';
import {
  decrypted,
  encryptionGrants,
  encryptionObjects,
  isEncrypted,
  shownFull,
  shownMasked,
} from './encryption.js';
import {
  CURRENT_USER,
  col,
  commandPredicate,
  hasJob,
  manyParents,
  or,
  type PredicateContext,
  parentKeysFunction,
  parentManyFunction,
  parentNeedsKeys,
  parentNeedsRows,
  parentRowsView,
  relationPredicate,
  rowChecks,
  rowRulesPredicate,
  scopePredicate,
} from './predicates.js';
import { approverCheckFunction, childTables, whenLabel, writeObjects } from './writes.js';

export interface CompileOptions {
  /** prepended to every role name pgwarden creates (tests use one per database) */
  rolePrefix?: string;
  /** what the SQL is for: PostgreSQL (default), or a Citus cluster (docs/distributed.md) */
  target?: Target;
}

export const TARGETS = ['postgres', 'citus'] as const;
export type Target = (typeof TARGETS)[number];

export interface RoleNames {
  authenticator: string;
  tableOwner: string;
  viewOwner: string;
  people: string;
  catalogOwner: string;
  auditOwner: string;
}

export function roleNames(model: Model, options: CompileOptions = {}): RoleNames {
  const p = options.rolePrefix ?? '';
  return {
    authenticator: p + model.roles.authenticator,
    tableOwner: p + model.roles.tableOwner,
    viewOwner: p + model.roles.viewOwner,
    people: p + model.roles.people,
    catalogOwner: `${p}pgwarden_owner`,
    auditOwner: `${p}pgwarden_audit`,
  };
}

/** Functions of sql/ that people (through the people role) may execute. */
export const PEOPLE_FUNCTIONS: readonly { name: string; args: string[] }[] = [
  { name: 'caller', args: [] },
  { name: 'person_name', args: ['name'] },
  { name: 'has_job', args: ['name', 'text'] },
  { name: 'has_any_job', args: ['name', 'text[]'] },
  { name: 'row_checked', args: ['name', 'text', 'text'] },
  { name: 'my_units', args: ['name'] },
  { name: 'subtree_units', args: ['name'] },
  { name: 'unit_people', args: ['name'] },
  { name: 'subtree_people', args: ['name'] },
  { name: 'shared_keys', args: ['name', 'text'] },
  { name: 'grant_filters', args: ['name', 'text', 'text'] },
  { name: 'mask_phone', args: ['text'] },
  { name: 'mask_email', args: ['text'] },
  { name: 'mask_id_number', args: ['text'] },
  { name: 'add_unit', args: ['text', 'text'] },
  { name: 'move_unit', args: ['text', 'text'] },
  { name: 'add_person', args: ['text', 'text', 'text[]', 'boolean'] },
  { name: 'move_person', args: ['text', 'text'] },
  { name: 'deactivate_person', args: ['text'] },
  { name: 'grant_job', args: ['text', 'text', 'timestamp with time zone'] },
  { name: 'revoke_job', args: ['text', 'text'] },
  { name: 'set_manager', args: ['text', 'text', 'timestamp with time zone'] },
  { name: 'unset_manager', args: ['text', 'text'] },
  { name: 'share', args: ['text', 'text', 'text', 'timestamp with time zone'] },
  { name: 'unshare', args: ['text', 'text', 'text'] },
  {
    name: 'grant_access',
    args: ['text', 'text', 'jsonb', 'timestamp with time zone', 'text', 'text'],
  },
  { name: 'revoke_access', args: ['bigint'] },
  { name: 'set_access_until', args: ['bigint', 'timestamp with time zone'] },
  { name: 'approve_job_request', args: ['bigint'] },
  { name: 'reject_job_request', args: ['bigint', 'text'] },
  { name: 'claim', args: ['text', 'text'] },
  { name: 'release', args: ['text', 'text'] },
  { name: 'restore', args: ['bigint'] },
  { name: 'purge_recycle_bin', args: ['boolean'] },
  { name: 'offboard', args: ['text', 'text', 'boolean'] },
  { name: 'sweep', args: [] },
  { name: 'me', args: [] },
  { name: 'pending_requests', args: [] },
  { name: 'read_cap', args: ['name', 'text'] },
  { name: 'count_read', args: ['text', 'integer'] },
  { name: 'reveal', args: ['text', 'text', 'text'] },
  { name: 'revealed', args: ['bigint'] },
  { name: 'request_export', args: ['text', 'text[]', 'jsonb', 'text', 'integer', 'interval'] },
  { name: 'approve_export', args: ['bigint'] },
  { name: 'reject_export', args: ['bigint', 'text'] },
  { name: 'export_requests', args: [] },
  { name: 'export', args: ['text', 'text[]', 'jsonb', 'bigint'] },
  { name: 'export_rows', args: ['bigint'] },
  { name: 'alerts_since', args: ['timestamp with time zone'] },
  // assignments and teams (sql/010)
  { name: 'assigned', args: ['name', 'text'] },
  { name: 'assigned_min', args: ['name', 'text'] },
  { name: 'assigned_max', args: ['name', 'text'] },
  {
    name: 'assign',
    args: ['text', 'text', 'text[]', 'timestamp with time zone', 'timestamp with time zone'],
  },
  {
    name: 'assign_team',
    args: ['text', 'text', 'text[]', 'timestamp with time zone', 'timestamp with time zone'],
  },
  { name: 'unassign', args: ['text', 'text', 'text[]', 'text'] },
  { name: 'create_team', args: ['text', 'timestamp with time zone', 'text'] },
  { name: 'add_team_member', args: ['text', 'text', 'timestamp with time zone'] },
  { name: 'remove_team_member', args: ['text', 'text'] },
  { name: 'end_team', args: ['text', 'timestamp with time zone'] },
  { name: 'grant_team', args: ['text', 'text', 'jsonb', 'text'] },
  { name: 'revoke_team_grant', args: ['bigint'] },
  { name: 'team_list', args: [] },
  { name: 'assignment_list', args: [] },
  // approval-gated edits (sql/011)
  { name: 'pending_changes', args: ['boolean'] },
  { name: 'approve_change', args: ['bigint'] },
  { name: 'reject_change', args: ['bigint', 'text'] },
];

/** Functions the view owner executes inside the write triggers (policy helpers, masks, the bin). */
export const VIEW_OWNER_FUNCTIONS: readonly { name: string; args: string[] }[] = [
  ...PEOPLE_FUNCTIONS.filter((f) =>
    [
      'caller',
      'person_name',
      'has_job',
      'has_any_job',
      'row_checked',
      'my_units',
      'subtree_units',
      'unit_people',
      'subtree_people',
      'shared_keys',
      'grant_filters',
      'assigned',
      'assigned_min',
      'assigned_max',
      'read_cap',
      'count_read',
      'mask_phone',
      'mask_email',
      'mask_id_number',
    ].includes(f.name),
  ),
  { name: '_bin_put', args: ['text', 'text', 'text'] },
  { name: '_write_skipped', args: ['text'] },
  { name: '_write_done', args: [] },
  { name: '_unit_of', args: ['text'] },
  { name: '_request_change', args: ['text', 'text', 'jsonb'] },
];

export function compile(model: Model, options: CompileOptions = {}): CatalogObject[] {
  const roles = roleNames(model, options);
  const out: CatalogObject[] = [];
  const { protected: prot, exposed } = model.schemas;

  // roles
  out.push(
    {
      kind: 'role',
      name: roles.catalogOwner,
      login: false,
      inherit: true,
      bypassrls: true,
      createrole: true,
      comment: 'pgwarden: owns the pgwarden catalog and its definer functions; nobody is a member',
    },
    {
      kind: 'role',
      name: roles.tableOwner,
      login: false,
      inherit: false,
      bypassrls: false,
      createrole: false,
      comment: `pgwarden: owns the tables of schema ${prot}; nobody is a member`,
    },
    {
      kind: 'role',
      name: roles.viewOwner,
      login: false,
      inherit: false,
      bypassrls: false,
      createrole: false,
      comment: `pgwarden: owns the views of schema ${exposed}; row policies apply to it`,
    },
    {
      kind: 'role',
      name: roles.people,
      login: false,
      inherit: false,
      bypassrls: false,
      createrole: false,
      comment: 'pgwarden: every person is a member; holds the privileges on the exposed views',
    },
    {
      kind: 'role',
      name: roles.authenticator,
      login: true,
      inherit: false,
      bypassrls: false,
      createrole: false,
      comment:
        'pgwarden: the application logs in as this role and acts as one person per transaction',
    },
    {
      kind: 'role',
      name: roles.auditOwner,
      login: false,
      inherit: false,
      bypassrls: false,
      createrole: false,
      comment: 'pgwarden: owns the audit log (schema pgwarden_audit); nobody is a member',
    },
    { kind: 'membership', role: roles.people, member: roles.catalogOwner, admin: true },
  );

  // schemas and the runtime catalog
  out.push(
    { kind: 'schema', name: 'pgwarden', owner: roles.catalogOwner, create: true },
    { kind: 'schema', name: AUDIT_SCHEMA, owner: roles.auditOwner, create: true },
    { kind: 'schema', name: prot, owner: roles.tableOwner, create: false },
    { kind: 'schema', name: exposed, owner: roles.tableOwner, create: true },
  );
  for (const m of loadCatalogMigrations()) {
    out.push({
      kind: 'catalog',
      version: m.version,
      file: m.file,
      owner: m.owner === 'audit' ? roles.auditOwner : roles.catalogOwner,
      sql: m.sql,
    });
  }
  const settings: [string, string][] = [
    ['role_prefix', options.rolePrefix ?? ''],
    ['authenticator', roles.authenticator],
    ['people_role', roles.people],
    ['table_owner', roles.tableOwner],
    ['view_owner', roles.viewOwner],
    ['catalog_owner', roles.catalogOwner],
    ['audit_owner', roles.auditOwner],
    ['exposed_schema', exposed],
    ['alert_export_rows', String(model.alerts.exportRowsAbove)],
    ['model', model.name],
  ];
  for (const [key, value] of settings) {
    out.push({ kind: 'catalog_row', table: 'settings', keyColumn: 'key', key, values: { value } });
  }
  for (const job of model.jobs) {
    out.push({
      kind: 'catalog_row',
      table: 'jobs',
      keyColumn: 'name',
      key: job.name,
      values: {
        description: job.description,
        admin: job.admin,
        privileged: job.privileged,
        approver: model.approvers.includes(job.name),
        audit_reader: model.auditReaders.includes(job.name),
      },
    });
  }

  for (const a of model.attributes) {
    out.push({
      kind: 'catalog_row',
      table: 'attributes',
      keyColumn: 'name',
      key: a.name,
      values: { description: a.description },
    });
  }

  // schema privileges
  out.push(
    grant({ kind: 'schema', name: 'pgwarden' }, ['USAGE'], roles.people),
    grant({ kind: 'schema', name: 'pgwarden' }, ['USAGE'], roles.viewOwner),
    grant({ kind: 'schema', name: prot }, ['USAGE'], roles.viewOwner),
    grant({ kind: 'schema', name: prot }, ['USAGE'], roles.catalogOwner),
    grant({ kind: 'schema', name: exposed }, ['USAGE'], roles.catalogOwner),
    grant({ kind: 'schema', name: AUDIT_SCHEMA }, ['USAGE'], roles.catalogOwner),
    grant({ kind: 'schema', name: exposed }, ['USAGE'], roles.people),
    grant({ kind: 'schema', name: exposed }, ['USAGE', 'CREATE'], roles.viewOwner),
  );
  for (const f of PEOPLE_FUNCTIONS) {
    out.push(
      grant(
        { kind: 'function', schema: 'pgwarden', name: f.name, args: f.args },
        ['EXECUTE'],
        roles.people,
      ),
    );
  }
  // the view owner runs the write triggers: it evaluates the same helpers, and files deletes
  for (const f of VIEW_OWNER_FUNCTIONS) {
    out.push(
      grant(
        { kind: 'function', schema: 'pgwarden', name: f.name, args: f.args },
        ['EXECUTE'],
        roles.viewOwner,
      ),
    );
  }
  // the audit log: its owner evaluates who acts; people read it through the views (readers only)
  out.push(
    grant({ kind: 'schema', name: 'pgwarden' }, ['USAGE'], roles.auditOwner),
    grant({ kind: 'schema', name: AUDIT_SCHEMA }, ['USAGE'], roles.people),
    grant(
      { kind: 'function', schema: AUDIT_SCHEMA, name: 'assert_reader', args: [] },
      ['EXECUTE'],
      roles.people,
    ),
  );
  for (const f of ['caller', 'person_name', 'is_audit_reader']) {
    const args = f === 'caller' ? [] : ['name'];
    out.push(
      grant({ kind: 'function', schema: 'pgwarden', name: f, args }, ['EXECUTE'], roles.auditOwner),
    );
  }
  out.push(
    grant(
      {
        kind: 'function',
        schema: AUDIT_SCHEMA,
        name: 'record_event',
        args: ['text', 'text', 'text', 'jsonb'],
      },
      ['EXECUTE'],
      roles.catalogOwner,
    ),
  );
  // the audit triggers look up the acting person themselves (cheaper than the helper chain)
  out.push(
    grant({ kind: 'table', schema: 'pgwarden', name: 'people' }, ['SELECT'], roles.auditOwner),
    // approved changes are recorded as the requester's (pgwarden_audit.applying_change())
    grant(
      { kind: 'table', schema: 'pgwarden', name: 'change_requests' },
      ['SELECT'],
      roles.auditOwner,
    ),
  );
  for (const v of ['log', 'data_changes', 'permission_changes']) {
    out.push(grant({ kind: 'table', schema: AUDIT_SCHEMA, name: v }, ['SELECT'], roles.people));
  }
  out.push(...auditObjects(model, roles, options.target));
  out.push(...encryptionGrants(model, roles));
  // offboarding ends the person's direct sessions
  out.push({
    kind: 'membership',
    role: 'pg_signal_backend',
    member: roles.catalogOwner,
    admin: false,
  });
  for (const mask of model.masks) {
    if (mask.builtin) continue;
    const fn = maskFunction(mask.name, mask.sql as string, roles.catalogOwner);
    out.push(
      fn,
      grant(
        { kind: 'function', schema: 'pgwarden', name: fn.name, args: ['text'] },
        ['EXECUTE'],
        roles.people,
      ),
      grant(
        { kind: 'function', schema: 'pgwarden', name: fn.name, args: ['text'] },
        ['EXECUTE'],
        roles.viewOwner,
      ),
    );
  }

  // tables
  const parentHelpers = new Map<string, FunctionObject>();
  const parentViews = new Map<string, ViewObject>();
  for (const table of model.tables) {
    out.push(
      {
        kind: 'catalog_row',
        table: 'tables',
        keyColumn: 'name',
        key: table.name,
        values: {
          schema_name: prot,
          table_name: table.table,
          key_column: table.key,
          key_type: typeName(table.keyType).text,
          grantable: table.grantable,
          owner_column: table.owner,
          pool_column: table.pool,
          claim_jobs: table.claims?.jobs ?? [],
          claims_per_day: table.claims?.perDay ?? null,
          retention_days: table.recycleBin?.retentionDays ?? null,
          children: { json: JSON.stringify(table.recycleBin ? childTables(model, table) : []) },
        },
      },
      { kind: 'table_owner', schema: prot, table: table.table, owner: roles.tableOwner },
      { kind: 'revoke_public', target: { kind: 'table', schema: prot, name: table.table } },
      { kind: 'rls', schema: prot, table: table.table },
      // key helpers read; claims, offboarding, the recycle bin and restore write
      grant(
        { kind: 'table', schema: prot, name: table.table },
        ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
        roles.catalogOwner,
      ),
    );
    const commands = COMMANDS.filter((c) => table.rules.some((r) => r.commands.includes(c)));
    if (commands.length > 0) {
      const priv = commands.map((c) => c.toUpperCase());
      out.push(grant({ kind: 'table', schema: prot, name: table.table }, priv, roles.viewOwner));
      out.push(grant({ kind: 'table', schema: exposed, name: table.name }, priv, roles.people));
    }
    for (const c of commands) out.push(policy(model, table, c, roles));
    // who has scopes checked row by row (the policies' row_checked(), src/compile/predicates.ts)
    for (const c of commands) {
      const rc = rowChecks(table, c);
      if (!rc) continue;
      out.push({
        kind: 'catalog_row',
        table: 'row_checks',
        keyColumn: 'key',
        key: `${table.name}:${c}`,
        values: {
          table_name: table.name,
          command: c,
          jobs: rc.jobs,
          grants: rc.grants,
          // assignments are index arms since issue 10: the column stays, empty
          assigned: { json: '[]' },
        },
      });
    }
    out.push(view(model, table, roles));
    out.push(...writeObjects(model, table, roles));
    out.push(...encryptionObjects(model, table, roles));
    const approves = approverCheckFunction(model, table, roles);
    if (approves && table.changeApproval) {
      out.push(approves);
      for (const g of table.changeApproval.columns) {
        out.push({
          kind: 'catalog_row',
          table: 'change_rules',
          keyColumn: 'key',
          key: `${table.name}.${g.column}`,
          values: {
            table_name: table.name,
            column_name: g.column,
            requesters: g.requesters.map(whenLabel),
            approvers: g.approvers.map(whenLabel),
            cross_unit: g.crossUnit,
            expires_hours: table.changeApproval.expiresAfterHours,
            check_function: approves.name,
          },
        });
      }
    }
    // reveal and export read through the view, as the person sees it
    if (table.reveal || table.exports.length > 0) {
      out.push(
        grant({ kind: 'table', schema: exposed, name: table.name }, ['SELECT'], roles.catalogOwner),
      );
    }
    for (const rv of table.reveal?.columns ?? []) {
      const relations = rv.who.flatMap((w) => (w.kind === 'relation' ? [w.relation] : []));
      const helpers = relations.map((r) => {
        const fn = parentKeysHelper(model, table, [r], roles);
        parentHelpers.set(fn.name, fn);
        return fn.name;
      });
      out.push({
        kind: 'catalog_row',
        table: 'reveal_rules',
        keyColumn: 'key',
        key: `${table.name}.${rv.column}`,
        values: {
          table_name: table.name,
          column_name: rv.column,
          relations,
          helpers,
          per_day: table.reveal?.perDay ?? 1,
        },
      });
    }
    for (const c of table.readCaps) {
      out.push({
        kind: 'catalog_row',
        table: 'read_caps',
        keyColumn: 'key',
        key: `${table.name}:${c.job}`,
        values: { table_name: table.name, job: c.job, max_rows: c.rows },
      });
    }
    for (const e of table.exports) {
      out.push({
        kind: 'catalog_row',
        table: 'export_rules',
        keyColumn: 'key',
        key: `${table.name}:${e.job}`,
        values: {
          table_name: table.name,
          job: e.job,
          columns: e.columns,
          per_day: e.perDay,
          approval_columns: e.approvalColumns,
          approvers: e.approvers,
        },
      });
    }
    const parentUses = [
      ...table.rules
        .flatMap((r) => r.scopes)
        .flatMap((s) => (s.kind === 'parent' ? [{ table: s.table, via: s.via }] : [])),
      ...[
        ...table.cells.flatMap((c) => c.cases.map((x) => x.when)),
        ...(table.changeApproval?.columns ?? []).flatMap((g) => [...g.requesters, ...g.approvers]),
      ].flatMap((w) => (w.kind === 'parent' ? [{ table: w.table, via: [w.relation] }] : [])),
    ];
    for (const use of parentUses) {
      const parent = model.tables.find((t) => t.name === use.table) as TableModel;
      if (parentNeedsKeys(parent, use.via)) {
        const fn = parentKeysHelper(model, parent, use.via, roles);
        parentHelpers.set(fn.name, fn);
      }
      if (parentNeedsRows(parent, use.via)) {
        const v = parentRowsViewObject(model, parent, use.via, roles);
        parentViews.set(v.name, v);
        if (use.via === null) {
          const fn = parentManyHelper(model, parent, roles);
          parentHelpers.set(fn.name, fn);
        }
      }
    }
  }
  // as the `_keys_*` helpers: the view owner (policies, cells), and people (`pgwarden explain`
  // evaluates the rules as the person); a view only ever shows its reader's own rows
  for (const v of parentViews.values()) {
    const target = { kind: 'table', schema: 'pgwarden', name: v.name } as const;
    out.push(
      v,
      grant(target, ['SELECT'], roles.people),
      grant(target, ['SELECT'], roles.viewOwner),
    );
  }
  for (const fn of parentHelpers.values()) {
    out.push(
      fn,
      grant(
        { kind: 'function', schema: 'pgwarden', name: fn.name, args: ['name'] },
        ['EXECUTE'],
        roles.people,
      ),
      grant(
        { kind: 'function', schema: 'pgwarden', name: fn.name, args: ['name'] },
        ['EXECUTE'],
        roles.viewOwner,
      ),
    );
  }
  return sortObjects(options.target === 'citus' ? citusTarget(out, model, roles) : out);
}

function grant(target: GrantObject['target'], privileges: string[], grantee: string): GrantObject {
  return { kind: 'grant', target, privileges, grantee };
}

export function policyName(table: TableModel, command: Command): string {
  const name = `${table.table}_${command}`;
  return Buffer.byteLength(name, 'utf8') <= 63 ? name : `pgwarden_${command}`;
}

function policy(model: Model, table: TableModel, command: Command, roles: RoleNames): PolicyObject {
  const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: command };
  const pred = (commandPredicate(ctx, command) as Sql).text;
  return {
    kind: 'policy',
    schema: model.schemas.protected,
    table: table.table,
    name: policyName(table, command),
    command,
    permissive: true,
    to: [roles.viewOwner],
    using: command === 'insert' ? null : pred,
    check: command === 'select' || command === 'delete' ? null : pred,
  };
}

function levelExpr(model: Model, table: TableModel, cell: Cell, level: Level): Sql {
  const c = col(table, cell.column);
  // encrypted columns: decrypted (and masked) inside the view only (src/compile/encryption.ts)
  const enc = isEncrypted(table, cell.column);
  switch (level.kind) {
    case 'full':
      return enc ? shownFull(model, table, cell.column) : c;
    case 'hidden':
      return unsafeRaw('NULL');
    case 'mask': {
      const mask = model.masks.find((m) => m.name === level.mask);
      if (mask?.name === 'null') return unsafeRaw('NULL');
      const fn = qualified('pgwarden', maskFunctionName(level.mask, mask?.builtin ?? true));
      if (enc)
        return shownMasked(
          model,
          table,
          cell.column,
          sql`${fn}(${decrypted(model, table, cell.column)})`,
        );
      return sql`${fn}(${c})`;
    }
  }
}

function cellExpr(model: Model, table: TableModel, cell: Cell): Sql {
  const ctx: PredicateContext = {
    model,
    table,
    person: CURRENT_USER,
    access: 'select',
    cell: true,
  };
  const all = [...cell.cases.map((c) => c.level), cell.otherwise];
  if (all.every((l) => l.kind === 'full')) return levelExpr(model, table, cell, { kind: 'full' });
  const whens = cell.cases.map((c) => {
    const cond =
      c.when.kind === 'job'
        ? hasJob(CURRENT_USER, c.when.job)
        : c.when.kind === 'parent'
          ? scopePredicate(ctx, {
              kind: 'parent',
              column: c.when.column,
              table: c.when.table,
              via: [c.when.relation],
            })
          : relationPredicate(ctx, c.when.relation);
    return sql`WHEN ${cond} THEN ${levelExpr(model, table, cell, c.level)}`;
  });
  // all-hidden cells keep the column's type without naming it: a CASE whose only branch is the column
  if (all.every((l) => l.kind === 'hidden' || (l.kind === 'mask' && l.mask === 'null'))) {
    return sql`CASE WHEN false THEN ${col(table, cell.column)} END`;
  }
  return sql`CASE\n      ${join(whens, '\n      ')}\n      ELSE ${levelExpr(model, table, cell, cell.otherwise)}\n    END`;
}

function view(model: Model, table: TableModel, roles: RoleNames): ViewObject {
  const columns = table.columns.map((c) => {
    const cell = table.cells.find((x) => x.column === c.name);
    const expr = cell
      ? cellExpr(model, table, cell)
      : isEncrypted(table, c.name)
        ? shownFull(model, table, c.name)
        : col(table, c.name);
    return sql`${expr} AS ${ident(c.name)}`;
  });
  // a capped person's statement may read at most N rows (the count runs only for them)
  const cap =
    table.readCaps.length > 0
      ? sql`\n  WHERE (SELECT ${qualified('pgwarden', 'read_cap')}(${CURRENT_USER}, ${literal(table.name)})) IS NULL
     OR ${qualified('pgwarden', 'count_read')}(${literal(table.name)}, (SELECT ${qualified('pgwarden', 'read_cap')}(${CURRENT_USER}, ${literal(table.name)})))`
      : unsafeRaw('');
  const query = sql`SELECT\n    ${join(columns, ',\n    ')}\n  FROM ${qualified(model.schemas.protected, table.table)}${cap}`;
  const defaults: Record<string, string> = {};
  if (table.owner && !table.cells.some((c) => c.column === table.owner)) {
    defaults[table.owner] = sql`${qualified('pgwarden', 'person_name')}(${CURRENT_USER})`.text;
  }
  return {
    kind: 'view',
    schema: model.schemas.exposed,
    name: table.name,
    owner: roles.viewOwner,
    query: query.text,
    defaults,
    comment: `pgwarden: ${table.name} as each person may see it (rows by policy on ${model.schemas.protected}.${table.table}, cells by the model)`,
  };
}

/**
 * The keys of the `parent` rows the caller may see (or that relate to the caller by `via`), as a
 * view for child tables' policies and cells to look one parent up by key (parentPredicate in
 * predicates.ts). Owned by the catalog owner, which bypasses row level security, so the lookup
 * does not apply the parent's policies again (no recursion between tables); it names the caller
 * itself, so whoever reads it gets only the rows the rules give them.
 */
function parentRowsViewObject(
  model: Model,
  parent: TableModel,
  via: readonly RowRelation[] | null,
  roles: RoleNames,
): ViewObject {
  const ctx: PredicateContext = {
    model,
    table: parent,
    person: CURRENT_USER,
    access: 'select',
    lookup: true,
  };
  const pred = via
    ? or(via.map((r) => relationPredicate(ctx, r)))
    : (rowRulesPredicate(ctx, 'select') ?? unsafeRaw('false'));
  const query = sql`SELECT ${col(parent, parent.key)}
  FROM ${qualified(model.schemas.protected, parent.table)}
  WHERE (SELECT ${qualified('pgwarden', 'person_name')}(${CURRENT_USER})) IS NOT NULL
    AND (${pred})`;
  return {
    kind: 'view',
    schema: 'pgwarden',
    name: parentRowsView(parent, via),
    owner: roles.catalogOwner,
    query: query.text,
    defaults: {},
    comment: via
      ? `pgwarden: keys of ${parent.name} rows related to the caller by ${via.join(', ')} (a decision, for child tables' policies)`
      : `pgwarden: keys of ${parent.name} rows the caller may see (a decision, for child tables' policies)`,
  };
}

/**
 * Whether the caller's visible `parent` rows may be many (manyParents in predicates.ts): which
 * of two exact tests a child table's policy uses, the array of keys or a lookup per row.
 */
function parentManyHelper(model: Model, parent: TableModel, roles: RoleNames): FunctionObject {
  const p = unsafeRaw('p');
  const ctx: PredicateContext = { model, table: parent, person: p, access: 'select' };
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: parentManyFunction(parent),
    args: [{ name: 'p', type: 'name' }],
    returns: 'boolean',
    language: 'plpgsql',
    volatility: 'stable',
    securityDefiner: true,
    owner: roles.catalogOwner,
    body: sql`
BEGIN
  RETURN ${manyParents(ctx, parent)};
END
`.text,
    comment: `pgwarden: whether the ${parent.name} rows the caller may see may be many (which test child tables' policies use; either is exact)`,
  };
}

function parentKeysHelper(
  model: Model,
  parent: TableModel,
  via: readonly RowRelation[] | null,
  roles: RoleNames,
): FunctionObject {
  const p = unsafeRaw('p');
  const ctx: PredicateContext = { model, table: parent, person: p, access: 'select' };
  const pred = via
    ? or(via.map((r) => relationPredicate(ctx, r)))
    : (commandPredicate(ctx, 'select') ?? unsafeRaw('false'));
  // PL/pgSQL returning the one row of the query: a SQL function with SET is never inlined, and
  // PostgreSQL plans its body again in every statement that calls it (about 0.1 ms for each of
  // the five to seven of these a child table's view calls); PL/pgSQL keeps the plan for the
  // session. `plan` treats the change from the SQL form as no widening (returnedSelect in
  // src/sql/tree.ts). A column named like the parameter means the column, as in the SQL form
  // (use_column).
  const body = sql`
#variable_conflict use_column
BEGIN
  RETURN (
  SELECT COALESCE(pg_catalog.array_agg(${col(parent, parent.key)}), '{}')
  FROM ${qualified(model.schemas.protected, parent.table)}
  WHERE p = ${qualified('pgwarden', 'caller')}() AND ${qualified('pgwarden', 'person_name')}(p) IS NOT NULL
    AND (${pred}));
END
`;
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: parentKeysFunction(parent, via),
    args: [{ name: 'p', type: 'name' }],
    returns: `${parent.keyType}[]`,
    language: 'plpgsql',
    volatility: 'stable',
    securityDefiner: true,
    owner: roles.catalogOwner,
    body: body.text,
    comment: via
      ? `pgwarden: keys of ${parent.name} rows related to the caller by ${via.join(', ')} (a decision, for child tables' policies)`
      : `pgwarden: keys of ${parent.name} rows the caller may see (a decision, for child tables' policies)`,
  };
}

export function maskFunctionName(mask: string, builtin: boolean): string {
  return builtin ? `mask_${mask}` : `mask_custom_${mask}`;
}

function maskFunction(name: string, expr: string, owner: string): FunctionObject {
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: maskFunctionName(name, false),
    args: [{ name: 'value', type: 'text' }],
    returns: 'text',
    language: 'sql',
    volatility: 'immutable',
    securityDefiner: false,
    owner,
    body: `SELECT (${expr})`,
    comment: `pgwarden: custom mask ${name}`,
  };
}

export { ident };
