/**
 * pgwarden test SPEC: checks a YAML file of expectations (what each person sees, which cells are
 * masked, which writes, claims, reveals and exports are allowed or refused) against a database,
 * inside transactions that are rolled back. Exit 0 when all pass, 1 when any fails, 3 when the
 * spec is invalid. The format: docs/testing.md.
 */
import type { Command } from 'commander';
import { loadSpec } from '../../src/spec/parse.js';
import {
  checkSpecIn,
  type ExpectationResult,
  readSpecContext,
  runSpec,
} from '../../src/spec/run.js';
import type { SpecProblem } from '../../src/spec/types.js';
import { ExitError, withDb } from '../context.js';
import { c, EXIT } from '../output.js';

interface Options {
  url?: string;
  rolePrefix?: string;
  json?: boolean;
}

function printSpecProblems(problems: readonly SpecProblem[], json: boolean): void {
  if (json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          ok: false,
          problems: problems.map((p) => ({
            code: p.code,
            file: p.location.file,
            line: p.location.line,
            column: p.location.column,
            message: p.message,
            fix: p.fix,
          })),
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  const out = (s: string) => process.stderr.write(s);
  out(c.red(`The spec has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n`));
  for (const p of problems) {
    out(
      `  ${c.bold(`${p.location.file}:${p.location.line}:${p.location.column}`)} ${c.yellow(`[${p.code}]`)} ${p.message}\n`,
    );
    out(`    ${c.dim('fix:')} ${p.fix}\n`);
  }
  out(c.dim('Nothing was run.\n'));
}

function resultLine(r: ExpectationResult): string {
  const where = `${r.file}:${r.line}`;
  if (r.ok) {
    const want = r.expected.length > 60 ? `${r.expected.slice(0, 57)}...` : r.expected;
    return `  ${c.green('✓')} ${c.dim(where)}  ${r.label} ${c.dim(`(${want})`)}\n`;
  }
  const stmt = r.label === `${r.person}: ${r.statement}` ? '' : ` [${r.statement}]`;
  return `  ${c.red('✗')} ${c.bold(where)}  ${r.label}${stmt}: ${c.red('expected')} ${r.expected}; ${c.red('the database')}: ${r.actual}\n`;
}

export function register(program: Command): void {
  program
    .command('test <spec>')
    .description(
      'check a YAML file of expectations per person (visible rows, masked cells, refused and allowed writes, reveals, exports) in rolled-back transactions',
    )
    .option(
      '-u, --url <url>',
      'database URL (default: $DATABASE_URL); a superuser compares cells with stored values',
    )
    .option(
      '--role-prefix <prefix>',
      'prefix of the person roles (default: the one pgwarden apply recorded)',
    )
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
Example:
  $ pgwarden test examples/crm/expectations.yaml --url "$DATABASE_URL"

  as alice:
    - sees customers: [1, 2, 3]
    - row customers 1: { phone: full, id_number: masked }
    - update customers 1 set owner = bob: refused

Every person block runs in its own transaction, every expectation in a savepoint; all are rolled
back, so the database is not changed. Exit 0: all passed; 1: some failed; 3: the spec is invalid.
The format: docs/testing.md.
`,
    )
    .action(async (file: string, o: Options) => {
      const json = o.json === true;
      const parsed = await loadSpec(file);
      if (parsed.problems.length > 0 || !parsed.spec) {
        printSpecProblems(parsed.problems, json);
        throw new ExitError(EXIT.invalidModel);
      }
      const spec = parsed.spec;
      const report = await withDb(o, async (db) => {
        const ctx = await readSpecContext(
          db,
          spec,
          o.rolePrefix !== undefined ? { rolePrefix: o.rolePrefix } : {},
        );
        const problems = checkSpecIn(spec, ctx);
        if (problems.length > 0) {
          printSpecProblems(problems, json);
          throw new ExitError(EXIT.invalidModel);
        }
        const count = spec.blocks.reduce((n, b) => n + b.expectations.length, 0);
        if (!json)
          process.stdout.write(
            `pgwarden test ${file}: ${count} expectation(s) for ${spec.blocks.length} person(s) on ${ctx.schema}, ${
              ctx.via
                ? `as each person through ${ctx.via} (SET LOCAL ROLE ${ctx.rolePrefix}<person>)`
                : `as each person (SET LOCAL ROLE ${ctx.rolePrefix}<person>)`
            }; every transaction is rolled back\n`,
          );
        return await runSpec(db, spec, ctx, {
          onResult: (r) => {
            if (!json) process.stdout.write(resultLine(r));
          },
        });
      });
      if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else
        process.stdout.write(
          `${report.ok ? c.green(`ok ${report.passed} passed`) : c.red(`FAILED ${report.failed} of ${report.results.length}`)}${report.ok ? '' : `, ${report.passed} passed`}; the database was not changed\n`,
        );
      if (!report.ok) throw new ExitError(EXIT.error);
    });
}
