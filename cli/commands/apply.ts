import { createInterface } from 'node:readline/promises';
import { type Command, Option } from 'commander';
import { apply } from '../../src/apply/index.js';
import { compile, TARGETS, type Target } from '../../src/compile/index.js';
import { PgwardenError } from '../../src/errors.js';
import { resolveTarget } from '../../src/introspect/target.js';
import { stepsNeedingPermission } from '../../src/plan/index.js';
import { connect, databaseUrl, findModelFile, loadValidModel } from '../context.js';
import { c, formatPlan } from '../output.js';

export function register(program: Command): void {
  program
    .command('apply')
    .description('apply the model: the whole plan in one transaction under an advisory lock')
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL)')
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .addOption(
      new Option(
        '--target <target>',
        'postgres or citus (docs/distributed.md); default: the target the database was applied with, else postgres',
      ).choices(TARGETS),
    )
    .option('-y, --yes', 'apply without asking (needed when not on a terminal)')
    .option(
      '--lock-timeout <duration>',
      'how long to wait for another apply and for table locks (then exit 4)',
      '10s',
    )
    .option('--allow-widen', 'with --yes: allow steps that widen access')
    .option(
      '--allow-destructive',
      'with --yes: allow destructive steps (drops audit, disables RLS)',
    )
    .option('--sql', 'print the SQL of every step')
    .addHelpText(
      'after',
      `
Without --yes, apply shows the plan (widening and destructive steps first) and asks.
With --yes (needed when not on a terminal), a plan with steps that widen access needs
--allow-widen, and one with destructive steps needs --allow-destructive; otherwise nothing
changes and apply exits 5. A database's first apply is not gated for widening.

Exit codes: 0 applied or nothing to do, 1 error (nothing changed), 3 invalid model,
4 another apply held the lock longer than --lock-timeout, 5 needs --allow-widen/--allow-destructive.

Example:
  $ pgwarden apply --model examples/crm/model.ts --url postgres://postgres@localhost/crm --yes
`,
    )
    .action(
      async (opts: {
        model?: string;
        url?: string;
        rolePrefix: string;
        target?: Target;
        yes?: boolean;
        lockTimeout: string;
        sql?: boolean;
        allowWiden?: boolean;
        allowDestructive?: boolean;
      }) => {
        const db = connect(databaseUrl(opts.url));
        try {
          const { model, hash } = await loadValidModel(findModelFile(opts.model), db);
          const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
          if (!opts.yes && !interactive) {
            throw new PgwardenError(
              'confirmation_needed',
              'not on a terminal, so apply cannot ask before changing the database',
              'Review `pgwarden plan`, then run apply with --yes.',
            );
          }
          const target = await resolveTarget(db, opts.target);
          const result = await apply(db, compile(model, { rolePrefix: opts.rolePrefix, target }), {
            modelName: model.name,
            modelHash: hash,
            lockTimeout: opts.lockTimeout,
            confirm: async (plan) => {
              process.stdout.write(formatPlan(plan, opts.sql === true));
              if (opts.yes) {
                const needs = stepsNeedingPermission(plan, {
                  widen: opts.allowWiden === true,
                  destructive: opts.allowDestructive === true,
                });
                const lines = [
                  ...needs.destructive.map((s) => `  - ${s.summary} [destructive]`),
                  ...needs.widen.map((s) => `  - ${s.summary} [widens access]`),
                ];
                if (lines.length > 0) {
                  const flags = [
                    needs.destructive.length ? '--allow-destructive' : '',
                    needs.widen.length ? '--allow-widen' : '',
                  ].filter(Boolean);
                  throw new PgwardenError(
                    'needs_allow',
                    `the plan has ${lines.length} step${lines.length === 1 ? '' : 's'} that need explicit permission; nothing was changed:\n${lines.join('\n')}`,
                    `Review them, then run apply again with ${flags.join(' and ')}.`,
                  );
                }
                return true;
              }
              const rl = createInterface({ input: process.stdin, output: process.stdout });
              const answer = await rl.question(
                `\nApply these ${plan.steps.length} steps? Type "yes": `,
              );
              rl.close();
              return answer.trim() === 'yes';
            },
          });
          if (!result.applied) process.stdout.write(formatPlan(result.plan, false));
          else
            process.stdout.write(
              `${c.green('Applied')} ${result.plan.steps.length} steps in one transaction.\n`,
            );
          // new audit tables and functions are local until the DBA's step distributes them
          if (
            result.applied &&
            target === 'citus' &&
            result.plan.steps.some(
              (s) => s.action === 'create' && (s.kind === 'catalog' || s.kind === 'function'),
            )
          )
            process.stdout.write(
              'Target citus: this apply created tables or functions. Distribute them before anything writes: `pgwarden generate --target citus --out DIR`, then run DIR/citus/2_after_apply.sql on the coordinator (docs/distributed.md).\n',
            );
        } finally {
          await db.end();
        }
      },
    );
}
