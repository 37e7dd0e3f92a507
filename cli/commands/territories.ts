/**
 * Attribute assignments, project teams and approval-gated changes (issue #10): runtime data
 * managed through pgwarden's functions. Each command may run as a person with --as; the
 * database decides whether they may.
 *
 *   pgwarden assign dave region north [--until 7d]      pgwarden unassign dave region [north]
 *   pgwarden team create|add|remove|grant|assign|list|end
 *   pgwarden changes                                    pgwarden approve-change ID / reject-change ID
 */
import type { Command } from 'commander';
import type postgres from 'postgres';
import { asPerson, type PersonOptions, personOptions, relativeTime, withDb } from '../context.js';
import { ok, table } from '../output.js';

type Common = PersonOptions;
const common = personOptions;

function run<T>(o: Common, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return withDb(o, (db) => asPerson(db, o.as, fn));
}

const time = (flag: string, v: string | undefined): string | null =>
  v === undefined ? null : relativeTime(flag, v);

export function register(program: Command): void {
  common(
    program
      .command('assign [person] [attribute] [values...]')
      .description(
        'assign attribute values (e.g. region north) to a person or a team; takes effect on the next statement',
      )
      .option(
        '--team <team>',
        'assign to this team instead of a person (then: assign --team T attribute values...)',
      )
      .option('--from <time>', 'start time (ISO, or 12h / 7d from now; default now)')
      .option('--until <time>', 'end time (ISO, or 12h / 7d from now; default open)')
      .option('--list', 'list the assignments in force'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  $ pgwarden assign dave region north --until 30d --as adam\n  $ pgwarden assign --team double11 customer_type retail vip --as adam\n  $ pgwarden assign --list\n',
    )
    .action(
      async (
        a: string | undefined,
        b: string | undefined,
        rest: string[],
        o: Common & { team?: string; from?: string; until?: string; list?: boolean },
      ) => {
        if (o.list || a === undefined) {
          const rows = await run(o, (tx) => tx`SELECT * FROM pgwarden.assignment_list()`);
          process.stdout.write(table(rows));
          return;
        }
        // with --team, the positional arguments shift: attribute values...
        const [attribute, values] = o.team ? [a, [b, ...rest]] : [b, rest];
        const vals: string[] = values.flatMap((v) =>
          typeof v === 'string' && v !== '' ? [v] : [],
        );
        if (attribute === undefined || vals.length === 0)
          throw new Error(
            'give an attribute and at least one value, e.g. assign dave region north',
          );
        const until = time('--until', o.until);
        const from = time('--from', o.from);
        const attr: string = attribute;
        const t: string | undefined = o.team;
        await run(o, async (tx) => {
          if (t !== undefined)
            await tx`SELECT pgwarden.assign_team(${t}, ${attr}, ${vals}::text[], ${until}::timestamptz, ${from}::timestamptz)`;
          else
            await tx`SELECT pgwarden.assign(${a}, ${attr}, ${vals}::text[], ${until}::timestamptz, ${from}::timestamptz)`;
        });
        ok(
          `${o.team ? `team ${o.team}` : a} assigned ${attribute} ${vals.join(', ')}${until ? ` until ${until}` : ''}`,
        );
      },
    );
  common(
    program
      .command('unassign <target> <attribute> [values...]')
      .description('end assignments now: the given values, or all values of the attribute')
      .option('--team', 'the target is a team'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden unassign dave region north --as adam\n')
    .action(
      async (
        target: string,
        attribute: string,
        values: string[],
        o: Common & { team?: boolean },
      ) => {
        const vals = values.length > 0 ? values : null;
        const [r] = await run(
          o,
          (tx) =>
            tx`SELECT pgwarden.unassign(${o.team ? null : target}, ${attribute}, ${vals}::text[], ${o.team ? target : null}) AS n`,
        );
        ok(`${String(r?.n)} assignment(s) of ${target} ended`);
      },
    );

  const team = program.command('team').description('project teams: members, grants, end date');
  common(
    team
      .command('create <name>')
      .description('create a team that ends at --until')
      .requiredOption('--until <time>', 'end time (ISO, or 12h / 7d from now)')
      .option('--description <text>', 'what the team is for'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden team create double11 --until 30d --as adam\n')
    .action(async (name: string, o: Common & { until: string; description?: string }) => {
      const until = time('--until', o.until);
      await run(
        o,
        (tx) =>
          tx`SELECT pgwarden.create_team(${name}, ${until}::timestamptz, ${o.description ?? null})`,
      );
      ok(`team ${name} created, ends ${until}`);
    });
  common(
    team
      .command('add <team> <person>')
      .description('add a member (until the team ends, or --until)')
      .option('--until <time>', 'end of this membership'),
  ).action(async (name: string, person: string, o: Common & { until?: string }) => {
    await run(
      o,
      (tx) =>
        tx`SELECT pgwarden.add_team_member(${name}, ${person}, ${time('--until', o.until)}::timestamptz)`,
    );
    ok(`${person} joined team ${name}`);
  });
  common(team.command('remove <team> <person>').description('remove a member now')).action(
    async (name: string, person: string, o: Common) => {
      const [r] = await run(
        o,
        (tx) => tx`SELECT pgwarden.remove_team_member(${name}, ${person}) AS n`,
      );
      ok(`${person} left team ${name} (${String(r?.n)} membership(s) ended)`);
    },
  );
  common(
    team
      .command('grant <team> <table>')
      .description(
        "grant the team a scope: rows of the table matching --filter, for --access; column levels are the model's `granted` cells",
      )
      .requiredOption('--filter <json>', 'e.g. \'{"region": ["east"], "customer_type": "retail"}\'')
      .option('--access <command>', 'select | insert | update | delete', 'select'),
  ).action(async (name: string, tbl: string, o: Common & { filter: string; access: string }) => {
    let filter: unknown;
    try {
      filter = JSON.parse(o.filter);
    } catch {
      throw new Error(`--filter is not JSON: ${o.filter}`);
    }
    const [r] = await run(
      o,
      (tx) =>
        tx`SELECT pgwarden.grant_team(${name}, ${tbl}, ${tx.json(filter as postgres.JSONValue)}, ${o.access}) AS id`,
    );
    ok(`team ${name} granted ${o.access} on ${tbl} (team grant ${String(r?.id)})`);
  });
  common(
    team.command('list').description('teams with their end, members, grants and assignments'),
  ).action(async (o: Common) => {
    const rows = await run(o, (tx) => tx`SELECT * FROM pgwarden.team_list()`);
    process.stdout.write(table(rows));
  });
  common(
    team
      .command('end <team>')
      .description(
        'end a team now: its members lose its grants and assignments on the next statement',
      ),
  ).action(async (name: string, o: Common) => {
    await run(o, (tx) => tx`SELECT pgwarden.end_team(${name}, NULL)`);
    ok(`team ${name} ended`);
  });

  common(
    program
      .command('changes')
      .description('changes waiting for approval: those you asked for and those you may approve')
      .option('--all', 'also decided and expired changes you asked for or decided'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden changes --as walt\n')
    .action(async (o: Common & { all?: boolean }) => {
      const rows = await run(
        o,
        (tx) => tx`SELECT * FROM pgwarden.pending_changes(${o.all === true})`,
      );
      process.stdout.write(table(rows));
    });
  common(
    program
      .command('approve-change <id>')
      .description('apply a pending change (as one of its approvers; never your own)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden approve-change 3 --as walt\n')
    .action(async (id: string, o: Common) => {
      const [r] = await run(o, (tx) => tx`SELECT pgwarden.approve_change(${id}::bigint) AS r`);
      const res = r?.r as {
        table: string;
        row_key: string;
        requested_by: string;
        approved_by: string;
      };
      ok(
        `change ${id} applied to ${res.table} ${res.row_key}: ${res.requested_by}'s change, approved by ${res.approved_by}`,
      );
    });
  common(
    program
      .command('reject-change <id>')
      .description('reject a pending change (an approver), or withdraw your own')
      .option('--reason <text>', 'why'),
  ).action(async (id: string, o: Common & { reason?: string }) => {
    await run(o, (tx) => tx`SELECT pgwarden.reject_change(${id}::bigint, ${o.reason ?? null})`);
    ok(`change ${id} rejected`);
  });
}
