/**
 * Reads the live database: the applied-object registry and, for every object of interest,
 * whether it exists as recorded. Only this module and apply/ touch the database.
 */
import type postgres from 'postgres';
import { fingerprint } from '../catalog/fingerprint.js';
import type {
  CatalogObject,
  GrantObject,
  GrantTarget,
  PolicyObject,
  RevokePublicObject,
} from '../catalog/objects.js';
import { objectKey } from '../catalog/objects.js';
import { serverFormExpr } from '../catalog/registry.js';
import { join, literal, type Sql, sql, textArray, unsafeRaw } from '../sql/fragment.js';
import { quoteIdent } from '../sql/quote.js';
import { catalogValue } from '../sql/render.js';

export interface RegistryEntry {
  key: string;
  kind: string;
  fingerprint: string;
  object: CatalogObject;
}

export interface LiveState {
  serverVersion: number;
  catalogInstalled: boolean;
  registry: ReadonlyMap<string, RegistryEntry>;
  /** key -> the object exists in the database as described */
  present: ReadonlyMap<string, boolean>;
  /** policies on protected tables that neither the model nor the registry knows (hand-made) */
  unknownPolicies: readonly PolicyObject[];
  /** the policies pgwarden knows, as they are now in the database (key -> definition) */
  livePolicies: ReadonlyMap<string, PolicyObject>;
  /** key -> an object of that name exists at all (edited vs dropped), for named kinds */
  exists: ReadonlyMap<string, boolean>;
  /** "schema.table" of every protected table -> its row level security flags */
  rlsFlags: ReadonlyMap<string, { enabled: boolean; forced: boolean }>;
  /** privileges on protected tables, managed views and their schemas that nobody declared */
  unknownGrants: readonly GrantObject[];
  /** objects where PUBLIC holds privileges and pgwarden has no revoke for that yet */
  unknownPublic: readonly RevokePublicObject[];
  /** user triggers on protected tables and managed views that pgwarden did not create */
  unknownTriggers: readonly UnknownTrigger[];
  /** tables, views and other relations in protected or exposed schemas that the model does not cover */
  unmanagedRelations: readonly UnmanagedRelation[];
}

export interface UnknownTrigger {
  schema: string;
  table: string;
  name: string;
  function: string;
  enabled: string;
}

export interface UnmanagedRelation {
  schema: string;
  name: string;
  /** table, partitioned table, view, materialized view, foreign table */
  type: string;
  /** a partition of this table (queried directly, it bypasses the parent's policies) */
  partitionOf: string | null;
}

type Db = postgres.Sql | postgres.TransactionSql;

async function query<T extends object>(db: Db, text: Sql): Promise<T[]> {
  return (await db.unsafe(text.text)) as unknown as T[];
}

function aclHas(aclExpr: Sql, grantee: string, privileges: readonly string[]): Sql {
  return sql`(SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.aclexplode(${aclExpr}) a
    JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE r.rolname = ${literal(grantee)} AND a.privilege_type = ANY (${textArray(privileges)})) = ${unsafeRaw(String(privileges.length))}`;
}

function targetAcl(t: GrantTarget): { acl: Sql; from: Sql } {
  switch (t.kind) {
    case 'schema':
      return {
        acl: unsafeRaw(`COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))`),
        from: sql`pg_catalog.pg_namespace n WHERE n.nspname = ${literal(t.name)}`,
      };
    case 'table':
      return {
        acl: unsafeRaw(`COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))`),
        from: sql`pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${literal(t.schema)} AND c.relname = ${literal(t.name)}`,
      };
    case 'function':
      return {
        acl: unsafeRaw(`COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))`),
        from: sql`pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(${literal(`${quoteIdent(t.schema)}.${quoteIdent(t.name)}(${t.args.join(', ')})`)})`,
      };
  }
}

function relation(schema: string, name: string): Sql {
  return sql`pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${literal(schema)} AND c.relname = ${literal(name)}`;
}

/** The server's form of the object is the one recorded right after pgwarden created it. */
function sameServerForm(o: CatalogObject): Sql {
  return sql`${serverFormExpr(o)} IS NOT DISTINCT FROM (SELECT a.server_form FROM pgwarden.applied_objects a WHERE a.key = ${literal(objectKey(o))})`;
}

/** A boolean SQL expression: the object exists as described. */
export function presenceCheck(
  o: CatalogObject,
  serverVersion: number,
  catalogInstalled: boolean,
): Sql {
  switch (o.kind) {
    case 'role':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.name)}
        AND rolcanlogin = ${unsafeRaw(String(o.login))} AND rolinherit = ${unsafeRaw(String(o.inherit))}
        AND rolbypassrls = ${unsafeRaw(String(o.bypassrls))} AND rolcreaterole = ${unsafeRaw(String(o.createrole))}
        AND NOT rolsuper AND NOT rolreplication)`;
    case 'membership':
      if (o.admin && serverVersion < 160000) return unsafeRaw('true');
      return sql`EXISTS (SELECT FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles r ON r.oid = m.roleid JOIN pg_catalog.pg_roles u ON u.oid = m.member
        WHERE r.rolname = ${literal(o.role)} AND u.rolname = ${literal(o.member)}${o.admin ? unsafeRaw(' AND m.admin_option') : unsafeRaw('')})`;
    case 'schema':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
        WHERE n.nspname = ${literal(o.name)} AND r.rolname = ${literal(o.owner)}
        AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a WHERE a.grantee = 0))`;
    case 'catalog':
      return unsafeRaw(catalogInstalled ? 'true' : 'false');
    case 'catalog_row': {
      if (!catalogInstalled) return unsafeRaw('false');
      const conds = Object.entries(o.values).map(
        ([c, v]) => sql`x.${unsafeRaw(quoteIdent(c))} IS NOT DISTINCT FROM ${catalogValue(v)}`,
      );
      return sql`EXISTS (SELECT FROM pgwarden.${unsafeRaw(quoteIdent(o.table))} x WHERE x.${unsafeRaw(quoteIdent(o.keyColumn))} = ${literal(o.key)}${conds.length ? sql` AND ${join(conds, ' AND ')}` : unsafeRaw('')})`;
    }
    case 'table_owner':
      return sql`EXISTS (SELECT FROM ${relation(o.schema, o.table)} AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.owner)}))`;
    case 'revoke_public': {
      const t = targetAcl(o.target);
      return sql`EXISTS (SELECT FROM ${t.from}) AND NOT EXISTS (SELECT FROM ${t.from} AND EXISTS (SELECT FROM pg_catalog.aclexplode(${t.acl}) a WHERE a.grantee = 0))`;
    }
    case 'rls':
      return sql`EXISTS (SELECT FROM ${relation(o.schema, o.table)} AND c.relrowsecurity AND c.relforcerowsecurity)`;
    case 'function':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
        WHERE p.oid = pg_catalog.to_regprocedure(${literal(`${quoteIdent(o.schema)}.${quoteIdent(o.name)}(${o.args.map((a) => a.type).join(', ')})`)})
        AND p.prosrc = ${literal(o.body)} AND p.prosecdef = ${unsafeRaw(String(o.securityDefiner))} AND r.rolname = ${literal(o.owner)})`;
    case 'view': {
      const exists = sql`EXISTS (SELECT FROM ${relation(o.schema, o.name)} AND c.relkind = 'v' AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.owner)}))`;
      return catalogInstalled ? sql`(${exists} AND ${sameServerForm(o)})` : exists;
    }
    case 'policy': {
      const exists = sql`EXISTS (SELECT FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${literal(o.schema)} AND c.relname = ${literal(o.table)} AND p.polname = ${literal(o.name)})`;
      return catalogInstalled ? sql`(${exists} AND ${sameServerForm(o)})` : exists;
    }
    case 'trigger':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${literal(o.schema)} AND c.relname = ${literal(o.table)} AND tg.tgname = ${literal(o.name)}
          AND tg.tgfoid = pg_catalog.to_regprocedure(${literal(`${quoteIdent(o.function.schema)}.${quoteIdent(o.function.name)}()`)})
          AND tg.tgenabled ${unsafeRaw(o.always ? "= 'A'" : "<> 'D'")})`;
    case 'grant': {
      const t = targetAcl(o.target);
      return sql`EXISTS (SELECT FROM ${t.from} AND ${aclHas(t.acl, o.grantee, o.privileges)})`;
    }
  }
}

export async function serverVersionNum(db: Db): Promise<number> {
  const rows = await query<{ v: string }>(
    db,
    unsafeRaw(`SELECT pg_catalog.current_setting('server_version_num') AS v`),
  );
  return Number(rows[0]?.v ?? 0);
}

export async function readRegistry(
  db: Db,
): Promise<{ installed: boolean; registry: Map<string, RegistryEntry> }> {
  const rows = await query<{ installed: boolean }>(
    db,
    unsafeRaw(`SELECT pg_catalog.to_regclass('pgwarden.applied_objects') IS NOT NULL AS installed`),
  );
  const installed = rows[0]?.installed === true;
  const registry = new Map<string, RegistryEntry>();
  if (!installed) return { installed, registry };
  const entries = await query<{
    key: string;
    kind: string;
    fingerprint: string;
    definition: string;
  }>(
    db,
    unsafeRaw(
      'SELECT key, kind, fingerprint, definition FROM pgwarden.applied_objects ORDER BY key',
    ),
  );
  for (const e of entries) {
    registry.set(e.key, {
      key: e.key,
      kind: e.kind,
      fingerprint: e.fingerprint,
      object: JSON.parse(e.definition) as CatalogObject,
    });
  }
  return { installed, registry };
}

/** Registry and presence of every object that is desired or recorded. */
export async function introspect(db: Db, desired: readonly CatalogObject[]): Promise<LiveState> {
  const serverVersion = await serverVersionNum(db);
  const { installed, registry } = await readRegistry(db);
  const objects = new Map<string, CatalogObject>();
  // An object applied with an equivalent definition (same fingerprint: the same parse tree,
  // maybe formatted differently) is checked as it was applied, since that text is what is there.
  for (const o of desired) {
    const k = objectKey(o);
    const applied = registry.get(k);
    objects.set(k, applied && applied.fingerprint === fingerprint(o) ? applied.object : o);
  }
  for (const [k, e] of registry) if (!objects.has(k)) objects.set(k, e.object);
  const keys = [...objects.keys()];
  const present = new Map<string, boolean>();
  const CHUNK = 200;
  for (let i = 0; i < keys.length; i += CHUNK) {
    const part = keys.slice(i, i + CHUNK);
    const exprs = part.map((k) =>
      presenceCheck(objects.get(k) as CatalogObject, serverVersion, installed),
    );
    const rows = await query<{ r: boolean[] }>(
      db,
      sql`SELECT ARRAY[${join(exprs, ',\n')}]::boolean[] AS r`,
    );
    const r = rows[0]?.r ?? [];
    for (const [j, k] of part.entries()) present.set(k, r[j] === true);
  }
  const exists = new Map<string, boolean>();
  const named = keys.filter((k) => existenceCheck(objects.get(k) as CatalogObject) !== null);
  for (let i = 0; i < named.length; i += CHUNK) {
    const part = named.slice(i, i + CHUNK);
    const exprs = part.map((k) => existenceCheck(objects.get(k) as CatalogObject) as Sql);
    const rows = await query<{ r: boolean[] }>(
      db,
      sql`SELECT ARRAY[${join(exprs, ',\n')}]::boolean[] AS r`,
    );
    const r = rows[0]?.r ?? [];
    for (const [j, k] of part.entries()) exists.set(k, r[j] === true);
  }
  const all = [...objects.values()];
  const livePolicies = new Map<string, PolicyObject>();
  const unknownPolicies = await readUnknownPolicies(db, all, objects, livePolicies);
  const rlsFlags = await readRlsFlags(db, all);
  const { grants: unknownGrants, publicOn: unknownPublic } = await readUnknownGrants(db, all);
  const unknownTriggers = await readUnknownTriggers(db, all);
  const unmanagedRelations = await readUnmanagedRelations(db, all);
  return {
    serverVersion,
    catalogInstalled: installed,
    registry,
    present,
    unknownPolicies,
    livePolicies,
    exists,
    rlsFlags,
    unknownGrants,
    unknownPublic,
    unknownTriggers,
    unmanagedRelations,
  };
}

/** A boolean SQL expression: an object of this name exists (however defined); null for unnamed kinds. */
function existenceCheck(o: CatalogObject): Sql | null {
  switch (o.kind) {
    case 'role':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.name)})`;
    case 'schema':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = ${literal(o.name)})`;
    case 'function':
      return sql`pg_catalog.to_regprocedure(${literal(`${quoteIdent(o.schema)}.${quoteIdent(o.name)}(${o.args.map((a) => a.type).join(', ')})`)}) IS NOT NULL`;
    case 'view':
      return sql`EXISTS (SELECT FROM ${relation(o.schema, o.name)})`;
    case 'policy':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${literal(o.schema)} AND c.relname = ${literal(o.table)} AND p.polname = ${literal(o.name)})`;
    case 'trigger':
      return sql`EXISTS (SELECT FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${literal(o.schema)} AND c.relname = ${literal(o.table)} AND tg.tgname = ${literal(o.name)})`;
    default:
      return null;
  }
}

function protectedTables(objects: readonly CatalogObject[]): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  for (const o of objects) if (o.kind === 'rls') out.push({ schema: o.schema, table: o.table });
  return out;
}

function managedViews(objects: readonly CatalogObject[]): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  for (const o of objects) if (o.kind === 'view') out.push({ schema: o.schema, table: o.name });
  return out;
}

/** (schema, name) IN (...) over a list, as a SQL condition on the given columns. */
function pairIn(left: Sql, pairs: readonly { schema: string; table: string }[]): Sql {
  if (pairs.length === 0) return unsafeRaw('false');
  return sql`${left} IN (SELECT * FROM unnest(${textArray(pairs.map((p) => p.schema))}, ${textArray(pairs.map((p) => p.table))}))`;
}

async function readRlsFlags(
  db: Db,
  objects: readonly CatalogObject[],
): Promise<Map<string, { enabled: boolean; forced: boolean }>> {
  const tables = protectedTables(objects);
  const out = new Map<string, { enabled: boolean; forced: boolean }>();
  if (tables.length === 0) return out;
  const rows = await query<{ schema: string; name: string; enabled: boolean; forced: boolean }>(
    db,
    sql`SELECT n.nspname AS schema, c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE ${pairIn(unsafeRaw('(n.nspname, c.relname)'), tables)}`,
  );
  for (const r of rows) out.set(`${r.schema}.${r.name}`, { enabled: r.enabled, forced: r.forced });
  return out;
}

/**
 * Privileges on protected tables and managed views (and USAGE/CREATE on their schemas) held by
 * a role that neither the model nor the registry grants them to. The owner's own privileges and
 * PUBLIC (covered by the revoke_public objects) are not listed.
 */
async function readUnknownGrants(
  db: Db,
  objects: readonly CatalogObject[],
): Promise<{ grants: GrantObject[]; publicOn: RevokePublicObject[] }> {
  const relations = [...protectedTables(objects), ...managedViews(objects)];
  if (relations.length === 0) return { grants: [], publicOn: [] };
  const schemas = [...new Set(relations.map((r) => r.schema))];
  const known = new Set<string>();
  const tkey = (t: GrantTarget) =>
    t.kind === 'schema'
      ? `schema:${t.name}`
      : t.kind === 'table'
        ? `table:${t.schema}.${t.name}`
        : '';
  const publicCovered = new Set<string>();
  const publicOn = new Map<string, GrantTarget>();
  for (const o of objects) {
    if (o.kind === 'revoke_public') publicCovered.add(tkey(o.target));
    // a managed schema's presence check already requires that PUBLIC holds nothing on it
    if (o.kind === 'schema') publicCovered.add(`schema:${o.name}`);
    if (o.kind !== 'grant') continue;
    for (const p of o.privileges) known.add(`${tkey(o.target)}|${o.grantee}|${p}`);
  }
  const rows = await query<{
    kind: 'table' | 'schema';
    schema: string;
    name: string;
    grantee: string | null;
    privilege: string;
  }>(
    db,
    sql`SELECT 'table' AS kind, n.nspname AS schema, c.relname AS name, r.rolname AS grantee, a.privilege_type AS privilege
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE ${pairIn(unsafeRaw('(n.nspname, c.relname)'), relations)} AND a.grantee <> c.relowner
    UNION ALL
    SELECT 'schema', n.nspname, n.nspname, r.rolname, a.privilege_type
    FROM pg_catalog.pg_namespace n CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE n.nspname = ANY (${textArray(schemas)}) AND a.grantee <> n.nspowner
    ORDER BY 1, 2, 3, 4, 5`,
  );
  const grouped = new Map<string, GrantObject>();
  for (const r of rows) {
    const target: GrantTarget =
      r.kind === 'schema'
        ? { kind: 'schema', name: r.name }
        : { kind: 'table', schema: r.schema, name: r.name };
    if (r.grantee === null) {
      // PUBLIC: already reported through a revoke_public object when pgwarden manages that
      if (!publicCovered.has(tkey(target))) publicOn.set(tkey(target), target);
      continue;
    }
    if (known.has(`${tkey(target)}|${r.grantee}|${r.privilege}`)) continue;
    const k = `${tkey(target)}|${r.grantee}`;
    const g = grouped.get(k);
    if (g) (g.privileges as string[]).push(r.privilege);
    else grouped.set(k, { kind: 'grant', target, grantee: r.grantee, privileges: [r.privilege] });
  }
  return {
    grants: [...grouped.values()],
    publicOn: [...publicOn.values()].map((target) => ({ kind: 'revoke_public', target })),
  };
}

async function readUnknownTriggers(
  db: Db,
  objects: readonly CatalogObject[],
): Promise<UnknownTrigger[]> {
  const relations = [...protectedTables(objects), ...managedViews(objects)];
  if (relations.length === 0) return [];
  const known = new Set<string>();
  for (const o of objects) if (o.kind === 'trigger') known.add(`${o.schema}.${o.table}:${o.name}`);
  const rows = await query<UnknownTrigger>(
    db,
    sql`SELECT n.nspname AS schema, c.relname AS table, tg.tgname AS name,
      tg.tgfoid::pg_catalog.regprocedure::text AS function, tg.tgenabled::text AS enabled
    FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT tg.tgisinternal AND ${pairIn(unsafeRaw('(n.nspname, c.relname)'), relations)}
    ORDER BY 1, 2, 3`,
  );
  return rows.filter((r) => !known.has(`${r.schema}.${r.table}:${r.name}`));
}

async function readUnmanagedRelations(
  db: Db,
  objects: readonly CatalogObject[],
): Promise<UnmanagedRelation[]> {
  const tables = protectedTables(objects);
  const views = managedViews(objects);
  const managed = [...tables, ...views];
  const schemas = [...new Set(managed.map((r) => r.schema))];
  if (schemas.length === 0) return [];
  return await query<UnmanagedRelation>(
    db,
    sql`SELECT n.nspname AS schema, c.relname AS name,
      CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
        WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END AS type,
      (SELECT pn.nspname || '.' || pc.relname FROM pg_catalog.pg_inherits i
        JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS "partitionOf"
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY (${textArray(schemas)}) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND NOT ${pairIn(unsafeRaw('(n.nspname, c.relname)'), managed)}
    ORDER BY 1, 2`,
  );
}

/** Every policy on the given tables, as the server stores it (also used by `check`). */
export async function readPolicies(
  db: Db,
  tables: readonly { schema: string; table: string }[],
): Promise<PolicyObject[]> {
  if (tables.length === 0) return [];
  const rows = await db<
    {
      schema: string;
      table: string;
      name: string;
      cmd: string;
      permissive: boolean;
      roles: string[];
      qual: string | null;
      check: string | null;
    }[]
  >`
    SELECT n.nspname AS schema, c.relname AS table, p.polname AS name, p.polcmd::text AS cmd, p.polpermissive AS permissive,
      ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r) END FROM pg_catalog.unnest(p.polroles) AS r ORDER BY 1) AS roles,
      pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual, pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check
    FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE (n.nspname, c.relname) IN (SELECT * FROM ROWS FROM (pg_catalog.unnest(${tables.map((t) => t.schema)}::text[]), pg_catalog.unnest(${tables.map((t) => t.table)}::text[])))
    ORDER BY 1, 2, 3`;
  const CMD: Record<string, PolicyObject['command']> = {
    r: 'select',
    a: 'insert',
    w: 'update',
    d: 'delete',
    '*': 'all',
  };
  return rows.map((r) => ({
    kind: 'policy',
    schema: r.schema,
    table: r.table,
    name: r.name,
    command: CMD[r.cmd] ?? 'all',
    permissive: r.permissive,
    to: r.roles,
    using: r.qual,
    check: r.check,
  }));
}

/** Every policy on a protected table whose key is neither desired nor recorded. */
async function readUnknownPolicies(
  db: Db,
  objects: readonly CatalogObject[],
  known: ReadonlyMap<string, CatalogObject>,
  live: Map<string, PolicyObject>,
): Promise<PolicyObject[]> {
  const out: PolicyObject[] = [];
  for (const p of await readPolicies(db, protectedTables(objects))) {
    if (!known.has(objectKey(p))) out.push(p);
    else live.set(objectKey(p), p);
  }
  return out;
}
