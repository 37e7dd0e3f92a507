/**
 * `pgwarden doctor`: the server and the database against the threat list (SECURITY.md), one
 * verdict per check. Pure functions over facts read by src/introspect/doctor.ts; the database
 * lints shared with `pgwarden check` are its rules (src/check), grouped here by threat.
 */
import { checkLive, type Finding, lintTargets } from '../check/index.js';
import type { CompileOptions } from '../compile/index.js';
import type { DoctorFacts } from '../introspect/doctor.js';
import type { LintTargets } from '../introspect/lint.js';
import type { Model } from '../model/types.js';
import { LATEST_MINORS, type MajorRelease, RLS_FIXES, TABLE_DATE } from './versions.js';

export { LATEST_MINORS, RLS_FIXES, TABLE_DATE } from './versions.js';

export type Verdict = 'pass' | 'warn' | 'fail';

export const DOCTOR_CHECKS = {
  server_version:
    'server is on the latest minor release of a supported major version (SECURITY.md D, G)',
  privileged_roles:
    'no role reachable from the authenticator or a person has SUPERUSER, BYPASSRLS, REPLICATION, CREATEROLE, pg_read_all_data / pg_write_all_data or an owner role (A)',
  create_privilege:
    'no person, people role or authenticator may CREATE in a schema or the database (A, F)',
  public_execute_definer:
    'no SECURITY DEFINER function is executable by PUBLIC; every one pins search_path (F)',
  protected_tables:
    'every protected table and every partition of one has RLS enabled and forced (A)',
  materialized_views: 'no materialized view over protected tables is readable by people (E)',
  temporary_objects:
    'people cannot create temporary objects that outlive their transaction on a pooled connection (D, F, G)',
  subtree_cache:
    "every unit's row of pgwarden.subtree_people_cache lists the people of its subtree (a wrong row changes what managers see) (A)",
} as const;

export type DoctorCheckCode = keyof typeof DOCTOR_CHECKS;

export interface DoctorCheck {
  code: DoctorCheckCode;
  title: string;
  verdict: Verdict;
  /** one line per problem (or the one reason it passes) */
  details: string[];
  /** what to do; empty when it passes */
  fix: string;
}

export interface DoctorResult {
  ok: boolean;
  database: string;
  server: string;
  checks: DoctorCheck[];
}

/** `15.20` from server_version_num 150020 (10+), `9.6.24` style is not supported (pre-10). */
export function parseVersionNum(num: number): { major: number; minor: number } {
  return { major: Math.floor(num / 10000), minor: num % 10000 };
}

/** The server-version verdict, from server_version_num and the table (pure; `today` as YYYY-MM-DD). */
export function versionCheck(
  versionNum: number,
  table: Readonly<Record<number, MajorRelease>> = LATEST_MINORS,
  today: string = new Date().toISOString().slice(0, 10),
): DoctorCheck {
  const { major, minor } = parseVersionNum(versionNum);
  const base = { code: 'server_version' as const, title: DOCTOR_CHECKS.server_version };
  const entry = table[major];
  const missing = RLS_FIXES.filter(
    (f) => f.fixedIn[major] !== undefined && minor < (f.fixedIn[major] as number),
  );
  const cves = missing.map((f) => `${f.cve} (${f.what})`);
  if (major < 15) {
    const eol = entry?.eol && entry.eol <= today;
    return {
      ...base,
      verdict: 'fail',
      details: [
        `PostgreSQL ${major}.${minor}: pgwarden targets PostgreSQL 15 and later${eol ? `, and ${major} reached end of life on ${entry?.eol}` : ''}`,
        ...cves.map((c) => `missing ${c}`),
      ],
      fix: `Upgrade to a supported major version (15 or later), on its latest minor release.`,
    };
  }
  if (!entry) {
    return {
      ...base,
      verdict: 'warn',
      details: [
        `PostgreSQL ${major}.${minor} is newer than the release table (dated ${TABLE_DATE}); pgwarden could not know its minor releases`,
      ],
      fix: 'Check https://www.postgresql.org/support/versioning/ yourself, and update src/doctor/versions.ts.',
    };
  }
  if (minor < entry.latest) {
    return {
      ...base,
      verdict: 'fail',
      details: [
        `PostgreSQL ${major}.${minor} is below ${major}.${entry.latest}, the latest minor release known on ${entry.knownAsOf} (could not know newer than ${entry.knownAsOf})`,
        ...cves.map((c) => `missing ${c}`),
      ],
      fix: `Update the server to ${major}.${entry.latest} or later (a minor update: same data directory, restart).`,
    };
  }
  return {
    ...base,
    verdict: 'pass',
    details: [
      `PostgreSQL ${major}.${minor}; the latest ${major}.x known on ${entry.knownAsOf} is ${major}.${entry.latest} (could not know newer than ${entry.knownAsOf}${minor > entry.latest ? '; this server is newer, so the table is out of date' : ''})`,
    ],
    fix: '',
  };
}

const CODES_BY_CHECK: Partial<Record<DoctorCheckCode, readonly string[]>> = {
  privileged_roles: ['role_dangerous_attribute', 'role_dangerous_membership'],
  create_privilege: ['role_create_privilege'],
  public_execute_definer: ['definer_without_search_path'],
  protected_tables: ['rls_disabled', 'rls_not_forced', 'table_missing'],
};

function verdictOf(
  code: DoctorCheckCode,
  problems: string[],
  fix: string,
  passWith: string,
  severity: Verdict = 'fail',
): DoctorCheck {
  return problems.length === 0
    ? { code, title: DOCTOR_CHECKS[code], verdict: 'pass', details: [passWith], fix: '' }
    : { code, title: DOCTOR_CHECKS[code], verdict: severity, details: problems, fix };
}

const line = (f: Finding) => `${f.code}: ${f.object}: ${f.message}`;

/** Every check, in a fixed order. */
export function doctor(
  model: Model,
  facts: DoctorFacts,
  options: CompileOptions = {},
): DoctorResult {
  const findings = checkLive(model, facts.lint, options);
  const of = (code: DoctorCheckCode) =>
    findings.filter((f) => CODES_BY_CHECK[code]?.includes(f.code));
  const fixOf = (fs: Finding[], fallback: string) =>
    [...new Set(fs.map((f) => f.fix))].join(' ') || fallback;
  const checks: DoctorCheck[] = [versionCheck(facts.versionNum)];

  const roles = of('privileged_roles');
  checks.push(
    verdictOf(
      'privileged_roles',
      roles.map(line),
      fixOf(roles, ''),
      `checked ${facts.lint.existingStartRoles.length + facts.lint.personRoles.length} roles and every role they can become`,
    ),
  );
  const create = of('create_privilege');
  checks.push(
    verdictOf(
      'create_privilege',
      create.map(line),
      fixOf(create, ''),
      'no CREATE on any schema or the database',
    ),
  );

  const definers = [
    ...facts.publicDefiners.map(
      (d) =>
        `${d.schema}.${d.name}(${d.args}) (owner ${d.owner}) is SECURITY DEFINER and PUBLIC may execute it`,
    ),
    ...of('public_execute_definer').map(line),
  ];
  checks.push(
    verdictOf(
      'public_execute_definer',
      definers,
      'REVOKE EXECUTE ON FUNCTION <function> FROM PUBLIC, grant it to the roles that need it, and give it SET search_path = pg_catalog, pg_temp (or the schemas it needs, pg_temp last).',
      'no SECURITY DEFINER function is executable by PUBLIC, and each pins search_path',
    ),
  );

  const tables = of('protected_tables');
  const partitions = facts.lint.tables.filter((t) => t.partitionOf !== null).length;
  // a partition is a table of its own, reachable by name: it needs RLS enabled and forced even
  // when its root is not (yet) in the model (check reports only the model's tables)
  const reported = new Set(tables.map((f) => f.object));
  const loose = facts.lint.tables
    .filter(
      (t) =>
        t.partitionOf !== null && (!t.rls || !t.force) && !reported.has(`${t.schema}.${t.name}`),
    )
    .map(
      (t) =>
        `partition ${t.schema}.${t.name} of ${t.partitionOf?.schema}.${t.partitionOf?.name}: row level security ${t.rls ? 'enabled but not forced' : 'disabled'}; it can be queried by name`,
    );
  checks.push(
    verdictOf(
      'protected_tables',
      [...tables.map(line), ...loose],
      fixOf(
        tables,
        "ALTER TABLE <partition> ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY, and give it the policies of its root (pgwarden apply does this for the model's tables).",
      ),
      `${facts.lint.tables.length} tables (${partitions} partitions) have RLS enabled and forced`,
    ),
  );

  const mv = facts.matviews.filter((m) => m.readers.length > 0);
  checks.push(
    verdictOf(
      'materialized_views',
      mv.map(
        (m) =>
          `materialized view ${m.schema}.${m.name} holds rows of ${m.tables.join(', ')} without their row rules, and ${m.readers.join(', ')} may read it`,
      ),
      'A materialized view stores the rows its owner saw, with no row security: REVOKE SELECT on it from people and the application (or drop it), and expose summaries through a masked view pgwarden manages.',
      facts.matviews.length === 0
        ? 'no materialized view reads a protected table'
        : `${facts.matviews.length} materialized view(s) read protected tables; no person may read them`,
    ),
  );

  checks.push(
    verdictOf(
      'temporary_objects',
      facts.temp.length === 0 ? [] : [`may create temporary objects: ${facts.temp.join(', ')}`],
      `REVOKE TEMPORARY ON DATABASE ${facts.lint.database} FROM PUBLIC (and from people): a person's temporary tables, views and session settings outlive her transaction on a pooled connection, where the next person's unqualified names can resolve to them (docs/security.md, residual risks). If tools need TEMP, grant it to their own login role only.`,
      'no person may create temporary objects',
      'warn',
    ),
  );

  const cache = facts.subtreeCache;
  checks.push(
    cache.checked
      ? verdictOf(
          'subtree_cache',
          cache.problems.map((p) =>
            p.problem === 'missing'
              ? `unit ${p.unit} has no row: its managers' subtree is computed live (slower, still right)`
              : p.problem === 'stale'
                ? `unit ${p.unit}: the cached people differ from the org tree; its managers see the rows of the cached people`
                : `row for ${p.unit}, which is not a unit`,
          ),
          'As the catalog owner, run SELECT pgwarden._refresh_subtree_cache(NULL); then find out what wrote the cache or disabled its triggers (subtree_cache_* on pgwarden.people and pgwarden.units): only their owner can.',
          `${cache.units} units, each row right`,
        )
      : {
          code: 'subtree_cache',
          title: DOCTOR_CHECKS.subtree_cache,
          verdict: 'warn',
          details: [`not checked: ${cache.reason}`],
          fix: 'Run doctor as a superuser or the catalog owner, after pgwarden apply has installed the catalog (sql/019).',
        },
  );

  return {
    ok: checks.every((c) => c.verdict !== 'fail'),
    database: facts.lint.database,
    server: facts.version,
    checks,
  };
}

export function doctorTargets(model: Model, options: CompileOptions = {}): LintTargets {
  return lintTargets(model, options);
}
