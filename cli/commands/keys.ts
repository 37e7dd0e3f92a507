/**
 * pgwarden keys: encryption keys of encrypted columns (sql/015_encryption.sql, docs/encryption.md).
 * The database stores key ids and states, never keys; the keys of a run come from --key or
 * $PGWARDEN_KEY and reach the server only as the startup parameter pgwarden.keys.
 *
 *   pgwarden keys generate > /run/secrets/pgwarden.key        (chmod 600)
 *   pgwarden keys add --key file:/run/secrets/pgwarden.key
 *   pgwarden keys rotate --to file:/run/secrets/new.key --key file:/run/secrets/old.key
 */
import type { Command } from 'commander';
import type postgres from 'postgres';
import { PgwardenError } from '../../src/errors.js';
import { generateKey, keyId, parseKeyRef, resolveKeysSync } from '../../src/runtime/keys.js';
import { cliKeys, withDb } from '../context.js';
import { c, ok, table } from '../output.js';

interface UrlOption {
  url?: string;
}

interface StatusRow {
  table_name: string;
  column_name: string;
  key_id: string | null;
  state: string | null;
  values: number;
}

interface KeyRow {
  key_id: string;
  state: string;
}

const NO_KEY_HINT =
  'Pass --key env:NAME, --key file:PATH or --key <64 hex>, or set PGWARDEN_KEY (pgwarden keys generate makes one).';

async function readStatus(db: postgres.Sql): Promise<StatusRow[]> {
  const rows = await db<StatusRow[]>`
    SELECT s.table_name::text, s.column_name::text, s.key_id::text, s.state::text, s."values"::bigint::float8 AS "values"
    FROM pgwarden.encryption_status() s
    ORDER BY 1, 2, 3 NULLS FIRST`;
  return rows.map((r) => ({ ...r, values: Number(r.values) }));
}

async function readKeys(db: postgres.Sql): Promise<KeyRow[]> {
  return await db<KeyRow[]>`
    SELECT k.key_id::text, k.state::text FROM pgwarden.encryption_keys k
    ORDER BY CASE k.state WHEN 'active' THEN 0 WHEN 'retiring' THEN 1 ELSE 2 END, k.key_id`;
}

function needKeys(what: string): string[] {
  const keys = cliKeys();
  if (keys.length === 0)
    throw new PgwardenError('key_missing', `${what} needs an encryption key`, NO_KEY_HINT);
  return keys;
}

/** Values still under a key other than `active` (or in clear), per table. */
function pending(status: readonly StatusRow[], active: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of status)
    if (s.key_id !== active && s.values > 0)
      out.set(s.table_name, (out.get(s.table_name) ?? 0) + s.values);
  return out;
}

function positiveInt(option: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new PgwardenError(
      'invalid_option',
      `${option} ${JSON.stringify(v)} is not a positive whole number`,
      `Pass ${option} 1000, for example.`,
    );
  return n;
}

export function register(program: Command): void {
  const keys = program
    .command('keys')
    .description(
      'encryption keys of encrypted columns: generate, status, add, rotate, retire (docs/encryption.md)',
    )
    .addHelpText(
      'after',
      `
Keys are 64 hex characters (32 bytes) and never stored in the database. Every command of
pgwarden passes the keys of --key (repeatable; env:NAME, file:PATH or the key itself) or, without
--key, of $PGWARDEN_KEY (one key, or several separated by commas, new key first) to the server
as the connection setting pgwarden.keys. A key written on the command line stays in the shell's
history: prefer env: or file:.

Examples:
  $ pgwarden keys generate > /run/secrets/pgwarden.key && chmod 600 /run/secrets/pgwarden.key
  $ pgwarden keys add --key file:/run/secrets/pgwarden.key
  $ pgwarden keys status --key file:/run/secrets/pgwarden.key
  $ pgwarden keys rotate --to env:NEW_KEY --key env:OLD_KEY
`,
    );

  keys
    .command('generate')
    .description('print a new random key (64 hex characters) on standard output, nothing else')
    .addHelpText(
      'after',
      '\nExample:\n  $ umask 077; pgwarden keys generate > /run/secrets/pgwarden.key\n',
    )
    .action(() => {
      process.stdout.write(`${generateKey()}\n`);
    });

  keys
    .command('status')
    .description(
      'per encrypted column: how many values are in clear or under which key; the keys and their states',
    )
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL); a superuser')
    .option('--json', 'print { columns, keys, sessionKeys } as JSON')
    .addHelpText('after', '\nExample:\n  $ pgwarden keys status --json\n')
    .action(async (o: UrlOption & { json?: boolean }) => {
      const supplied = cliKeys().map(keyId);
      const { status, registered } = await withDb(o, async (db) => ({
        status: await readStatus(db),
        registered: await readKeys(db),
      }));
      const counts = new Map<string, number>();
      for (const s of status)
        if (s.key_id) counts.set(s.key_id, (counts.get(s.key_id) ?? 0) + s.values);
      const keyRows = registered.map((k) => ({
        key: k.key_id,
        state: k.state,
        values: counts.get(k.key_id) ?? 0,
        supplied: supplied.includes(k.key_id),
      }));
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify(
            {
              columns: status.map((s) => ({
                table: s.table_name,
                column: s.column_name,
                key: s.key_id,
                state: s.key_id === null ? 'plaintext' : s.state,
                values: s.values,
              })),
              keys: keyRows,
              sessionKeys: supplied,
            },
            null,
            2,
          )}\n`,
        );
        return;
      }
      process.stdout.write(c.bold('Encrypted columns\n'));
      process.stdout.write(
        table(
          status.map((s) => ({
            column: `${s.table_name}.${s.column_name}`,
            key: s.key_id ?? '(plaintext)',
            state: s.key_id === null ? '' : (s.state ?? 'unknown'),
            values: s.values,
          })),
        ),
      );
      process.stdout.write(c.bold('\nKeys\n'));
      process.stdout.write(
        table(keyRows.map((k) => ({ ...k, supplied: k.supplied ? 'yes' : 'no' }))),
      );
      const unknown = supplied.filter((id) => !registered.some((k) => k.key_id === id));
      if (unknown.length)
        process.stdout.write(
          c.dim(
            `\nSupplied but not registered: ${unknown.join(', ')} (pgwarden keys add registers the first key given)\n`,
          ),
        );
    });

  keys
    .command('add')
    .description(
      'register the first key given (--key / $PGWARDEN_KEY) as the active key: new values are encrypted with it; the previous active key becomes retiring',
    )
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL); a superuser')
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden keys add --key file:/run/secrets/pgwarden.key\n\nTo replace a key in use, run pgwarden keys rotate instead: it adds the new key and re-encrypts.\n',
    )
    .action(async (o: UrlOption) => {
      const supplied = needKeys('pgwarden keys add');
      const id = keyId(supplied[0] as string);
      const before = await withDb(o, async (db) => {
        const prior = await readKeys(db);
        if (prior.some((k) => k.key_id === id && k.state === 'retired'))
          throw new PgwardenError(
            'key_not_new',
            `key ${id} was retired; a retired key may have been destroyed or exposed`,
            'Add a new key: pgwarden keys generate.',
          );
        if (!prior.some((k) => k.key_id === id && k.state === 'active'))
          await db`SELECT pgwarden.add_key()`;
        return prior;
      });
      const wasActive = before.find((k) => k.state === 'active');
      if (wasActive?.key_id === id) ok(`key ${id} is already the active key; nothing to do`);
      else
        ok(
          `key ${id} is the active key${wasActive ? `; ${wasActive.key_id} is retiring: run pgwarden keys rotate --to <this key> --key <old key> to re-encrypt its values` : ''}`,
        );
    });

  keys
    .command('rotate')
    .description(
      're-encrypt every encrypted value with a new key, in batches (resumable: run it again after an interruption), then retire the old keys',
    )
    .requiredOption('--to <ref>', 'the new key: env:NAME, file:PATH or the 64-hex key')
    .option('--batch <n>', 'rows per transaction', '1000')
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL); a superuser')
    .addHelpText(
      'after',
      `
The old key(s) come from --key or $PGWARDEN_KEY; the session holds the new key and the old ones,
so every value stays readable throughout. Each batch is its own transaction: a rotation that was
interrupted (Ctrl-C, a killed process, a lost connection) continues where it stopped when run
again with the same keys. At the end, old keys that no value uses any more are retired.

Example:
  $ pgwarden keys rotate --to env:NEW_KEY --key env:OLD_KEY --batch 500
`,
    )
    .action(async (o: UrlOption & { to: string; batch: string }) => {
      const batch = positiveInt('--batch', o.batch);
      const target = resolveKeysSync(parseKeyRef(o.to));
      if (target.length !== 1)
        throw new PgwardenError(
          'invalid_option',
          `--to gives ${target.length} keys; a rotation has one new key`,
          'Pass the new key alone with --to, and the old key(s) with --key or PGWARDEN_KEY.',
        );
      const newKey = target[0] as string;
      const newId = keyId(newKey);
      const session = [newKey, ...cliKeys().filter((k) => k !== newKey)];
      const sessionIds = session.map(keyId);
      await withDb(
        o,
        async (pool) => {
          const db = await pool.reserve();
          try {
            const [lock] = await db<
              { ok: boolean }[]
            >`SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('pgwarden.keys.rotate', 0)) AS ok`;
            if (!lock?.ok)
              throw new PgwardenError(
                'lock_timeout',
                'another pgwarden keys rotate is running on this database',
                'Wait for it to finish (or end it), then run this again: it continues where the other stopped.',
              );
            const registered = await readKeys(db);
            const active = registered.find((k) => k.state === 'active');
            const known = registered.find((k) => k.key_id === newId);
            if (known?.state === 'retired')
              throw new PgwardenError(
                'key_not_new',
                `key ${newId} (--to) was retired; a retired key may have been destroyed or exposed`,
                'Rotate to a new key: pgwarden keys generate.',
              );
            const status = await readStatus(db);
            const unreadable = [
              ...new Set(
                status
                  .filter((s) => s.key_id && s.values > 0 && !sessionIds.includes(s.key_id))
                  .map((s) => s.key_id as string),
              ),
            ];
            if (unreadable.length)
              throw new PgwardenError(
                'key_missing',
                `values under key ${unreadable.join(', ')} cannot be re-encrypted: that key was not supplied`,
                `Supply the old key too, next to the new one: --to <new> --key env:OLD_KEY (repeat --key for several), or PGWARDEN_KEY=<old key>. Keys supplied: ${sessionIds.join(', ')}.`,
              );
            if (active?.key_id !== newId) {
              await db`SELECT pgwarden.add_key()`;
              process.stderr.write(
                `${c.green('ok')} key ${newId} is now the active key${active ? ` (${active.key_id} retiring)` : ''}\n`,
              );
            } else process.stderr.write(c.dim(`key ${newId} is already active: continuing\n`));

            const todo = pending(status, newId);
            const total = [...todo.values()].reduce((a, b) => a + b, 0);
            const tables = [...new Set(status.map((s) => s.table_name))];
            const tty = process.stderr.isTTY === true;
            let done = 0;
            let lastLine = Date.now();
            const started = Date.now();
            for (const tbl of tables) {
              for (;;) {
                const [r] = await db<
                  { n: number }[]
                >`SELECT pgwarden.rotate_batch(${tbl}, ${batch}::int)::int AS n`;
                const n = r?.n ?? 0;
                if (n === 0) break;
                done += n;
                const line = `rotating ${tbl}: ${done} of ${Math.max(total, done)} value row(s) re-encrypted`;
                if (tty) process.stderr.write(`\r${line}`);
                else if (Date.now() - lastLine > 5000) {
                  process.stderr.write(`${line}\n`);
                  lastLine = Date.now();
                }
              }
            }
            if (tty && done > 0) process.stderr.write('\n');
            const after = await readStatus(db);
            const left = pending(after, newId);
            if (left.size > 0)
              throw new PgwardenError(
                'rotation_incomplete',
                `after the rotation, ${[...left.entries()].map(([t, n]) => `${n} value(s) of ${t}`).join(', ')} are not under key ${newId}`,
                'Run pgwarden keys status to see which key they use, then run this again.',
              );
            const retired: string[] = [];
            for (const k of await readKeys(db)) {
              if (k.key_id === newId || k.state === 'retired') continue;
              if (after.some((s) => s.key_id === k.key_id && s.values > 0)) continue;
              await db`SELECT pgwarden.retire_key(${k.key_id})`;
              retired.push(k.key_id);
            }
            ok(
              `rotated ${done} row(s) to key ${newId} in ${((Date.now() - started) / 1000).toFixed(1)}s; every encrypted value uses it${retired.length ? `; retired ${retired.join(', ')} (no value uses ${retired.length === 1 ? 'it' : 'them'}; it can be destroyed once no backup needs it)` : ''}`,
            );
            await db`SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended('pgwarden.keys.rotate', 0))`;
          } finally {
            db.release();
          }
        },
        { keys: session },
      );
    });

  keys
    .command('retire <id>')
    .description('mark a key retired (refused while any value still uses it)')
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL); a superuser')
    .addHelpText('after', '\nExample:\n  $ pgwarden keys retire 3f9a0c1d2e4b5a69\n')
    .action(async (id: string, o: UrlOption) => {
      if (!/^[0-9a-f]{16}$/.test(id))
        throw new PgwardenError(
          'invalid_option',
          `${JSON.stringify(id)} is not a key id (16 hex characters)`,
          'pgwarden keys status lists the key ids. A key id is not the key itself.',
        );
      await withDb(o, (db) => db`SELECT pgwarden.retire_key(${id})`);
      ok(`key ${id} is retired`);
    });
}
