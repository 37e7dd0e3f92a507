/**
 * What `pgwarden doctor` reads from the server and the database, besides what `pgwarden check`
 * reads (src/introspect/lint.ts, reused as is): the server version, SECURITY DEFINER functions
 * that PUBLIC may execute, materialized views that read protected tables and who may read them,
 * and who holds TEMP on the database. Plain data, read in one READ ONLY transaction.
 */
import type postgres from 'postgres';
import { type LintFacts, type LintTargets, readLintFacts } from './lint.js';

export interface DoctorPublicDefiner {
  schema: string;
  name: string;
  args: string;
  owner: string;
}

export interface DoctorMatview {
  schema: string;
  name: string;
  /** protected tables it reads, directly or through views, `schema.name` */
  tables: string[];
  /** start roles and persons that may SELECT it */
  readers: string[];
}

export interface DoctorFacts {
  /** `SELECT version()` */
  version: string;
  /** server_version_num */
  versionNum: number;
  publicDefiners: DoctorPublicDefiner[];
  matviews: DoctorMatview[];
  /** roles among the start roles and persons that may create temporary objects; PUBLIC if it may */
  temp: string[];
  /** pgwarden.subtree_cache_problems(), when the catalog has it and the doctor may run it */
  subtreeCache:
    | { checked: true; units: number; problems: { unit: string; problem: string }[] }
    | { checked: false; reason: string };
  lint: LintFacts;
}

type Db = postgres.Sql | postgres.TransactionSql;

export async function readDoctorFacts(
  db: postgres.Sql,
  targets: LintTargets,
): Promise<DoctorFacts> {
  const lint = await readLintFacts(db, targets);
  const rest = (await db.begin('read only', (tx) => readRest(tx, targets, lint))) as Omit<
    DoctorFacts,
    'lint'
  >;
  return { ...rest, lint };
}

async function readRest(
  db: Db,
  targets: LintTargets,
  lint: LintFacts,
): Promise<Omit<DoctorFacts, 'lint'>> {
  await db`SET LOCAL search_path = pg_catalog, pg_temp`;
  const [v] = await db<{ version: string; num: string }[]>`
    SELECT pg_catalog.version() AS version, pg_catalog.current_setting('server_version_num') AS num`;
  const publicDefiners = await db<DoctorPublicDefiner[]>`
    SELECT n.nspname AS schema, p.proname AS name, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
      pg_catalog.pg_get_userbyid(p.proowner)::text AS owner
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prosecdef
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
      AND EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
                  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
    ORDER BY 1, 2, 3`;
  const people = [...new Set([...lint.existingStartRoles, ...lint.personRoles])];
  const existing = (
    await db<
      { r: string }[]
    >`SELECT rolname::text AS r FROM pg_catalog.pg_roles WHERE rolname = ANY (${people}::text[])`
  ).map((r) => r.r);
  // materialized views reading a protected-schema table, directly or through plain views
  const matviews = await db<
    { schema: string; name: string; tables: string[]; readers: string[] }[]
  >`
    WITH RECURSIVE deps(mv, rel) AS (
      SELECT m.oid, d.refobjid FROM pg_catalog.pg_class m
        JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = m.oid
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
      WHERE m.relkind = 'm' AND d.refobjid <> m.oid
      UNION
      SELECT deps.mv, d.refobjid FROM deps
        JOIN pg_catalog.pg_rewrite rw ON rw.ev_class = deps.rel
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
      WHERE d.refobjid <> deps.rel
    )
    SELECT n.nspname AS schema, m.relname AS name,
      ARRAY(SELECT DISTINCT tn.nspname || '.' || t.relname FROM deps JOIN pg_catalog.pg_class t ON t.oid = deps.rel
              JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
            WHERE deps.mv = m.oid AND t.relkind IN ('r', 'p') AND tn.nspname = ${targets.protectedSchema} ORDER BY 1) AS tables,
      ARRAY(SELECT r FROM pg_catalog.unnest(${existing}::text[]) r WHERE pg_catalog.has_table_privilege(r, m.oid, 'SELECT') ORDER BY 1) AS readers
    FROM pg_catalog.pg_class m JOIN pg_catalog.pg_namespace n ON n.oid = m.relnamespace
    WHERE m.relkind = 'm'
    ORDER BY 1, 2`;
  const [t] = await db<{ pub: boolean; roles: string[] }[]>`
    SELECT EXISTS (SELECT FROM pg_catalog.pg_database d, pg_catalog.aclexplode(COALESCE(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
                   WHERE d.datname = pg_catalog.current_database() AND a.grantee = 0 AND a.privilege_type = 'TEMPORARY') AS pub,
      ARRAY(SELECT r FROM pg_catalog.unnest(${existing}::text[]) r WHERE pg_catalog.has_database_privilege(r, pg_catalog.current_database(), 'TEMPORARY') ORDER BY 1) AS roles`;
  const subtreeCache = await readSubtreeCache(db);
  return {
    version: v?.version ?? '',
    versionNum: Number(v?.num ?? 0),
    publicDefiners: [...publicDefiners],
    matviews: matviews.filter((m) => m.tables.length > 0).map((m) => ({ ...m })),
    temp: [...(t?.pub ? ['PUBLIC'] : []), ...(t?.roles ?? [])],
    subtreeCache,
  };
}

async function readSubtreeCache(db: Db): Promise<DoctorFacts['subtreeCache']> {
  const [f] = await db<{ exists: boolean; may: boolean }[]>`
    SELECT pg_catalog.to_regprocedure('pgwarden.subtree_cache_problems()') IS NOT NULL AS exists,
      pg_catalog.to_regprocedure('pgwarden.subtree_cache_problems()') IS NOT NULL
        AND pg_catalog.has_function_privilege('pgwarden.subtree_cache_problems()', 'EXECUTE') AS may`;
  if (!f?.exists)
    return {
      checked: false,
      reason: 'the database has no pgwarden catalog of version 19 or later',
    };
  if (!f.may)
    return {
      checked: false,
      reason: `${await currentUser(db)} may not execute pgwarden.subtree_cache_problems()`,
    };
  const problems = await db<{ unit: string; problem: string }[]>`
    SELECT unit, problem FROM pgwarden.subtree_cache_problems()`;
  const [n] = await db<{ n: number }[]>`SELECT pg_catalog.count(*)::int AS n FROM pgwarden.units`;
  return { checked: true, units: n?.n ?? 0, problems: problems.map((p) => ({ ...p })) };
}

async function currentUser(db: Db): Promise<string> {
  const [u] = await db<{ u: string }[]>`SELECT current_user::text AS u`;
  return u?.u ?? 'this role';
}
