/**
 * Live rules: judge what src/introspect/lint.ts read from the database against the compiled
 * model. Pure: no database, deterministic order.
 */
import type { PolicyObject, ViewObject } from '../catalog/objects.js';
import { AUDIT_SCHEMA } from '../compile/audit.js';
import { type CompileOptions, compile, roleNames } from '../compile/index.js';
import type { LintFacts, LintTargets, LiveTable } from '../introspect/lint.js';
import type { Model, TableModel } from '../model/types.js';
import { ident, join, qualified, sql } from '../sql/fragment.js';
import { MAX_IDENTIFIER_BYTES, quoteIdent, quoteQualified } from '../sql/quote.js';
import { alwaysTrue } from './model.js';
import { type Finding, finding } from './rules.js';

/** What readLintFacts should look at, for this model and role prefix. */
export function lintTargets(model: Model, options: CompileOptions = {}): LintTargets {
  const roles = roleNames(model, options);
  return {
    protectedSchema: model.schemas.protected,
    exposedSchema: model.schemas.exposed,
    pgwardenSchemas: ['pgwarden', AUDIT_SCHEMA],
    startRoles: [roles.authenticator, roles.people],
  };
}

const DANGEROUS_BUILTIN_ROLES = [
  'pg_read_all_data',
  'pg_write_all_data',
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_execute_server_program',
];

const q = (schema: string, name: string) => quoteQualified(schema, name);

const capital = (s: string) => `${s.slice(0, 1).toUpperCase()}${s.slice(1)}`;

function hasOption(options: readonly string[], name: string): boolean {
  return options.some((o) => {
    const [k, v] = o.split('=', 2);
    return k === name && ['true', 'on', 'yes', '1'].includes((v ?? '').toLowerCase());
  });
}

/**
 * The columns the row rules of `table` read through an index (src/compile/predicates.ts,
 * indexArm): own/unit/subtree, pool, parent keys, the column of a one-attribute assigned scope,
 * and the key (shares, and the gate of the scopes checked per row). Filters and grants are
 * checked per row, only for the people they apply to: their columns need no index.
 */
export function scopeColumns(model: Model, table: TableModel): Map<string, string> {
  const out = new Map<string, string>();
  const add = (t: TableModel, col: string | null, why: string) => {
    if (t === table && col !== null && !out.has(col)) out.set(col, why);
  };
  const relation = (t: TableModel, r: string) => {
    if (r === 'own') add(t, t.owner, 'own');
    else if (r === 'unit' || r === 'subtree') add(t, t.unit ?? t.owner, r);
    else if (r === 'pool') add(t, t.pool, 'pool');
  };
  for (const t of model.tables) {
    for (const rule of t.rules) {
      for (const s of rule.scopes) {
        if (s.kind === 'parent') {
          add(t, s.column, `parent ${s.table}`);
          // the parent's key helper filters the parent by these relations
          const parent = model.tables.find((p) => p.name === s.table);
          if (parent) for (const r of s.via ?? []) relation(parent, r);
        } else if (s.kind === 'assigned') {
          // an index arm; a scope combining attributes needs one index on all its columns
          // (scopeIndexSets), one attribute an index leading with its column
          if (s.match.length === 1)
            add(t, s.match[0]?.column ?? null, `assigned ${s.match[0]?.attribute}`);
        } else relation(t, s.kind);
        if (['shared', 'filter', 'all', 'granted'].includes(s.kind))
          add(t, t.key, s.kind === 'shared' ? 'shared' : `key, the gate of ${s.kind}`);
      }
    }
  }
  return out;
}

/**
 * The column sets that one index must hold together: an assigned scope combining attributes
 * (region AND customer type) is an exact index arm only on an index with all its columns.
 */
export function scopeIndexSets(table: TableModel): { columns: string[]; why: string }[] {
  const out = new Map<string, { columns: string[]; why: string }>();
  for (const rule of table.rules)
    for (const s of rule.scopes)
      if (s.kind === 'assigned' && s.match.length > 1) {
        const columns = [...new Set(s.match.map((m) => m.column))];
        const key = [...columns].sort().join('\u0000');
        if (columns.length > 1 && !out.has(key))
          out.set(key, {
            columns,
            why: `assigned ${s.match.map((m) => m.attribute).join(' AND ')}`,
          });
      }
  return [...out.values()];
}

function indexName(table: string, column: string): string | null {
  const name = `${table}_${column}_idx`;
  return Buffer.byteLength(name, 'utf8') <= MAX_IDENTIFIER_BYTES ? name : null;
}

export function checkLive(model: Model, facts: LintFacts, options: CompileOptions = {}): Finding[] {
  const out: Finding[] = [];
  const desired = compile(model, options);
  const roles = roleNames(model, options);
  const prot = model.schemas.protected;
  const exposed = model.schemas.exposed;

  if (!facts.catalogInstalled) {
    out.push(
      finding(
        'not_applied',
        `database ${facts.database}`,
        `The pgwarden catalog (schema pgwarden) is not installed: the model has not been applied, so the database enforces none of it.`,
        'Run pgwarden plan, then pgwarden apply, as a superuser.',
      ),
    );
  } else if (
    facts.appliedRolePrefix !== null &&
    facts.appliedRolePrefix !== (options.rolePrefix ?? '')
  ) {
    out.push(
      finding(
        'role_prefix_mismatch',
        `database ${facts.database}`,
        `The model was applied with --role-prefix ${JSON.stringify(facts.appliedRolePrefix)}, and check runs with ${JSON.stringify(options.rolePrefix ?? '')}: the role names it looks for are not the applied ones.`,
        `Run check with --role-prefix ${JSON.stringify(facts.appliedRolePrefix)}.`,
      ),
    );
  }

  // ------------------------------------------------------------ tables and RLS
  const modelTables = new Set(model.tables.map((t) => t.table));
  const live = new Map(facts.tables.map((t) => [`${t.schema}.${t.name}`, t]));
  for (const t of model.tables) {
    if (!live.has(`${prot}.${t.table}`)) {
      out.push(
        finding(
          'table_missing',
          `table ${q(prot, t.table)}`,
          `The model protects ${q(prot, t.table)} (model table ${t.name}), which does not exist.`,
          'Create the table (your migrations), or fix its name in the model; then run pgwarden apply.',
        ),
      );
    }
  }
  /** protected: a model table, or a partition of one */
  const isProtected = (t: LiveTable) =>
    (t.schema === prot && modelTables.has(t.name)) ||
    (t.partitionOf !== null &&
      t.partitionOf.schema === prot &&
      modelTables.has(t.partitionOf.name));
  const protectedTables = facts.tables.filter(isProtected);
  const protectedKeys = new Set(protectedTables.map((t) => `${t.schema}.${t.name}`));
  for (const t of facts.tables) {
    if (!isProtected(t) && t.schema === prot && t.partitionOf === null) {
      out.push(
        finding(
          'table_not_in_model',
          `table ${q(t.schema, t.name)}`,
          `${q(t.schema, t.name)} is in the protected schema ${prot} but not in the model: no rules, ${t.rls ? 'RLS on' : 'RLS off'}, owned by ${t.owner}.`,
          `Add it to the model's tables and run pgwarden apply, or move it out of schema ${prot}.`,
        ),
      );
    }
  }
  for (const t of protectedTables) {
    const name = q(t.schema, t.name);
    const what = t.partitionOf
      ? `partition ${name} of ${q(t.partitionOf.schema, t.partitionOf.name)}`
      : `protected table ${name}`;
    if (!t.rls) {
      out.push(
        finding(
          'rls_disabled',
          `table ${name}`,
          `Row level security is off on ${what}: every role with a privilege on it sees and changes every row.`,
          `ALTER TABLE ${name} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;${t.partitionOf ? '' : ' (or run pgwarden apply)'}`,
        ),
      );
    } else if (!t.force) {
      out.push(
        finding(
          'rls_not_forced',
          `table ${name}`,
          `Row level security is on but not forced on ${what}: its owner ${t.owner} (and whatever runs as it) bypasses every policy.`,
          `ALTER TABLE ${name} FORCE ROW LEVEL SECURITY;${t.partitionOf ? '' : ' (or run pgwarden apply)'}`,
        ),
      );
    }
  }

  // ------------------------------------------------------------ policies
  const desiredPolicies = new Set(
    desired
      .filter((o): o is PolicyObject => o.kind === 'policy')
      .map((p) => `${p.schema}.${p.table}:${p.name}`),
  );
  for (const p of facts.policies) {
    if (!protectedKeys.has(`${p.schema}.${p.table}`)) continue;
    const obj = `policy ${quoteIdent(p.name)} on ${q(p.schema, p.table)}`;
    const drop = sql`DROP POLICY ${ident(p.name)} ON ${qualified(p.schema, p.table)};`.text;
    const ours = desiredPolicies.has(`${p.schema}.${p.table}:${p.name}`);
    const repair = ours ? `${drop} then pgwarden apply re-creates it` : drop;
    if (p.permissive && p.roles.includes('PUBLIC')) {
      out.push(
        finding(
          'policy_for_public',
          obj,
          `Permissive ${p.command.toUpperCase()} policy for PUBLIC: it applies to every role, so any role with a privilege on the table gets the rows it allows.`,
          `${repair} (pgwarden's policies are written TO ${roles.viewOwner})`,
        ),
      );
    }
    if (p.permissive && (alwaysTrue(p.using) || alwaysTrue(p.check))) {
      const which = alwaysTrue(p.using) ? `USING (${p.using})` : `WITH CHECK (${p.check})`;
      out.push(
        finding(
          'policy_always_true',
          obj,
          `Permissive ${p.command.toUpperCase()} policy with ${which} for ${p.roles.join(', ')}: policies are OR-ed, so it opens every row to those roles whatever the other policies say.`,
          repair,
        ),
      );
    }
    if (
      p.check === null &&
      (p.command === 'insert' || p.command === 'update' || p.command === 'all')
    ) {
      out.push(
        finding(
          'write_policy_without_check',
          obj,
          p.command === 'insert'
            ? 'INSERT policy without WITH CHECK: it states no rule for new rows (PostgreSQL then lets it admit none), so what may be inserted depends on the other policies.'
            : `${p.command.toUpperCase()} policy without WITH CHECK: new row versions are checked only against USING, so a row may be changed into any row the USING clause reaches (e.g. given to another owner).`,
          `Re-create the policy with an explicit WITH CHECK${ours ? ' (pgwarden apply does)' : ''}.`,
        ),
      );
    }
    if (!ours) {
      out.push(
        finding(
          'policy_not_in_model',
          obj,
          `A ${p.permissive ? 'permissive' : 'restrictive'} ${p.command.toUpperCase()} policy for ${p.roles.join(', ')} that pgwarden did not create; ${p.permissive ? 'it widens what the model allows' : 'it narrows what the model allows'}.`,
          `${drop} (pgwarden apply drops it too), or express the rule in the model.`,
        ),
      );
    }
  }

  // ------------------------------------------------------------ definer functions
  for (const f of facts.definerFunctions) {
    const obj = `function ${q(f.schema, f.name)}(${f.args})${f.extension ? ` (extension ${f.extension})` : ''}`;
    const path = f.config.find((c) => c.startsWith('search_path='));
    const pin = `ALTER FUNCTION ${q(f.schema, f.name)}(${f.args}) SET search_path = pg_catalog, pg_temp; (and schema-qualify what it calls)`;
    if (path === undefined) {
      out.push(
        finding(
          'definer_without_search_path',
          obj,
          `SECURITY DEFINER function owned by ${f.owner} without a pinned search_path: a caller can put their own function, operator or table first in the search path and run code or read data as ${f.owner}.`,
          pin,
        ),
      );
      continue;
    }
    const parts = path
      .slice('search_path='.length)
      .split(',')
      .map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
      .filter((s) => s !== '');
    if (parts[parts.length - 1] !== 'pg_temp') {
      out.push(
        finding(
          'definer_search_path_pg_temp',
          obj,
          `SECURITY DEFINER function with ${path}: ${parts.includes('pg_temp') ? 'pg_temp is not last' : 'pg_temp is not listed, so it is searched first for tables and types'}, and any caller can create temporary objects there.`,
          pin,
        ),
      );
    }
  }

  // ------------------------------------------------------------ roles people can act as
  const starts = new Set([...facts.existingStartRoles]);
  const ownerRoles = new Map<string, string>([
    [roles.tableOwner, 'the table owner'],
    [roles.viewOwner, 'the view owner'],
    [roles.catalogOwner, "pgwarden's catalog owner"],
    [roles.auditOwner, "pgwarden's audit owner"],
  ]);
  for (const t of protectedTables)
    if (!ownerRoles.has(t.owner)) ownerRoles.set(t.owner, `the owner of ${q(t.schema, t.name)}`);
  const describe = (start: string) =>
    start === roles.authenticator
      ? 'the application role'
      : start === roles.people
        ? 'the people role'
        : 'a person';
  const attrSeen = new Set<string>();
  const memberSeen = new Set<string>();
  /** start roles that can become a dangerous role */
  const reachesDanger = new Set<string>();
  for (const r of facts.reach) {
    // report a role once, from the first start role that reaches it without passing another
    if (r.path.slice(1).some((x) => starts.has(x))) continue;
    const via = r.path.length > 1 ? ` (${r.start} can become it: ${r.path.join(' -> ')})` : '';
    const attrs = [
      r.superuser && 'SUPERUSER',
      r.bypassrls && 'BYPASSRLS',
      r.createrole && 'CREATEROLE',
      r.replication && 'REPLICATION',
    ].filter((x): x is string => typeof x === 'string');
    if (attrs.length > 0 && !attrSeen.has(r.role)) {
      attrSeen.add(r.role);
      out.push(
        finding(
          'role_dangerous_attribute',
          `role ${r.role}`,
          `${r.role} has ${attrs.join(', ')}${via}, and is reachable from ${describe(r.start)} ${r.start}: ${attrs.includes('SUPERUSER') || attrs.includes('BYPASSRLS') ? 'row level security does not apply to it' : 'it can create or change roles and so grant itself more'}.`,
          `ALTER ROLE ${quoteIdent(r.role)} ${attrs.map((a) => `NO${a}`).join(' ')};`,
        ),
      );
    }
    if (r.path.length > 1) {
      const label = DANGEROUS_BUILTIN_ROLES.includes(r.role)
        ? `the built-in role ${r.role}`
        : ownerRoles.get(r.role);
      const key = `${r.start}>${r.role}`;
      if (label && !memberSeen.has(key)) {
        memberSeen.add(key);
        reachesDanger.add(r.start);
        const member = r.path[r.path.length - 2] as string;
        out.push(
          finding(
            'role_dangerous_membership',
            `role ${r.start}`,
            `${capital(describe(r.start))} ${r.start} can become ${label} (${r.path.join(' -> ')}), which reads or writes past the row and column rules.`,
            `REVOKE ${quoteIdent(r.role)} FROM ${quoteIdent(member)};`,
          ),
        );
      }
    }
  }
  for (const p of facts.createPrivileges) {
    const target =
      p.on === 'schema' ? `SCHEMA ${quoteIdent(p.name)}` : `DATABASE ${quoteIdent(p.name)}`;
    const grantee = p.role === 'PUBLIC' ? 'PUBLIC' : quoteIdent(p.role);
    out.push(
      finding(
        'role_create_privilege',
        `role ${p.role}`,
        `${p.role === 'PUBLIC' ? 'PUBLIC (every role, people included)' : `${p.role}, which people or the application can act as,`} may CREATE in ${p.on} ${p.name}: ${p.on === 'schema' ? 'a function, operator or table created there can shadow the one a query or a careless definer function means' : 'it may create schemas, and in them objects that shadow the ones queries mean'}.`,
        `REVOKE CREATE ON ${target} FROM ${grantee};${p.role !== 'PUBLIC' ? ' (if it comes through another role or ownership, revoke it there)' : ''}`,
      ),
    );
  }
  // a role that is itself dangerous to reach, or reaches one, is reported by the membership rule
  for (const p of facts.protectedPrivileges) {
    if (
      reachesDanger.has(p.role) ||
      DANGEROUS_BUILTIN_ROLES.includes(p.role) ||
      ownerRoles.has(p.role)
    )
      continue;
    const target =
      p.on === 'schema' ? `SCHEMA ${quoteIdent(p.name)}` : `TABLE ${q(p.schema, p.name)}`;
    out.push(
      finding(
        'role_protected_privilege',
        `role ${p.role}`,
        `${p.role}, which people or the application can act as, holds ${p.privileges.join(', ')} on ${p.on} ${p.on === 'schema' ? p.name : q(p.schema, p.name)}: people must reach the data only through the views of ${exposed}.`,
        `REVOKE ${p.privileges.join(', ')} ON ${target} FROM ${quoteIdent(p.role)};${p.on === 'table' ? ' (also column grants; if it comes through another role, revoke it there)' : ''}`,
      ),
    );
  }

  // ------------------------------------------------------------ PUBLIC
  for (const g of facts.publicGrants) {
    if (g.privileges.length === 0) continue;
    if (g.kind === 'table' && g.schema !== prot && !protectedKeys.has(`${g.schema}.${g.name}`))
      continue;
    const target =
      g.kind === 'schema'
        ? `SCHEMA ${quoteIdent(g.name)}`
        : g.kind === 'function'
          ? `FUNCTION ${q(g.schema, g.name)}(${g.args ?? ''})`
          : g.kind === 'sequence'
            ? `SEQUENCE ${q(g.schema, g.name)}`
            : `TABLE ${q(g.schema, g.name)}`;
    const object =
      g.kind === 'schema'
        ? `schema ${quoteIdent(g.name)}`
        : g.kind === 'function'
          ? `function ${q(g.schema, g.name)}(${g.args ?? ''})`
          : `${g.kind} ${q(g.schema, g.name)}`;
    out.push(
      finding(
        'public_privilege',
        object,
        `PUBLIC (every role, present and future) holds ${g.privileges.join(', ')} on ${object}.`,
        `REVOKE ALL ON ${target} FROM PUBLIC;${g.kind === 'function' ? ' (then grant EXECUTE to the roles that need it; pgwarden apply does for its own)' : ''}`,
      ),
    );
  }

  // ------------------------------------------------------------ views over protected tables
  // pgwarden's views with the owner it gives them: the exposed views (the view owner) and the
  // `_rows_*` lookups (the catalog owner; security_barrier views that the view owner and the
  // people may read, since `pgwarden explain` evaluates rules as the person)
  const ourViews = new Map(
    desired
      .filter((o): o is ViewObject => o.kind === 'view')
      .map((v) => [`${v.schema}.${v.name}`, v.owner]),
  );
  const tableOwners = new Set(protectedTables.map((t) => t.owner));
  tableOwners.add(roles.tableOwner);
  for (const v of facts.views) {
    if (v.tables.length === 0) continue;
    if (v.kind === 'v' && ourViews.get(`${v.schema}.${v.name}`) === v.owner) continue;
    const kind = v.kind === 'm' ? 'materialized view' : 'view';
    const obj = `${kind} ${q(v.schema, v.name)}`;
    const over = v.tables.join(', ');
    const why = v.ownerSuperuser
      ? 'a superuser'
      : v.ownerBypassrls
        ? 'a BYPASSRLS role'
        : tableOwners.has(v.owner)
          ? 'the owner of the protected tables'
          : v.owner === roles.viewOwner
            ? "pgwarden's view owner, to which the row policies are written (so it gets rows without the column masks)"
            : null;
    const drop = `DROP ${kind.toUpperCase()} ${q(v.schema, v.name)};`;
    if (why) {
      out.push(
        finding(
          'view_bypasses_rules',
          obj,
          `${capital(kind)} over ${over}, owned by ${v.owner}, ${why}: whoever may read it gets the rows and cells as its owner does, past the model's rules.`,
          `${drop} or give it to an ordinary role (ALTER ${kind.toUpperCase()} ... OWNER TO ...)${v.kind === 'v' && facts.serverVersion >= 150000 ? ' and SET (security_invoker = true)' : ''}; people read ${exposed}'s views.`,
        ),
      );
    } else if (v.kind === 'm') {
      out.push(
        finding(
          'view_not_security_invoker',
          obj,
          `Materialized view over ${over}, owned by ${v.owner}: it stores the rows its owner saw at the last refresh, and row level security does not apply to reading it.`,
          `${drop} or make sure no person can read it.`,
        ),
      );
    } else if (facts.serverVersion >= 150000 && !hasOption(v.options, 'security_invoker')) {
      out.push(
        finding(
          'view_not_security_invoker',
          obj,
          `View over ${over}, owned by ${v.owner}, without security_invoker: it reads the tables with its owner's privileges and policies, not the reader's.`,
          `ALTER VIEW ${q(v.schema, v.name)} SET (security_invoker = true);`,
        ),
      );
    }
  }

  // ------------------------------------------------------------ indexes
  for (const t of model.tables) {
    const lt = live.get(`${prot}.${t.table}`);
    if (!lt) continue;
    for (const [column, why] of scopeColumns(model, t)) {
      const leading = facts.indexes.filter(
        (i) => i.schema === prot && i.table === t.table && i.valid && i.columns[0] === column,
      );
      if (leading.some((i) => i.defaultCollations[0])) continue;
      // the policies compare text in the default collation (the helpers' results would be "C")
      const collate = leading.length > 0 ? sql` COLLATE pg_catalog."default"` : sql``;
      const name = leading.length > 0 ? null : indexName(t.table, column);
      const create = name
        ? sql`CREATE INDEX ${ident(name)} ON ${qualified(prot, t.table)} (${ident(column)}${collate});`
        : sql`CREATE INDEX ON ${qualified(prot, t.table)} (${ident(column)}${collate});`;
      out.push(
        finding(
          'unindexed_scope_column',
          `column ${q(prot, t.table)}.${quoteIdent(column)}`,
          leading.length > 0
            ? `The row rules filter ${t.name} on ${column} (scope ${why}) in the default collation, and the indexes leading with it (${leading.map((i) => i.name).join(', ')}) use another: every statement of the people it applies to scans the table.`
            : `The row rules filter ${t.name} on ${column} (scope ${why}), and no index leads with it: every statement of the people it applies to scans the table.`,
          `${create.text} (CONCURRENTLY on a busy table)`,
        ),
      );
    }
    for (const set of scopeIndexSets(t)) {
      const serving = facts.indexes.filter(
        (i) =>
          i.schema === prot &&
          i.table === t.table &&
          i.valid &&
          set.columns.includes(i.columns[0] ?? '') &&
          set.columns.every((c) => {
            const k = i.columns.indexOf(c);
            return k >= 0 && i.defaultCollations[k] !== false;
          }),
      );
      if (serving.length > 0) continue;
      const cols = set.columns.map((c) => ident(c));
      const name = indexName(t.table, set.columns.join('_'));
      const create = name
        ? sql`CREATE INDEX ${ident(name)} ON ${qualified(prot, t.table)} (${join(cols, ', ')});`
        : sql`CREATE INDEX ON ${qualified(prot, t.table)} (${join(cols, ', ')});`;
      out.push(
        finding(
          'unindexed_scope_column',
          `columns ${q(prot, t.table)} (${set.columns.map((c) => quoteIdent(c)).join(', ')})`,
          `The row rules filter ${t.name} on ${set.columns.join(' and ')} together (scope ${set.why}), and no index holds all of them in the default collation, led by one of them: the planner re-checks the whole policy on every row it fetches, for everyone.`,
          `${create.text} (CONCURRENTLY on a busy table)`,
        ),
      );
    }
  }
  return out;
}
