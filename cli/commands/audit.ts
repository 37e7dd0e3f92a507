/**
 * pgwarden audit: seal, anchor, verify, log, report, archive. Reading the log needs an audit
 * reader job (or a superuser); --as runs as a person, as the application would.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import {
  type Anchor,
  anchor,
  CANONICAL_SQL,
  csvCell,
  LOG_COLUMNS,
  type LogFilter,
  parseAnchor,
  seal,
  streamLog,
  verify,
} from '../../src/report/audit.js';
import { quoteIdent } from '../../src/sql/quote.js';
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
            `${c.green('ok')} the chain verifies: ${result.checked} link(s)${result.archived ? ` (${result.archived} archived)` : ''}, head ${result.head.seq} ${result.head.hash ?? ''}${anchorValue ? `, anchor ${anchorValue.seq} matches` : ''}\n`,
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
      if (!/^\d{4}-\d{2}$/.test(o.before))
        throw new PgwardenError(
          'invalid_option',
          `--before ${o.before} is not a month`,
          'Use YYYY-MM, e.g. 2026-01.',
        );
      await withDb(o, async (db) => {
        await seal(db);
        const parts = await db<{ name: string; lo: string; hi: string }[]>`
          SELECT c.relname AS name, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1] AS lo,
                 (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1] AS hi
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'pgwarden_audit.records'::regclass AND c.relname ~ '^records_[0-9]{4}_[0-9]{2}$'
            AND c.relname < ${`records_${o.before.replace('-', '_')}`} ORDER BY c.relname`;
        const current = `records_${new Date().toISOString().slice(0, 7).replace('-', '_')}`;
        const open = parts.filter((p) => p.name >= current);
        if (open.length > 0) {
          throw new PgwardenError(
            'month_not_over',
            `${open.map((p) => p.name).join(', ')} ${open.length === 1 ? 'is' : 'are'} this month or later: only months that are over can be archived`,
            `Use --before ${new Date().toISOString().slice(0, 7)} or earlier.`,
          );
        }
        if (parts.length === 0) {
          process.stdout.write(`${c.green('ok')} nothing to archive before ${o.before}\n`);
          return;
        }
        if (!o.dryRun) mkdirSync(o.out, { recursive: true });
        for (const part of parts) {
          const [cnt] = await db.unsafe(
            `SELECT count(*)::int AS n, count(c.seq)::int AS sealed, min(c.seq) AS first_seq, max(c.seq) AS last_seq FROM pgwarden_audit.${quoteIdent(part.name)} r LEFT JOIN pgwarden_audit.chain c ON c.record_id = r.id`,
          );
          if (o.dryRun) {
            process.stdout.write(`would archive ${part.name}: ${cnt?.n} record(s)\n`);
            continue;
          }
          if (cnt?.n !== cnt?.sealed)
            throw new PgwardenError(
              'unsealed_records',
              `${part.name} has ${Number(cnt?.n) - Number(cnt?.sealed)} unsealed record(s)`,
              'Run pgwarden audit seal first (records of open transactions are sealed after they end).',
            );
          const file = join(o.out, `${part.name}.jsonl`);
          const hash = createHash('sha256');
          const stream = createWriteStream(file);
          const first = cnt?.first_seq
            ? await db`SELECT hash FROM pgwarden_audit.chain WHERE seq = ${Number(cnt.first_seq) - 1}`
            : [];
          const head = `${JSON.stringify({ partition: part.name, from: part.lo, to: part.hi, records: cnt?.n, first_seq: cnt?.first_seq, last_seq: cnt?.last_seq, prev_hash: first[0]?.hash ?? '' })}\n`;
          hash.update(head);
          stream.write(head);
          const linkRows = db.unsafe(
            `SELECT c.seq, c.hash, ${CANONICAL_SQL} AS canonical,
               CASE WHEN lag(c.seq) OVER (ORDER BY c.seq) IS DISTINCT FROM c.seq - 1
                    THEN (SELECT p.hash FROM pgwarden_audit.chain p WHERE p.seq = c.seq - 1) END AS prev
             FROM pgwarden_audit.${quoteIdent(part.name)} r JOIN pgwarden_audit.chain c ON c.record_id = r.id ORDER BY c.seq`,
          );
          // the async iterator waits for each batch to be written
          for await (const rows of linkRows.cursor(2000)) {
            for (const r of rows) {
              // a link whose predecessor is in another month carries that predecessor's hash
              const link =
                r.prev === null
                  ? { seq: Number(r.seq), hash: r.hash, record: r.canonical }
                  : { seq: Number(r.seq), prev: r.prev ?? '', hash: r.hash, record: r.canonical };
              const line = `${JSON.stringify(link)}\n`;
              hash.update(line);
              if (!stream.write(line))
                await new Promise<void>((res) => stream.once('drain', () => res()));
            }
          }
          await new Promise<void>((res) => stream.end(res));
          const digest = hash.digest('hex');
          await db.begin(async (tx) => {
            await tx`INSERT INTO pgwarden_audit.archives (partition_name, range_from, range_to, records, first_seq, last_seq, file, file_sha256)
              VALUES (${part.name}, ${part.lo}, ${part.hi}, ${cnt?.n as number}, ${cnt?.first_seq ?? null}, ${cnt?.last_seq ?? null}, ${file}, ${digest})`;
            await tx.unsafe(
              `ALTER TABLE pgwarden_audit.records DETACH PARTITION pgwarden_audit.${quoteIdent(part.name)}`,
            );
            // a detached partition loses the parent's triggers: it stays append-only
            await tx`SELECT pgwarden_audit.protect(${part.name})`;
          });
          process.stdout.write(
            `${c.green('ok')} archived ${part.name}: ${cnt?.n} record(s) to ${file} (sha256 ${digest}); the partition is detached and kept as table pgwarden_audit.${part.name}\n`,
          );
        }
      });
    });
}
