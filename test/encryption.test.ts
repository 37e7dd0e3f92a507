/**
 * Field encryption (issue #11), end to end against real PostgreSQL and through the real CLI where
 * the issue names it: customers.id_number of the reference CRM is stored encrypted; the key comes
 * with the session (withPerson's `keys`, the CLI's --key / PGWARDEN_KEY), never from the database.
 *
 * - the key providers (src/runtime/keys.ts) and the CLI's --key handling never show a key
 * - the owner reveals with the key and sees the value; without it the same call returns the mask
 *   and says why; writes without the key are refused with a clear error
 * - at rest: a superuser's SELECT, pg_dump (or the database's files on disk when pg_dump is older
 *   than the server), the audit tables and the WAL contain no plaintext id_number
 * - rotation through `pgwarden keys rotate`, killed (-9) halfway and run again, ends with every
 *   value under the new key only and the old key retired
 */
import { execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCrmFile, setupCrm } from '../examples/crm/setup.js';
import { PgwardenError } from '../src/errors.js';
import { withPersonDrizzle } from '../src/runtime/drizzle.js';
import {
  envKey,
  fileKey,
  generateKey,
  keyConnectionOptions,
  keyId,
  kmsKey,
  parseKeyRef,
  resolveKeys,
} from '../src/runtime/keys.js';
import { reveal, revealCell } from '../src/runtime/reveal-export.js';
import { withPerson } from '../src/runtime/with-person.js';
import { BIN, cli } from './helpers/cli.js';
import { createTestDatabase, loginAs, type TestDb } from './helpers/db.js';
import { TEST_KEY } from './helpers/keys.js';

const run = promisify(execFile);
const AD = 'crm.customers.id_number';

/** Every id_number of examples/crm/seed.sql (phones have 11 digits, id_numbers 15 to 18). */
const SEED_ID_NUMBERS = [...readCrmFile('seed.sql').matchAll(/'(\d{15,17}[\dX])'/g)].map(
  (m) => m[1] as string,
);

/** Fresh random 18-digit id_numbers (never in any seed, so never in another test's data). */
const randomIdNumbers = (n: number) =>
  Array.from({ length: n }, () =>
    Array.from({ length: 18 }, (_, i) =>
      String(Math.floor(Math.random() * (i ? 10 : 9)) + (i ? 0 : 1)),
    ).join(''),
  );

function findAll(haystack: Buffer | string, needles: readonly string[]): string[] {
  const buf = typeof haystack === 'string' ? Buffer.from(haystack) : haystack;
  return needles.filter((n) => buf.includes(Buffer.from(n)));
}

let t: TestDb;
let app: postgres.Sql; // crm_app without a key of its own: keys per transaction
const opts = () => ({ rolePrefix: t.prefix });
const as = (p: string) => ['--as', `${t.prefix}${p}`];
const url = () => ['--url', t.url];
/** Values this file writes; none may appear at rest. */
const written: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase(); // its superuser connection supplies TEST_KEY
  await setupCrm(t.sql, { rolePrefix: t.prefix });
  app = await loginAs(t, 'crm_app', { keys: null });
  expect(SEED_ID_NUMBERS.length).toBeGreaterThanOrEqual(40);
});
afterAll(async () => {
  await app?.end();
  await t?.cleanup();
});

describe('key providers', () => {
  it('env, file, KMS callback, literal and lists resolve in order, validated, deduplicated', async () => {
    const [k1, k2] = [generateKey(), generateKey()];
    expect(k1).toMatch(/^[0-9a-f]{64}$/);
    process.env.PGW_TEST_KEYS = ` ${k1.toUpperCase()}, ${k2}\n`;
    expect(await resolveKeys(envKey('PGW_TEST_KEYS'))).toEqual([k1, k2]);
    expect(await resolveKeys('env:PGW_TEST_KEYS')).toEqual([k1, k2]);
    expect(await resolveKeys([k2, 'env:PGW_TEST_KEYS'])).toEqual([k2, k1]);

    const dir = mkdtempSync(join(tmpdir(), 'pgw-keys-'));
    const file = join(dir, 'key');
    writeFileSync(file, `# the CRM key\n${k1}\n`, { mode: 0o600 });
    expect(await resolveKeys(fileKey(file))).toEqual([k1]);
    expect(await resolveKeys(parseKeyRef(`file:${file}`))).toEqual([k1]);

    let calls = 0;
    const kms = kmsKey(async () => {
      calls += 1;
      return k2;
    });
    expect(await resolveKeys([kms, k1])).toEqual([k2, k1]);
    await resolveKeys(kms);
    expect(calls).toBe(1); // cached (ttlMs, default 5 minutes)
    const uncached = kmsKey(() => [k1], { ttlMs: 0 });
    await resolveKeys(uncached);
    expect(await resolveKeys(uncached)).toEqual([k1]);
    delete process.env.PGW_TEST_KEYS;

    // the database computes the same key id
    const [r] = await t.sql`SELECT pgwarden.session_key_ids() AS ids`;
    expect(r?.ids).toEqual([keyId(TEST_KEY)]);
  });

  it('a malformed key, a missing variable or a world-readable file is refused without showing the key', async () => {
    const k = generateKey();
    const bad = `${k.slice(0, 63)}g`;
    const errors: PgwardenError[] = [];
    for (const spec of [bad, k.slice(0, 40), 'env:PGW_TEST_NOT_SET', 'file:/nonexistent/key'])
      errors.push((await resolveKeys(spec).catch((e: unknown) => e)) as PgwardenError);
    const dir = mkdtempSync(join(tmpdir(), 'pgw-keys-'));
    const open = join(dir, 'key');
    writeFileSync(open, k);
    chmodSync(open, 0o644);
    errors.push((await resolveKeys(fileKey(open)).catch((e: unknown) => e)) as PgwardenError);
    process.env.PGW_TEST_BAD = `${k},${bad}`;
    errors.push(
      (await resolveKeys(envKey('PGW_TEST_BAD')).catch((e: unknown) => e)) as PgwardenError,
    );
    delete process.env.PGW_TEST_BAD;
    expect(errors.map((e) => e.code)).toEqual([
      'invalid_key',
      'invalid_key',
      'key_missing',
      'key_file_unreadable',
      'key_file_readable',
      'invalid_key',
    ]);
    expect(errors[0]?.message).toContain('some of them not hex');
    expect(errors[1]?.message).toContain('has 40 hex characters, not 64');
    expect(errors[4]?.message).toContain('readable by every user');
    expect(errors[4]?.hint).toContain(`chmod 600 ${open}`);
    expect(errors[5]?.message).toContain('environment variable PGW_TEST_BAD');
    for (const e of errors) {
      expect(e).toBeInstanceOf(PgwardenError);
      expect(`${e.message} ${e.hint}`).not.toContain(k.slice(0, 16));
    }
  });
});

describe('pgwarden keys generate / status, pgwarden test with the key (before any write)', () => {
  it('generate prints a key and nothing else; status shows what uses which key; pgwarden test runs with the CLI key', async () => {
    for (const cmd of [[], ['generate'], ['status'], ['add'], ['rotate'], ['retire']]) {
      const h = await cli(['keys', ...cmd, '--help']);
      expect(h.code, cmd.join(' ')).toBe(0);
      expect(h.stdout, cmd.join(' ')).toMatch(/Example/);
    }
    const top = await cli(['--help']);
    expect(top.stdout).toContain('--key <ref>');
    const g = await cli(['keys', 'generate']);
    expect(g.code).toBe(0);
    expect(g.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    expect(g.stderr).toBe('');

    const s = await cli(['keys', 'status', '--json', ...url()], { PGWARDEN_KEY: TEST_KEY });
    expect(s.code, s.stderr).toBe(0);
    const status = JSON.parse(s.stdout) as {
      columns: { table: string; column: string; key: string | null; values: number }[];
      keys: { key: string; state: string; supplied: boolean }[];
    };
    expect(status.columns).toEqual([
      expect.objectContaining({ table: 'customers', column: 'id_number', key: keyId(TEST_KEY) }),
    ]);
    expect(status.keys).toEqual([
      { key: keyId(TEST_KEY), state: 'active', values: status.columns[0]?.values, supplied: true },
    ]);
    const text = await cli(['keys', 'status', ...url()], {}, { unset: ['PGWARDEN_KEY'] });
    expect(text.stdout).toMatch(/customers\.id_number\s+[0-9a-f]{16}\s+active\s+\d+/);

    const spec = await cli(
      ['test', 'examples/crm/expectations.yaml', ...url(), '--role-prefix', t.prefix],
      {
        PGWARDEN_KEY: TEST_KEY,
      },
    );
    expect(spec.code, spec.stdout + spec.stderr).toBe(0);
    expect(spec.stdout).toMatch(/ok \d+ passed/);
  });
});

describe('reading and writing with and without the key', () => {
  it('the owner reveals an id_number with the key and sees it; without the key the same call returns the mask and says why (CLI)', async () => {
    const expected = SEED_ID_NUMBERS[0]; // customer 1, alice's
    const withKey = await cli(['reveal', 'customers', '1', 'id_number', ...url(), ...as('alice')], {
      PGWARDEN_KEY: TEST_KEY,
    });
    expect(withKey.code, withKey.stderr).toBe(0);
    expect(withKey.stdout.trim()).toBe(expected);
    expect(withKey.stderr).toBe('');

    const without = await cli(
      ['reveal', 'customers', '1', 'id_number', ...url(), ...as('alice')],
      {},
      { unset: ['PGWARDEN_KEY'] },
    );
    expect(without.code, without.stderr).toBe(0); // not an error: the masked value and why
    expect(without.stdout.trim()).toBe('****');
    expect(without.stderr).toContain(
      `notice: ${AD} is encrypted and this session supplied no key for it (key id ${keyId(TEST_KEY)})`,
    );
    expect(without.stderr).toContain('--key or PGWARDEN_KEY');

    // --key file:PATH (chmod 600) works; a world-readable file is refused, the key never shown
    const dir = mkdtempSync(join(tmpdir(), 'pgw-cli-key-'));
    const file = join(dir, 'crm.key');
    writeFileSync(file, `${TEST_KEY}\n`, { mode: 0o600 });
    const viaFile = await cli(
      ['reveal', 'customers', '1', 'id_number', '--key', `file:${file}`, ...url(), ...as('alice')],
      {},
      { unset: ['PGWARDEN_KEY'] },
    );
    expect(viaFile.stdout.trim()).toBe(expected);
    chmodSync(file, 0o644);
    const refused = await cli(
      [
        'reveal',
        'customers',
        '1',
        'id_number',
        '--key',
        `file:${file}`,
        '--debug',
        ...url(),
        ...as('alice'),
      ],
      {},
      { unset: ['PGWARDEN_KEY'] },
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`key file ${file} is readable by every user`);
    // a failing command with a good key and --debug prints no key either
    const failing = await cli([
      'reveal',
      'no_such_table',
      '1',
      'id_number',
      '--key',
      TEST_KEY,
      '--debug',
      ...url(),
      ...as('alice'),
    ]);
    expect(failing.code).toBe(1);
    for (const r of [withKey, without, viaFile, refused, failing])
      expect(r.stdout + r.stderr).not.toContain(TEST_KEY);
  });

  it('the TypeScript API: revealCell and reveal(onNotice) with and without keys, on a connection that has none', async () => {
    const withKey = await revealCell(app, 'alice', 'customers', '1', 'id_number', {
      ...opts(),
      keys: TEST_KEY,
    });
    expect(withKey).toEqual({ value: SEED_ID_NUMBERS[0], masked: false });
    const without = await revealCell(app, 'alice', 'customers', '1', 'id_number', opts());
    expect(without.value).toBe('****');
    expect(without.masked).toBe(true);
    expect(without.notice).toContain(`${AD} is encrypted and this session supplied no key`);
    const notices: string[] = [];
    const v = await reveal(app, 'alice', 'customers', '1', 'id_number', {
      ...opts(),
      onNotice: (n) => notices.push(n),
    });
    expect(v).toBe('****');
    expect(notices).toHaveLength(1);
    // a refusal is still an error, key or not
    await expect(
      reveal(app, 'bob', 'customers', '1', 'id_number', { ...opts(), keys: TEST_KEY }),
    ).rejects.toThrow(/needs the row to be own or subtree/);
  });

  it('reads without the key show the mask and a notice, never an error; withPerson/withPersonDrizzle keys decrypt', async () => {
    const notices: postgres.Notice[] = [];
    const nokey = postgres(t.url, { max: 1, onnotice: (n) => notices.push(n) });
    try {
      const rows = await withPerson(
        nokey,
        'alice',
        (tx) => tx`SELECT id, id_number FROM crm_api.customers WHERE id IN (1, 2) ORDER BY id`,
        opts(),
      );
      expect(rows.map((r) => r.id_number)).toEqual(['****', '****']);
      expect(notices).toHaveLength(1); // one per transaction
      expect(notices[0]?.message).toContain(`${AD} is encrypted and this session supplied no key`);
      const keyed = await withPerson(
        nokey,
        'alice',
        (tx) => tx`SELECT id_number FROM crm_api.customers WHERE id = 1`,
        { ...opts(), keys: [TEST_KEY] },
      );
      expect(keyed[0]?.id_number).toBe('110101******1000'); // her mask, made from the plaintext
      // the key was for that transaction only
      const [after] = await nokey`SELECT current_setting('pgwarden.keys', true) AS k`;
      expect(after?.k ?? '').toBe('');

      const db = drizzle(nokey);
      const viaDrizzle = await withPersonDrizzle(
        db,
        'alice',
        (tx) => tx.execute(dsql`SELECT id_number FROM crm_api.customers WHERE id = 1`),
        { ...opts(), keys: envKeyOf(TEST_KEY) },
      );
      expect((viaDrizzle as unknown as { id_number: string }[])[0]?.id_number).toBe(
        '110101******1000',
      );
    } finally {
      await nokey.end();
    }
  });

  it('writes of an encrypted column without the key are refused with a clear error; with it they are stored encrypted', async () => {
    const [fresh] = randomIdNumbers(1) as [string];
    written.push(fresh);
    const err = (await withPerson(
      app,
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET id_number = ${fresh} WHERE id = 4`,
      opts(),
    ).catch((e: unknown) => e)) as { code?: string; message?: string; hint?: string };
    expect(err.code).toBe('55000');
    expect(err.message).toContain(`cannot write ${AD}`);
    expect(err.message).toContain(`has not supplied the active key (key id ${keyId(TEST_KEY)})`);
    expect(err.hint).toContain('withPerson(..., { keys })');
    // writes of other columns need no key
    await withPerson(
      app,
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET status = 'active' WHERE id = 4`,
      opts(),
    );

    await withPerson(
      app,
      'carol',
      (tx) => tx`UPDATE crm_api.customers SET id_number = ${fresh} WHERE id = 4`,
      { ...opts(), keys: TEST_KEY },
    );
    const [stored] =
      await t.sql`SELECT id_number, pgwarden.decrypt_value(id_number, ${AD}) AS clear FROM crm.customers WHERE id = 4`;
    expect(stored?.id_number).toMatch(new RegExp(`^pgwenc1:${keyId(TEST_KEY)}:[A-Za-z0-9+/=]+$`));
    expect(stored?.clear).toBe(fresh);

    // the recycle bin keeps the ciphertext; restoring it writes it back as it was
    await withPerson(app, 'carol', (tx) => tx`DELETE FROM crm_api.customers WHERE id = 4`, opts());
    const [bin] =
      await t.sql`SELECT id::int, row_data::text AS r FROM pgwarden.recycle_bin WHERE row_key = '4'`;
    expect(String(bin?.r)).toContain(String(stored?.id_number));
    await withPerson(app, 'carol', (tx) => tx`SELECT pgwarden.restore(${bin?.id as number})`, {
      ...opts(),
      keys: TEST_KEY,
    });
    const [back] = await t.sql`SELECT id_number FROM crm.customers WHERE id = 4`;
    expect(back?.id_number).toBe(stored?.id_number);
  });
});

describe('no plaintext at rest', () => {
  it('a superuser SELECT id_number FROM crm.customers shows ciphertext only', async () => {
    const plain = postgres(t.url, { max: 1, onnotice: () => {} }); // a superuser without the key
    try {
      const rows = await plain<{ id: number; id_number: string | null }[]>`
        SELECT id::int, id_number FROM crm.customers ORDER BY id`;
      const values = rows.map((r) => r.id_number).filter((v): v is string => v !== null);
      expect(values.length).toBeGreaterThanOrEqual(40);
      for (const v of values) expect(v).toMatch(/^pgwenc1:[0-9a-f]{16}:[A-Za-z0-9+/=]+$/);
      expect(findAll(values.join('\n'), [...SEED_ID_NUMBERS, ...written])).toEqual([]);
      // two customers with the same id_number would still differ at rest (random IVs)
      expect(new Set(values).size).toBe(values.length);
    } finally {
      await plain.end();
    }
  });

  it('the audit tables and pgwarden catalog hold no plaintext id_number (keyed hashes, not values)', async () => {
    // a reveal, an id_number change and a delete + restore have been audited by now
    const tables = await t.sql<{ s: string; n: string }[]>`
      SELECT n.nspname AS s, c.relname AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname IN ('pgwarden_audit', 'pgwarden', 'crm') AND c.relkind IN ('r', 'p')`;
    // the tables behind pgwarden_audit.records (sql/018): the events and the data logs
    expect(tables.map((x) => `${x.s}.${x.n}`)).toEqual(
      expect.arrayContaining(['pgwarden_audit.events', 'pgwarden_audit.data_customers']),
    );
    let text = '';
    for (const x of tables) {
      const rows = await t.sql`SELECT x::text AS r FROM ${t.sql(x.s)}.${t.sql(x.n)} x`;
      text += rows.map((r) => r.r).join('\n');
    }
    // the id_number change of the write test is recorded, as a keyed hash
    const audited = await t.sql<{ v: string }[]>`
      SELECT changes -> 'id_number' ->> 'new' AS v FROM pgwarden_audit.records
      WHERE table_name = 'crm.customers' AND operation = 'UPDATE' AND changes ? 'id_number'`;
    expect(audited.length).toBeGreaterThan(0);
    for (const a of audited) expect(a.v).toMatch(/^hmac:[0-9a-f]+$/);
    const [binned] = await t.sql`SELECT count(*)::int AS n FROM pgwarden.recycle_bin`;
    expect(binned?.n).toBeGreaterThan(0);
    expect(findAll(text, [...SEED_ID_NUMBERS, ...written])).toEqual([]);
  });

  it('pg_dump of the database (or, when pg_dump is older than the server, the database files on disk) contains no plaintext id_number', async (ctx) => {
    const dump = await pgDump(t.url);
    const canary = 'contact1@acme.example.com'; // a plain column: proves the data is in there
    if (dump.ok) {
      console.log(`[encryption] ${dump.how}`);
      expect(dump.text).toContain(canary);
      expect(dump.text).toContain('pgwenc1:');
      expect(findAll(dump.text, [...SEED_ID_NUMBERS, ...written])).toEqual([]);
      return;
    }
    console.log(`[encryption] ${dump.why}: scanning the database's heap files instead`);
    const local = await localDataDir(t.sql);
    if (typeof local !== 'string') return ctx.skip(`${dump.why}, and ${local.why}`);
    await t.sql`CHECKPOINT`;
    const [db] =
      await t.sql`SELECT oid::text AS oid FROM pg_database WHERE datname = current_database()`;
    const dir = join(local, 'base', String(db?.oid));
    const files = readdirSync(dir).filter((f) => /^\d+(\.\d+)?$/.test(f));
    const all = Buffer.concat(files.map((f) => readFileSync(join(dir, f))));
    expect(all.includes(Buffer.from(canary))).toBe(true);
    expect(findAll(all, [...SEED_ID_NUMBERS, ...written])).toEqual([]);
  });

  it('the WAL written for id_numbers inserted and updated through the view with the key holds ciphertext only', async (ctx) => {
    const local = await localDataDir(t.sql);
    if (typeof local !== 'string') return ctx.skip(local.why);
    const fresh = randomIdNumbers(6);
    written.push(...fresh);
    const canary = `WalCanary-${Math.random().toString(36).slice(2)}`;
    const [start] =
      await t.sql`SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_insert_lsn()) AS f`;
    await withPerson(
      app,
      'carol',
      async (tx) => {
        for (const [i, v] of fresh.slice(0, 3).entries())
          await tx`UPDATE crm_api.customers SET id_number = ${v}, name = ${`${canary}-${i}`} WHERE id = ${[1, 4, 7][i] as number}`;
        for (const [i, v] of fresh.slice(3).entries())
          await tx`INSERT INTO crm_api.customers (name, owner, region, customer_type, status, id_number)
                   VALUES (${`${canary}-new-${i}`}, 'bob', 'east', 'retail', 'lead', ${v})`;
      },
      { ...opts(), keys: TEST_KEY },
    );
    const [end] =
      await t.sql`SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_insert_lsn()) AS f`;
    await t.sql`SELECT pg_switch_wal()`; // the segment is complete and on disk; read it now
    const walDir = join(local, 'pg_wal');
    const segments = readdirSync(walDir)
      .filter((f) => /^[0-9A-F]{24}$/.test(f) && f >= String(start?.f) && f <= String(end?.f))
      .sort();
    expect(segments[0], `WAL ${start?.lsn}..${end?.lsn}`).toBe(start?.f);
    const wal = Buffer.concat(segments.map((f) => readFileSync(join(walDir, f))));
    console.log(
      `[encryption] WAL ${start?.lsn}..${end?.lsn}: ${segments.length} segment(s) read from ${walDir}`,
    );
    expect(
      wal.includes(Buffer.from(canary)),
      'the plain name written alongside is in the WAL',
    ).toBe(true);
    expect(wal.includes(Buffer.from('pgwenc1:'))).toBe(true);
    expect(findAll(wal, fresh)).toEqual([]);
  });
});

describe('pgwarden keys rotate', () => {
  it('rotate: killed (-9) halfway and run again, every value ends under the new key only and the old key is retired', async () => {
    const d = await createTestDatabase();
    try {
      await setupCrm(d.sql, { rolePrefix: d.prefix });
      const OLD = TEST_KEY;
      const NEW = generateKey();
      // a few thousand customers in carol's subtree, with known id_numbers
      await d.sql`
        INSERT INTO crm.customers (name, owner, region, customer_type, status, in_pool, id_number)
        SELECT 'Bulk ' || g, (ARRAY['alice', 'bob'])[1 + g % 2], 'east', 'retail', 'lead', false,
               '9' || lpad(g::text, 17, '0')
        FROM generate_series(1, 2500) g`;
      const count = async (db: postgres.Sql) =>
        (
          await db<{ total: number; on_new: number; on_old: number }[]>`
            SELECT count(*)::int AS total,
                   count(*) FILTER (WHERE pgwarden.value_key_id(id_number) = ${keyId(NEW)})::int AS on_new,
                   count(*) FILTER (WHERE pgwarden.value_key_id(id_number) = ${keyId(OLD)})::int AS on_old
            FROM crm.customers WHERE id_number IS NOT NULL`
        )[0] as { total: number; on_new: number; on_old: number };
      const before = await count(d.sql);
      expect(before.on_old).toBe(before.total);

      const env = { ...process.env, NO_COLOR: '1', PGWARDEN_KEY: OLD, PGW_NEW_KEY: NEW };
      const args = [
        BIN,
        'keys',
        'rotate',
        '--to',
        'env:PGW_NEW_KEY',
        '--batch',
        '1',
        '--url',
        d.url,
      ];
      const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let childOut = '';
      child.stdout.on('data', (b) => {
        childOut += String(b);
      });
      child.stderr.on('data', (b) => {
        childOut += String(b);
      });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      let mid = before;
      for (let i = 0; i < 3000; i++) {
        mid = await count(d.sql);
        if (mid.on_new >= 20) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill('SIGKILL');
      await exited;
      expect(mid.on_new, childOut).toBeGreaterThanOrEqual(20);
      // wait until the server has noticed: the killed session's batch and lock are gone
      for (let i = 0; i < 100; i++) {
        const [a] = await d.sql`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'pgwarden' AND pid <> pg_backend_pid()`;
        if (a?.n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const halfway = await count(d.sql);
      expect(halfway.on_new).toBeGreaterThan(0);
      expect(halfway.on_old, 'interrupted halfway, not at the end').toBeGreaterThan(0);
      expect(halfway.on_new + halfway.on_old).toBe(halfway.total);
      // in between, a session with both keys reads every value: none is readable by neither key
      const both = postgres(d.url, {
        max: 1,
        onnotice: () => {},
        connection: keyConnectionOptions([NEW, OLD]),
      });
      try {
        const [r] = await both`SELECT count(*)::int AS n FROM crm.customers
          WHERE id_number IS NOT NULL AND pgwarden.decrypt_value(id_number, ${AD}) IS NULL`;
        expect(r?.n).toBe(0);
      } finally {
        await both.end();
      }
      // without the old key the rotation says what to supply
      const noOld = await cli(
        ['keys', 'rotate', '--to', NEW, '--url', d.url],
        {},
        { unset: ['PGWARDEN_KEY'] },
      );
      expect(noOld.code).toBe(1);
      expect(noOld.stderr).toContain(`values under key ${keyId(OLD)} cannot be re-encrypted`);
      expect(noOld.stderr).toContain('Supply the old key too');

      const resumed = await cli(
        ['keys', 'rotate', '--to', 'env:PGW_NEW_KEY', '--batch', '50', '--url', d.url],
        {
          PGWARDEN_KEY: OLD,
          PGW_NEW_KEY: NEW,
        },
      );
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`key ${keyId(NEW)} is already active: continuing`);
      const rotated = Number(/rotated (\d+) row\(s\)/.exec(resumed.stdout)?.[1]);
      expect(rotated).toBe(halfway.on_old); // it continued; it did not start over
      expect(resumed.stdout).toContain(`retired ${keyId(OLD)}`);
      for (const r of [resumed, noOld]) {
        expect(r.stdout + r.stderr).not.toContain(NEW);
        expect(r.stdout + r.stderr).not.toContain(OLD);
      }

      const after = await count(d.sql);
      expect(after).toEqual({ total: before.total, on_new: before.total, on_old: 0 });
      const [k] =
        await d.sql`SELECT state FROM pgwarden.encryption_keys WHERE key_id = ${keyId(OLD)}`;
      expect(k?.state).toBe('retired');

      // only the new key: every value in clear, as expected; only the old key: none
      const expected = new Map<number, string>();
      for (const [i, v] of SEED_ID_NUMBERS.entries()) expected.set(i + 1, v);
      const onlyNew = postgres(d.url, {
        max: 1,
        onnotice: () => {},
        connection: keyConnectionOptions([NEW]),
      });
      const onlyOld = postgres(d.url, {
        max: 1,
        onnotice: () => {},
        connection: keyConnectionOptions([OLD]),
      });
      try {
        const clear = await onlyNew<{ name: string; v: string | null }[]>`
          SELECT name, pgwarden.decrypt_value(id_number, ${AD}) AS v FROM crm.customers WHERE id_number IS NOT NULL`;
        expect(clear.filter((r) => r.v === null)).toEqual([]);
        for (const r of clear.filter((x) => x.name.startsWith('Bulk ')))
          expect(r.v).toBe(`9${r.name.slice(5).padStart(17, '0')}`);
        expect(clear.map((r) => r.v)).toEqual(
          expect.arrayContaining(SEED_ID_NUMBERS.filter(Boolean)),
        );
        const [none] =
          await onlyOld`SELECT count(*) FILTER (WHERE pgwarden.decrypt_value(id_number, ${AD}) IS NOT NULL)::int AS n
          FROM crm.customers WHERE id_number IS NOT NULL`;
        expect(none?.n).toBe(0);

        // through the view, as the manager of the subtree: her masks come from the plaintext
        const viaView = async (db: postgres.Sql) =>
          await withPerson(
            db,
            'carol',
            (tx) => tx<{ name: string; id_number: string }[]>`
              SELECT name, id_number FROM crm_api.customers WHERE name LIKE 'Bulk %'`,
            { rolePrefix: d.prefix },
          );
        const seenNew = await viaView(onlyNew);
        expect(seenNew.length).toBe(2500);
        for (const r of seenNew)
          expect(r.id_number).toBe(`900000********${r.name.slice(5).padStart(4, '0').slice(-4)}`);
        const seenOld = await viaView(onlyOld);
        expect(new Set(seenOld.map((r) => r.id_number))).toEqual(new Set(['****']));
      } finally {
        await onlyNew.end();
        await onlyOld.end();
      }
      // retired: a key no value uses; retiring the active one is refused
      const retireActive = await cli(['keys', 'retire', keyId(NEW), '--url', d.url], {
        PGWARDEN_KEY: NEW,
      });
      expect(retireActive.code).toBe(1);
      expect(retireActive.stderr).toContain('is the active key and cannot be retired');
    } finally {
      await d.cleanup();
    }
  });
});

/** A KeySpec from a literal key (keeps the drizzle test on the provider path too). */
function envKeyOf(key: string) {
  process.env.PGW_TEST_DRIZZLE_KEY = key;
  return envKey('PGW_TEST_DRIZZLE_KEY');
}

/** pg_dump's output, or why it cannot be used against this server. */
async function pgDump(
  dbUrl: string,
): Promise<{ ok: true; text: string; how: string } | { ok: false; why: string }> {
  let version: string;
  try {
    version = (await run('pg_dump', ['--version'])).stdout;
  } catch {
    return { ok: false, why: 'pg_dump is not installed' };
  }
  const dumpMajor = Number(/(\d+)(?:\.\d+)?/.exec(version)?.[1]);
  const [s] = await t.sql`SELECT current_setting('server_version_num')::int AS v`;
  const serverMajor = Math.floor(Number(s?.v) / 10000);
  if (dumpMajor < serverMajor)
    return {
      ok: false,
      why: `pg_dump ${dumpMajor} is older than the server (${serverMajor}) and refuses to dump it`,
    };
  const r = await run('pg_dump', ['--no-owner', '--dbname', dbUrl], {
    maxBuffer: 256 * 1024 * 1024,
  });
  return {
    ok: true,
    text: r.stdout,
    how: `pg_dump ${dumpMajor} of server ${serverMajor}: ${r.stdout.length} bytes`,
  };
}

/** The server's data directory when it is on this machine and readable, or why not. */
async function localDataDir(db: postgres.Sql): Promise<string | { why: string }> {
  const [r] = await db`SELECT current_setting('data_directory') AS dir,
    extract(epoch FROM pg_postmaster_start_time())::float8 AS started`;
  const dir = String(r?.dir);
  const pidFile = join(dir, 'postmaster.pid');
  try {
    if (!existsSync(pidFile)) return { why: `the server is not on this machine (no ${pidFile})` };
    const lines = readFileSync(pidFile, 'utf8').split('\n');
    // the pid file's start time (seconds) against the server's: the same server, not a namesake
    if (Math.abs(Number(lines[2]?.trim()) - Number(r?.started)) > 5)
      return { why: `${dir} on this machine belongs to another server than the one tested` };
    readdirSync(join(dir, 'pg_wal'));
    return dir;
  } catch (e) {
    return {
      why: `the server's data directory ${dir} cannot be read here (${(e as Error).message})`,
    };
  }
}
