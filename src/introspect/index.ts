/**
 * Reads the live database: the applied-object registry and, for every object of interest,
 * whether it exists as recorded. Only this module and apply/ touch the database.
 */
import type postgres from 'postgres';
import { canonicalJson, fingerprint, sha256 } from '../catalog/fingerprint.js';
import type {
  AuditLogObject,
  CatalogObject,
  CatalogRowObject,
  CatalogValue,
  GrantObject,
  GrantTarget,
  PolicyObject,
  RevokePublicObject,
} from '../catalog/objects.js';
import { objectKey } from '../catalog/objects.js';
import { serverFormExpr } from '../catalog/registry.js';
import { ident, join, literal, type Sql, sql, textArray, unsafeRaw } from '../sql/fragment.js';
import { quoteIdent } from '../sql/quote.js';
import { catalogValue, isHelperView } from '../sql/render.js';

export interface RegistryEntry {
  key: string;
  kind: string;
  fingerprint: string;
  readonly object: CatalogObject;
  /** the object as stored: canonicalJson of the object when it was applied */
  definition: string;
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

function aclHas(aclExpr: Sql, grantee: Sql, privileges: readonly string[]): Sql {
  return sql`(SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.aclexplode(${aclExpr}) a
    JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE r.rolname = ${grantee} AND a.privilege_type = ANY (${textArray(privileges)})) = ${unsafeRaw(String(privileges.length))}`;
}

/** The names a grant target is found by (`signature` for to_regprocedure; '' where unused). */
function targetNames(t: GrantTarget): { schema: string; name: string; signature: string } {
  return t.kind === 'function'
    ? {
        schema: t.schema,
        name: t.name,
        signature: `${quoteIdent(t.schema)}.${quoteIdent(t.name)}(${t.args.join(', ')})`,
      }
    : { schema: t.kind === 'table' ? t.schema : '', name: t.name, signature: '' };
}

function targetAcl(
  kind: GrantTarget['kind'],
  schema: Sql,
  name: Sql,
  signature: Sql,
): { acl: Sql; from: Sql } {
  switch (kind) {
    case 'schema':
      return {
        acl: unsafeRaw(`COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))`),
        from: sql`pg_catalog.pg_namespace n WHERE n.nspname = ${name}`,
      };
    case 'table':
      return {
        acl: unsafeRaw(`COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))`),
        from: sql`pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relname = ${name}`,
      };
    case 'function':
      return {
        acl: unsafeRaw(`COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))`),
        from: sql`pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(${signature})`,
      };
  }
}

function targetAclOf(t: GrantTarget): { acl: Sql; from: Sql } {
  const n = targetNames(t);
  return targetAcl(t.kind, literal(n.schema), literal(n.name), literal(n.signature));
}

/**
 * A column grant is present when the grantee holds each privilege on exactly these columns of
 * the table (no other column, and not on the table as a whole).
 */
function columnGrantCheck(
  from: Sql,
  grantee: string,
  privileges: readonly string[],
  columns: readonly string[],
): Sql {
  const holds = (p: string) =>
    sql`EXISTS (SELECT FROM pg_catalog.aclexplode(at.attacl) a JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
        WHERE r.rolname = ${literal(grantee)} AND a.privilege_type = ${literal(p)})`;
  const exact = privileges.map(
    (p) => sql`NOT EXISTS (SELECT FROM pg_catalog.pg_attribute at
      WHERE at.attrelid = c.oid AND at.attnum > 0 AND NOT at.attisdropped
        AND (at.attname = ANY (${textArray(columns)}::name[])) IS DISTINCT FROM ${holds(p)})`,
  );
  const tableLevel = sql`EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
      WHERE r.rolname = ${literal(grantee)} AND a.privilege_type = ANY (${textArray(privileges)}))`;
  return sql`EXISTS (SELECT FROM ${from} AND NOT ${tableLevel} AND ${join(exact, ' AND ')})`;
}

function relation(schema: string, name: string): Sql {
  return relationOf(literal(schema), literal(name));
}

function relationOf(schema: Sql, name: Sql): Sql {
  return sql`pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ${schema} AND c.relname = ${name}`;
}

/** The server's form of the object is the one recorded right after pgwarden created it. */
function sameServerForm(o: CatalogObject): Sql {
  return sql`${serverFormExpr(o)} IS NOT DISTINCT FROM (SELECT a.server_form FROM pgwarden.applied_objects a WHERE a.key = ${literal(objectKey(o))})`;
}

/**
 * A boolean SQL expression: the object exists as described. The kinds that come in numbers are
 * checked in batches (presenceBatch below): a change here must be made there too
 * (test/introspect-batch.test.ts compares the two).
 */
export function presenceCheck(
  o: CatalogObject,
  serverVersion: number,
  catalogInstalled: boolean,
  /** pgwarden's catalog tables that exist, with their columns (introspect passes them) */
  catalogTables?: CatalogTables,
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
      // a catalog from before the file that adds the table or a column (an upgrade's first
      // plan): the row is not there as described
      if (!catalogInstalled || (catalogTables && !rowFits(o, catalogTables)))
        return unsafeRaw('false');
      const conds = Object.entries(o.values).map(
        ([c, v]) => sql`x.${unsafeRaw(quoteIdent(c))} IS NOT DISTINCT FROM ${catalogValue(v)}`,
      );
      return sql`EXISTS (SELECT FROM pgwarden.${unsafeRaw(quoteIdent(o.table))} x WHERE x.${unsafeRaw(quoteIdent(o.keyColumn))} = ${literal(o.key)}${conds.length ? sql` AND ${join(conds, ' AND ')}` : unsafeRaw('')})`;
    }
    case 'audit_log': {
      const row = auditLogRow(o);
      return auditLogPresent({
        text: (c) => literal(row[c] as string),
        name: (c) => literal(row[c] as string),
      });
    }
    case 'table_owner':
      return sql`EXISTS (SELECT FROM ${relation(o.schema, o.table)} AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${literal(o.owner)}))`;
    case 'revoke_public': {
      const t = targetAclOf(o.target);
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
      const t = targetAclOf(o.target);
      if (o.columns) return columnGrantCheck(t.from, o.grantee, o.privileges, o.columns);
      return sql`EXISTS (SELECT FROM ${t.from} AND ${aclHas(t.acl, literal(o.grantee), o.privileges)})`;
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

/** pgwarden's catalog tables -> their columns, as they are in the database. */
export type CatalogTables = ReadonlyMap<string, ReadonlySet<string>>;

/** The catalog row's table and columns are there (a catalog from an older pgwarden may lack them). */
function rowFits(o: CatalogRowObject, tables: CatalogTables): boolean {
  const columns = tables.get(o.table);
  if (!columns) return false;
  return columns.has(o.keyColumn) && Object.keys(o.values).every((c) => columns.has(c));
}

/** Whether pgwarden's catalog (its registry of applied objects) is installed; its tables' columns. */
async function catalogState(db: Db): Promise<{ installed: boolean; tables: CatalogTables }> {
  const rows = await query<{ installed: boolean; tables: Record<string, string[]> | null }>(
    db,
    unsafeRaw(`SELECT pg_catalog.to_regclass('pgwarden.applied_objects') IS NOT NULL AS installed,
      (SELECT pg_catalog.jsonb_object_agg(t.relname, t.columns) FROM (
        SELECT c.relname, pg_catalog.array_agg(a.attname::text) AS columns
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'pgwarden' AND c.relkind IN ('r', 'p') GROUP BY c.relname) t) AS tables`),
  );
  const tables = new Map<string, ReadonlySet<string>>();
  for (const [name, columns] of Object.entries(rows[0]?.tables ?? {}))
    tables.set(name, new Set(columns));
  return { installed: rows[0]?.installed === true, tables };
}

export async function readRegistry(
  db: Db,
): Promise<{ installed: boolean; registry: Map<string, RegistryEntry> }> {
  const { installed } = await catalogState(db);
  return { installed, registry: installed ? await registryEntries(db) : new Map() };
}

/** The rows of pgwarden.applied_objects by key (the catalog must be there). */
async function registryEntries(db: Db): Promise<Map<string, RegistryEntry>> {
  const registry = new Map<string, RegistryEntry>();
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
    // parsed when asked for: a plan with no changes needs few of them (introspect)
    let object: CatalogObject | undefined;
    registry.set(e.key, {
      key: e.key,
      kind: e.kind,
      fingerprint: e.fingerprint,
      get object(): CatalogObject {
        object ??= JSON.parse(e.definition) as CatalogObject;
        return object;
      },
      definition: e.definition,
    });
  }
  return registry;
}

/** Lets pending I/O (the driver's writes and reads) run. */
function yieldToIo(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Registry and presence of every object that is desired or recorded. */
export async function introspect(db: Db, desired: readonly CatalogObject[]): Promise<LiveState> {
  const [serverVersion, { installed, tables }] = await Promise.all([
    serverVersionNum(db),
    catalogState(db),
  ]);
  // The queries are pipelined in the transaction and run one after the other on the server, so
  // the checks of the desired objects go out right behind the registry's read: the server runs
  // them while this side reads the registry and fingerprints. What the registry adds (objects
  // only it knows, and the objects applied with an equivalent definition, checked as applied)
  // is checked by a second round, empty when nothing changed.
  const presence = (keys: readonly string[], of: ReadonlyMap<string, CatalogObject>) =>
    evaluateChecks(
      db,
      keys,
      of,
      (o) => presenceBatch(o, installed, tables),
      (o) => presenceCheck(o, serverVersion, installed, tables),
    );
  const existence = (keys: readonly string[], of: ReadonlyMap<string, CatalogObject>) =>
    evaluateChecks(
      db,
      keys.filter((k) => existenceCheck(of.get(k) as CatalogObject) !== null),
      of,
      existenceBatch,
      (o) => existenceCheck(o) as Sql,
    );
  const wanted = new Map<string, CatalogObject>();
  for (const o of desired) wanted.set(objectKey(o), o);
  const registryRead = installed ? registryEntries(db) : Promise.resolve(new Map());
  const first = Promise.all([
    presence([...wanted.keys()], wanted),
    existence([...wanted.keys()], wanted),
  ]);
  // (awaited below; an error of the registry's read is the one reported first)
  first.catch(() => undefined);
  const registry: Map<string, RegistryEntry> = await registryRead;

  const objects = new Map<string, CatalogObject>();
  // An object applied with an equivalent definition (same fingerprint: the same parse tree,
  // maybe formatted differently) is checked as it was applied, since that text is what is there.
  // One applied exactly as desired (the same stored definition) is the desired object itself,
  // and needs no fingerprint yet.
  for (const [k, o] of wanted) {
    const applied = registry.get(k);
    const equivalent =
      applied !== undefined &&
      applied.definition !== canonicalJson(o) &&
      applied.fingerprint === fingerprint(o);
    objects.set(k, equivalent ? applied.object : o);
  }
  for (const [k, e] of registry) if (!objects.has(k)) objects.set(k, e.object);
  const again = [...objects.keys()].filter((k) => objects.get(k) !== wanted.get(k));
  const all = [...objects.values()];
  const livePolicies = new Map<string, PolicyObject>();
  const pending = Promise.all([
    first,
    presence(again, objects),
    existence(again, objects),
    readUnknownPolicies(db, all, objects, livePolicies),
    readRlsFlags(db, all),
    readUnknownGrants(db, all),
    readUnknownTriggers(db, all),
    readUnmanagedRelations(db, all),
  ]);
  // (awaited below; if computing throws first, that error is the one reported)
  pending.catch(() => undefined);
  // While the server works, compute the fingerprints that diff compares with the registry:
  // parsing their SQL is the biggest cost on this side. postgres.js writes queued queries on
  // setImmediate, and a query longer than the socket takes at once is written on as the socket
  // drains, which needs the event loop: the computing yields every few milliseconds, or the
  // server would wait for the rest of a query's text.
  for (let i = 0; i < 2; i++) await yieldToIo();
  let slice = performance.now();
  for (const o of desired) {
    if (!registry.has(objectKey(o))) continue;
    fingerprint(o);
    if (performance.now() - slice > 5) {
      await yieldToIo();
      slice = performance.now();
    }
  }
  const [
    [presentFirst, existsFirst],
    presentAgain,
    existsAgain,
    unknownPolicies,
    rlsFlags,
    { grants: unknownGrants, publicOn: unknownPublic },
    unknownTriggers,
    unmanagedRelations,
  ] = await pending;
  const present = new Map<string, boolean>();
  const exists = new Map<string, boolean>();
  for (const k of objects.keys()) {
    const p = presentAgain.get(k) ?? presentFirst.get(k);
    if (p !== undefined) present.set(k, p);
    const e = existsAgain.get(k) ?? existsFirst.get(k);
    if (e !== undefined) exists.set(k, e);
  }
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

/**
 * A boolean SQL expression: an object of this name exists (however defined); null for unnamed
 * kinds. Batched as existenceBatch below: a change here must be made there too.
 */
export function existenceCheck(o: CatalogObject): Sql | null {
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

// ------------------------------------------------------------------ checks, many at a time

/**
 * The check of one object written over columns instead of literals, so that every object of the
 * same shape is checked by one query: `unnest(<names of every object>)`, the check per row. The
 * server plans the check once (not once per object), and pgwarden._server_form keeps one cached
 * plan for the whole query. Each batch check is the same condition as the object's
 * presenceCheck / existenceCheck, with the names read from the row.
 */
interface Batch {
  /** objects with equal shapes share a query (the SQL of their check differs only in the names) */
  shape: string;
  /** the object's row: column -> text */
  row: Readonly<Record<string, string>>;
  check(t: BatchColumns): Sql;
}

interface BatchColumns {
  /** the column as text */
  text(column: string): Sql;
  /** the column as a name (as a literal compared with a name column is) */
  name(column: string): Sql;
}

const SINGLE_CHUNK = 200;
const BATCH_ROWS = 1000;

async function evaluateChecks(
  db: Db,
  keys: readonly string[],
  objects: ReadonlyMap<string, CatalogObject>,
  batchOf: (o: CatalogObject) => Batch | null,
  single: (o: CatalogObject) => Sql,
): Promise<Map<string, boolean>> {
  const out = new Map<string, boolean>();
  const singles: string[] = [];
  const groups = new Map<string, { first: Batch; keys: string[]; rows: Batch['row'][] }>();
  for (const k of keys) {
    const b = batchOf(objects.get(k) as CatalogObject);
    if (!b) {
      singles.push(k);
      continue;
    }
    const g = groups.get(b.shape);
    if (g) {
      g.keys.push(k);
      g.rows.push(b.row);
    } else groups.set(b.shape, { first: b, keys: [k], rows: [b.row] });
  }
  // every query is sent at once, the results are read in order
  const queries: { keys: string[]; rows: Promise<{ r: boolean[] | null }[]> }[] = [];
  for (let i = 0; i < singles.length; i += SINGLE_CHUNK) {
    const part = singles.slice(i, i + SINGLE_CHUNK);
    const exprs = part.map((k) => single(objects.get(k) as CatalogObject));
    queries.push({
      keys: part,
      rows: query(db, sql`SELECT ARRAY[${join(exprs, ',\n')}]::boolean[] AS r`),
    });
  }
  for (const g of groups.values()) {
    const columns = Object.keys(g.first.row);
    const t: BatchColumns = {
      text: (c) => unsafeRaw(`t.${quoteIdent(c)}`),
      name: (c) => unsafeRaw(`(t.${quoteIdent(c)})::pg_catalog.name`),
    };
    const check = g.first.check(t);
    for (let i = 0; i < g.keys.length; i += BATCH_ROWS) {
      const part = g.keys.slice(i, i + BATCH_ROWS);
      const rows = g.rows.slice(i, i + BATCH_ROWS);
      const arrays = columns.map(
        (c) => sql`pg_catalog.unnest(${textArray(rows.map((r) => r[c] as string))})`,
      );
      queries.push({
        keys: part,
        rows: query(
          db,
          sql`SELECT pg_catalog.array_agg((${check}) ORDER BY t.pgw_i) AS r
    FROM ROWS FROM (${join(arrays, ',\n      ')}) WITH ORDINALITY AS t(${unsafeRaw(columns.map(quoteIdent).join(', '))}, pgw_i)`,
        ),
      });
    }
  }
  const results = await Promise.all(queries.map((q) => q.rows));
  for (const [n, q] of queries.entries()) {
    const r = results[n]?.[0]?.r ?? [];
    for (const [j, k] of q.keys.entries()) out.set(k, r[j] === true);
  }
  return out;
}

/** sameServerForm over a batch row with the columns schema, name, table (policies) and key. */
function sameServerFormOf(kind: 'policy' | 'view', t: BatchColumns): Sql {
  const form =
    kind === 'policy'
      ? sql`pgwarden._server_form('policy', ${t.text('schema')}, ${t.text('name')}, ${t.text('table')})`
      : sql`pgwarden._server_form('view', ${t.text('schema')}, ${t.text('name')})`;
  return sql`${form} IS NOT DISTINCT FROM (SELECT a.server_form FROM pgwarden.applied_objects a WHERE a.key = ${t.text('key')})`;
}

/** The row of an audit log's presence check: the log, its table, and its value columns as json. */
function auditLogRow(o: AuditLogObject): Record<string, string> {
  return {
    log: `pgwarden_audit.${quoteIdent(o.log)}`,
    src: `${quoteIdent(o.schema)}.${quoteIdent(o.table)}`,
    columns: JSON.stringify(o.columns),
  };
}

/**
 * An audit log is present when it exists with every value column the model asks for
 * (ensure_data_log adds them), each of the type the table's column has now: a changed type
 * shows as drift, and apply then stops with ensure_data_log's error. Read from pg_attribute
 * only, so that a database from before sql/018 is asked nothing else.
 */
function auditLogPresent(t: BatchColumns): Sql {
  const log = sql`pg_catalog.to_regclass(${t.text('log')})`;
  const column = ident('column');
  return sql`(${log} IS NOT NULL
        AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_to_recordset((${t.text('columns')})::jsonb) AS x(${column} text, old name, new name, hashed boolean), pg_catalog.unnest(ARRAY[x.old, x.new]) AS v(col)
          WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = ${log} AND a.attname = v.col AND NOT a.attisdropped
            AND a.atttypid = CASE WHEN x.hashed THEN 'bytea'::regtype
              ELSE COALESCE((SELECT s.atttypid FROM pg_catalog.pg_attribute s WHERE s.attrelid = pg_catalog.to_regclass(${t.text('src')}) AND s.attname = x.${column} AND s.attnum > 0 AND NOT s.attisdropped), a.atttypid) END)))`;
}

/** A catalog value as json for jsonb_populate_record (catalogValue is its SQL literal). */
function catalogJson(v: CatalogValue): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v))
    return JSON.parse((v as { json: string }).json);
  return v;
}

/** presenceCheck as a batch, for the kinds that come in numbers; null: checked one by one. */
function presenceBatch(
  o: CatalogObject,
  catalogInstalled: boolean,
  catalogTables: CatalogTables,
): Batch | null {
  switch (o.kind) {
    case 'catalog_row': {
      if (!catalogInstalled || !rowFits(o, catalogTables)) return null; // 'false', no query
      // The row's key and values as one jsonb per object; jsonb_populate_record turns each into
      // the catalog table's own column types with the types' input functions, as the literals
      // of the single check are coerced to the column types (a {json} value goes in as the
      // json itself, for a jsonb column; a text array as a json array).
      const columns = Object.keys(o.values);
      const values: Record<string, unknown> = { [o.keyColumn]: o.key };
      for (const [c, v] of Object.entries(o.values)) values[c] = catalogJson(v);
      const table = unsafeRaw(`pgwarden.${quoteIdent(o.table)}`);
      return {
        shape: `${o.kind}:${o.table}:${o.keyColumn}:${columns.join(',')}`,
        row: { r: JSON.stringify(values) },
        check: (t) => {
          const conds = [o.keyColumn, ...columns].map((c) => {
            const col = unsafeRaw(quoteIdent(c));
            return c === o.keyColumn
              ? sql`x.${col} = y.${col}`
              : sql`x.${col} IS NOT DISTINCT FROM y.${col}`;
          });
          return sql`EXISTS (SELECT FROM ${table} x, pg_catalog.jsonb_populate_record(NULL::${table}, (${t.text('r')})::pg_catalog.jsonb) y WHERE ${join(conds, ' AND ')})`;
        },
      };
    }
    case 'audit_log':
      return { shape: o.kind, row: auditLogRow(o), check: auditLogPresent };
    case 'table_owner':
      return {
        shape: o.kind,
        row: { schema: o.schema, table: o.table, owner: o.owner },
        check: (t) =>
          sql`EXISTS (SELECT FROM ${relationOf(t.name('schema'), t.name('table'))} AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${t.name('owner')}))`,
      };
    case 'rls':
      return {
        shape: o.kind,
        row: { schema: o.schema, table: o.table },
        check: (t) =>
          sql`EXISTS (SELECT FROM ${relationOf(t.name('schema'), t.name('table'))} AND c.relrowsecurity AND c.relforcerowsecurity)`,
      };
    case 'revoke_public': {
      const kind = o.target.kind;
      return {
        shape: `${o.kind}:${kind}`,
        row: targetNames(o.target),
        check: (t) => {
          const a = targetAcl(kind, t.name('schema'), t.name('name'), t.text('signature'));
          return sql`EXISTS (SELECT FROM ${a.from}) AND NOT EXISTS (SELECT FROM ${a.from} AND EXISTS (SELECT FROM pg_catalog.aclexplode(${a.acl}) a WHERE a.grantee = 0))`;
        },
      };
    }
    case 'grant': {
      if (o.columns) return null;
      const kind = o.target.kind;
      const privileges = o.privileges;
      return {
        shape: `${o.kind}:${kind}:${privileges.join(',')}`,
        row: { ...targetNames(o.target), grantee: o.grantee },
        check: (t) => {
          const a = targetAcl(kind, t.name('schema'), t.name('name'), t.text('signature'));
          return sql`EXISTS (SELECT FROM ${a.from} AND ${aclHas(a.acl, t.name('grantee'), privileges)})`;
        },
      };
    }
    case 'function': {
      const definer = o.securityDefiner;
      return {
        shape: `${o.kind}:${definer}`,
        // the body's sha256, not the body: the bodies are megabytes (4 MB for 200 tables),
        // which the query would carry and the server parse, to compare each with prosrc
        row: {
          signature: `${quoteIdent(o.schema)}.${quoteIdent(o.name)}(${o.args.map((a) => a.type).join(', ')})`,
          body: sha256(o.body),
          owner: o.owner,
        },
        check: (t) =>
          sql`EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
        WHERE p.oid = pg_catalog.to_regprocedure(${t.text('signature')})
        AND pg_catalog.sha256(pg_catalog.convert_to(p.prosrc, 'UTF8')) = pg_catalog.decode(${t.text('body')}, 'hex')
        AND p.prosecdef = ${unsafeRaw(String(definer))} AND r.rolname = ${t.name('owner')})`,
      };
    }
    case 'view': {
      // pgwarden's own lookups are security barriers (see the view renderer)
      const barrier = isHelperView(o)
        ? sql` AND ${literal('security_barrier=true')} = ANY (c.reloptions)`
        : unsafeRaw('');
      return {
        shape: `${o.kind}:${isHelperView(o)}`,
        row: { schema: o.schema, name: o.name, owner: o.owner, key: objectKey(o) },
        check: (t) => {
          const exists = sql`EXISTS (SELECT FROM ${relationOf(t.name('schema'), t.name('name'))} AND c.relkind = 'v' AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${t.name('owner')})${barrier})`;
          return catalogInstalled ? sql`(${exists} AND ${sameServerFormOf('view', t)})` : exists;
        },
      };
    }
    case 'policy':
      return {
        shape: o.kind,
        row: { schema: o.schema, table: o.table, name: o.name, key: objectKey(o) },
        check: (t) => {
          const exists = sql`EXISTS (SELECT FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${t.name('schema')} AND c.relname = ${t.name('table')} AND p.polname = ${t.name('name')})`;
          return catalogInstalled ? sql`(${exists} AND ${sameServerFormOf('policy', t)})` : exists;
        },
      };
    case 'trigger': {
      const always = o.always === true;
      return {
        shape: `${o.kind}:${always}`,
        row: {
          schema: o.schema,
          table: o.table,
          name: o.name,
          signature: `${quoteIdent(o.function.schema)}.${quoteIdent(o.function.name)}()`,
        },
        check: (t) =>
          sql`EXISTS (SELECT FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${t.name('schema')} AND c.relname = ${t.name('table')} AND tg.tgname = ${t.name('name')}
          AND tg.tgfoid = pg_catalog.to_regprocedure(${t.text('signature')})
          AND tg.tgenabled ${unsafeRaw(always ? "= 'A'" : "<> 'D'")})`,
      };
    }
    default:
      return null;
  }
}

/** existenceCheck as a batch, for the kinds that come in numbers; null: checked one by one. */
function existenceBatch(o: CatalogObject): Batch | null {
  switch (o.kind) {
    case 'function':
      return {
        shape: o.kind,
        row: {
          signature: `${quoteIdent(o.schema)}.${quoteIdent(o.name)}(${o.args.map((a) => a.type).join(', ')})`,
        },
        check: (t) => sql`pg_catalog.to_regprocedure(${t.text('signature')}) IS NOT NULL`,
      };
    case 'view':
      return {
        shape: o.kind,
        row: { schema: o.schema, name: o.name },
        check: (t) => sql`EXISTS (SELECT FROM ${relationOf(t.name('schema'), t.name('name'))})`,
      };
    case 'policy':
      return {
        shape: o.kind,
        row: { schema: o.schema, table: o.table, name: o.name },
        check: (t) =>
          sql`EXISTS (SELECT FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${t.name('schema')} AND c.relname = ${t.name('table')} AND p.polname = ${t.name('name')})`,
      };
    case 'trigger':
      return {
        shape: o.kind,
        row: { schema: o.schema, table: o.table, name: o.name },
        check: (t) =>
          sql`EXISTS (SELECT FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${t.name('schema')} AND c.relname = ${t.name('table')} AND tg.tgname = ${t.name('name')})`,
      };
    default:
      return null;
  }
}

function protectedTables(objects: readonly CatalogObject[]): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  for (const o of objects) if (o.kind === 'rls') out.push({ schema: o.schema, table: o.table });
  return out;
}

/** The views of the exposed schemas (not pgwarden's own `_rows_*` lookups: helperViews). */
function managedViews(objects: readonly CatalogObject[]): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  for (const o of objects)
    if (o.kind === 'view' && !isHelperView(o)) out.push({ schema: o.schema, table: o.name });
  return out;
}

/** pgwarden's own views: their grants are checked, but their schema is the catalog's. */
function helperViews(objects: readonly CatalogObject[]): { schema: string; table: string }[] {
  const out: { schema: string; table: string }[] = [];
  for (const o of objects)
    if (o.kind === 'view' && isHelperView(o)) out.push({ schema: o.schema, table: o.name });
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
  const owned = [...protectedTables(objects), ...managedViews(objects)];
  const relations = [...owned, ...helperViews(objects)];
  if (relations.length === 0) return { grants: [], publicOn: [] };
  const schemas = [...new Set(owned.map((r) => r.schema))];
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
    // column grants are checked column by column: a table-level privilege is not theirs
    if (o.kind !== 'grant' || o.columns) continue;
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
