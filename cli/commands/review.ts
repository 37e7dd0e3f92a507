/**
 * pgwarden review: an access review of the live database (who holds what, who reaches which
 * rows and columns, findings), as a terminal table, JSON, CSV or a self-contained HTML report.
 * Needs a superuser connection; changes nothing (counts run as each person, rolled back).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import { readReview, reviewCsv, reviewHtml, reviewText } from '../../src/report/review.js';
import { ExitError, findModelFile, loadValidModel, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

interface Options {
  url?: string;
  model?: string;
  json?: boolean;
  csv?: boolean;
  html?: string;
  soon?: string;
  shareAge?: string;
  person?: string[];
  exitCode?: boolean;
}

export function days(option: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new PgwardenError(
      'invalid_option',
      `${option} ${v} is not a number of days`,
      `Use e.g. ${option} ${dflt}.`,
    );
  return n;
}

export function register(program: Command): void {
  program
    .command('review')
    .description(
      'access review: per person their jobs, units, shares and grants, the rows and columns they reach per table, and findings',
    )
    .option('-m, --model <file>', 'the model file (default: pgwarden.model.* or $PGWARDEN_MODEL)')
    .option('-u, --url <url>', 'database URL of a superuser (default: $DATABASE_URL)')
    .option('--json', 'print the review as JSON')
    .option('--csv', 'print the review as CSV')
    .option('--html <file>', 'write a self-contained HTML report with the access matrix')
    .option('--soon <days>', 'grants ending within this many days are flagged', '7')
    .option('--share-age <days>', 'shares held longer than this many days are flagged', '90')
    .option('--person <name...>', 'only these people')
    .option('--exit-code', 'exit 2 when there are high or medium findings')
    .addHelpText(
      'after',
      `
Examples:
  $ pgwarden review
  $ pgwarden review --html review.html --share-age 30
  $ pgwarden review --csv > review.csv
`,
    )
    .action(async (o: Options) => {
      if (o.json && o.csv)
        throw new PgwardenError(
          'invalid_option',
          '--json and --csv exclude each other',
          'Pick one.',
        );
      const soonDays = days('--soon', o.soon, 7);
      const shareAgeDays = days('--share-age', o.shareAge, 90);
      const file = findModelFile(o.model);
      const review = await withDb(o, async (db) => {
        const { model } = await loadValidModel(file, db);
        return await readReview(db, model, {
          soonDays,
          shareAgeDays,
          ...(o.person ? { people: o.person } : {}),
        });
      });
      if (o.html) {
        writeFileSync(o.html, reviewHtml(review));
        process.stderr.write(`${c.green('ok')} wrote the HTML review to ${o.html}\n`);
      }
      if (o.json) process.stdout.write(`${JSON.stringify(review, null, 2)}\n`);
      else if (o.csv) process.stdout.write(reviewCsv(review));
      else if (!o.html) process.stdout.write(reviewText(review));
      if (
        o.exitCode &&
        review.findings.some((f) => f.severity === 'high' || f.severity === 'medium')
      )
        throw new ExitError(EXIT.changes);
    });
}
