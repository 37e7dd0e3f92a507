import { type Command, Option } from 'commander';
import { planAgainst } from '../../src/apply/index.js';
import { compile, TARGETS, type Target } from '../../src/compile/index.js';
import { resolveTarget } from '../../src/introspect/target.js';
import { connect, databaseUrl, ExitError, findModelFile, loadValidModel } from '../context.js';
import { EXIT, formatPlan } from '../output.js';

export function register(program: Command): void {
  program
    .command('plan')
    .description('show what apply would change in the database, without changing anything')
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL)')
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .addOption(
      new Option(
        '--target <target>',
        'postgres or citus (docs/distributed.md); default: the target the database was applied with, else postgres',
      ).choices(TARGETS),
    )
    .option('--json', 'print the plan as JSON')
    .option('--sql', 'print the SQL of every step')
    .option('--exit-code', 'exit 2 when there are changes, 0 when none')
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden plan --model examples/crm/model.ts --url postgres://postgres@localhost/crm --sql\n',
    )
    .action(
      async (opts: {
        model?: string;
        url?: string;
        rolePrefix: string;
        target?: Target;
        json?: boolean;
        sql?: boolean;
        exitCode?: boolean;
      }) => {
        const db = connect(databaseUrl(opts.url));
        try {
          const { model } = await loadValidModel(findModelFile(opts.model), db);
          const target = await resolveTarget(db, opts.target);
          const plan = await planAgainst(
            db,
            compile(model, { rolePrefix: opts.rolePrefix, target }),
          );
          if (opts.json) {
            const steps = plan.steps.map(({ object: _o, ...s }) => s);
            process.stdout.write(
              `${JSON.stringify({ changes: steps.length, unchanged: plan.unchanged, firstApply: plan.firstApply, steps }, null, 2)}\n`,
            );
          } else {
            process.stdout.write(formatPlan(plan, opts.sql === true));
          }
          if (opts.exitCode && plan.steps.length > 0) throw new ExitError(EXIT.changes);
        } finally {
          await db.end();
        }
      },
    );
}
