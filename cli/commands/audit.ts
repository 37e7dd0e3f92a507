/**
 * pgwarden audit: seal, anchor, verify, log, report, archive. Reading the log needs an audit
 * reader job (or a superuser); --as runs as a person, as the application would.
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import {
  type Anchor,
  anchor,
  archive,
  csvCell,
  LOG_COLUMNS,
  type LogFilter,
  parseAnchor,
  seal,
  streamLog,
  verify,
} from '../../src/report/audit.js';
import { asPerson, ExitError, type PersonOptions, personOptions, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

type Common = PersonOptions;

function progress(label: string): { tick(n: number): void; done(n: number): void } {
  const tty = process.stderr.isTTY === true;
  return {
    tick: (n) => {
      if (tty) process.stderr.write(`\r${label}: ${n.toLocaleString('en')} records`);
    },
    done: (n) => {
      if (tty) process.stderr.write(`\r${label}: ${n.toLocaleString('en')} records\n`);
    },
  };
}

function readAnchor(v: string): Anchor {
  const text = v.startsWith('@')
    ? readFileSync(v.slice(1), 'utf8')
    : existsSync(v)
      ? readFileSync(v, 'utf8')
      : v;
  try {
    return parseAnchor(text);
  } catch (e) {
    throw new PgwardenError(
      'invalid_anchor',
      `--anchor is not an anchor: ${(e as Error).message}`,
      'Pass the JSON printed by pgwarden audit anchor, or a file holding it.',
    );
  }
}

/** Administration of the log: a superuser's connection. */
function dba(cmd: Command): Command {
  return cmd.option('-u, --url <url>', 'database URL of a superuser (default: $DATABASE_URL)');
}

const common = personOptions;

function filterFrom(o: LogFilter & Record<string, unknown>): LogFilter {
  const f: LogFilter = {};
  for (const k of ['person', 'table', 'row', 'operation', 'kind', 'from', 'to'] as const) {
    const v = o[k];
    if (typeof v === 'string') f[k] = v;
  }
  return f;
}

export function register(program: Command): void {
  const audit = program
    .command('audit')
    .description('the audit log: seal, anchor, verify, log, report, archive');

  dba(
    audit
      .command('seal')
      .description('seal committed records into the hash chain (run it often, e.g. every minute)'),
  )
    .addHelpText('after', '\nExample:\n  $ pgwarden audit seal\n')
    .action(async (o: Common) => {
      const n = await withDb(o, async (db) => {
        await db`SELECT pgwarden_audit.ensure_partitions()`;
        return await seal(db);
      });
      process.stdout.write(`${c.green('ok')} sealed ${n} record(s)\n`);
    });

  dba(
    audit
      .command('anchor')
      .description('seal, then print the head of the chain; keep it outside the database'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden audit anchor > anchor-2026-11-29.json\n  $ pgwarden audit verify --anchor @anchor-2026-11-29.json\n',
    )
    .action(async (o: Common) => {
      const a = await withDb(o, async (db) => {
        await seal(db);
        return await anchor(db);
      });
      process.stdout.write(`${JSON.stringify(a)}\n`);
    });

  dba(
    audit
      .command('verify')
      .description(
        'recompute the hash chain outside the database and report every broken link; exit 2 when something is wrong',
      )
      .option(
        '--anchor <json|@file>',
        'an anchor printed earlier by pgwarden audit anchor: detects a cut-off tail',
      )
      .option('--json', 'print the result as JSON'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden audit verify --anchor @anchor-2026-11-29.json\n',
    )
    .action(async (o: Common & { anchor?: string; json?: boolean }) => {
      const anchorValue = o.anchor ? readAnchor(o.anchor) : undefined;
      const p = progress('verifying');
      const result = await withDb(o, (db) =>
        verify(db, { ...(anchorValue ? { anchor: anchorValue } : {}), onProgress: p.tick }),
      );
      p.done(result.checked);
      if (o.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else {
        if (result.ok) {
          process.stdout.write(
            `${c.green('ok')} the chain verifies: ${result.checked} link(s)${result.archived ? ` (${result.archived} archived)` : ''}, head ${result.head.seq}${result.head.hash ? ` ${result.head.hash}` : ''}${anchorValue ? (anchorValue.seq === 0 ? ', anchor 0 (taken before the first seal) matches' : `, anchor ${anchorValue.seq} matches`) : ''}\n`,
          );
        } else {
          process.stdout.write(
            `${c.red('TAMPERED')} ${result.problems.length} problem(s); the first broken link:\n`,
          );
          for (const pr of result.problems) process.stdout.write(`  ${c.red('!')} ${pr.message}\n`);
        }
        if (result.unsealed > 0)
          process.stdout.write(
            c.dim(`${result.unsealed} record(s) not sealed yet (pgwarden audit seal)\n`),
          );
      }
      if (!result.ok) throw new ExitError(EXIT.changes);
    });

  const filters = (cmd: Command) =>
    cmd
      .option('--person <name>', 'only this person')
      .option('--table <name>', 'only this table (crm.customers, or customers)')
      .option('--row <key>', 'only this row key')
      .option('--operation <op>', 'INSERT, UPDATE, DELETE, ...')
      .option('--kind <kind>', 'data, permission, apply, reveal, export, denied')
      .option('--from <time>', 'from this time (inclusive)')
      .option('--to <time>', 'to this time (exclusive)');

  common(
    filters(audit.command('log').description('show audit records (readers only), oldest first')),
  )
    .option('--format <format>', 'table | json | csv', 'table')
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden audit log --table customers --row 42 --as audrey\n',
    )
    .action(async (o: Common & LogFilter & { format: string }) => {
      await withDb(o, (db) =>
        asPerson(db, o.as, async (tx) => {
          let first = true;
          if (o.format === 'csv') process.stdout.write(`${LOG_COLUMNS.join(',')}\n`);
          if (o.format === 'json') process.stdout.write('[');
          const n = await streamLog(
            tx,
            filterFrom(o as unknown as LogFilter & Record<string, unknown>),
            (rows) => {
              for (const r of rows) {
                if (o.format === 'json') {
                  process.stdout.write(`${first ? '\n' : ',\n'}${JSON.stringify(r)}`);
                  first = false;
                } else if (o.format === 'csv')
                  process.stdout.write(`${LOG_COLUMNS.map((k) => csvCell(r[k])).join(',')}\n`);
                else {
                  const who = r.person ?? r.actor;
                  process.stdout.write(
                    `${String(r.id).padStart(6)}  ${r.recorded_at}  ${String(r.kind).padEnd(10)} ${String(r.operation).padEnd(6)} ${String(r.table_name ?? '')}${r.row_key ? ` ${r.row_key}` : ''}  by ${String(who)}${r.authenticator !== r.actor ? ` via ${String(r.authenticator)}` : ''}  ${JSON.stringify(r.changes ?? {})}\n`,
                  );
                }
              }
            },
          );
          if (o.format === 'json') process.stdout.write(`${first ? '' : '\n'}]\n`);
          if (o.format === 'table') process.stdout.write(c.dim(`${n} record(s)\n`));
        }),
      );
    });

  common(
    audit
      .command('report')
      .description(
        'an audit report for a period (readers only), streamed: constant memory for millions of records',
      )
      .requiredOption('--from <time>', 'start (inclusive), e.g. 2026-11-01')
      .requiredOption('--to <time>', 'end (exclusive), e.g. 2026-12-01')
      .option('--format <format>', 'csv | json', 'csv')
      .option('-o, --out <file>', 'write to this file (default: standard output)'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden audit report --from 2026-11-01 --to 2026-12-01 --format csv --out audit-2026-11.csv --as audrey\n',
    )
    .action(async (o: Common & { from: string; to: string; format: string; out?: string }) => {
      if (o.format !== 'csv' && o.format !== 'json')
        throw new PgwardenError(
          'invalid_option',
          `--format ${o.format} is not csv or json`,
          'Use --format csv or --format json.',
        );
      const out = o.out ? createWriteStream(o.out) : process.stdout;
      const write = (s: string) =>
        new Promise<void>((resolve) => {
          if (out.write(s)) resolve();
          else out.once('drain', () => resolve());
        });
      const p = progress('report');
      let n = 0;
      await withDb(o, (db) =>
        asPerson(db, o.as, async (tx) => {
          if (o.format === 'csv') await write(`${LOG_COLUMNS.join(',')}\n`);
          else
            await write(
              `{"from": ${JSON.stringify(o.from)}, "to": ${JSON.stringify(o.to)}, "records": [`,
            );
          n = await streamLog(tx, { from: o.from, to: o.to }, async (rows) => {
            for (const r of rows) {
              if (o.format === 'csv')
                await write(`${LOG_COLUMNS.map((k) => csvCell(r[k])).join(',')}\n`);
              else await write(`${n === 0 && r === rows[0] ? '\n' : ',\n'}${JSON.stringify(r)}`);
            }
            p.tick(n + rows.length);
          });
          if (o.format === 'json') await write(`\n], "count": ${n}}\n`);
        }),
      );
      p.done(n);
      if (o.out) {
        await new Promise<void>((resolve) =>
          (out as ReturnType<typeof createWriteStream>).end(resolve),
        );
        process.stderr.write(`${c.green('ok')} wrote ${n} record(s) to ${o.out}\n`);
      }
    });

  dba(
    audit
      .command('archive')
      .description(
        'export whole monthly partitions before a month to verifiable files, then detach them (never dropped)',
      )
      .requiredOption('--before <YYYY-MM>', 'archive partitions that end on or before this month')
      .requiredOption('-o, --out <dir>', 'folder for the files')
      .option('--dry-run', 'only list what would be archived'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden audit archive --before 2026-01 --out /backups/audit\n',
    )
    .action(async (o: Common & { before: string; out: string; dryRun?: boolean }) => {
      const results = await withDb(o, (db) =>
        archive(db, { before: o.before, out: o.out, dryRun: o.dryRun === true }),
      );
      if (results.length === 0)
        process.stdout.write(`${c.green('ok')} nothing to archive before ${o.before}\n`);
      for (const r of results) {
        if (o.dryRun)
          process.stdout.write(`would archive ${r.partition}: ${r.records} record(s)\n`);
        else {
          process.stdout.write(
            `${c.green('ok')} archived ${r.partition}: ${r.records} record(s) to ${r.file} (sha256 ${r.sha256}); detached and kept: ${r.detached.join(', ')}\n`,
          );
        }
      }
    });
}
