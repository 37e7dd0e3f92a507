import { relative } from 'node:path';
import type { Command } from 'commander';
import {
  CHECK_RULES,
  type CheckCode,
  type CheckResult,
  checkLive,
  checkModel,
  type Finding,
  lintTargets,
  parseIgnore,
  summarize,
} from '../../src/check/index.js';
import { PgwardenError } from '../../src/errors.js';
import { readLintFacts } from '../../src/introspect/lint.js';
import { ExitError, findModelFile, loadValidModel, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

/** check's own meaning of exit code 2 (the same number as plan --exit-code's "changes") */
const EXIT_ERRORS_FOUND = EXIT.changes;

const HELP = `
Rules: pgwarden check --rules lists them; docs/checks.md explains each (what, why, fix).

Exit codes:
  0  no error-level findings (warnings allowed)
  1  the check could not run (connection, database error, bad option)
  2  error-level findings
  3  the model is invalid (every problem is printed)

Examples:
  $ pgwarden check --model examples/crm/model.ts --offline
  $ pgwarden check --model examples/crm/model.ts --url "$DATABASE_URL" --ignore unindexed_scope_column
  $ pgwarden check --json | jq '.findings[] | select(.severity == "error")'
`;

interface CheckOptions {
  model?: string;
  url?: string;
  offline?: boolean;
  rolePrefix: string;
  ignore: string[];
  json?: boolean;
  rules?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'lint the model and, with a database, its live security setup (RLS, policies, roles, grants, views, definer functions, indexes)',
    )
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-u, --url <url>', 'database to check as well (default: $DATABASE_URL)')
    .option('--offline', 'check the model only, even if DATABASE_URL is set')
    .option('--role-prefix <prefix>', 'the prefix the roles were applied with', '')
    .option(
      '--ignore <codes>',
      'rule codes to leave out, comma-separated (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the findings as JSON')
    .option('--rules', 'list every rule with its code and severity, and exit')
    .addHelpText('after', HELP)
    .action(async (opts: CheckOptions) => {
      if (opts.rules) {
        printRules(opts.json === true);
        return;
      }
      const { codes, unknown } = parseIgnore(opts.ignore);
      if (unknown.length > 0) {
        throw new PgwardenError(
          'invalid_option',
          `--ignore: unknown rule code${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}`,
          'pgwarden check --rules lists the codes.',
        );
      }
      const file = findModelFile(opts.model);
      const url = opts.offline ? undefined : (opts.url ?? process.env.DATABASE_URL);
      const findings: Finding[] = [];
      let database: string | null = null;
      if (url) {
        await withDb({ url }, async (db) => {
          const { model } = await loadValidModel(file, db);
          const options = { rolePrefix: opts.rolePrefix };
          const facts = await readLintFacts(db, lintTargets(model, options));
          database = facts.database;
          findings.push(...checkModel(model), ...checkLive(model, facts, options));
        });
      } else {
        const { model } = await loadValidModel(file);
        findings.push(...checkModel(model));
      }
      const result = summarize(findings, codes);
      const where = { model: relative(process.cwd(), file) || file, database };
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify(
            {
              ok: result.errors === 0,
              model: where.model,
              database: where.database,
              errors: result.errors,
              warnings: result.warnings,
              ignored: result.ignored,
              findings: result.findings,
            },
            null,
            2,
          )}\n`,
        );
      } else process.stdout.write(formatResult(result, where));
      if (result.errors > 0) throw new ExitError(EXIT_ERRORS_FOUND);
    });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatResult(r: CheckResult, where: { model: string; database: string | null }): string {
  const lines: string[] = [];
  const scope = where.database
    ? `model ${where.model}, database ${where.database}`
    : `model ${where.model} (offline: the database was not checked)`;
  lines.push(c.bold(`pgwarden check: ${scope}`));
  const group = (severity: 'error' | 'warning', title: string, mark: string) => {
    const list = r.findings.filter((f) => f.severity === severity);
    if (list.length === 0) return;
    lines.push('', severity === 'error' ? c.red.bold(title) : c.yellow.bold(title));
    for (const f of list) {
      lines.push(`  ${mark} ${c.bold(f.code)}  ${f.object}`);
      lines.push(`      ${f.message}`);
      lines.push(`      ${c.dim('fix:')} ${f.fix}`);
    }
  };
  group('error', `Errors (${r.errors})`, c.red('✗'));
  group('warning', `Warnings (${r.warnings})`, c.yellow('!'));
  const ignored = r.ignored > 0 ? `, ${r.ignored} ignored` : '';
  lines.push('');
  if (r.errors === 0 && r.warnings === 0) lines.push(`${c.green('ok')} no findings${ignored}`);
  else
    lines.push(
      `${r.errors > 0 ? c.red(plural(r.errors, 'error')) : c.green('0 errors')}, ${plural(r.warnings, 'warning')}${ignored}`,
    );
  return `${lines.join('\n')}\n`;
}

function printRules(json: boolean): void {
  const codes = Object.keys(CHECK_RULES) as CheckCode[];
  if (json) {
    const rules = codes.map((code) => ({ code, ...CHECK_RULES[code] }));
    process.stdout.write(`${JSON.stringify(rules, null, 2)}\n`);
    return;
  }
  const width = Math.max(...codes.map((x) => x.length));
  for (const source of ['model', 'database'] as const) {
    process.stdout.write(
      c.bold(source === 'model' ? 'Model (offline):\n' : 'Database (with --url):\n'),
    );
    for (const code of codes.filter((x) => CHECK_RULES[x].source === source)) {
      const r = CHECK_RULES[code];
      process.stdout.write(`  ${code.padEnd(width)}  ${r.severity.padEnd(7)}  ${r.title}\n`);
    }
  }
}
