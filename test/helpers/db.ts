/**
 * Per-test database helper. Each call creates a fresh database on the shared test server
 * (see test/global-setup.ts) and a role-name prefix unique to it.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js';
import { keyConnection } from './keys.js';

export interface TestDb {
  /** Superuser URL of the new database. */
  url: string;
  /** Database name, `pgw_<8 random lowercase alnum>`. */
  name: string;
  /** Prefix for any role a test creates (`${name}_`); cleanup() drops all roles with it. */
  prefix: string;
  /** Superuser connection to the new database (max 4 connections, notices ignored). */
  sql: postgres.Sql;
  /** Closes connections, drops the database (FORCE) and every role starting with `prefix`. */
  cleanup(): Promise<void>;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomSuffix(length = 8): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** Returns `url` with its user (password removed) and/or database replaced. */
export function urlFor(url: string, opts: { user?: string; database?: string }): string {
  const u = new URL(url);
  if (opts.user !== undefined) {
    u.username = encodeURIComponent(opts.user);
    u.password = '';
  }
  if (opts.database !== undefined) u.pathname = `/${encodeURIComponent(opts.database)}`;
  return u.toString();
}

function adminConnection(adminUrl: string): postgres.Sql {
  return postgres(adminUrl, { max: 1, onnotice: () => {} });
}

/**
 * `keys`: the encryption keys `sql` supplies (startup parameter `pgwarden.keys`); default
 * TEST_KEY (test/helpers/keys.ts), `null` for none.
 */
export async function createTestDatabase(options: { keys?: string | null } = {}): Promise<TestDb> {
  const adminUrl = inject('adminUrl');
  const name = `pgw_${randomSuffix()}`;
  const prefix = `${name}_`;

  const admin = adminConnection(adminUrl);
  try {
    await admin.unsafe(`create database ${quoteIdent(name)}`);
  } finally {
    await admin.end({ timeout: 5 });
  }

  const url = urlFor(adminUrl, { database: name });
  const sql = postgres(url, { max: 4, onnotice: () => {}, ...keyConnection(options.keys) });

  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await sql.end({ timeout: 5 }).catch(() => undefined);
    const adm = adminConnection(adminUrl);
    try {
      await adm.unsafe(`drop database if exists ${quoteIdent(name)} with (force)`);
      // LIKE treats '_' as a wildcard, so filter by exact prefix with left().
      const roles = await adm<{ rolname: string }[]>`
        select rolname from pg_roles where left(rolname, ${prefix.length}) = ${prefix}
      `;
      // Roles can depend on each other (on PG16+ a CREATEROLE role is recorded as the grantor
      // of the memberships it granted): drop in passes until nothing more can be dropped.
      let left = roles.map((r) => r.rolname);
      for (let pass = 0; pass < 5 && left.length > 0; pass++) {
        const failed: { rolname: string; err: unknown }[] = [];
        for (const rolname of left) {
          try {
            await adm.unsafe(`drop role if exists ${quoteIdent(rolname)}`);
          } catch (err) {
            failed.push({ rolname, err });
          }
        }
        if (failed.length === left.length || pass === 4) {
          for (const f of failed)
            console.warn(`[pgwarden test] could not drop role ${f.rolname}: ${String(f.err)}`);
          break;
        }
        left = failed.map((f) => f.rolname);
      }
    } finally {
      await adm.end({ timeout: 5 });
    }
  };

  return { url, name, prefix, sql, cleanup };
}

/**
 * A connection as the application's login role (`${prefix}crm_app` by default): gives the role
 * a password and logs in with it, as the application would. It supplies the test encryption key
 * (startup parameter `pgwarden.keys`) unless `keys` says otherwise (`null`: no key).
 */
const loginPasswords = new WeakMap<TestDb, Map<string, string>>();

export async function loginAs(
  t: TestDb,
  role = 'crm_app',
  options: {
    max?: number;
    keys?: string | null;
    onnotice?: (n: postgres.Notice) => void;
  } = {},
): Promise<postgres.Sql> {
  const name = `${t.prefix}${role}`;
  // One password per role and test database: a second loginAs for the same role must not
  // invalidate the password a first pool still uses to open its (lazy) connections.
  let passwords = loginPasswords.get(t);
  if (!passwords) {
    passwords = new Map();
    loginPasswords.set(t, passwords);
  }
  let password = passwords.get(name);
  if (password) {
    await t.sql.unsafe(`ALTER ROLE ${quoteIdent(name)} LOGIN`);
  } else {
    password = `pw-${randomSuffix(12)}`;
    await t.sql.unsafe(`ALTER ROLE ${quoteIdent(name)} LOGIN PASSWORD ${quoteLiteral(password)}`);
    passwords.set(name, password);
  }
  return postgres(urlFor(t.url, { user: name }), {
    password,
    max: options.max ?? 2,
    onnotice: options.onnotice ?? (() => {}),
    ...keyConnection(options.keys),
  });
}
