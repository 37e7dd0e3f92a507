/**
 * SECURITY.md G: through pgbouncer in transaction mode, one client's identity never reaches the
 * next client. A real pgbouncer (the Debian package) in front of the test server, with ONE server
 * connection for the pool, so the two clients below are forced onto the same server backend, and
 * their withPerson transactions interleave on it.
 *
 * Skips (with the reason) when the pgbouncer binary is missing, or when it cannot be started or
 * cannot reach the server as the application's login.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withPerson } from '../../src/runtime/with-person.js';
import { type Crm, crm, passwordOf, sleep } from './helpers.js';

const BIN = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'].find((p) =>
  existsSync(p),
);
const isRoot = process.getuid?.() === 0;
const RUNUSER =
  isRoot && spawnSync('id', ['-u', 'postgres']).status === 0 && existsSync('/usr/sbin/runuser');

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });

let c: Crm;
let dir: string;
let proc: ChildProcess | undefined;
let unavailable = '';
let clients: postgres.Sql[] = [];
let port = 0;
const log: string[] = [];

describe.skipIf(!BIN || (isRoot && !RUNUSER))(
  `pgbouncer in transaction mode (${BIN ? `binary ${BIN}` : 'skipped: pgbouncer is not installed (apt-get install pgbouncer)'}${isRoot && !RUNUSER ? '; skipped: running as root without a postgres OS user to run it as' : ''})`,
  () => {
    beforeAll(async () => {
      c = await crm();
      await c.login('crm_app'); // gives crm_app its password
      const server = new URL(c.t.url);
      const password = passwordOf(c, 'crm_app') as string;
      dir = mkdtempSync(join(tmpdir(), 'pgw-bouncer-'));
      chmodSync(dir, 0o755);
      port = await freePort();
      const user = c.role('crm_app');
      writeFileSync(join(dir, 'userlist.txt'), `"${user}" "${password}"\n`, { mode: 0o644 });
      writeFileSync(
        join(dir, 'pgbouncer.ini'),
        [
          '[databases]',
          `${c.t.name} = host=${server.hostname === 'localhost' ? '127.0.0.1' : server.hostname} port=${server.port || 5432} dbname=${c.t.name}`,
          '[pgbouncer]',
          'listen_addr = 127.0.0.1',
          `listen_port = ${port}`,
          `unix_socket_dir =`,
          'auth_type = plain',
          `auth_file = ${join(dir, 'userlist.txt')}`,
          'pool_mode = transaction',
          'default_pool_size = 1',
          'max_client_conn = 20',
          'server_reset_query =',
          'ignore_startup_parameters = extra_float_digits,options',
          `pidfile = ${join(dir, 'pgbouncer.pid')}`,
          `logfile = ${join(dir, 'pgbouncer.log')}`,
          '',
        ].join('\n'),
        { mode: 0o644 },
      );
      if (isRoot) spawnSync('chown', ['-R', 'postgres', dir]);
      const cmd = isRoot ? '/usr/sbin/runuser' : (BIN as string);
      const args = isRoot
        ? ['-u', 'postgres', '--', BIN as string, join(dir, 'pgbouncer.ini')]
        : [join(dir, 'pgbouncer.ini')];
      proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout?.on('data', (d) => log.push(String(d)));
      proc.stderr?.on('data', (d) => log.push(String(d)));
      const connect = () =>
        postgres({
          host: '127.0.0.1',
          port,
          database: c.t.name,
          username: user,
          password,
          max: 1,
          prepare: false,
          onnotice: () => {},
          connect_timeout: 5,
        });
      for (let i = 0; i < 50; i++) {
        const probe = connect();
        try {
          await probe`SELECT 1`;
          await probe.end();
          break;
        } catch (e) {
          await probe.end({ timeout: 1 }).catch(() => undefined);
          if (i === 49 || proc.exitCode !== null)
            unavailable = `pgbouncer did not accept connections: ${String(e)}; ${log.join('')}`;
          if (proc.exitCode !== null) break;
          await sleep(200);
        }
      }
      clients = [connect(), connect()];
    });

    afterAll(async () => {
      for (const s of clients) await s.end({ timeout: 5 }).catch(() => undefined);
      if (proc && proc.exitCode === null) proc.kill('SIGTERM');
      await sleep(200);
      if (dir) rmSync(dir, { recursive: true, force: true });
      await c?.end();
    });

    it('two clients interleaving withPerson on one server connection: each transaction runs as its own person, with its own rows', async (ctx) => {
      if (unavailable) ctx.skip(unavailable);
      const expected: Record<string, string[]> = {};
      for (const p of ['alice', 'bob', 'carol', 'tom']) {
        expected[p] = (
          await c.as(p, (tx) => tx`SELECT id::text FROM crm_api.customers ORDER BY id::bigint`)
        ).map((r) => r.id);
      }
      const [a, b] = clients as [postgres.Sql, postgres.Sql];
      const pids = new Set<number>();
      const run = (client: postgres.Sql, person: string) =>
        withPerson(
          client,
          person,
          async (tx) => {
            const [who] =
              await tx`SELECT current_user AS u, pg_backend_pid() AS pid, current_setting('pgwarden.probe', true) AS probe, current_setting('search_path') AS path`;
            // state this transaction leaves behind, transaction-locally, for the next one to (not) see
            await tx`SELECT set_config('pgwarden.probe', ${person}, true), set_config('search_path', 'pg_temp', true)`;
            await sleep(5);
            const rows = await tx`SELECT id::text FROM crm_api.customers ORDER BY id::bigint`;
            return { who, ids: rows.map((r) => r.id) };
          },
          { rolePrefix: c.t.prefix },
        );
      const jobs: Promise<void>[] = [];
      const people = ['alice', 'bob', 'carol', 'tom'];
      for (let i = 0; i < 24; i++) {
        const client = i % 2 === 0 ? a : b;
        const person = people[i % people.length] as string;
        jobs.push(
          run(client, person).then(({ who, ids }) => {
            pids.add(who?.pid as number);
            expect(who?.u, `transaction ${i}`).toBe(c.role(person));
            expect(
              who?.probe ?? '',
              `transaction ${i}: a setting of the previous transaction`,
            ).toBe('');
            expect(who?.path, `transaction ${i}`).toBe('"$user", public');
            expect(ids, `transaction ${i} (${person})`).toEqual(expected[person]);
          }),
        );
      }
      await Promise.all(jobs);
      expect(pids.size).toBe(1); // they really shared one server backend
    });

    it('between transactions, a client on the pooled backend is the authenticator again, with no person and no data', async (ctx) => {
      if (unavailable) ctx.skip(unavailable);
      const [a, b] = clients as [postgres.Sql, postgres.Sql];
      await withPerson(a, 'vera', (tx) => tx`SELECT 1`, { rolePrefix: c.t.prefix });
      const [r] =
        await b`SELECT current_user AS u, current_setting('role') AS role, pg_backend_pid() AS pid`;
      expect({ u: r?.u, role: r?.role }).toEqual({ u: c.role('crm_app'), role: 'none' });
      await expect(b`SELECT count(*) FROM crm_api.customers`).rejects.toMatchObject({
        code: '42501',
      });
      // an error inside a person's transaction rolls back and leaves nothing either
      await withPerson(
        a,
        'alice',
        async (tx) => {
          await tx`SELECT 1/0`;
        },
        { rolePrefix: c.t.prefix },
      ).catch(() => undefined);
      const [r2] = await b`SELECT current_user AS u`;
      expect(r2?.u).toBe(c.role('crm_app'));
    });
  },
);
