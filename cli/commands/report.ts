/**
 * pgwarden report: a compliance evidence pack for a period — permission changes, applies,
 * exports, reveals, refused attempts and alerts, the access review findings, and the audit
 * chain verification — as HTML, JSON or CSV. Needs a superuser connection; changes nothing.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PgwardenError } from '../../src/errors.js';
import {
  complianceCsv,
  complianceHtml,
  complianceJson,
  readCompliance,
} from '../../src/report/compliance.js';
import { ExitError, findModelFile, loadValidModel, withDb } from '../context.js';
import { c, EXIT } from '../output.js';
import { days } from './review.js';

interface Options {
  url?: string;
  model?: string;
  from: string;
  to: string;
  format: string;
  out?: string;
  soon?: string;
  shareAge?: string;
}

export function register(program: Command): void {
  program
    .command('report')
    .description(
      'a compliance evidence pack for a period: permission changes, applies, exports, reveals, refused attempts, alerts, review findings and the audit chain verification; exit 2 when the chain does not verify',
    )
    .requiredOption('--from <time>', 'start of the period (inclusive), e.g. 2026-11-01')
    .requiredOption('--to <time>', 'end of the period (exclusive), e.g. 2026-12-01')
    .option('--format <format>', 'html | json | csv', 'html')
    .option('-o, --out <file>', 'write to this file (default: standard output)')
    .option('-m, --model <file>', 'the model file (default: pgwarden.model.* or $PGWARDEN_MODEL)')
    .option('-u, --url <url>', 'database URL of a superuser (default: $DATABASE_URL)')
    .option('--soon <days>', 'review: grants ending within this many days are flagged', '7')
    .option(
      '--share-age <days>',
      'review: shares held longer than this many days are flagged',
      '90',
    )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden report --from 2026-11-01 --to 2026-12-01 --format html --out evidence-2026-11.html\n',
    )
    .action(async (o: Options) => {
      if (!['html', 'json', 'csv'].includes(o.format))
        throw new PgwardenError(
          'invalid_option',
          `--format ${o.format} is not html, json or csv`,
          'Use --format html, json or csv.',
        );
      const file = findModelFile(o.model);
      const pack = await withDb(o, async (db) => {
        const { model } = await loadValidModel(file, db);
        return await readCompliance(db, model, {
          from: o.from,
          to: o.to,
          soonDays: days('--soon', o.soon, 7),
          shareAgeDays: days('--share-age', o.shareAge, 90),
        });
      });
      const text =
        o.format === 'html'
          ? complianceHtml(pack)
          : o.format === 'json'
            ? complianceJson(pack)
            : complianceCsv(pack);
      if (o.out) {
        writeFileSync(o.out, text);
        process.stderr.write(
          `${c.green('ok')} wrote the evidence pack to ${o.out}${pack.chain.ok ? '' : ' (the audit chain does NOT verify)'}\n`,
        );
      } else process.stdout.write(text);
      if (!pack.chain.ok) throw new ExitError(EXIT.changes);
    });
}
