/**
 * Shared set-up for the adversarial suite (test/security/*.test.ts): a fresh database with the
 * reference CRM, the application's login (crm_app, with a password, as the application runs),
 * `as(person, fn)` = BEGIN; SET LOCAL ROLE <person>; fn; COMMIT (withPerson), notice capture for
 * leak probes, and a fingerprint of everything an attack could change, to assert "the database is
 * unchanged afterwards".
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { setupCrm } from '../../examples/crm/setup.js';
import { withPerson } from '../../src/runtime/with-person.js';
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js';
import { createTestDatabase, type TestDb, urlFor } from '../helpers/db.js';
import { keyConnection } from '../helpers/keys.js';

export interface Crm {
  t: TestDb;
  /** logged in as `${prefix}crm_app` */
  app: postgres.Sql;
  /** notices received on `app` (cleared by `as` when asked) */
  notices: postgres.Notice[];
  /** BEGIN; SET LOCAL ROLE <prefix><person>; fn; COMMIT on the application's connection */
  as<T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T>;
  /** the role name of a person */
  role(person: string): string;
  /**
   * a new connection logging in as `role` (without prefix), after giving it LOGIN + password; it
   * supplies the test encryption key (startup parameter pgwarden.keys) unless `keys: null`
   */
  login(
    role: string,
    options?: { max?: number; keys?: string | null },
  ): Promise<postgres.Sql & { notices: postgres.Notice[] }>;
  /** md5 of every row of every table an attacker could target, of roles, grants and objects */
  fingerprint(): Promise<Record<string, string>>;
  end(): Promise<void>;
}

const passwords = new Map<string, string>();

export async function crm(): Promise<Crm> {
  const t = await createTestDatabase();
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  const opened: postgres.Sql[] = [];
  const login: Crm['login'] = async (role, options = {}) => {
    const name = `${t.prefix}${role}`;
    let password = passwords.get(name);
    if (!password) {
      password = `pw-${randomBytes(9).toString('hex')}`;
      passwords.set(name, password);
      await t.sql.unsafe(`ALTER ROLE ${quoteIdent(name)} LOGIN PASSWORD ${quoteLiteral(password)}`);
    }
    const notices: postgres.Notice[] = [];
    const sql = postgres(urlFor(t.url, { user: name }), {
      password,
      max: options.max ?? 1,
      onnotice: (n) => notices.push(n),
      ...keyConnection(options.keys),
    });
    opened.push(sql);
    return Object.assign(sql, { notices });
  };
  const app = await login('crm_app', { max: 1 });
  return {
    t,
    app,
    notices: app.notices,
    as: (person, fn) => withPerson(app, person, fn, { rolePrefix: t.prefix }),
    role: (person) => `${t.prefix}${person}`,
    login,
    fingerprint: () => fingerprint(t),
    end: async () => {
      for (const s of opened) await s.end({ timeout: 5 }).catch(() => undefined);
      await t.cleanup();
    },
  };
}

/**
 * Every table of the protected, catalog and audit schemas (row contents), and the security
 * surface: roles with the test prefix and their attributes, memberships, object ACLs, policies,
 * triggers and their enabled state, and the objects of every non-temporary schema.
 */
export async function fingerprint(t: TestDb): Promise<Record<string, string>> {
  const tables = await t.sql<{ rel: string }[]>`
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS rel
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('crm', 'pgwarden', 'pgwarden_audit') AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
    ORDER BY 1`;
  const out: Record<string, string> = {};
  for (const { rel } of tables) {
    const [r] = await t.sql.unsafe<{ h: string }[]>(
      `SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM ${rel} x`,
    );
    out[rel] = r?.h ?? '';
  }
  const [s] = await t.sql<
    { roles: string; members: string; objects: string; policies: string; triggers: string }[]
  >`
    SELECT
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconfig::text), '|' ORDER BY rolname), ''))
         FROM pg_catalog.pg_roles WHERE pg_catalog.left(rolname, ${t.prefix.length}) = ${t.prefix}) AS roles,
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', roleid::regrole::text, member::regrole::text, admin_option), '|' ORDER BY 1), ''))
         FROM pg_catalog.pg_auth_members
         WHERE pg_catalog.left(roleid::regrole::text, ${t.prefix.length}) = ${t.prefix} OR pg_catalog.left(member::regrole::text, ${t.prefix.length}) = ${t.prefix}) AS members,
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', n.nspname, c.relname, c.relkind, c.relowner::regrole::text, c.relacl::text, c.relrowsecurity, c.relforcerowsecurity), '|' ORDER BY n.nspname, c.relname), ''))
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname <> 'information_schema' AND n.nspname <> 'pg_catalog') ||
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', n.nspname, n.nspowner::regrole::text, n.nspacl::text), '|' ORDER BY 1), '')) FROM pg_catalog.pg_namespace n WHERE n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT LIKE 'pg\_toast%') ||
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', p.oid::regprocedure::text, p.proacl::text, p.prosecdef, p.proconfig::text, pg_catalog.md5(p.prosrc)), '|' ORDER BY 1), ''))
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT IN ('pg_catalog', 'information_schema')) ||
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', d.datname, d.datacl::text), '|' ORDER BY 1), '')) FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()) AS objects,
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', polrelid::regclass::text, polname, polpermissive, polroles::text, pg_catalog.pg_get_expr(polqual, polrelid), pg_catalog.pg_get_expr(polwithcheck, polrelid)), '|' ORDER BY 1), ''))
         FROM pg_catalog.pg_policy) AS policies,
      (SELECT pg_catalog.md5(COALESCE(pg_catalog.string_agg(pg_catalog.concat_ws(',', tgrelid::regclass::text, tgname, tgenabled), '|' ORDER BY 1), ''))
         FROM pg_catalog.pg_trigger WHERE NOT tgisinternal) AS triggers`;
  return { ...out, ...(s ?? {}) };
}

/** The error of a promise that must fail (fails the test if it succeeds). */
export async function failure(p: Promise<unknown>): Promise<postgres.PostgresError> {
  try {
    await p;
  } catch (e) {
    return e as postgres.PostgresError;
  }
  throw new Error('expected the statement to fail, but it succeeded');
}

export { PEOPLE } from '../helpers/people.js';

/** Sleeps ms milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** psql on PATH (used where postgres.js cannot drive the protocol, e.g. a refused COPY FROM) */
export const PSQL = spawnSync('psql', ['--version']).status === 0;

/** Runs a psql script logged in as `role` (which `login` gave a password), verbose errors. */
export function psql(
  c: Crm,
  role: string,
  script: string,
): { status: number | null; stdout: string; stderr: string } {
  const name = `${c.t.prefix}${role}`;
  const r = spawnSync(
    'psql',
    ['-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', urlFor(c.t.url, { user: name })],
    {
      input: `\\set VERBOSITY verbose\n${script}`,
      env: { ...process.env, PGPASSWORD: passwords.get(name) ?? '' },
      encoding: 'utf8',
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The password `login` gave `role` (without prefix) in this database, if any. */
export function passwordOf(c: Crm, role: string): string | undefined {
  return passwords.get(`${c.t.prefix}${role}`);
}
