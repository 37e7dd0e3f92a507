import type { Command } from 'commander';
import { driftAgainst } from '../../src/apply/index.js';
import { PgwardenError } from '../../src/errors.js';
import { DRIFT_KINDS, type DriftFinding } from '../../src/plan/drift.js';
import { ExitError, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

export function register(program: Command): void {
  program
    .command('diff')
    .description(
      'report drift: what changed in the database since pgwarden last applied (read-only; no model needed)',
    )
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL)')
    .option('--json', 'print the findings as JSON')
    .option('--exit-code', 'exit 2 when there is anything to report, 0 when clean')
    .option(
      '--ignore <kinds>',
      `finding kinds to leave out, comma-separated (${DRIFT_KINDS.join(', ')})`,
    )
    .addHelpText(
      'after',
      `
Reports, against the objects pgwarden last applied (its registry in the database):
  - managed policies, views, functions, triggers, grants and roles edited or dropped by hand
  - protected tables with row level security disabled or not forced
  - policies, grants and triggers on protected tables and views that pgwarden did not create
  - privileges held by PUBLIC, and tables in a protected schema that the model does not cover
"pgwarden apply" repairs every finding except unknown triggers and uncovered tables.

Exit codes: 0 clean (or findings without --exit-code), 2 findings with --exit-code, 1 error.

Example:
  $ pgwarden diff --url postgres://postgres@localhost/crm --exit-code
  $ pgwarden diff --exit-code --ignore unknown_trigger   # your own triggers (e.g. updated_at) are fine
`,
    )
    .action(async (opts: { url?: string; json?: boolean; exitCode?: boolean; ignore?: string }) => {
      const ignore = new Set(
        (opts.ignore ?? '')
          .split(',')
          .map((k) => k.trim())
          .filter(Boolean),
      );
      for (const k of ignore) {
        if (!(DRIFT_KINDS as readonly string[]).includes(k)) {
          throw new PgwardenError(
            'invalid_option',
            `--ignore ${JSON.stringify(k)} is not a kind of finding`,
            `Use some of: ${DRIFT_KINDS.join(', ')}.`,
          );
        }
      }
      await withDb(opts, async (db) => {
        const all = await driftAgainst(db);
        const result = { ...all, findings: all.findings.filter((f) => !ignore.has(f.kind)) };
        if (!result.installed) {
          throw new PgwardenError(
            'not_applied',
            'pgwarden has never been applied to this database, so there is nothing to compare with',
            'Run `pgwarden plan` to see what a first apply would create.',
          );
        }
        if (opts.json) {
          process.stdout.write(
            `${JSON.stringify(
              {
                clean: result.findings.length === 0,
                objects: result.objects,
                lastApply: result.lastApply,
                findings: result.findings,
              },
              null,
              2,
            )}\n`,
          );
        } else {
          process.stdout.write(formatDrift(result.findings, result.objects, result.lastApply));
        }
        if (opts.exitCode && result.findings.length > 0) throw new ExitError(EXIT.changes);
      });
    });
}

export function formatDrift(
  findings: readonly DriftFinding[],
  objects: number,
  lastApply: { at: string; by: string; modelName: string; modelHash: string } | null,
): string {
  const lines: string[] = [];
  const since = lastApply
    ? ` (last apply ${lastApply.at} by ${lastApply.by}, model "${lastApply.modelName}" ${lastApply.modelHash.slice(0, 12)})`
    : '';
  if (findings.length === 0) {
    lines.push(
      `${c.green('No drift.')} All ${objects} objects are as pgwarden applied them${since}.`,
    );
    return `${lines.join('\n')}\n`;
  }
  const danger = findings.filter((f) => f.severity === 'danger').length;
  lines.push(
    c.bold(
      `Drift: ${findings.length} finding${findings.length === 1 ? '' : 's'}, ${danger} dangerous${since}`,
    ),
  );
  const sorted = [...findings].sort((a, b) =>
    a.severity === b.severity ? 0 : a.severity === 'danger' ? -1 : 1,
  );
  for (const f of sorted) {
    const tag = f.severity === 'danger' ? c.red.bold('DANGER ') : c.yellow('warning');
    lines.push(`  ${tag} ${c.bold(f.object)} ${c.dim(`[${f.kind}]`)}`);
    lines.push(`          ${f.message}`);
    lines.push(`          ${c.dim('fix:')} ${f.fix}`);
  }
  return `${lines.join('\n')}\n`;
}
