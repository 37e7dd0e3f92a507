/** `pgwarden doctor`: the server and the database against the threat list, a verdict per check. */
import { relative } from 'node:path';
import type { Command } from 'commander';
import { type DoctorResult, doctor, doctorTargets } from '../../src/doctor/index.js';
import { readDoctorFacts } from '../../src/introspect/doctor.js';
import { ExitError, findModelFile, loadValidModel, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

/** doctor exits 2 when any check fails (the same number as check's "errors found") */
const EXIT_FAILED = EXIT.changes;

const HELP = `
Checks (docs/doctor.md): server_version, privileged_roles, create_privilege,
public_execute_definer, protected_tables, materialized_views, temporary_objects,
subtree_cache.

Exit codes:
  0  no check failed (warnings allowed)
  1  doctor could not run (connection, database error, bad option)
  2  at least one check failed
  3  the model is invalid

Examples:
  $ pgwarden doctor --model examples/crm/model.ts --url "$DATABASE_URL"
  $ pgwarden doctor --json | jq '.checks[] | select(.verdict != "pass")'
`;

interface DoctorOptions {
  model?: string;
  url?: string;
  rolePrefix: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'check the server (version) and the database (roles, CREATE, definer functions, partitions, materialized views, TEMP) against the threat list',
    )
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-u, --url <url>', 'database to check (default: $DATABASE_URL)')
    .option('--role-prefix <prefix>', 'the prefix the roles were applied with', '')
    .option('--json', 'print the verdicts as JSON')
    .addHelpText('after', HELP)
    .action(async (opts: DoctorOptions) => {
      const file = findModelFile(opts.model);
      const result = await withDb({ url: opts.url }, async (db) => {
        const { model } = await loadValidModel(file, db);
        const options = { rolePrefix: opts.rolePrefix };
        const facts = await readDoctorFacts(db, doctorTargets(model, options));
        return doctor(model, facts, options);
      });
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ model: relative(process.cwd(), file) || file, ...result }, null, 2)}\n`,
        );
      } else process.stdout.write(format(result));
      if (!result.ok) throw new ExitError(EXIT_FAILED);
    });
}

function format(r: DoctorResult): string {
  const lines = [c.bold(`pgwarden doctor: database ${r.database}`), c.dim(r.server), ''];
  for (const ch of r.checks) {
    const mark =
      ch.verdict === 'pass'
        ? c.green('pass')
        : ch.verdict === 'warn'
          ? c.yellow('warn')
          : c.red.bold('FAIL');
    lines.push(`${mark}  ${c.bold(ch.code)}  ${c.dim(ch.title)}`);
    for (const d of ch.details) lines.push(`      ${d}`);
    if (ch.fix) lines.push(`      ${c.dim('fix:')} ${ch.fix}`);
  }
  const failed = r.checks.filter((x) => x.verdict === 'fail').length;
  const warned = r.checks.filter((x) => x.verdict === 'warn').length;
  lines.push(
    '',
    failed === 0
      ? c.green(
          `ok: no check failed${warned ? ` (${warned} warning${warned === 1 ? '' : 's'})` : ''}`,
        )
      : c.red(`${failed} check${failed === 1 ? '' : 's'} failed`),
  );
  return `${lines.join('\n')}\n`;
}
