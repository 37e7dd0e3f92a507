/**
 * What `pgwarden check` reads from the live database: plain data, read in one READ ONLY
 * transaction. The rules that judge it are pure functions in src/check/.
 */
import type postgres from 'postgres';
import { readPolicies } from './index.js';

/** What to look at, derived from the compiled model (src/check: lintTargets). */
export interface LintTargets {
  protectedSchema: string;
  exposedSchema: string;
  /** pgwarden's own schemas (catalog, audit) besides the protected and exposed ones */
  pgwardenSchemas: readonly string[];
  /** roles the application and people act as: the authenticator and the people role */
  startRoles: readonly string[];
}

export interface LiveTable {
  schema: string;
  name: string;
  /** r: table, p: partitioned table */
  kind: 'r' | 'p';
  rls: boolean;
  force: boolean;
  owner: string;
  /** the root of its partition tree, when it is a partition */
  partitionOf: { schema: string; name: string } | null;
}

export interface LivePolicy {
  schema: string;
  table: string;
  name: string;
  command: 'select' | 'insert' | 'update' | 'delete' | 'all';
  permissive: boolean;
  /** role names; `PUBLIC` for the public pseudo-role */
  roles: string[];
  using: string | null;
  check: string | null;
}

export interface LiveDefinerFunction {
  schema: string;
  name: string;
  /** identity arguments, as pg_get_function_identity_arguments prints them */
  args: string;
  owner: string;
  /** proconfig: `name=value` settings */
  config: string[];
  /** the extension it belongs to, if any */
  extension: string | null;
}

export interface LivePublicGrant {
  kind: 'table' | 'view' | 'sequence' | 'function' | 'schema';
  schema: string;
  name: string;
  /** functions: identity arguments */
  args: string | null;
  privileges: string[];
}

/** A role reached from a start role through memberships (path[0] is the start, last is `role`). */
export interface LiveReach {
  start: string;
  role: string;
  path: string[];
  superuser: boolean;
  bypassrls: boolean;
  createrole: boolean;
  replication: boolean;
}

export interface LiveCreatePrivilege {
  /** role name, or PUBLIC */
  role: string;
  on: 'schema' | 'database';
  name: string;
}

export interface LiveProtectedPrivilege {
  role: string;
  on: 'schema' | 'table';
  schema: string;
  /** table name; the schema name for `on: schema` */
  name: string;
  privileges: string[];
}

export interface LiveView {
  schema: string;
  name: string;
  /** v: view, m: materialized view */
  kind: 'v' | 'm';
  owner: string;
  ownerSuperuser: boolean;
  ownerBypassrls: boolean;
  /** reloptions, `name=value` */
  options: string[];
  /** protected tables it reads directly, `schema.name` */
  tables: string[];
}

export interface LiveIndex {
  schema: string;
  table: string;
  name: string;
  /** the key columns in order ('' for an expression); the first one leads */
  columns: string[];
  /** per key column: indexed in the default collation (or not text) */
  defaultCollations: boolean[];
  valid: boolean;
  partial: boolean;
}

export interface LintFacts {
  serverVersion: number;
  database: string;
  catalogInstalled: boolean;
  /** `role_prefix` of pgwarden.settings, when installed */
  appliedRolePrefix: string | null;
  /** roles of pgwarden.people */
  personRoles: string[];
  /** start roles that exist */
  existingStartRoles: string[];
  /** tables of the protected schema, and partitions of them (any schema) */
  tables: LiveTable[];
  policies: LivePolicy[];
  definerFunctions: LiveDefinerFunction[];
  publicGrants: LivePublicGrant[];
  reach: LiveReach[];
  createPrivileges: LiveCreatePrivilege[];
  protectedPrivileges: LiveProtectedPrivilege[];
  views: LiveView[];
  indexes: LiveIndex[];
}

type Db = postgres.Sql | postgres.TransactionSql;

/** Reads everything the live rules need, in one READ ONLY transaction. Changes nothing. */
export async function readLintFacts(db: postgres.Sql, targets: LintTargets): Promise<LintFacts> {
  return (await db.begin('read only', async (tx) => readFacts(tx, targets))) as LintFacts;
}

async function readFacts(db: Db, targets: LintTargets): Promise<LintFacts> {
  const prot = targets.protectedSchema;
  // operators and unqualified names resolve in pg_catalog only, whatever the database holds
  await db`SET LOCAL search_path = pg_catalog, pg_temp`;
  const [meta] = await db<{ v: string; db: string; installed: boolean; settings: boolean }[]>`
    SELECT pg_catalog.current_setting('server_version_num') AS v, pg_catalog.current_database() AS db,
      pg_catalog.to_regclass('pgwarden.people') IS NOT NULL AS installed,
      pg_catalog.to_regclass('pgwarden.settings') IS NOT NULL AS settings`;
  const serverVersion = Number(meta?.v ?? 0);
  const catalogInstalled = meta?.installed === true;
  let appliedRolePrefix: string | null = null;
  if (meta?.settings) {
    const [s] = await db<
      { value: string }[]
    >`SELECT value FROM pgwarden.settings WHERE key = 'role_prefix'`;
    appliedRolePrefix = s?.value ?? null;
  }
  const personRoles = catalogInstalled
    ? (await db<{ role: string }[]>`SELECT role::text AS role FROM pgwarden.people ORDER BY 1`).map(
        (r) => r.role,
      )
    : [];
  const startNames = [...new Set([...targets.startRoles, ...personRoles])];

  const tableRows = await db<
    {
      schema: string;
      name: string;
      kind: 'r' | 'p';
      rls: boolean;
      force: boolean;
      owner: string;
      root_schema: string | null;
      root_name: string | null;
    }[]
  >`
    WITH t AS (
      SELECT c.oid, c.relispartition,
        CASE WHEN c.relispartition THEN pg_catalog.pg_partition_root(c.oid) END AS root
      FROM pg_catalog.pg_class c
      WHERE c.relkind IN ('r', 'p')
    )
    SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, c.relrowsecurity AS rls,
      c.relforcerowsecurity AS force, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
      rn.nspname AS root_schema, r.relname AS root_name
    FROM t JOIN pg_catalog.pg_class c ON c.oid = t.oid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_class r ON r.oid = t.root
    LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
    WHERE n.nspname = ${prot} OR rn.nspname = ${prot}
    ORDER BY 1, 2`;
  const tables: LiveTable[] = tableRows.map((r) => ({
    schema: r.schema,
    name: r.name,
    kind: r.kind,
    rls: r.rls,
    force: r.force,
    owner: r.owner,
    partitionOf:
      r.root_schema !== null && r.root_name !== null
        ? { schema: r.root_schema, name: r.root_name }
        : null,
  }));
  const tableSchemas = tables.map((t) => t.schema);
  const tableNames = tables.map((t) => t.name);

  const policies: LivePolicy[] = (
    await readPolicies(
      db,
      tables.map((t) => ({ schema: t.schema, table: t.name })),
    )
  ).map(({ kind: _kind, to, ...p }) => ({ ...p, roles: [...to] }));

  const definerFunctions = (
    await db<
      {
        schema: string;
        name: string;
        args: string;
        owner: string;
        config: string[] | null;
        extension: string | null;
      }[]
    >`
    SELECT n.nspname AS schema, p.proname AS name, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
      pg_catalog.pg_get_userbyid(p.proowner) AS owner, p.proconfig AS config,
      (SELECT e.extname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
          AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e' LIMIT 1) AS extension
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY 1, 2, 3`
  ).map((r) => ({ ...r, config: r.config ?? [] }));

  const relSchemas = [prot, targets.exposedSchema];
  const fnSchemas = [...targets.pgwardenSchemas, targets.exposedSchema, prot];
  const allSchemas = [...new Set([prot, targets.exposedSchema, ...targets.pgwardenSchemas])];
  const publicGrants = await db<LivePublicGrant[]>`
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
      n.nspname AS schema, c.relname AS name, NULL::text AS args,
      ARRAY(SELECT DISTINCT a.privilege_type FROM pg_catalog.aclexplode(COALESCE(c.relacl,
        pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
        WHERE a.grantee = 0 ORDER BY 1) AS privileges
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname = ANY (${relSchemas}::text[]) OR (n.nspname, c.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tableSchemas}::text[]), pg_catalog.unnest(${tableNames}::text[]))))
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT 'function', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
      ARRAY(SELECT DISTINCT a.privilege_type FROM pg_catalog.aclexplode(COALESCE(p.proacl,
        pg_catalog.acldefault('f', p.proowner))) a WHERE a.grantee = 0 ORDER BY 1)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY (${fnSchemas}::text[])
    UNION ALL
    SELECT 'schema', n.nspname, n.nspname, NULL,
      ARRAY(SELECT DISTINCT a.privilege_type FROM pg_catalog.aclexplode(COALESCE(n.nspacl,
        pg_catalog.acldefault('n', n.nspowner))) a WHERE a.grantee = 0 ORDER BY 1)
    FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY (${allSchemas}::text[])
    ORDER BY 2, 3, 4`;

  const reach = await db<LiveReach[]>`
    WITH RECURSIVE r(start, role, path) AS (
      SELECT a.oid, a.oid, ARRAY[a.oid] FROM pg_catalog.pg_roles a WHERE a.rolname = ANY (${startNames}::text[])
      UNION ALL
      SELECT r.start, m.roleid, r.path || m.roleid
      FROM r JOIN pg_catalog.pg_auth_members m ON m.member = r.role
      WHERE NOT m.roleid = ANY (r.path)
    )
    SELECT pg_catalog.pg_get_userbyid(r.start) AS start, a.rolname::text AS role,
      ARRAY(SELECT pg_catalog.pg_get_userbyid(x) FROM pg_catalog.unnest(r.path) WITH ORDINALITY AS u(x, i) ORDER BY i) AS path,
      a.rolsuper AS superuser, a.rolbypassrls AS bypassrls, a.rolcreaterole AS createrole,
      a.rolreplication AS replication
    FROM r JOIN pg_catalog.pg_roles a ON a.oid = r.role
    ORDER BY 1, 2, pg_catalog.array_length(r.path, 1)`;
  const existingStartRoles = [
    ...new Set(reach.filter((x) => x.path.length === 1).map((x) => x.start)),
  ];
  const reached = [...new Set(reach.map((x) => x.role))];

  const createPrivileges = await db<LiveCreatePrivilege[]>`
    SELECT a.rolname::text AS role, 'schema' AS on, n.nspname::text AS name
    FROM pg_catalog.pg_roles a CROSS JOIN pg_catalog.pg_namespace n
    WHERE a.rolname = ANY (${reached}::text[]) AND NOT a.rolsuper
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
      AND pg_catalog.has_schema_privilege(a.oid, n.oid, 'CREATE')
      AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) x
                      WHERE x.grantee = 0 AND x.privilege_type = 'CREATE')
    UNION ALL
    SELECT 'PUBLIC', 'schema', n.nspname FROM pg_catalog.pg_namespace n
    WHERE n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
      AND EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) x
                  WHERE x.grantee = 0 AND x.privilege_type = 'CREATE')
    UNION ALL
    SELECT a.rolname, 'database', pg_catalog.current_database()
    FROM pg_catalog.pg_roles a
    WHERE a.rolname = ANY (${reached}::text[]) AND NOT a.rolsuper
      AND pg_catalog.has_database_privilege(a.oid, pg_catalog.current_database(), 'CREATE')
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_database d, pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                      WHERE d.datname = pg_catalog.current_database() AND x.grantee = 0 AND x.privilege_type = 'CREATE')
    UNION ALL
    SELECT 'PUBLIC', 'database', d.datname FROM pg_catalog.pg_database d
    WHERE d.datname = pg_catalog.current_database()
      AND EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) x
                  WHERE x.grantee = 0 AND x.privilege_type = 'CREATE')
    ORDER BY 1, 2, 3`;

  // privileges that PUBLIC does not also hold (those are public_privilege findings); CREATE on
  // the schema is a createPrivileges fact
  const protectedPrivileges = await db<LiveProtectedPrivilege[]>`
    WITH roles AS (
      SELECT a.oid, a.rolname::text AS rolname FROM pg_catalog.pg_roles a
      WHERE a.rolname = ANY (${reached}::text[]) AND NOT a.rolsuper
    ), tbl AS (
      SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relacl, c.relowner
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE (n.nspname, c.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tableSchemas}::text[]), pg_catalog.unnest(${tableNames}::text[])))
    )
    SELECT x.* FROM (
      SELECT roles.rolname AS role, 'table' AS on, tbl.schema, tbl.name,
        ARRAY(SELECT p FROM pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
              WHERE (pg_catalog.has_table_privilege(roles.oid, tbl.oid, p)
                     OR (p IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') AND pg_catalog.has_any_column_privilege(roles.oid, tbl.oid, p)))
                AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(tbl.relacl, pg_catalog.acldefault('r', tbl.relowner))) g
                                WHERE g.grantee = 0 AND g.privilege_type = p)
              ORDER BY 1) AS privileges
      FROM roles CROSS JOIN tbl
      UNION ALL
      SELECT roles.rolname, 'schema', n.nspname::text, n.nspname::text,
        ARRAY(SELECT p FROM pg_catalog.unnest(ARRAY['USAGE']) AS p
              WHERE pg_catalog.has_schema_privilege(roles.oid, n.oid, p)
                AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) g
                                WHERE g.grantee = 0 AND g.privilege_type = p)
              ORDER BY 1)
      FROM roles CROSS JOIN pg_catalog.pg_namespace n WHERE n.nspname = ${prot}
    ) x WHERE pg_catalog.cardinality(x.privileges) > 0
    ORDER BY 1, 2, 3, 4`;

  const views = await db<LiveView[]>`
    SELECT vn.nspname AS schema, v.relname AS name, v.relkind::text AS kind,
      pg_catalog.pg_get_userbyid(v.relowner) AS owner, o.rolsuper AS "ownerSuperuser",
      o.rolbypassrls AS "ownerBypassrls", COALESCE(v.reloptions, '{}') AS options,
      ARRAY(SELECT DISTINCT tn.nspname || '.' || t.relname
            FROM pg_catalog.pg_rewrite rw
            JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
            WHERE rw.ev_class = v.oid
              AND (tn.nspname, t.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tableSchemas}::text[]), pg_catalog.unnest(${tableNames}::text[])))
            ORDER BY 1) AS tables
    FROM pg_catalog.pg_class v JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
    JOIN pg_catalog.pg_roles o ON o.oid = v.relowner
    WHERE v.relkind IN ('v', 'm') AND vn.nspname NOT IN ('pg_catalog', 'information_schema')
      AND EXISTS (SELECT FROM pg_catalog.pg_rewrite rw
            JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = rw.oid
              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
            WHERE rw.ev_class = v.oid
              AND (tn.nspname, t.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tableSchemas}::text[]), pg_catalog.unnest(${tableNames}::text[]))))
    ORDER BY 1, 2`;

  const indexes = await db<LiveIndex[]>`
    SELECT n.nspname AS schema, c.relname AS table, ic.relname AS name,
      ARRAY(SELECT COALESCE(a.attname::text, '') FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
            LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum AND k.attnum > 0
            WHERE k.n <= i.indnkeyatts ORDER BY k.n) AS columns,
      ARRAY(SELECT k.coll IN (0, 100) FROM pg_catalog.unnest(i.indcollation::oid[]) WITH ORDINALITY AS k(coll, n)
            WHERE k.n <= i.indnkeyatts ORDER BY k.n) AS "defaultCollations",
      i.indisvalid AS valid, i.indpred IS NOT NULL AS partial
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname, c.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tableSchemas}::text[]), pg_catalog.unnest(${tableNames}::text[])))
    ORDER BY 1, 2, 3`;

  return {
    serverVersion,
    database: meta?.db ?? '',
    catalogInstalled,
    appliedRolePrefix,
    personRoles,
    existingStartRoles,
    tables,
    policies,
    definerFunctions,
    publicGrants: publicGrants.map((g) => ({ ...g })),
    reach: reach.map((r) => ({ ...r })),
    createPrivileges: createPrivileges.map((r) => ({ ...r })),
    protectedPrivileges: protectedPrivileges.map((r) => ({ ...r })),
    views: views.map((v) => ({ ...v })),
    indexes: indexes.map((i) => ({ ...i })),
  };
}
