/**
 * Reveal, export, export requests and alerts from the command line. --as acts as a person, as
 * the application would; the database decides and records everything.
 */
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import { csvCell } from '../../src/report/audit.js';
import {
  exportBatches,
  parseWhere,
  revealCell,
  startExport,
} from '../../src/runtime/reveal-export.js';
import {
  asPerson,
  connect,
  databaseUrl,
  type PersonOptions,
  personOptions,
  printKeyNotice,
  relativeTime,
  withDb,
} from '../context.js';
import { c } from '../output.js';

type Common = PersonOptions;
const common = personOptions;

function needAs(o: Common): string {
  if (!o.as)
    throw new PgwardenError(
      'no_person',
      'this command acts as a person',
      'Pass --as <person role>.',
    );
  return o.as;
}

function list(v: string | undefined): string[] | undefined {
  return v === undefined
    ? undefined
    : v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
}

function since(v: string): string {
  return relativeTime('--since', v, -1);
}

export function register(program: Command): void {
  common(
    program
      .command('reveal <table> <key> <column>')
      .description('unmask one cell on purpose: recorded, under a daily quota'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden reveal customers 42 id_number --as alice\n')
    .action(async (table: string, key: string, column: string, o: Common) => {
      const who = needAs(o);
      // without the key of an encrypted column: the mask on stdout, the reason on stderr, exit 0
      const r = await withDb(o, (db) => revealCell(db, who, table, key, column));
      if (r.masked && r.notice) printKeyNotice(r.notice);
      process.stdout.write(`${r.value ?? ''}\n`);
    });

  common(
    program
      .command('export')
      .description(
        'export rows as the person may: exportable columns only, counted against the daily quota, recorded first, streamed',
      )
      .requiredOption('--table <table>', 'the table (model name)')
      .option('--columns <list>', 'comma-separated columns (default: all the person may export)')
      .option('--where <filter>', "column = 'value' and column IN ('a', 'b'), joined by AND")
      .option('--request <id>', 'an approved export request (for columns that need one)')
      .option('--format <format>', 'csv | json', 'csv')
      .option('-o, --out <file>', 'write to this file (default: standard output)'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden export --table customers --where "region = \'east\'" --format csv --out east.csv --as carol\n',
    )
    .action(
      async (
        o: Common & {
          table: string;
          columns?: string;
          where?: string;
          request?: string;
          format: string;
          out?: string;
        },
      ) => {
        const who = needAs(o);
        if (o.format !== 'csv' && o.format !== 'json')
          throw new PgwardenError(
            'invalid_option',
            `--format ${o.format} is not csv or json`,
            'Use csv or json.',
          );
        const filter = o.where ? await parseWhere(o.where) : {};
        const cols = list(o.columns);
        await withDb(o, async (db) => {
          const started = await startExport(db, who, {
            table: o.table,
            ...(cols ? { columns: cols } : {}),
            filter,
            ...(o.request ? { request: Number(o.request) } : {}),
          });
          const out = o.out ? createWriteStream(o.out) : process.stdout;
          const write = (s: string) =>
            new Promise<void>((resolve) => {
              if (out.write(s)) resolve();
              else out.once('drain', () => resolve());
            });
          const tty = process.stderr.isTTY === true;
          let n = 0;
          if (o.format === 'csv') await write(`${started.columns.join(',')}\n`);
          else await write('[');
          for await (const rows of exportBatches(db, who, started.export)) {
            for (const r of rows) {
              if (o.format === 'csv')
                await write(`${started.columns.map((k) => csvCell(r[k])).join(',')}\n`);
              else await write(`${n === 0 ? '\n' : ',\n'}${JSON.stringify(r)}`);
              n += 1;
            }
            if (tty)
              process.stderr.write(`\rexport ${started.export}: ${n} of ${started.rows} rows`);
          }
          if (o.format === 'json') await write(`${n === 0 ? '' : '\n'}]\n`);
          if (tty) process.stderr.write('\n');
          if (o.out)
            await new Promise<void>((resolve) =>
              (out as ReturnType<typeof createWriteStream>).end(resolve),
            );
          process.stderr.write(
            `${c.green('ok')} export ${started.export}: ${n} row(s), columns ${started.columns.join(', ')}${o.out ? ` to ${o.out}` : ''}\n`,
          );
        });
      },
    );

  const request = program
    .command('request')
    .description("requests that need another person's approval");
  common(
    request
      .command('export')
      .description('ask to export columns that need approval')
      .requiredOption('--table <table>', 'the table (model name)')
      .requiredOption('--columns <list>', 'comma-separated columns')
      .option('--where <filter>', "column = 'value' and column IN ('a', 'b'), joined by AND")
      .requiredOption('--reason <text>', 'why')
      .option('--rows <n>', 'how many rows you expect'),
  )
    .addHelpText(
      'after',
      "\nExample:\n  $ pgwarden request export --table customers --columns id,name,phone --reason 'renewal calls' --as vera\n",
    )
    .action(
      async (
        o: Common & {
          table: string;
          columns: string;
          where?: string;
          reason: string;
          rows?: string;
        },
      ) => {
        const who = needAs(o);
        const filter = o.where ? await parseWhere(o.where) : {};
        const [r] = await withDb(o, (db) =>
          asPerson(
            db,
            who,
            (tx) =>
              tx`SELECT pgwarden.request_export(${o.table}, ${list(o.columns) ?? []}::text[], ${tx.json(filter as never)}, ${o.reason}, ${o.rows ? Number(o.rows) : null}::integer, interval '1 day') AS id`,
          ),
        );
        process.stdout.write(
          `${c.green('ok')} export request ${String(r?.id)} waits for approval (pgwarden approve ${String(r?.id)})\n`,
        );
      },
    );

  common(
    program
      .command('requests')
      .description('export requests: pending ones for approvers, your own otherwise'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden requests --as olga\n')
    .action(async (o: Common) => {
      const rows = await withDb(o, (db) =>
        asPerson(db, o.as, (tx) => tx`SELECT * FROM pgwarden.export_requests()`),
      );
      if (rows.length === 0) process.stdout.write(c.dim('(none)\n'));
      for (const r of rows) {
        const by = (r.approvals as { by: string }[]).map((a) => a.by).join(', ');
        process.stdout.write(
          `${String(r.id).padStart(4)}  ${String(r.status).padEnd(8)} ${r.person} exports ${(r.columns as string[]).join(',')} of ${r.table_name}${Object.keys(r.filter as object).length ? ` where ${JSON.stringify(r.filter)}` : ''} (${r.row_estimate ?? '?'} rows) until ${(r.valid_until as Date).toISOString()}: ${r.reason}${by ? `; approved by ${by}` : ''}\n`,
        );
      }
    });

  common(program.command('approve <id>').description('approve an export request (never your own)'))
    .addHelpText('after', '\nExample:\n  $ pgwarden approve 7 --as olga\n')
    .action(async (id: string, o: Common) => {
      const [r] = await withDb(o, (db) =>
        asPerson(db, needAs(o), (tx) => tx`SELECT pgwarden.approve_export(${id}::bigint) AS s`),
      );
      process.stdout.write(`${c.green('ok')} export request ${id}: ${String(r?.s)}\n`);
    });

  common(
    program
      .command('reject <id>')
      .description('reject an export request')
      .requiredOption('--reason <text>', 'why'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden reject 7 --reason "not needed" --as olga\n')
    .action(async (id: string, o: Common & { reason: string }) => {
      await withDb(o, (db) =>
        asPerson(
          db,
          needAs(o),
          (tx) => tx`SELECT pgwarden.reject_export(${id}::bigint, ${o.reason})`,
        ),
      );
      process.stdout.write(`${c.green('ok')} export request ${id} rejected\n`);
    });

  common(
    program
      .command('alerts')
      .description('refused reveals and exports, quota breaches, large exports')
      .option('--since <time>', 'list alerts since (1d, 12h, or an ISO time)', '1d')
      .option('--follow', 'print alerts live as they happen (LISTEN pgwarden_alerts)'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  $ pgwarden alerts --since 1d --as audrey\n  $ pgwarden alerts --follow\n',
    )
    .action(async (o: Common & { since: string; follow?: boolean }) => {
      const print = (a: Record<string, unknown>) =>
        process.stdout.write(
          `${a.at instanceof Date ? a.at.toISOString() : String(a.at)}  ${c.red(String(a.kind).padEnd(15))} ${String(a.person ?? '-')}  ${String(a.table_name ?? a.table ?? '-')}  ${JSON.stringify(a.detail ?? {})}\n`,
        );
      if (!o.follow) {
        const rows = await withDb(o, (db) =>
          asPerson(
            db,
            o.as,
            (tx) => tx`SELECT * FROM pgwarden.alerts_since(${since(o.since)}::timestamptz)`,
          ),
        );
        if (rows.length === 0) process.stdout.write(c.dim('(no alerts)\n'));
        for (const r of rows) print(r);
        return;
      }
      const db = connect(databaseUrl(o.url));
      process.stderr.write(c.dim('listening on pgwarden_alerts; Ctrl-C to stop\n'));
      await db.listen('pgwarden_alerts', (payload) =>
        print(JSON.parse(payload) as Record<string, unknown>),
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
      await db.end();
    });
}
