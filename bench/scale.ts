/**
 * The CRM at scale (issue #8): reads, masking and writes through pgwarden's views, each measured
 * in the same run as its floor, the same query written by hand on the base table by a superuser
 * (no RLS, no view).
 *
 * Build, in a fresh database `pgwbs_<random>` on the server (superuser URL), with roles prefixed
 * `pgwbs_<random>_` (dropped at the end, also after an error or Ctrl-C):
 *   1. examples/crm/schema.sql, then `customers` rows set-based (generate_series), owned by the
 *      sales people of a 5-level unit tree (hq > sales > sales_east > area > team), a few in the
 *      pool, and the index `pgwarden check` asks for on the pool column (in_pool) when
 *      schema.sql does not have it;
 *   2. the real model: apply(compile(crmModel(), { rolePrefix })), as bench/audit.ts does;
 *   3. the catalog in two steps. Step A, 100 people: SCENARIO.md's people with their jobs,
 *      units and manager roles through pgwarden's own functions (add_unit, add_person,
 *      set_manager, grant_access, assign: tom's "double11" grant, mark's assignments), then
 *      synthetic people, shares, temporary grants and attribute assignments bulk-loaded into
 *      the catalog tables as the superuser (the roles as add_person makes them). The reads are
 *      measured. Step B adds the other people and their catalog rows up to the preset, and
 *      everything is measured again: flatness compares the two.
 *   4. VACUUM ANALYZE after each load.
 *
 * Every read runs on the pgwarden side as the application does: logged in as the
 * authenticator (crm_app, given a password for the run), withPerson(person) = BEGIN;
 * set_config('role', person, true); <query>; SESSION_CLEANUP; COMMIT, the query as a prepared
 * statement on crm_api. The floor runs the same query as a prepared statement, in a
 * transaction, as the superuser on crm.customers with the hand-written WHERE that selects the
 * same rows (e.g. `owner = ANY (ARRAY[...])` with the subtree's people as constants). Timed:
 * the query statement alone (client round trip included), warm-up first, then repetitions
 * alternating which side runs first; medians. Every result is compared (same ids / same count)
 * and a mismatch stops the run: a bench comparing different results is worthless.
 */
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import postgresClient from 'postgres';
import { crmModel, readCrmFile } from '../examples/crm/setup.js';
import { apply } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import { compile, roleNames } from '../src/compile/index.js';
import type { Model } from '../src/model/types.js';
import { withPerson } from '../src/runtime/with-person.js';
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js';
import { type BenchRow, cleanupOnSignal, median } from './rows.js';

// ------------------------------------------------------------------ presets

export type ScaleName = 'small' | 'full';

export interface ScalePreset {
  name: ScaleName;
  customers: number;
  /** people at step B (the main measurement) */
  people: number;
  /** people at step A (flatness baseline) */
  basePeople: number;
  shares: number;
  grants: number;
  assignments: number;
  /** customers in the public pool (kept small: a rep's statement may read 200 rows, readCap) */
  pool: number;
  /** level-3 sales units (sales_east, sales_west and sales_r03 ...) */
  regions: number;
  /** level-4 areas per level-3 unit */
  areas: number;
  /** level-5 teams per area */
  teams: number;
  /** measured repetitions per side and case: at least minReps, at most maxReps, ... */
  minReps: number;
  maxReps: number;
  /** ... and no more once a case has used this much time (ms) */
  caseBudgetMs: number;
  /** single-row updates per side */
  writes: number;
}

export const PRESETS: Record<ScaleName, ScalePreset> = {
  full: {
    name: 'full',
    customers: 1_000_000,
    people: 10_000,
    basePeople: 100,
    shares: 100_000,
    grants: 10_000,
    assignments: 10_000,
    pool: 40,
    regions: 10,
    areas: 4,
    teams: 10,
    minReps: 5,
    maxReps: 21,
    caseBudgetMs: 30_000,
    writes: 200,
  },
  small: {
    name: 'small',
    customers: 50_000,
    people: 1_000,
    basePeople: 100,
    shares: 10_000,
    grants: 1_000,
    assignments: 1_000,
    pool: 40,
    regions: 4,
    areas: 4,
    teams: 3,
    minReps: 5,
    maxReps: 15,
    caseBudgetMs: 4_000,
    writes: 100,
  },
};

export type ScaleSection = 'reads' | 'masking' | 'writes' | 'encryption';

export interface ScaleBenchOptions {
  /** superuser URL (any database: the bench creates its own) */
  url: string;
  preset: ScalePreset;
  /** which sections to measure (the data is built for any of them) */
  sections: ReadonlySet<ScaleSection>;
  /** also keep EXPLAIN ANALYZE of both sides for every case that misses its target (and of the
   * cases without a target where pgwarden takes more than 1.5x the floor) */
  explainMisses?: boolean;
  /** leave the database and its roles on the server for inspection (psql), instead of dropping them */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface DataShape {
  database: string;
  rolePrefix: string;
  customers: number;
  pool: number;
  units: number;
  people: { stepA: number; stepB: number };
  shares: { total: number; active: number };
  grants: { total: number; active: number };
  assignments: { total: number; active: number };
  /** visible rows per persona at step B, from the floor */
  visible: Record<string, number>;
  buildMs: Record<string, number>;
}

export interface ScaleBenchResult {
  rows: BenchRow[];
  data: DataShape;
  notes: string[];
}

// ------------------------------------------------------------------ connections

const STAGE = 'pgwb_stage';

function randomSuffix(length = 8): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (const b of randomBytes(length)) out += alphabet[b % alphabet.length];
  return out;
}

function urlFor(url: string, database: string, user?: { name: string; password: string }): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  if (user) {
    u.username = encodeURIComponent(user.name);
    u.password = encodeURIComponent(user.password);
  }
  return u.toString();
}

function connect(url: string, max = 1): postgres.Sql {
  return postgresClient(url, {
    max,
    onnotice: () => {},
    idle_timeout: 60,
    connect_timeout: 30,
    // bounded: no statement of the bench may run away
    connection: { statement_timeout: 900_000, application_name: 'pgwarden-bench-scale' },
  });
}

class RollbackSignal extends Error {}

// ------------------------------------------------------------------ data generation

/** The people of SCENARIO.md, as examples/crm/seed.sql adds them. */
const SCENARIO_PEOPLE: readonly { name: string; unit: string; jobs: string[]; sales: boolean }[] = [
  { name: 'alice', unit: 'sales_east', jobs: ['sales_rep'], sales: true },
  { name: 'bob', unit: 'sales_east', jobs: ['sales_rep'], sales: true },
  { name: 'pat', unit: 'sales_east', jobs: ['sales_rep'], sales: true },
  { name: 'carol', unit: 'sales_east', jobs: ['sales_manager'], sales: true },
  { name: 'dave', unit: 'sales_west', jobs: ['sales_rep'], sales: true },
  { name: 'walt', unit: 'sales_west', jobs: ['sales_manager'], sales: true },
  { name: 'vera', unit: 'sales', jobs: ['sales_director'], sales: true },
  { name: 'erin', unit: 'support', jobs: ['support_agent'], sales: false },
  { name: 'fiona', unit: 'finance', jobs: ['finance'], sales: false },
  { name: 'mark', unit: 'marketing', jobs: ['marketing'], sales: false },
  { name: 'tom', unit: 'marketing', jobs: [], sales: false },
  { name: 'olga', unit: 'hq', jobs: ['compliance_officer'], sales: false },
  { name: 'adam', unit: 'hq', jobs: ['crm_admin'], sales: false },
  { name: 'audrey', unit: 'hq', jobs: ['auditor'], sales: false },
];

/** Scenario people whose visible sets the floors hand-write: no grant or assignment may reach them. */
const PLAIN_PERSONAS = ['alice', 'carol', 'vera', 'erin'] as const;
/** Personas whose floors include their assignments but no temporary or team grant. */
const NO_GRANT_PERSONAS = ['walt'] as const;

function int(n: number): string {
  return String(Math.trunc(n));
}

/**
 * Stage tables (schema pgwb_stage): the synthetic units and people, the customers' owners, and
 * the shares, temporary grants and assignments, each with the step (A or B) of its person.
 */
export function stageSql(p: ScalePreset): string {
  const nTeams = p.regions * p.areas * p.teams;
  const synthetic = p.people - SCENARIO_PEOPLE.length;
  const baseSynthetic = p.basePeople - SCENARIO_PEOPLE.length;
  const scenarioRows = SCENARIO_PEOPLE.map(
    (s) =>
      `(${quoteLiteral(s.name)}, 0, ${quoteLiteral(s.unit)}, ${s.jobs[0] ? quoteLiteral(s.jobs[0]) : 'NULL'}, '{}', ${s.sales}, 'A')`,
  ).join(',\n  ');
  return `
CREATE SCHEMA ${STAGE};
CREATE FUNCTION ${STAGE}.l3(r integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE r WHEN 0 THEN 'sales_east' WHEN 1 THEN 'sales_west' ELSE 'sales_r' || lpad((r + 1)::text, 2, '0') END $$;
-- team index ti: region r = ti % R (fastest, so any prefix of the people spreads over all regions),
-- area a = (ti / R) % A, team t = ti / (R * A)
CREATE TABLE ${STAGE}.teams AS
  SELECT ti, ti % ${p.regions} AS r, (ti / ${p.regions}) % ${p.areas} AS a, ti / (${p.regions} * ${p.areas}) AS t,
         ${STAGE}.l3(ti % ${p.regions}) || '_a' || ((ti / ${p.regions}) % ${p.areas} + 1) AS area,
         ${STAGE}.l3(ti % ${p.regions}) || '_a' || ((ti / ${p.regions}) % ${p.areas} + 1) || '_t' || (ti / (${p.regions} * ${p.areas}) + 1) AS team
  FROM generate_series(0, ${nTeams - 1}) ti;
CREATE TABLE ${STAGE}.units (name text PRIMARY KEY, parent text, level integer NOT NULL);
INSERT INTO ${STAGE}.units
  SELECT ${STAGE}.l3(r), 'sales', 3 FROM generate_series(2, ${p.regions - 1}) r
  UNION ALL SELECT DISTINCT area, ${STAGE}.l3(r), 4 FROM ${STAGE}.teams
  UNION ALL SELECT team, area, 5 FROM ${STAGE}.teams;

CREATE TABLE ${STAGE}.people (
  name text PRIMARY KEY, k integer NOT NULL, unit text NOT NULL, job text,
  manages text[] NOT NULL DEFAULT '{}', sales boolean NOT NULL, step text NOT NULL);
INSERT INTO ${STAGE}.people VALUES
  ${scenarioRows};
WITH s AS (
  SELECT k, CASE WHEN k % 20 = 0 THEN 'support' WHEN k % 50 = 1 THEN 'finance'
                 WHEN k % 25 = 2 THEN 'marketing' ELSE 'sales' END AS kind
  FROM generate_series(1, ${synthetic}) k
), ranked AS (
  SELECT s.*, (row_number() OVER (PARTITION BY kind = 'sales' ORDER BY k) - 1)::integer AS si FROM s
)
INSERT INTO ${STAGE}.people (name, k, unit, job, manages, sales, step)
SELECT CASE x.kind WHEN 'sales' THEN 'sales_' WHEN 'support' THEN 'support_' WHEN 'finance' THEN 'finance_' ELSE 'mkt_' END
         || lpad(x.k::text, 5, '0'),
       x.k,
       CASE WHEN x.kind = 'sales' THEN t.team ELSE x.kind END,
       CASE x.kind WHEN 'sales' THEN CASE WHEN x.si < ${nTeams} THEN 'sales_manager' ELSE 'sales_rep' END
                   WHEN 'support' THEN 'support_agent' ELSE x.kind END,
       CASE WHEN x.kind = 'sales' AND x.si < ${nTeams} THEN
         ARRAY[t.team]
         || CASE WHEN t.t = 0 THEN ARRAY[t.area] ELSE '{}' END
         || CASE WHEN t.t = 0 AND t.a = 0 AND t.r >= 2 THEN ARRAY[${STAGE}.l3(t.r)] ELSE '{}' END
       ELSE '{}' END,
       x.kind = 'sales',
       CASE WHEN x.k <= ${baseSynthetic} THEN 'A' ELSE 'B' END
FROM ranked x LEFT JOIN ${STAGE}.teams t ON x.kind = 'sales' AND t.ti = x.si % ${nTeams};

-- the customers' owners: every sales person (step A or B: owner is a name, not a reference)
CREATE TABLE ${STAGE}.owners AS
  SELECT (row_number() OVER (ORDER BY name) - 1)::integer AS ord, name FROM ${STAGE}.people WHERE sales;

-- record shares, with sales people: 70% in force, 10% expired, 10% revoked, 10% not yet begun
CREATE TABLE ${STAGE}.shares AS
SELECT j, o.name AS person, (1 + abs(hashint4(j * 3 + 1)) % ${p.customers})::text AS row_key,
       CASE WHEN j % 10 = 2 THEN now() + interval '1 day' ELSE now() - interval '30 days' END AS valid_from,
       CASE WHEN j % 10 = 0 THEN now() - interval '1 day' WHEN j % 10 = 2 THEN now() + interval '40 days'
            WHEN j % 10 IN (3, 4) THEN now() + interval '30 days' END AS valid_until,
       CASE WHEN j % 10 = 1 THEN now() - interval '1 day' END AS revoked_at
FROM generate_series(1, ${p.shares}) j
JOIN ${STAGE}.owners o ON o.ord = abs(hashint4(j)) % (SELECT count(*) FROM ${STAGE}.owners);

-- temporary grants, to synthetic people only: 70% in force, 20% expired, 10% revoked
CREATE TABLE ${STAGE}.synth AS
  SELECT (row_number() OVER (ORDER BY k) - 1)::integer AS ord, name, unit, sales FROM ${STAGE}.people WHERE k > 0;
CREATE TABLE ${STAGE}.grants AS
SELECT j, s.name AS person,
       (ARRAY['{"region": ["east"]}', '{"region": ["west"], "customer_type": ["retail"]}',
              '{"status": ["lead"]}', '{"region": ["north", "east"], "status": ["active"]}',
              '{"customer_type": ["vip"]}'])[1 + j % 5]::jsonb AS filter,
       CASE WHEN j % 7 = 0 THEN 'update' ELSE 'select' END AS access,
       now() - interval '30 days' AS valid_from,
       CASE WHEN j % 10 IN (1, 2) THEN now() - interval '1 day' ELSE now() + interval '30 days' END AS valid_until,
       CASE WHEN j % 10 = 3 THEN now() - interval '1 day' END AS revoked_at
FROM generate_series(1, ${p.grants}) j
JOIN ${STAGE}.synth s ON s.ord = abs(hashint4(j + 11)) % (SELECT count(*) FROM ${STAGE}.synth);

-- attribute assignments (sql/010), to synthetic marketing people (region and customer_type) and
-- sales people (region, a territory): two in three in force, the others expired or revoked
CREATE TABLE ${STAGE}.assignable AS
  SELECT (row_number() OVER (ORDER BY k) - 1)::integer AS ord, name, sales
  FROM ${STAGE}.people WHERE k > 0 AND (sales OR unit = 'marketing');
CREATE TABLE ${STAGE}.assignments AS
SELECT j, s.name AS person,
       CASE WHEN s.sales OR j % 2 = 0 THEN 'region' ELSE 'customer_type' END AS attribute,
       CASE WHEN s.sales OR j % 2 = 0 THEN (ARRAY['east', 'west', 'north'])[1 + abs(hashint4(j + 5)) % 3]
            ELSE (ARRAY['enterprise', 'retail', 'vip'])[1 + abs(hashint4(j + 5)) % 3] END AS value,
       now() - interval '60 days' AS valid_from,
       CASE WHEN j % 3 = 1 THEN now() - interval '1 day' WHEN j % 3 = 2 THEN now() + interval '90 days' END AS valid_until,
       CASE WHEN j % 6 = 0 THEN now() - interval '2 days' END AS revoked_at
FROM generate_series(1, ${p.assignments}) j
JOIN ${STAGE}.assignable s ON s.ord = abs(hashint4(j + 23)) % (SELECT count(*) FROM ${STAGE}.assignable);
`;
}

/**
 * Customers, before the model is applied (no trigger yet): region and type cycle over all 9
 * combinations, status 60% active / 25% lead / 15% churned, owner a sales person picked by a
 * hash of the id, every (customers / pool)-th customer in the pool without owner. A contact for
 * every third customer (crm.contacts: a child table whose rows follow their customer's).
 */
export function customersSql(p: ScalePreset): string {
  const poolStep = Math.max(1, Math.floor(p.customers / Math.max(1, p.pool)));
  return `
INSERT INTO crm.customers (id, name, owner, region, customer_type, status, in_pool, phone, email, id_number, address, created_at, updated_at)
SELECT g, 'Customer ' || g,
       CASE WHEN g % ${poolStep} = 0 THEN NULL ELSE (SELECT array_agg(name ORDER BY ord) FROM ${STAGE}.owners)[1 + abs(hashint4(g + 7)) % (SELECT count(*) FROM ${STAGE}.owners)::integer] END,
       (ARRAY['east', 'west', 'north'])[1 + g % 3],
       (ARRAY['enterprise', 'retail', 'vip'])[1 + (g / 3) % 3],
       CASE WHEN abs(hashint8(g::bigint)) % 100 < 60 THEN 'active' WHEN abs(hashint8(g::bigint)) % 100 < 85 THEN 'lead' ELSE 'churned' END,
       g % ${poolStep} = 0,
       '138' || lpad((abs(hashint4(g)) % 100000000)::text, 8, '0'),
       'contact' || g || '@customer' || (g % 997) || '.example.com',
       '110101' || (1950 + g % 50) || lpad((1 + g % 12)::text, 2, '0') || lpad((1 + g % 28)::text, 2, '0') || lpad((g % 10000)::text, 4, '0'),
       g || ' Nanjing Rd',
       now() - (g % 1000) * interval '1 day', now()
FROM generate_series(1, ${int(p.customers)}) g;
SELECT setval(pg_get_serial_sequence('crm.customers', 'id'), ${int(p.customers + 1000)});
-- a contact for every third customer: a child table, read through the customers' keys
INSERT INTO crm.contacts (customer_id, name, title, phone, email)
SELECT g, 'Contact ' || g, (ARRAY['buyer', 'manager', 'owner'])[1 + g % 3],
       '139' || lpad((abs(hashint4(g + 1)) % 100000000)::text, 8, '0'),
       'person' || g || '@customer' || (g % 997) || '.example.com'
FROM generate_series(3, ${int(p.customers)}, 3) g;
-- the index pgwarden check asks for (unindexed_scope_column), unless schema.sql has it already
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = 'crm.customers'::regclass AND a.attname = 'in_pool'
  ) THEN
    CREATE INDEX customers_in_pool_idx ON crm.customers (in_pool);
  END IF;
END $$;
`;
}

/** SCENARIO.md's units, people and manager roles, through pgwarden's functions (as seed.sql). */
function scenarioSql(): string {
  const lines = [
    `SELECT pgwarden.add_unit('hq')`,
    `SELECT pgwarden.add_unit('sales', 'hq')`,
    `SELECT pgwarden.add_unit('sales_east', 'sales')`,
    `SELECT pgwarden.add_unit('sales_west', 'sales')`,
    `SELECT pgwarden.add_unit('support', 'hq')`,
    `SELECT pgwarden.add_unit('finance', 'hq')`,
    `SELECT pgwarden.add_unit('marketing', 'hq')`,
    ...SCENARIO_PEOPLE.map(
      (s) =>
        `SELECT pgwarden.add_person(${quoteLiteral(s.name)}, ${quoteLiteral(s.unit)}${s.jobs.length ? `, ARRAY[${s.jobs.map(quoteLiteral).join(', ')}]` : ''})`,
    ),
    `SELECT pgwarden.set_manager('carol', 'sales_east')`,
    `SELECT pgwarden.set_manager('walt', 'sales_west')`,
    `SELECT pgwarden.set_manager('vera', 'sales')`,
    // tom's temporary grant "double11" (seed.sql)
    `SELECT pgwarden.grant_access('tom', 'customers', '{"region": ["east"], "customer_type": ["retail"]}', now() + interval '30 days', 'select', 'double11')`,
    // mark's campaign: east vip customers; an ended assignment of west besides
    `SELECT pgwarden.assign('mark', 'region', ARRAY['east'])`,
    `SELECT pgwarden.assign('mark', 'customer_type', ARRAY['vip'])`,
    `SELECT pgwarden.assign('mark', 'region', ARRAY['west'], now() - interval '1 day', now() - interval '30 days')`,
    // walt's territory (issue 10): the north region besides his unit's customers, an index arm
    // (not a rep's: a rep's read cap of 200 rows counts every row a page's plan fetches)
    `SELECT pgwarden.assign('walt', 'region', ARRAY['north'])`,
    // the synthetic units below the scenario's (levels 3 to 5), in one statement
    `INSERT INTO pgwarden.units (name, parent) SELECT name, parent FROM ${STAGE}.units ORDER BY level, name`,
  ];
  return `${lines.join(';\n')};\n`;
}

/**
 * The synthetic people of one step and their catalog rows, bulk-loaded as the superuser: roles
 * exactly as pgwarden.add_person makes them (NOLOGIN INHERIT, member of the people role, granted
 * to the authenticator), then people, job grants, unit managers, shares, grants, assignments.
 */
function stepSql(step: 'A' | 'B', people: string, authenticator: string): string {
  const s = quoteLiteral(step);
  return `
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT (SELECT value FROM pgwarden.settings WHERE key = 'role_prefix') || name AS role
           FROM ${STAGE}.people WHERE k > 0 AND step = ${s} ORDER BY k LOOP
    EXECUTE format('CREATE ROLE %I NOLOGIN INHERIT', r.role);
    EXECUTE format('GRANT %I TO %I', ${quoteLiteral(people)}, r.role);
    EXECUTE format('GRANT %I TO %I', r.role, ${quoteLiteral(authenticator)});
  END LOOP;
END $$;
INSERT INTO pgwarden.people (name, role, unit)
  SELECT name, (SELECT value FROM pgwarden.settings WHERE key = 'role_prefix') || name, unit
  FROM ${STAGE}.people WHERE k > 0 AND step = ${s} ORDER BY k;
INSERT INTO pgwarden.job_grants (person, job, granted_by)
  SELECT name, job, current_user FROM ${STAGE}.people WHERE k > 0 AND step = ${s} AND job IS NOT NULL ORDER BY k;
INSERT INTO pgwarden.unit_managers (person, unit, granted_by)
  SELECT p.name, m.unit, current_user FROM ${STAGE}.people p, unnest(p.manages) AS m(unit)
  WHERE p.k > 0 AND p.step = ${s} ORDER BY p.k;
INSERT INTO pgwarden.shares (table_name, row_key, person, valid_from, valid_until, granted_by, revoked_at, revoked_by)
  SELECT 'customers', x.row_key, x.person, x.valid_from, x.valid_until, current_user, x.revoked_at,
         CASE WHEN x.revoked_at IS NOT NULL THEN current_user END
  FROM ${STAGE}.shares x JOIN ${STAGE}.people p ON p.name = x.person WHERE p.step = ${s} ORDER BY x.j;
INSERT INTO pgwarden.temp_grants (label, person, table_name, access, filter, valid_from, valid_until, granted_by, revoked_at, revoked_by)
  SELECT 'bench_' || x.j, x.person, 'customers', x.access, x.filter, x.valid_from, x.valid_until, current_user, x.revoked_at,
         CASE WHEN x.revoked_at IS NOT NULL THEN current_user END
  FROM ${STAGE}.grants x JOIN ${STAGE}.people p ON p.name = x.person WHERE p.step = ${s} ORDER BY x.j;
INSERT INTO pgwarden.assignments (person, attribute, value, valid_from, valid_until, granted_by, revoked_at, revoked_by)
  SELECT x.person, x.attribute, x.value, x.valid_from, x.valid_until, current_user, x.revoked_at,
         CASE WHEN x.revoked_at IS NOT NULL THEN current_user END
  FROM ${STAGE}.assignments x JOIN ${STAGE}.people p ON p.name = x.person WHERE p.step = ${s} ORDER BY x.j;
`;
}

// ------------------------------------------------------------------ personas and floors

interface Persona {
  /** person name (role = prefix + name) */
  name: string;
  /** what they see, for the table */
  scope: string;
  /** the hand-written WHERE selecting exactly their rows of crm.customers */
  floorWhere: string;
  /** whether the issue's count target (own, subtree and shared scopes) applies */
  countTarget: boolean;
}

/** The same validity test as pgwarden._active, written out. */
const ACTIVE = (t: string) =>
  `${t}.revoked_at IS NULL AND ${t}.valid_from <= now() AND (${t}.valid_until IS NULL OR ${t}.valid_until > now())`;

async function textArray(db: postgres.Sql, query: string, params: string[]): Promise<string[]> {
  const [r] = await db.unsafe<{ a: string[] | null }[]>(query, params);
  return r?.a ?? [];
}

function sqlTextArray(values: readonly string[]): string {
  return `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]`;
}

/**
 * The floors, read from the catalog as the superuser with hand-written queries (not pgwarden's
 * helpers). The people whose floors leave grants and assignments out are checked to have none
 * (walt's floor has his assignments, and he is checked to have no grants).
 */
async function personas(db: postgres.Sql): Promise<Persona[]> {
  for (const who of [...PLAIN_PERSONAS, ...NO_GRANT_PERSONAS]) {
    const plain = (PLAIN_PERSONAS as readonly string[]).includes(who);
    const [r] = await db.unsafe<{ grants: number; assignments: number; teams: number }[]>(
      `SELECT (SELECT count(*)::int FROM pgwarden.temp_grants g WHERE g.person = $1 AND ${ACTIVE('g')}) AS grants,
              (SELECT count(*)::int FROM pgwarden.assignments a WHERE a.person = $1 AND ${ACTIVE('a')}) AS assignments,
              (SELECT count(*)::int FROM pgwarden.team_members m WHERE m.person = $1) AS teams`,
      [who],
    );
    if (r && r.grants + (plain ? r.assignments : 0) + r.teams > 0)
      throw new Error(
        `bench setup: ${who} has grants${plain ? ', assignments' : ''} or teams; the floor would be wrong`,
      );
  }
  const shared = await textArray(
    db,
    `SELECT array_agg(DISTINCT s.row_key ORDER BY s.row_key) AS a FROM pgwarden.shares s
     WHERE s.person = $1 AND s.table_name = 'customers' AND ${ACTIVE('s')}`,
    ['alice'],
  );
  const subtree = (who: string) =>
    textArray(
      db,
      `WITH RECURSIVE tree(unit) AS (
         SELECT m.unit FROM pgwarden.unit_managers m WHERE m.person = $1 AND ${ACTIVE('m')}
         UNION SELECT u.name FROM pgwarden.units u JOIN tree t ON u.parent = t.unit)
       SELECT array_agg(p.name ORDER BY p.name) AS a FROM pgwarden.people p WHERE p.unit IN (SELECT unit FROM tree)`,
      [who],
    );
  const assigned = (who: string, attribute: string) =>
    textArray(
      db,
      `SELECT array_agg(DISTINCT a.value ORDER BY a.value) AS a FROM pgwarden.assignments a
       WHERE a.person = $1 AND a.attribute = $2 AND ${ACTIVE('a')}`,
      [who, attribute],
    );
  const carol = await subtree('carol');
  const vera = await subtree('vera');
  const walt = await subtree('walt');
  const waltRegions = await assigned('walt', 'region');
  const markRegions = await assigned('mark', 'region');
  const markTypes = await assigned('mark', 'customer_type');
  const sharedClause = shared.length
    ? ` OR id = ANY (ARRAY[${shared.map((k) => `${BigInt(k)}`).join(', ')}]::bigint[])`
    : '';
  return [
    {
      name: 'alice',
      scope: 'rep: own + shared + pool',
      floorWhere: `owner = 'alice'${sharedClause} OR in_pool IS TRUE`,
      countTarget: true,
    },
    {
      name: 'carol',
      scope: `manager: subtree (${carol.length} people) + pool`,
      floorWhere: `owner = ANY (${sqlTextArray(carol)}) OR in_pool IS TRUE`,
      countTarget: true,
    },
    {
      name: 'vera',
      scope: `director: subtree (${vera.length} people) + pool`,
      floorWhere: `owner = ANY (${sqlTextArray(vera)}) OR in_pool IS TRUE`,
      countTarget: true,
    },
    {
      name: 'erin',
      scope: "support: status = 'active', cells masked",
      floorWhere: `status = 'active'`,
      countTarget: false,
    },
    {
      name: 'walt',
      scope: `manager: subtree (${walt.length} people) + pool + assigned region ${waltRegions.join(', ')}`,
      floorWhere: `owner = ANY (${sqlTextArray(walt)}) OR in_pool IS TRUE OR region = ANY (${sqlTextArray(waltRegions)})`,
      countTarget: false,
    },
    {
      name: 'mark',
      scope: 'marketing: lead/active + assigned region AND type',
      floorWhere: `status IN ('lead', 'active') OR (region = ANY (${sqlTextArray(markRegions)}) AND customer_type = ANY (${sqlTextArray(markTypes)}))`,
      countTarget: false,
    },
  ];
}

// ------------------------------------------------------------------ measurement

/** What a query returned, for the comparison of the two sides. */
interface Outcome {
  count: number;
  ids?: string[];
}

interface Timed {
  ms: number;
  /** the whole withPerson / transaction, when measured */
  txMs?: number;
  outcome: Outcome;
}

interface Side {
  run(rep: number): Promise<Timed>;
  /** EXPLAIN (ANALYZE, BUFFERS) of one execution, as text */
  explain(rep: number): Promise<string>;
}

interface CaseSpec {
  group: string;
  name: string;
  /** stable across the two steps (the name may carry counts) */
  key?: string;
  /** upper bound of the ratio, e.g. 1.15; null: no target */
  target: number | null;
  warmup: number;
  pgwarden: Side;
  floor: Side;
  /** the same ids in the same order, or only the same count */
  compare: 'ids' | 'count';
  /** false: no plan to show (e.g. a bare transaction) */
  explainable?: boolean;
}

export interface CaseResult {
  key: string;
  row: BenchRow;
  pgwardenMs: number[];
  floorMs: number[];
  /** whole transactions: withPerson on the pgwarden side, BEGIN ... COMMIT on the floor's */
  txMs: number[];
  floorTxMs: number[];
  outcome: Outcome;
}

function outcomeOf(rows: readonly Record<string, unknown>[]): Outcome {
  return { count: rows.length, ids: rows.map((r) => String(r.id)) };
}

function same(a: Outcome, b: Outcome, mode: 'ids' | 'count'): boolean {
  if (a.count !== b.count) return false;
  if (mode === 'count') return true;
  return (a.ids ?? []).join(',') === (b.ids ?? []).join(',');
}

function describe(o: Outcome): string {
  const ids = o.ids ? ` ids ${o.ids.slice(0, 8).join(',')}${o.ids.length > 8 ? ',...' : ''}` : '';
  return `${o.count} rows${ids}`;
}

async function measure(spec: CaseSpec, p: ScalePreset): Promise<CaseResult> {
  const check = (pg: Outcome, fl: Outcome, when: string): void => {
    if (!same(pg, fl, spec.compare))
      throw new Error(
        `bench invalid: ${spec.group} "${spec.name}" (${when}): pgwarden returned ${describe(pg)}, the floor ${describe(fl)}`,
      );
  };
  for (let i = 0; i < spec.warmup; i++) {
    const a = await spec.pgwarden.run(i);
    const b = await spec.floor.run(i);
    check(a.outcome, b.outcome, `warm-up ${i + 1}`);
  }
  const pg: number[] = [];
  const fl: number[] = [];
  const tx: number[] = [];
  const ftx: number[] = [];
  let outcome: Outcome = { count: 0 };
  const start = performance.now();
  for (let rep = 0; rep < p.maxReps; rep++) {
    // cheap cases run maxReps; costly ones stop at the budget, after minReps (3 when one
    // execution alone takes more than a fifth of the budget)
    const spent = performance.now() - start;
    const floorReps = rep > 0 && spent / rep > p.caseBudgetMs / 5 ? 3 : p.minReps;
    if (rep >= floorReps && spent > p.caseBudgetMs) break;
    const i = spec.warmup + rep;
    // alternate which side runs first
    let a: Timed;
    let b: Timed;
    if (rep % 2 === 0) {
      a = await spec.pgwarden.run(i);
      b = await spec.floor.run(i);
    } else {
      b = await spec.floor.run(i);
      a = await spec.pgwarden.run(i);
    }
    check(a.outcome, b.outcome, `repetition ${rep + 1}`);
    pg.push(a.ms);
    fl.push(b.ms);
    if (a.txMs !== undefined) tx.push(a.txMs);
    if (b.txMs !== undefined) ftx.push(b.txMs);
    outcome = a.outcome;
  }
  const base = median(fl);
  const mine = median(pg);
  const ratio = mine / base;
  const target = spec.target;
  return {
    key: spec.key ?? spec.name,
    row: {
      group: spec.group,
      name: spec.name,
      unit: 'ms',
      baseline: base,
      pgwarden: mine,
      ratio,
      target: target === null ? '' : `<= ${target.toFixed(2).replace(/0$/, '')}x`,
      met: target === null ? null : ratio <= target,
      detail: {
        reps: pg.length,
        warmup: spec.warmup,
        rows: outcome.count,
        pgwardenMs: pg,
        floorMs: fl,
        ...(tx.length ? { withPersonMs: tx } : {}),
      },
    },
    pgwardenMs: pg,
    floorMs: fl,
    txMs: tx,
    floorTxMs: ftx,
    outcome,
  };
}

/** Runs the query through crm_api as the person, as an application does (withPerson). */
function personSide(
  app: postgres.Sql,
  person: string,
  rolePrefix: string,
  query: string,
  params: (rep: number) => (string | number)[],
  kind: 'rows' | 'count' | 'copy' | 'update',
): Side {
  return {
    async run(rep) {
      let ms = 0;
      let outcome: Outcome = { count: 0 };
      const t0 = performance.now();
      await withPerson(
        app,
        person,
        async (tx) => {
          const q0 = performance.now();
          outcome = await execute(tx, query, params(rep), kind);
          ms = performance.now() - q0;
        },
        { rolePrefix },
      );
      return { ms, txMs: performance.now() - t0, outcome };
    },
    async explain(rep) {
      return await withPerson(app, person, async (tx) => explainIn(tx, query, params(rep), kind), {
        rolePrefix,
      }).catch((e: unknown) => `EXPLAIN failed: ${(e as Error).message}`);
    },
  };
}

/** The floor: the superuser on the base table, the query in a transaction. */
function floorSide(
  db: postgres.Sql,
  query: string,
  params: (rep: number) => (string | number)[],
  kind: 'rows' | 'count' | 'copy' | 'update',
): Side {
  return {
    async run(rep) {
      let ms = 0;
      let outcome: Outcome = { count: 0 };
      const t0 = performance.now();
      await db.begin(async (tx) => {
        const q0 = performance.now();
        outcome = await execute(tx, query, params(rep), kind);
        ms = performance.now() - q0;
      });
      return { ms, txMs: performance.now() - t0, outcome };
    },
    async explain(rep) {
      return await db
        .begin(async (tx) => explainIn(tx, query, params(rep), kind))
        .catch((e: unknown) => `EXPLAIN failed: ${(e as Error).message}`);
    },
  };
}

async function execute(
  tx: postgres.TransactionSql,
  query: string,
  params: (string | number)[],
  kind: 'rows' | 'count' | 'copy' | 'update',
): Promise<Outcome> {
  if (kind === 'copy') {
    // the whole result as COPY text, streamed and dropped: server work and transfer, without
    // the client building a million row objects (the same for both sides)
    const stream = await tx.unsafe(`COPY (${query}) TO STDOUT`).readable();
    let lines = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    return { count: lines };
  }
  const rows = await tx.unsafe<Record<string, unknown>[]>(query, params, {
    prepare: true,
    simple: false,
  } as never);
  if (kind === 'count') return { count: Number(rows[0]?.n ?? -1) };
  if (kind === 'update') return { count: rows.count };
  return outcomeOf(rows);
}

async function explainIn(
  tx: postgres.TransactionSql,
  query: string,
  params: (string | number)[],
  kind: 'rows' | 'count' | 'copy' | 'update',
): Promise<string> {
  const text = async (): Promise<string> => {
    const rows = await tx.unsafe<{ 'QUERY PLAN': string }[]>(
      `EXPLAIN (ANALYZE, BUFFERS) ${query}`,
      params,
    );
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  };
  if (kind !== 'update') return await text();
  // writes: explained in a savepoint that is rolled back, so nothing changes
  let out = '';
  await tx
    .savepoint(async (sp) => {
      const rows = await sp.unsafe<{ 'QUERY PLAN': string }[]>(
        `EXPLAIN (ANALYZE, BUFFERS) ${query}`,
        params,
      );
      out = rows.map((r) => r['QUERY PLAN']).join('\n');
      throw new RollbackSignal();
    })
    .catch((e: unknown) => {
      if (!(e instanceof RollbackSignal)) throw e;
    });
  return out;
}

// ------------------------------------------------------------------ the run

interface Ctx {
  p: ScalePreset;
  db: postgres.Sql;
  app: postgres.Sql;
  prefix: string;
  explainMisses: boolean;
  log: (line: string) => void;
  results: CaseResult[];
}

const COLUMNS =
  'id, name, owner, region, customer_type, status, in_pool, phone, email, id_number, address, created_at, updated_at';

async function runCase(ctx: Ctx, spec: CaseSpec): Promise<CaseResult> {
  const r = await measure(spec, ctx.p);
  const row = r.row;
  ctx.log(
    `  ${row.group} ${row.name}: floor ${row.baseline?.toFixed(3)} ms, pgwarden ${row.pgwarden.toFixed(3)} ms, ${row.ratio?.toFixed(2)}x (${r.pgwardenMs.length} reps, ${r.outcome.count} rows)`,
  );
  // plans of the misses, and of the cases without a target that cost pgwarden more than 1.5x
  const worth = row.met === false || (row.met === null && (row.ratio ?? 0) > 1.5);
  if (ctx.explainMisses && worth && spec.explainable !== false) {
    const e = {
      pgwarden: await spec.pgwarden.explain(spec.warmup),
      floor: await spec.floor.explain(spec.warmup),
    };
    row.detail = { ...row.detail, explain: e };
  }
  ctx.results.push(r);
  return r;
}

/** Ids of `where` rows to look up one by one: spread over the id range, deterministic. */
async function sampleIds(
  db: postgres.Sql,
  where: string,
  n: number,
  table = 'customers',
): Promise<string[]> {
  const rows = await db.unsafe<{ id: string }[]>(
    `SELECT id::text AS id FROM crm.${table} WHERE ${where} ORDER BY abs(hashint8(id)) LIMIT ${int(n)}`,
  );
  if (rows.length === 0) throw new Error(`bench setup: no row of crm.${table} matches ${where}`);
  return rows.map((r) => r.id);
}

async function countWhere(db: postgres.Sql, where: string): Promise<number> {
  const [r] = await db.unsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM crm.customers WHERE ${where}`,
  );
  return r?.n ?? 0;
}

/** The four reads of the issue for each persona (erin's page is in the masking section). */
async function readCases(ctx: Ctx, people: Persona[], step: 'A' | 'B'): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  const group = step === 'B' ? 'reads' : 'reads@100';
  for (const who of people) {
    const ids = await sampleIds(ctx.db, `(${who.floorWhere})`, 25);
    const pick = (rep: number) => [ids[rep % ids.length] as string];
    const w = `(${who.floorWhere})`;
    const cases: {
      name: string;
      target: number | null;
      pg: string;
      floor: string;
      params: (rep: number) => (string | number)[];
      kind: 'rows' | 'count';
      compare: 'ids' | 'count';
      warmup: number;
    }[] = [
      {
        name: 'point lookup by id',
        target: 1.15,
        pg: 'SELECT * FROM crm_api.customers WHERE id = $1',
        floor: `SELECT ${COLUMNS} FROM crm.customers WHERE id = $1 AND ${w}`,
        params: pick,
        kind: 'rows',
        compare: 'ids',
        warmup: 6,
      },
      ...(who.name === 'erin'
        ? []
        : [
            {
              name: 'page (ORDER BY id LIMIT 50)',
              target: 1.15,
              pg: 'SELECT * FROM crm_api.customers ORDER BY id LIMIT 50',
              floor: `SELECT ${COLUMNS} FROM crm.customers WHERE ${w} ORDER BY id LIMIT 50`,
              params: () => [],
              kind: 'rows' as const,
              compare: 'ids' as const,
              warmup: 1,
            },
          ]),
      {
        name: "filtered page (region 'east', status 'active')",
        target: 1.15,
        pg: 'SELECT * FROM crm_api.customers WHERE region = $1 AND status = $2 ORDER BY id LIMIT 50',
        floor: `SELECT ${COLUMNS} FROM crm.customers WHERE region = $1 AND status = $2 AND ${w} ORDER BY id LIMIT 50`,
        params: () => ['east', 'active'],
        kind: 'rows',
        compare: 'ids',
        warmup: 6,
      },
      {
        name: 'count of the visible set',
        target: who.countTarget ? 1.3 : null,
        pg: 'SELECT count(*) AS n FROM crm_api.customers',
        floor: `SELECT count(*) AS n FROM crm.customers WHERE ${w}`,
        params: () => [],
        kind: 'count',
        compare: 'count',
        warmup: 1,
      },
    ];
    for (const c of cases) {
      out.push(
        await runCase(ctx, {
          group,
          name: `${who.name} (${who.scope}): ${c.name}`,
          key: `${who.name}: ${c.name}`,
          target: c.target,
          warmup: c.warmup,
          compare: c.compare,
          pgwarden: personSide(ctx.app, who.name, ctx.prefix, c.pg, c.params, c.kind),
          floor: floorSide(ctx.db, c.floor, c.params, c.kind),
        }),
      );
    }
  }
  return out;
}

/**
 * A child table (crm.contacts, `parent: customers`): a contact is visible when its customer is,
 * and its cells follow how the person relates to that customer. The policy and each shown cell
 * call a generated `_keys_customers*` helper that returns the keys of the customers the person
 * sees; the floor is the same query on the base table with the persona's customers written as a
 * subquery. No target: the issue's cases read customers.
 */
const CONTACT_COLUMNS = 'id, customer_id, name, title, phone, email';

async function childCases(ctx: Ctx, people: Persona[]): Promise<void> {
  for (const who of people.filter((x) => ['alice', 'carol', 'vera'].includes(x.name))) {
    const parents = `customer_id IN (SELECT id FROM crm.customers WHERE ${who.floorWhere})`;
    const ids = await sampleIds(ctx.db, parents, 25, 'contacts');
    const pick = (rep: number) => [ids[rep % ids.length] as string];
    const cases = [
      {
        name: 'contacts: point lookup by id',
        pg: 'SELECT * FROM crm_api.contacts WHERE id = $1',
        floor: `SELECT ${CONTACT_COLUMNS} FROM crm.contacts WHERE id = $1 AND ${parents}`,
        params: pick,
        warmup: 6,
      },
      {
        name: 'contacts: page (ORDER BY id LIMIT 50)',
        pg: 'SELECT * FROM crm_api.contacts ORDER BY id LIMIT 50',
        floor: `SELECT ${CONTACT_COLUMNS} FROM crm.contacts WHERE ${parents} ORDER BY id LIMIT 50`,
        params: () => [],
        warmup: 1,
      },
    ];
    for (const c of cases)
      await runCase(ctx, {
        group: 'reads',
        name: `${who.name} (${who.scope}): ${c.name}`,
        key: `${who.name}: ${c.name}`,
        target: null,
        warmup: c.warmup,
        compare: 'ids',
        pgwarden: personSide(ctx.app, who.name, ctx.prefix, c.pg, c.params, 'rows'),
        floor: floorSide(ctx.db, c.floor, c.params, 'rows'),
      });
  }
}

/** The transaction around every pgwarden query, on its own: withPerson with SELECT 1. */
async function overheadCase(ctx: Ctx): Promise<void> {
  const t = (fn: () => Promise<unknown>) => async (): Promise<Timed> => {
    const t0 = performance.now();
    await fn();
    return { ms: performance.now() - t0, outcome: { count: 1 } };
  };
  const pg = t(() =>
    withPerson(ctx.app, 'alice', (tx) => tx.unsafe('SELECT 1', [], { prepare: true } as never), {
      rolePrefix: ctx.prefix,
    }),
  );
  const fl = t(() => ctx.app.begin((tx) => tx.unsafe('SELECT 1', [], { prepare: true } as never)));
  await runCase(ctx, {
    group: 'reads',
    name: `withPerson's transaction: BEGIN, set_config('role'), SELECT 1, cleanup, COMMIT vs BEGIN, SELECT 1, COMMIT`,
    target: null,
    warmup: 6,
    compare: 'count',
    explainable: false,
    pgwarden: { run: pg, explain: async () => '' },
    floor: { run: fl, explain: async () => '' },
  });
}

/**
 * alice and carol take turns on the application's one connection, as people do behind a pool:
 * PostgreSQL re-plans a statement under row security whenever the role differs from the one it
 * was planned for, so every lookup here is planned again. The floor's statements (one per
 * person, on the base table) keep their plans. No target: the issue's cases repeat one person.
 */
async function alternatingCase(ctx: Ctx, people: Persona[]): Promise<void> {
  const pair = ['alice', 'carol'].map((n) => people.find((x) => x.name === n));
  if (pair.some((x) => !x)) return;
  const [a, c] = pair as [Persona, Persona];
  const ids = await Promise.all([a, c].map((x) => sampleIds(ctx.db, `(${x.floorWhere})`, 25)));
  const who = (rep: number) => (rep % 2 === 0 ? 0 : 1);
  const idFor = (rep: number) => {
    const list = ids[who(rep)] as string[];
    return [list[Math.floor(rep / 2) % list.length] as string];
  };
  const sides = [a, c].map((x) => ({
    pg: personSide(
      ctx.app,
      x.name,
      ctx.prefix,
      'SELECT * FROM crm_api.customers WHERE id = $1',
      idFor,
      'rows',
    ),
    floor: floorSide(
      ctx.db,
      `SELECT ${COLUMNS} FROM crm.customers WHERE id = $1 AND (${x.floorWhere})`,
      idFor,
      'rows',
    ),
  }));
  const pick = (side: 'pg' | 'floor'): Side => ({
    run: (rep) => (sides[who(rep)] as (typeof sides)[number])[side].run(rep),
    explain: (rep) => (sides[who(rep)] as (typeof sides)[number])[side].explain(rep),
  });
  await runCase(ctx, {
    group: 'reads',
    name: 'alice and carol taking turns on one connection: point lookup by id (planned again at each switch)',
    target: null,
    warmup: 6,
    compare: 'ids',
    explainable: false,
    pgwarden: pick('pg'),
    floor: pick('floor'),
  });
}

async function maskingCases(ctx: Ctx, erin: Persona): Promise<void> {
  const w = `(${erin.floorWhere})`;
  await runCase(ctx, {
    group: 'masking',
    name: 'erin (masked viewer): page (ORDER BY id LIMIT 50), all columns',
    target: 1.2,
    warmup: 2,
    compare: 'ids',
    pgwarden: personSide(
      ctx.app,
      'erin',
      ctx.prefix,
      'SELECT * FROM crm_api.customers ORDER BY id LIMIT 50',
      () => [],
      'rows',
    ),
    floor: floorSide(
      ctx.db,
      `SELECT ${COLUMNS} FROM crm.customers WHERE ${w} ORDER BY id LIMIT 50`,
      () => [],
      'rows',
    ),
  });
  const n = await countWhere(ctx.db, w);
  await runCase(ctx, {
    group: 'masking',
    name: `erin (masked viewer): full fetch of her ${n} rows, all columns (COPY ... TO STDOUT)`,
    target: 1.5,
    warmup: 1,
    compare: 'count',
    pgwarden: personSide(
      ctx.app,
      'erin',
      ctx.prefix,
      `SELECT ${COLUMNS} FROM crm_api.customers`,
      () => [],
      'copy',
    ),
    floor: floorSide(ctx.db, `SELECT ${COLUMNS} FROM crm.customers WHERE ${w}`, () => [], 'copy'),
  });
}

async function writeCases(ctx: Ctx): Promise<void> {
  const ids = await sampleIds(ctx.db, `owner = 'alice'`, 50);
  // each side writes its own new value every time, so that every UPDATE changes the row
  const params = (side: number) => (rep: number) => [
    `139${String(10_000_000 + 2 * rep + side).slice(-8)}`,
    ids[rep % ids.length] as string,
  ];
  // writes: a fixed number of repetitions (no time budget), at least as many as the reads
  const p = { ...ctx.p, minReps: ctx.p.writes, maxReps: ctx.p.writes };
  const local = { ...ctx, p };
  const r = await runCase(local, {
    group: 'writes',
    name: "alice: 1-row UPDATE of her customer's phone through the view (statement)",
    target: null,
    warmup: 6,
    compare: 'count',
    pgwarden: personSide(
      ctx.app,
      'alice',
      ctx.prefix,
      'UPDATE crm_api.customers SET phone = $1 WHERE id = $2',
      params(0),
      'update',
    ),
    floor: floorSide(
      ctx.db,
      'UPDATE crm.customers SET phone = $1 WHERE id = $2',
      params(1),
      'update',
    ),
  });
  // the same runs, timed as whole transactions (withPerson and COMMIT included)
  const pgTx = median(r.txMs);
  const flTx = median(r.floorTxMs);
  ctx.results.push({
    ...r,
    key: 'alice: 1-row update, transaction',
    row: {
      group: 'writes',
      name: 'alice: the same, whole transaction: withPerson (COMMIT included) vs BEGIN, UPDATE, COMMIT',
      unit: 'ms',
      baseline: flTx,
      pgwarden: pgTx,
      ratio: pgTx / flTx,
      target: '',
      met: null,
      detail: { withPersonMs: r.txMs, floorTxMs: r.floorTxMs },
    },
  });
}

// ------------------------------------------------------------------ setup and cleanup

interface Setup {
  runId: string;
  prefix: string;
  database: string;
  conns: postgres.Sql[];
}

/** Drops the bench database and every role with the run's prefix. Safe to call twice. */
async function cleanup(adminUrl: string, s: Setup, log: (line: string) => void): Promise<void> {
  for (const c of s.conns) await c.end({ timeout: 5 }).catch(() => undefined);
  s.conns = [];
  const admin = connect(adminUrl);
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(s.database)} WITH (FORCE)`);
    // thousands of roles: dropped server-side, each in its own subtransaction, a few passes
    const [r] = await admin.unsafe<{ left: number }[]>(
      `DO $$
       DECLARE r record; pass integer;
       BEGIN
         FOR pass IN 1..5 LOOP
           FOR r IN SELECT rolname FROM pg_catalog.pg_roles WHERE left(rolname, ${s.prefix.length}) = ${quoteLiteral(s.prefix)} LOOP
             BEGIN
               EXECUTE pg_catalog.format('DROP ROLE %I', r.rolname);
             EXCEPTION WHEN others THEN NULL;
             END;
           END LOOP;
         END LOOP;
       END $$;
       SELECT count(*)::int AS left FROM pg_catalog.pg_roles WHERE left(rolname, ${s.prefix.length}) = ${quoteLiteral(s.prefix)}`,
    );
    if (r && r.left > 0) log(`warning: ${r.left} roles with prefix ${s.prefix} are left`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

async function timedStep<T>(
  shape: DataShape,
  key: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  shape.buildMs[key] = Math.round(ms);
  log(`  ${key}: ${(ms / 1000).toFixed(1)} s`);
  return r;
}

async function counts(db: postgres.Sql, shape: DataShape): Promise<void> {
  const [r] = await db.unsafe<
    {
      people: number;
      units: number;
      shares: number;
      shares_active: number;
      grants: number;
      grants_active: number;
      assignments: number;
      assignments_active: number;
      customers: number;
      pool: number;
    }[]
  >(`SELECT (SELECT count(*)::int FROM pgwarden.people) AS people,
            (SELECT count(*)::int FROM pgwarden.units) AS units,
            (SELECT count(*)::int FROM pgwarden.shares) AS shares,
            (SELECT count(*)::int FROM pgwarden.shares s WHERE ${ACTIVE('s')}) AS shares_active,
            (SELECT count(*)::int FROM pgwarden.temp_grants) AS grants,
            (SELECT count(*)::int FROM pgwarden.temp_grants g WHERE ${ACTIVE('g')}) AS grants_active,
            (SELECT count(*)::int FROM pgwarden.assignments) AS assignments,
            (SELECT count(*)::int FROM pgwarden.assignments a WHERE ${ACTIVE('a')}) AS assignments_active,
            (SELECT count(*)::int FROM crm.customers) AS customers,
            (SELECT count(*)::int FROM crm.customers WHERE in_pool) AS pool`);
  if (!r) return;
  shape.units = r.units;
  shape.customers = r.customers;
  shape.pool = r.pool;
  shape.shares = { total: r.shares, active: r.shares_active };
  shape.grants = { total: r.grants, active: r.grants_active };
  shape.assignments = { total: r.assignments, active: r.assignments_active };
  if (shape.people.stepA === 0) shape.people.stepA = r.people;
  else shape.people.stepB = r.people;
}

/** Ratio of ratios: pgwarden's overhead at step B (all people) over its overhead at step A (100). */
function flatnessRows(a: CaseResult[], b: CaseResult[], people: DataShape['people']): BenchRow[] {
  const out: BenchRow[] = [];
  for (const rb of b) {
    const ra = a.find((x) => x.key === rb.key);
    if (!ra?.row.ratio || !rb.row.ratio || !rb.row.baseline) continue;
    const rr = rb.row.ratio / ra.row.ratio;
    out.push({
      group: 'flatness',
      name: `${rb.key}, ${people.stepB} vs ${people.stepA} people`,
      unit: 'ms',
      // what pgwarden would take with all people if its overhead had stayed as with 100
      baseline: rb.row.baseline * ra.row.ratio,
      pgwarden: rb.row.pgwarden,
      ratio: rr,
      target: '<= 1.2x',
      met: rr <= 1.2,
      detail: {
        ratioStepA: ra.row.ratio,
        ratioStepB: rb.row.ratio,
        floorMsStepA: ra.row.baseline,
        pgwardenMsStepA: ra.row.pgwarden,
        floorMsStepB: rb.row.baseline,
        pgwardenMsStepB: rb.row.pgwarden,
        rowsStepA: ra.outcome.count,
        rowsStepB: rb.outcome.count,
      },
    });
  }
  return out;
}

export async function runScaleBench(opts: ScaleBenchOptions): Promise<ScaleBenchResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const p = opts.preset;
  if (p.basePeople < SCENARIO_PEOPLE.length + 10 || p.people <= p.basePeople)
    throw new Error('bench: the preset needs people > basePeople >= 24');
  const runId = `pgwbs_${randomSuffix()}`;
  const s: Setup = { runId, prefix: `${runId}_`, database: runId, conns: [] };
  const stopHandlers = cleanupOnSignal(
    runId,
    `the database ${s.database} (DROP DATABASE ${s.database} WITH (FORCE)) and the roles ${s.prefix}*`,
    () => cleanup(opts.url, s, log),
    log,
  );

  const shape: DataShape = {
    database: s.database,
    rolePrefix: s.prefix,
    customers: 0,
    pool: 0,
    units: 0,
    people: { stepA: 0, stepB: 0 },
    shares: { total: 0, active: 0 },
    grants: { total: 0, active: 0 },
    assignments: { total: 0, active: 0 },
    visible: {},
    buildMs: {},
  };
  const notes: string[] = [];
  try {
    const admin = connect(opts.url);
    s.conns.push(admin);
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(s.database)}`);
    log(`scale ${p.name}: database ${s.database}, role prefix ${s.prefix}`);
    const db = connect(urlFor(opts.url, s.database));
    s.conns.push(db);

    const model = await crmModel();
    const roles = roleNames(model, { rolePrefix: s.prefix });

    await timedStep(shape, 'tables and stage', log, () =>
      db.begin((tx) => tx.unsafe(readCrmFile('schema.sql') + stageSql(p)).simple()),
    );
    await timedStep(shape, `${p.customers} customers`, log, () =>
      db.begin((tx) => tx.unsafe(customersSql(p)).simple()),
    );
    await timedStep(shape, 'model applied', log, () =>
      apply(db, compile(model, { rolePrefix: s.prefix }), {
        modelName: model.name,
        modelHash: sha256(canonicalJson(model)),
      }),
    );
    // id_number was loaded in clear: encrypted now as `pgwarden keys add` + `keys rotate` would
    let key: string | null = null;
    if (await encryptionAvailable(db)) {
      key = randomBytes(32).toString('hex');
      const batch = Math.max(10_000, Math.ceil(p.customers / 4));
      await timedStep(shape, 'id_number encrypted (add_key, rotate_batch)', log, () =>
        encryptCustomers(db, key as string, batch),
      );
    } else notes.push('encryption: customers.id_number is not encrypted in this build');
    await timedStep(shape, 'step A: scenario people (pgwarden functions)', log, () =>
      db.begin((tx) => tx.unsafe(scenarioSql()).simple()),
    );
    await timedStep(shape, `step A: ${p.basePeople} people in all, their catalog rows`, log, () =>
      db.begin((tx) => tx.unsafe(stepSql('A', roles.people, roles.authenticator)).simple()),
    );
    await timedStep(shape, 'VACUUM ANALYZE, step A', log, () => db.unsafe('VACUUM ANALYZE'));
    await counts(db, shape);

    // the application's connection: logged in as the authenticator, as an application is
    const password = `pw${randomSuffix(20)}`;
    await db.unsafe(
      `ALTER ROLE ${quoteIdent(roles.authenticator)} LOGIN PASSWORD ${quoteLiteral(password)}`,
    );
    const app = connect(urlFor(opts.url, s.database, { name: roles.authenticator, password }));
    s.conns.push(app);
    const [who] = await app<{ u: string }[]>`SELECT session_user::text AS u`;
    if (who?.u !== roles.authenticator)
      throw new Error('bench: not logged in as the authenticator');

    const ctx: Ctx = {
      p,
      db,
      app,
      prefix: s.prefix,
      explainMisses: opts.explainMisses ?? false,
      log,
      results: [],
    };
    const wantReads = opts.sections.has('reads');

    let stepA: CaseResult[] = [];
    if (wantReads) {
      log(`reads with ${shape.people.stepA} people (flatness baseline):`);
      stepA = await readCases(ctx, await personas(db), 'A');
    }

    await timedStep(shape, `step B: ${p.people} people in all, their catalog rows`, log, () =>
      db.begin((tx) => tx.unsafe(stepSql('B', roles.people, roles.authenticator)).simple()),
    );
    await timedStep(shape, 'VACUUM ANALYZE, step B', log, () => db.unsafe('VACUUM ANALYZE'));
    await counts(db, shape);
    const people = await personas(db);
    for (const who of people) shape.visible[who.name] = await countWhere(db, `(${who.floorWhere})`);
    log(
      `data: ${shape.customers} customers (${shape.pool} in the pool), ${shape.people.stepB} people in ${shape.units} units, ` +
        `${shape.shares.total} shares (${shape.shares.active} in force), ${shape.grants.total} grants (${shape.grants.active}), ` +
        `${shape.assignments.total} assignments (${shape.assignments.active}); visible: ${Object.entries(
          shape.visible,
        )
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
    );

    let stepB: CaseResult[] = [];
    if (wantReads) {
      log(`reads with ${shape.people.stepB} people:`);
      await overheadCase(ctx);
      stepB = await readCases(ctx, people, 'B');
      await alternatingCase(ctx, people);
      await childCases(ctx, people);
    }
    const erin = people.find((x) => x.name === 'erin');
    if (opts.sections.has('masking') && erin) {
      log('masking:');
      await maskingCases(ctx, erin);
    }
    if (opts.sections.has('writes')) {
      log('writes:');
      await writeCases(ctx);
    }
    if (opts.sections.has('encryption')) {
      log('encryption:');
      const note = await encryptionCases(ctx, key, model);
      if (note) {
        notes.push(note);
        log(`  ${note}`);
      }
    }

    const rows = ctx.results
      .map((r) => r.row)
      .filter((r) => r.group !== 'reads@100')
      .concat(wantReads ? flatnessRows(stepA, stepB, shape.people) : []);
    return { rows, data: shape, notes };
  } finally {
    if (opts.keep) {
      for (const c of s.conns) await c.end({ timeout: 5 }).catch(() => undefined);
      log(
        `kept database ${s.database} (roles ${s.prefix}*, the people as ${s.prefix}<name>); drop it with ` +
          `DROP DATABASE ${s.database} WITH (FORCE), then the roles`,
      );
    } else await cleanup(opts.url, s, log);
    stopHandlers();
  }
}

// ------------------------------------------------------------------ encryption (issue #11)

/** The model's level of `column` for a row related to the person by `relation` (first match wins). */
function levelOf(model: Model, table: string, column: string, relation: string): string {
  const t = model.tables.find((x) => x.name === table);
  const cell = t?.cells.find((c) => c.column === column);
  if (!cell) return 'full';
  const hit = cell.cases.find((c) => c.when.kind === 'relation' && c.when.relation === relation);
  const level = hit ? hit.level : cell.otherwise;
  return level.kind === 'mask' ? `mask:${level.mask}` : level.kind;
}

/**
 * Whether this build encrypts customers.id_number (sql/015_encryption.sql and the model's
 * `encrypted`). Read from the database, so the bench runs the same with or without the feature.
 */
async function encryptionAvailable(db: postgres.Sql): Promise<boolean> {
  const [r] = await db<{ ok: boolean }[]>`
    SELECT to_regclass('pgwarden.encrypted_columns') IS NOT NULL
       AND to_regproc('pgwarden.rotate_batch') IS NOT NULL
       AND to_regproc('pgwarden.add_key') IS NOT NULL AS ok`;
  if (!r?.ok) return false;
  const [c] = await db<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pgwarden.encrypted_columns
    WHERE table_name = 'customers' AND column_name = 'id_number'`;
  return (c?.n ?? 0) > 0;
}

/**
 * Encrypts the id_number values that were loaded in clear before the model was applied, the way
 * `pgwarden keys add` and `pgwarden keys rotate` do: the key in the session (pgwarden.keys),
 * pgwarden.add_key(), then pgwarden.rotate_batch('customers', N) until it returns 0, each batch
 * its own transaction (the audit triggers record each batch).
 */
async function encryptCustomers(db: postgres.Sql, key: string, batch: number): Promise<number> {
  let total = 0;
  for (let first = true; ; first = false) {
    const n = await db.begin(async (tx) => {
      await tx`SELECT pg_catalog.set_config('pgwarden.keys', ${key}, true)`;
      if (first) await tx`SELECT pgwarden.add_key()`;
      const [r] = await tx<
        { n: number }[]
      >`SELECT pgwarden.rotate_batch('customers', ${batch}) AS n`;
      return r?.n ?? 0;
    });
    total += n;
    if (n === 0) return total;
  }
}

/**
 * Reads of the encrypted column through the view, with the key in the transaction (as
 * withPerson's `keys` sends it: set_config('pgwarden.keys', $1, true) after the role) against the
 * same rows read through the view without the id_number column: the difference is what the
 * encrypted cell costs (decryption, one HMAC and one AES, then the mask), also per value. And the
 * same read without a key ('****' and a NOTICE; a PL/pgSQL call per shown value) for comparison.
 */
async function encryptionCases(ctx: Ctx, key: string | null, model: Model): Promise<string | null> {
  if (!key) return 'encryption: not measured (this build does not encrypt customers.id_number)';
  const keyed = (person: string, query: string, kind: 'rows' | 'copy', withKey: boolean): Side => {
    const run = async (): Promise<Timed> => {
      let ms = 0;
      let outcome: Outcome = { count: 0 };
      await withPerson(
        ctx.app,
        person,
        async (tx) => {
          if (withKey) await tx`SELECT pg_catalog.set_config('pgwarden.keys', ${key}, true)`;
          const q0 = performance.now();
          outcome = await execute(tx, query, [], kind);
          ms = performance.now() - q0;
        },
        { rolePrefix: ctx.prefix },
      );
      return { ms, outcome };
    };
    return {
      run,
      explain: async () =>
        withPerson(
          ctx.app,
          person,
          async (tx) => {
            if (withKey) await tx`SELECT pg_catalog.set_config('pgwarden.keys', ${key}, true)`;
            return explainIn(tx, query, [], 'rows');
          },
          { rolePrefix: ctx.prefix },
        ),
    };
  };
  // the cells must really be decrypted on one side and not on the other
  const probe = async (withKey: boolean): Promise<string | null> =>
    withPerson(
      ctx.app,
      'alice',
      async (tx) => {
        if (withKey) await tx`SELECT pg_catalog.set_config('pgwarden.keys', ${key}, true)`;
        const [r] = await tx<{ v: string | null }[]>`
          SELECT id_number AS v FROM crm_api.customers WHERE owner = 'alice' AND NOT in_pool ORDER BY id LIMIT 1`;
        return r?.v ?? null;
      },
      { rolePrefix: ctx.prefix },
    );
  const [withKey, withoutKey] = [await probe(true), await probe(false)];
  if (!withKey || !/^[0-9]{6}/.test(withKey) || withoutKey !== '****')
    throw new Error(
      `bench invalid: encryption: alice's id_number shows ${JSON.stringify(withKey)} with the key and ${JSON.stringify(withoutKey)} without`,
    );

  const aliceLevel = levelOf(model, 'customers', 'id_number', 'own');
  const veraLevel = levelOf(model, 'customers', 'id_number', 'subtree');
  const others = COLUMNS.split(', ')
    .filter((c) => c !== 'id_number')
    .join(', ');
  const a = await runCase(ctx, {
    group: 'encryption',
    name: `alice (id_number at ${aliceLevel}): page of 50, all columns with the key vs all but id_number`,
    target: null,
    warmup: 2,
    compare: 'ids',
    pgwarden: keyed('alice', `SELECT * FROM crm_api.customers ORDER BY id LIMIT 50`, 'rows', true),
    floor: keyed(
      'alice',
      `SELECT ${others} FROM crm_api.customers ORDER BY id LIMIT 50`,
      'rows',
      true,
    ),
  });
  const range = Math.min(10_000, ctx.p.customers);
  const where = `WHERE id BETWEEN 1 AND ${range}`;
  const idOnly = keyed('vera', `SELECT id FROM crm_api.customers ${where}`, 'copy', true);
  const v = await runCase(ctx, {
    group: 'encryption',
    name: `vera (id_number at ${veraLevel}): id, id_number of customers 1-${range} with the key vs id alone (COPY)`,
    target: null,
    warmup: 1,
    compare: 'count',
    pgwarden: keyed('vera', `SELECT id, id_number FROM crm_api.customers ${where}`, 'copy', true),
    floor: idOnly,
  });
  await runCase(ctx, {
    group: 'encryption',
    name: `vera: the same without the key (id_number shown as ****, one NOTICE) vs id alone`,
    target: null,
    warmup: 1,
    compare: 'count',
    pgwarden: keyed('vera', `SELECT id, id_number FROM crm_api.customers ${where}`, 'copy', false),
    floor: idOnly,
  });
  const perValue = (r: CaseResult, values: number): number =>
    ((r.row.pgwarden - (r.row.baseline ?? 0)) / Math.max(1, values)) * 1000;
  // alice's page: her own rows decrypt; shared and pool rows are hidden (nothing to decrypt)
  const aliceOwn = await countWhere(
    ctx.db,
    `id IN (SELECT id FROM crm.customers WHERE ${(await personas(ctx.db))[0]?.floorWhere ?? 'false'} ORDER BY id LIMIT 50) AND owner = 'alice'`,
  );
  ctx.results.push({
    ...v,
    key: 'encryption: per value',
    row: {
      group: 'encryption',
      name: `an id_number cell through the view with the key, per value (vera's ${v.outcome.count}; alice's page: ${perValue(a, aliceOwn).toFixed(1)} us per value, ${aliceOwn} values)`,
      unit: 'ms',
      baseline: null,
      pgwarden: perValue(v, v.outcome.count) / 1000,
      ratio: null,
      target: '',
      met: null,
      detail: {
        microsecondsPerValue: perValue(v, v.outcome.count),
        alicePageMicrosecondsPerValue: perValue(a, aliceOwn),
      },
    },
  });
  return null;
}
