/**
 * The rules of `pgwarden check`: stable codes, one severity each. docs/checks.md describes every
 * rule (what it detects, why it matters, how to fix it); keep the two in step.
 */

export type Severity = 'error' | 'warning';

/** Where a rule looks: the model file alone, or the live database (with the model). */
export type RuleSource = 'model' | 'database';

export interface RuleInfo {
  severity: Severity;
  source: RuleSource;
  /** one line: what the rule detects */
  title: string;
}

/** Every rule, by its stable code. The type checker keeps findings to these codes. */
export const CHECK_RULES = {
  // ---------------------------------------------------------------- model (offline)
  job_without_rules: {
    severity: 'warning',
    source: 'model',
    title:
      'a job that no rule, cell, edit, reveal, export, claim or read cap names, and that is neither admin, approver nor audit reader',
  },
  rule_any_job_all_rows: {
    severity: 'warning',
    source: 'model',
    title: 'a rule for every active person (jobs: ["*"]) with the scope `all`',
  },
  filter_always_true: {
    severity: 'warning',
    source: 'model',
    title: 'a filter scope that is always true (`true`, `1 = 1`, ...)',
  },
  export_sensitive_without_approval: {
    severity: 'warning',
    source: 'model',
    title:
      'a sensitive column (one with cells, or listed in `sensitive`) that a job may export without an approved request',
  },
  admin_job_not_privileged: {
    severity: 'warning',
    source: 'model',
    title: 'an admin job that is not privileged, so granting it needs no approval',
  },
  delete_without_recycle_bin: {
    severity: 'warning',
    source: 'model',
    title: 'a rule that allows DELETE on a table without a recycle bin',
  },
  // ---------------------------------------------------------------- live database
  not_applied: {
    severity: 'error',
    source: 'database',
    title: "pgwarden's catalog is not installed: the model was never applied to this database",
  },
  role_prefix_mismatch: {
    severity: 'warning',
    source: 'database',
    title: 'the database was applied with another --role-prefix than the one given',
  },
  table_missing: {
    severity: 'error',
    source: 'database',
    title: 'a table of the model does not exist in the protected schema',
  },
  table_not_in_model: {
    severity: 'warning',
    source: 'database',
    title: 'a table in the protected schema that the model does not protect',
  },
  rls_disabled: {
    severity: 'error',
    source: 'database',
    title: 'row level security is off on a protected table or one of its partitions',
  },
  rls_not_forced: {
    severity: 'error',
    source: 'database',
    title: 'row level security is on but not forced on a protected table or partition',
  },
  policy_for_public: {
    severity: 'error',
    source: 'database',
    title: 'a permissive policy on a protected table that applies to PUBLIC',
  },
  policy_always_true: {
    severity: 'error',
    source: 'database',
    title: 'a permissive policy on a protected table whose USING or WITH CHECK is always true',
  },
  policy_not_in_model: {
    severity: 'warning',
    source: 'database',
    title: 'a policy on a protected table that pgwarden did not create',
  },
  write_policy_without_check: {
    severity: 'error',
    source: 'database',
    title: 'an INSERT, UPDATE or ALL policy on a protected table without WITH CHECK',
  },
  definer_without_search_path: {
    severity: 'error',
    source: 'database',
    title: 'a SECURITY DEFINER function (any schema) without a pinned search_path',
  },
  definer_search_path_pg_temp: {
    severity: 'warning',
    source: 'database',
    title: 'a SECURITY DEFINER function whose search_path does not end with pg_temp',
  },
  role_dangerous_attribute: {
    severity: 'error',
    source: 'database',
    title:
      'a person, the people role or the application role (or a role they can become) has SUPERUSER, BYPASSRLS, CREATEROLE or REPLICATION',
  },
  role_dangerous_membership: {
    severity: 'error',
    source: 'database',
    title:
      "a person, the people role or the application role can become pg_read_all_data, pg_write_all_data, a server-file role, or one of pgwarden's owner roles",
  },
  role_create_privilege: {
    severity: 'error',
    source: 'database',
    title:
      'a person, the people role or the application role (or PUBLIC) may CREATE in a schema or the database',
  },
  role_protected_privilege: {
    severity: 'error',
    source: 'database',
    title:
      'a person, the people role or the application role holds a privilege on the protected schema or a protected table',
  },
  public_privilege: {
    severity: 'error',
    source: 'database',
    title:
      "PUBLIC holds a privilege on a protected table, a relation of the protected or exposed schema, pgwarden's schemas or functions",
  },
  view_bypasses_rules: {
    severity: 'error',
    source: 'database',
    title:
      "a view over a protected table, not pgwarden's, owned by a superuser, a BYPASSRLS role, the table owner or the view-owner role",
  },
  view_not_security_invoker: {
    severity: 'warning',
    source: 'database',
    title: "a view over a protected table, not pgwarden's, without security_invoker (PG15+)",
  },
  unindexed_scope_column: {
    severity: 'warning',
    source: 'database',
    title:
      'a column a row rule filters on (owner, unit, pool, parent key) with no index leading with it',
  },
} as const satisfies Record<string, RuleInfo>;

export type CheckCode = keyof typeof CHECK_RULES;

export const CHECK_CODES = Object.keys(CHECK_RULES) as CheckCode[];

export function isCheckCode(code: string): code is CheckCode {
  return Object.hasOwn(CHECK_RULES, code);
}

export interface Finding {
  code: CheckCode;
  severity: Severity;
  /** the object concerned, e.g. `table crm.customers`, `role alice`, `model tables.customers` */
  object: string;
  message: string;
  /** what to do; often the SQL that fixes it */
  fix: string;
}

export function finding(code: CheckCode, object: string, message: string, fix: string): Finding {
  return { code, severity: CHECK_RULES[code].severity, object, message, fix };
}
