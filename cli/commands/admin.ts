/**
 * People, units, jobs, shares and temporary grants: runtime data managed through pgwarden's
 * functions (no migration, no code change). Each command may run as a person with --as
 * (e.g. the CRM admin); the database decides whether they may.
 */
import type { Command } from 'commander';
import type postgres from 'postgres';
import { PgwardenError } from '../../src/errors.js';
import { asPerson, type PersonOptions, personOptions, relativeTime, withDb } from '../context.js';
import { ok, table } from '../output.js';

type Common = PersonOptions;
const common = personOptions;

function run<T>(o: Common, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return withDb(o, (db) => asPerson(db, o.as, fn));
}

function until(v: string | undefined): string | null {
  return v === undefined ? null : relativeTime('--until', v);
}

export function register(program: Command): void {
  const unit = program.command('unit').description('the org tree');
  common(
    unit.command('add <name>').description('add a unit').option('--parent <unit>', 'parent unit'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden unit add sales_north --parent sales\n')
    .action(async (name: string, o: Common & { parent?: string }) => {
      await run(o, (tx) => tx`SELECT pgwarden.add_unit(${name}, ${o.parent ?? null})`);
      ok(`unit ${name} added${o.parent ? ` under ${o.parent}` : ''}`);
    });
  common(
    unit
      .command('move <name>')
      .description('move a unit under another parent')
      .requiredOption('--parent <unit>', 'new parent'),
  ).action(async (name: string, o: Common & { parent: string }) => {
    await run(o, (tx) => tx`SELECT pgwarden.move_unit(${name}, ${o.parent})`);
    ok(`unit ${name} moved under ${o.parent}`);
  });
  common(unit.command('list').description('list units')).action(async (o: Common) => {
    const rows = await run(o, (tx) => tx`SELECT name, parent FROM pgwarden.units ORDER BY name`);
    process.stdout.write(table(rows));
  });

  const person = program
    .command('person')
    .description('people: add, move, deactivate, offboard, list');
  common(
    person
      .command('add <name>')
      .description('add a person (creates their role; the application may act as them)')
      .requiredOption('--unit <unit>', 'their unit')
      .option('--job <job...>', 'jobs to grant')
      .option('--login', 'let the role log in directly (default: only through the application)'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden person add alice --unit sales_east --job sales_rep\n',
    )
    .action(async (name: string, o: Common & { unit: string; job?: string[]; login?: boolean }) => {
      const [r] = await run(
        o,
        (tx) =>
          tx`SELECT pgwarden.add_person(${name}, ${o.unit}, ${o.job ?? []}::text[], ${o.login === true}) AS role`,
      );
      ok(
        `person ${name} added in ${o.unit} as role ${String(r?.role)}${o.job?.length ? ` with ${o.job.join(', ')}` : ''}`,
      );
    });
  common(
    person
      .command('move <name>')
      .description('move a person to another unit; takes effect on the next statement')
      .requiredOption('--unit <unit>', 'new unit')
      .option(
        '--manages <unit>',
        'also make them the manager of this unit (ending what they managed before)',
      ),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden person move carol --unit sales_west --manages sales_west\n',
    )
    .action(async (name: string, o: Common & { unit: string; manages?: string }) => {
      await run(o, async (tx) => {
        await tx`SELECT pgwarden.move_person(${name}, ${o.unit})`;
        if (o.manages) {
          await tx`SELECT pgwarden.unset_manager(${name}, NULL)`;
          await tx`SELECT pgwarden.set_manager(${name}, ${o.manages}, NULL)`;
        }
      });
      ok(`${name} moved to ${o.unit}${o.manages ? `, manages ${o.manages}` : ''}`);
    });
  common(
    person
      .command('deactivate <name>')
      .description(
        'deactivate a person: they see nothing from the next statement, cannot log in, and the application can no longer act as them',
      ),
  ).action(async (name: string, o: Common) => {
    await run(o, (tx) => tx`SELECT pgwarden.deactivate_person(${name})`);
    ok(`${name} deactivated`);
  });
  common(
    person
      .command('offboard <name>')
      .description(
        'offboard a leaver in one transaction: no login, the application can no longer act as them, their direct sessions end, their rows go to another person or the pool, and everything they hold ends',
      )
      .option('--handover <person>', 'who takes over their rows')
      .option('--to-pool', 'put their rows back into the public pool instead'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  $ pgwarden person offboard alice --handover bob\n  $ pgwarden person offboard alice --to-pool\n',
    )
    .action(async (name: string, o: Common & { handover?: string; toPool?: boolean }) => {
      if ((o.handover === undefined) === (o.toPool !== true)) {
        throw new PgwardenError(
          'invalid_option',
          'offboard needs exactly one of --handover <person> or --to-pool',
          'Choose who takes over the rows, or put them back into the pool.',
        );
      }
      const [r] = await run(
        o,
        (tx) =>
          tx`SELECT pgwarden.offboard(${name}, ${o.handover ?? null}, ${o.toPool === true}) AS report`,
      );
      const report = r?.report as Record<string, unknown>;
      if (report?.nothing_to_do) {
        ok(`${name} is already offboarded; nothing left to do`);
        return;
      }
      const moved =
        Object.entries((report?.rows_moved ?? {}) as Record<string, number>)
          .map(([t, n]) => `${n} ${t}`)
          .join(', ') || 'no rows';
      ok(
        `${name} offboarded: ${moved} moved to ${String(report?.moved_to)}; ${String(report?.sessions_ended)} session(s) ended; ${String(report?.shares_ended)} share(s), ${String(report?.temporary_grants_ended)} temporary grant(s), ${String(report?.jobs_ended)} job(s), ${String(report?.management_ended)} management role(s) ended`,
      );
    });
  common(
    program
      .command('whoami')
      .description("the acting person's own entries: unit, jobs, management, shares, grants"),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden whoami --as alice\n')
    .action(async (o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.me() AS me`);
      process.stdout.write(`${JSON.stringify(r?.me, null, 2)}\n`);
    });
  common(
    person.command('list').description('list people with their units and current jobs'),
  ).action(async (o: Common) => {
    const rows = await run(
      o,
      (tx) => tx`SELECT p.name, p.role, p.unit, p.active,
        (SELECT string_agg(g.job, ',' ORDER BY g.job) FROM pgwarden.job_grants g WHERE g.person = p.name AND pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)) AS jobs,
        (SELECT string_agg(m.unit, ',' ORDER BY m.unit) FROM pgwarden.unit_managers m WHERE m.person = p.name AND pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)) AS manages
        FROM pgwarden.people p ORDER BY p.name`,
    );
    process.stdout.write(table(rows));
  });

  const grant = program.command('grant').description('jobs, management and temporary access');
  common(
    grant
      .command('job <person> <job>')
      .description('grant a job')
      .option('--until <time>', 'end time (ISO, or 12h / 7d from now)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden grant job bob sales_rep --until 30d\n')
    .action(async (p: string, job: string, o: Common & { until?: string }) => {
      const [r] = await run(
        o,
        (tx) =>
          tx`SELECT pgwarden.grant_job(${p}, ${job}, ${until(o.until)}::timestamptz) AS result`,
      );
      const result = r?.result as { granted?: number; requested?: number; approvers?: string[] };
      if (result?.requested !== undefined) {
        ok(
          `${job} is privileged: request ${result.requested} for ${p} waits for approval by a holder of ${(result.approvers ?? []).join(' or ') || '(no approver job)'}` +
            ` (pgwarden grant approve ${result.requested})`,
        );
      } else ok(`${p} holds ${job}${o.until ? ` until ${until(o.until)}` : ''}`);
    });
  common(
    grant
      .command('requests')
      .description(
        'requests for privileged jobs that wait for approval (approvers and administrators)',
      ),
  )
    .option('--all', 'also decided requests (administrator connection)')
    .addHelpText('after', '\nExample:\n  $ pgwarden grant requests --as olga\n')
    .action(async (o: Common & { all?: boolean }) => {
      const rows = o.all
        ? await run(
            o,
            (tx) =>
              tx`SELECT id, person, job, valid_until, requested_by, requested_at, status, decided_by, reason FROM pgwarden.job_requests ORDER BY id`,
          )
        : await run(o, (tx) => tx`SELECT * FROM pgwarden.pending_requests()`);
      process.stdout.write(table(rows));
    });
  common(
    grant
      .command('approve <id>')
      .description('approve a request for a privileged job (never your own, never for yourself)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden grant approve 3 --as olga\n')
    .action(async (id: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.approve_job_request(${id}::bigint) AS g`);
      ok(`request ${id} approved; job grant ${String(r?.g)} is in force`);
    });
  common(
    grant
      .command('reject <id>')
      .description('reject a request for a privileged job')
      .requiredOption('--reason <text>', 'why'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden grant reject 3 --reason "not in sales" --as olga\n',
    )
    .action(async (id: string, o: Common & { reason: string }) => {
      await run(o, (tx) => tx`SELECT pgwarden.reject_job_request(${id}::bigint, ${o.reason})`);
      ok(`request ${id} rejected`);
    });
  common(
    grant
      .command('sweep')
      .description('remove ended and revoked grants, shares, jobs and management, and report them'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden grant sweep\n')
    .action(async (o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.sweep() AS report`);
      const report = (r?.report ?? {}) as Record<string, number>;
      const total = Object.values(report).reduce((a, b) => a + b, 0);
      ok(
        total === 0
          ? 'nothing has ended; nothing removed'
          : `removed ${Object.entries(report)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${n} ${k.replaceAll('_', ' ')}`)
              .join(', ')}`,
      );
    });
  common(grant.command('revoke-job <person> <job>').description('end a job grant now')).action(
    async (p: string, job: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.revoke_job(${p}, ${job}) AS n`);
      ok(`${String(r?.n)} grant(s) of ${job} to ${p} ended`);
    },
  );
  common(
    grant
      .command('manager <person> <unit>')
      .description('make a person manager of a unit (and its subtree)')
      .option('--until <time>', 'end time'),
  ).action(async (p: string, u: string, o: Common & { until?: string }) => {
    await run(
      o,
      (tx) => tx`SELECT pgwarden.set_manager(${p}, ${u}, ${until(o.until)}::timestamptz)`,
    );
    ok(`${p} manages ${u}`);
  });
  common(
    grant
      .command('access <person> <table>')
      .description('temporary access to the rows of a table that match a filter, until a time')
      .requiredOption('--filter <json>', 'e.g. \'{"region": ["east"], "customer_type": "retail"}\'')
      .requiredOption('--until <time>', 'end time (ISO, or 12h / 7d from now)')
      .option('--access <command>', 'select | insert | update | delete', 'select')
      .option('--label <label>', 'a name for the grant'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden grant access tom customers --filter \'{"region":["east"],"customer_type":["retail"]}\' --until 2026-11-12T00:00:00+08:00 --label double11\n',
    )
    .action(
      async (
        p: string,
        t: string,
        o: Common & { filter: string; until: string; access: string; label?: string },
      ) => {
        let filter: unknown;
        try {
          filter = JSON.parse(o.filter);
        } catch {
          throw new PgwardenError(
            'invalid_option',
            `--filter is not JSON: ${o.filter}`,
            'Give an object of column -> value(s), e.g. {"region": ["east"]}.',
          );
        }
        const [r] = await run(
          o,
          (tx) =>
            tx`SELECT pgwarden.grant_access(${p}, ${t}, ${tx.json(filter as never)}, ${until(o.until)}::timestamptz, ${o.access}, ${o.label ?? null}) AS id`,
        );
        ok(
          `temporary grant ${String(r?.id)}: ${p} may ${o.access} ${t} rows matching ${o.filter} until ${until(o.until)}`,
        );
      },
    );
  common(grant.command('revoke-access <id>').description('end a temporary grant now')).action(
    async (id: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.revoke_access(${id}::bigint) AS n`);
      ok(
        Number(r?.n) > 0
          ? `temporary grant ${id} ended`
          : `temporary grant ${id} was not active; nothing to do`,
      );
    },
  );
  common(
    grant
      .command('list')
      .description('jobs, management, temporary grants and shares in force')
      .option('--expiring <within>', 'only what ends within this time, e.g. 7d or 12h'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden grant list --expiring 7d\n')
    .action(async (o: Common & { expiring?: string }) => {
      const horizon = o.expiring === undefined ? null : until(o.expiring);
      const rows = await run(
        o,
        (tx) => tx`SELECT * FROM (
          SELECT 'job' AS kind, g.id, g.person, g.job AS what, g.valid_until FROM pgwarden.job_grants g WHERE pgwarden._active(g.valid_from, g.valid_until, g.revoked_at)
          UNION ALL SELECT 'manages', m.id, m.person, m.unit, m.valid_until FROM pgwarden.unit_managers m WHERE pgwarden._active(m.valid_from, m.valid_until, m.revoked_at)
          UNION ALL SELECT 'access', t.id, t.person, t.access || ' ' || t.table_name || ' ' || t.filter::text || COALESCE(' (' || t.label || ')', ''), t.valid_until FROM pgwarden.temp_grants t WHERE pgwarden._active(t.valid_from, t.valid_until, t.revoked_at)
          UNION ALL SELECT 'share', s.id, s.person, s.table_name || ' ' || s.row_key, s.valid_until FROM pgwarden.shares s WHERE pgwarden._active(s.valid_from, s.valid_until, s.revoked_at)
        ) x WHERE ${horizon}::timestamptz IS NULL OR (x.valid_until IS NOT NULL AND x.valid_until <= ${horizon}::timestamptz)
        ORDER BY ${horizon}::timestamptz IS NULL, x.valid_until, 3, 1, 2`,
      );
      process.stdout.write(table(rows));
    });

  common(
    program
      .command('claim <table> <key>')
      .description('claim a row of the public pool (you become its owner)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden claim customers 40 --as alice\n')
    .action(async (t: string, key: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.claim(${t}, ${key}) AS left`);
      ok(`claimed ${t} ${key}; ${String(r?.left)} claim(s) left today`);
    });
  common(
    program
      .command('release <table> <key>')
      .description('release a row you own back to the public pool'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden release customers 40 --as alice\n')
    .action(async (t: string, key: string, o: Common) => {
      await run(o, (tx) => tx`SELECT pgwarden.release(${t}, ${key})`);
      ok(`released ${t} ${key} to the pool`);
    });
  const bin = program
    .command('bin')
    .description('the recycle bin: deleted rows, restorable for the retention period');
  common(bin.command('list').description('rows in the recycle bin')).action(async (o: Common) => {
    const rows = await run(
      o,
      (tx) => tx`SELECT id, table_name, row_key, deleted_by, deleted_at, purge_after, restored_at,
        (SELECT COALESCE(sum(jsonb_array_length(k -> 'rows')), 0)::int FROM jsonb_array_elements(children) k) AS child_rows
        FROM pgwarden.recycle_bin ORDER BY id`,
    );
    process.stdout.write(table(rows));
  });
  common(
    bin
      .command('purge')
      .description('delete bin entries past their retention, and report them')
      .option('--dry-run', 'only report what would be purged'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden bin purge --dry-run\n')
    .action(async (o: Common & { dryRun?: boolean }) => {
      const rows = await run(
        o,
        (tx) => tx`SELECT * FROM pgwarden.purge_recycle_bin(${o.dryRun === true})`,
      );
      process.stdout.write(table(rows));
      ok(
        `${o.dryRun ? 'would purge' : 'purged'} ${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}`,
      );
    });
  common(
    program
      .command('restore <id>')
      .description('restore a deleted row and its child rows from the recycle bin'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden restore 12 --as carol\n')
    .action(async (id: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.restore(${id}::bigint) AS report`);
      const report = r?.report as { table: string; key: string; rows: number };
      ok(`restored ${report.table} ${report.key} (${report.rows} row(s) with its children)`);
    });

  const share = program
    .command('share')
    .description('record shares: one row shared with one person');
  common(
    share
      .command('add <table> <key>')
      .description('share one row with a person')
      .requiredOption('--with <person>', 'the person')
      .option('--until <time>', 'end time (ISO, or 12h / 7d from now)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden share add customers 42 --with bob --until 7d\n')
    .action(async (t: string, key: string, o: Common & { with: string; until?: string }) => {
      const [r] = await run(
        o,
        (tx) =>
          tx`SELECT pgwarden.share(${t}, ${key}, ${o.with}, ${until(o.until)}::timestamptz) AS id`,
      );
      ok(
        `share ${String(r?.id)}: ${t} ${key} with ${o.with}${o.until ? ` until ${until(o.until)}` : ''}`,
      );
    });
  common(
    share
      .command('remove <table> <key>')
      .description('end a share now')
      .requiredOption('--with <person>', 'the person'),
  ).action(async (t: string, key: string, o: Common & { with: string }) => {
    const [r] = await run(o, (tx) => tx`SELECT pgwarden.unshare(${t}, ${key}, ${o.with}) AS n`);
    ok(`${String(r?.n)} share(s) ended`);
  });
  common(share.command('list').description('shares in force')).action(async (o: Common) => {
    const rows = await run(
      o,
      (tx) =>
        tx`SELECT id, table_name, row_key, person, valid_until, granted_by FROM pgwarden.shares s WHERE pgwarden._active(s.valid_from, s.valid_until, s.revoked_at) ORDER BY id`,
    );
    process.stdout.write(table(rows));
  });
}
