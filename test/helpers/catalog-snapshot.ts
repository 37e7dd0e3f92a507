/**
 * What a person can observe of the CRM catalog pgwarden manages: policies, views, grants, role
 * attributes, functions, triggers, table security and the applied-object registry, with the
 * test database's role prefix replaced by `<p>`. Two databases with equal snapshots enforce
 * the same rules (used to compare `pgwarden apply` with generated SQL, drizzle-kit migrations
 * and the state after `drizzle-kit push` + `pgwarden apply`).
 */
import type postgres from 'postgres';

export async function catalogSnapshot(db: postgres.Sql, prefix: string): Promise<unknown> {
  const strip = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll(prefix, '<p>'));
  const policies =
    await db`SELECT schemaname, tablename, policyname, permissive, roles::text[] AS roles, cmd, qual, with_check FROM pg_policies WHERE schemaname IN ('crm') ORDER BY 1, 2, 3`;
  const views =
    await db`SELECT schemaname, viewname, viewowner, definition FROM pg_views WHERE schemaname IN ('crm_api') ORDER BY 1, 2`;
  const grants =
    await db`SELECT table_schema, table_name, grantee, privilege_type FROM information_schema.role_table_grants WHERE table_schema IN ('crm', 'crm_api', 'pgwarden') ORDER BY 1, 2, 3, 4`;
  const routines =
    await db`SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prosecdef, p.proconfig, p.proacl::text[] AS acl, md5(p.prosrc) AS src FROM pg_proc p WHERE p.pronamespace = 'pgwarden'::regnamespace ORDER BY 1, 2`;
  const roles =
    await db`SELECT rolname, rolcanlogin, rolinherit, rolbypassrls, rolcreaterole, rolsuper FROM pg_roles WHERE left(rolname, ${prefix.length}) = ${prefix} ORDER BY 1`;
  const tables =
    await db`SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner, c.relacl::text[] AS acl FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' ORDER BY 1`;
  const triggers =
    await db`SELECT c.relnamespace::regnamespace::text AS schema, c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relnamespace IN ('crm'::regnamespace, 'crm_api'::regnamespace) ORDER BY 1, 2, 3`;
  const registry = await db`SELECT key, fingerprint FROM pgwarden.applied_objects ORDER BY key`;
  return strip({ policies, views, grants, routines, roles, tables, triggers, registry });
}
