/**
 * pgwarden explain: why a person can (or cannot) see, change, reveal and export a row or a cell,
 * rule by rule, evaluated in the live database as that person, and checked against what the
 * view returns to them. Needs a superuser connection (it reads the base table and the catalog);
 * it changes nothing.
 */
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import {
  evaluateExplain,
  explainRow,
  explainSet,
  formatRowExplanation,
  formatSetExplanation,
} from '../../src/report/explain.js';
import { parseWhere } from '../../src/runtime/reveal-export.js';
import { ExitError, findModelFile, loadValidModel, withDb } from '../context.js';
import { EXIT } from '../output.js';

interface Options {
  url?: string;
  as?: string;
  model?: string;
  column?: string;
  where?: string;
  json?: boolean;
  verbose?: boolean;
  limit?: string;
  exitCode?: boolean;
}

export function register(program: Command): void {
  program
    .command('explain <table> [key]')
    .description(
      'why a person can or cannot see, change, reveal and export a row (or cell): each rule, evaluated in the database as that person, checked against the view',
    )
    .requiredOption('--as <person>', 'the person (name or role)')
    .option('--column <name>', 'explain one cell of the row')
    .option(
      '--where <filter>',
      "a set of rows instead of one key: column = 'v' AND column IN ('a', 'b')",
    )
    .option('--limit <n>', 'at most this many rows for --where', '1000')
    .option('-m, --model <file>', 'the model file (default: pgwarden.model.* or $PGWARDEN_MODEL)')
    .option('-u, --url <url>', 'database URL of a superuser (default: $DATABASE_URL)')
    .option('--json', 'print the explanation as JSON')
    .option('-v, --verbose', 'show every rule and scope, also those that do not apply')
    .option('--exit-code', 'exit 2 when the explanation disagrees with what the view returns')
    .addHelpText(
      'after',
      `
Examples:
  $ pgwarden explain customers 42 --as alice
  $ pgwarden explain customers 19 --as alice --column phone
  $ pgwarden explain customers --as carol --where "region = 'east'"
`,
    )
    .action(async (table: string, key: string | undefined, o: Options) => {
      if ((key === undefined) === (o.where === undefined)) {
        throw new PgwardenError(
          'invalid_option',
          key === undefined
            ? 'explain needs a row key or --where'
            : 'give either a row key or --where, not both',
          'Examples: pgwarden explain customers 42 --as alice; pgwarden explain customers --as alice --where "status = \'active\'"',
        );
      }
      const limit = Number(o.limit ?? '1000');
      if (!Number.isSafeInteger(limit) || limit < 1)
        throw new PgwardenError(
          'invalid_option',
          `--limit ${o.limit} is not a positive number`,
          'Use e.g. --limit 500.',
        );
      const where = o.where !== undefined ? await parseWhere(o.where) : undefined;
      const file = findModelFile(o.model);
      const disagrees = await withDb(o, async (db) => {
        const { model } = await loadValidModel(file, db);
        const ev = await evaluateExplain(db, model, {
          person: o.as as string,
          table,
          ...(key !== undefined ? { key } : {}),
          ...(where ? { where } : {}),
          ...(o.column ? { column: o.column } : {}),
          limit,
        });
        if (key !== undefined) {
          const e = explainRow(ev, ev.rows[0] as (typeof ev.rows)[number]);
          process.stdout.write(
            o.json
              ? `${JSON.stringify(e, null, 2)}\n`
              : formatRowExplanation(e, o.verbose === true),
          );
          return !e.agrees;
        }
        const s = explainSet(ev);
        if (o.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        else {
          process.stdout.write(formatSetExplanation(s));
          if (o.verbose)
            for (const e of s.explanations) process.stdout.write(formatRowExplanation(e));
        }
        return s.disagreements.length > 0;
      });
      if (disagrees && o.exitCode) throw new ExitError(EXIT.changes);
    });
}
