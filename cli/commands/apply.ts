import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { apply } from '../../src/apply/index.js';
import { compile } from '../../src/compile/index.js';
import { PgwardenError } from '../../src/errors.js';
import { connect, databaseUrl, findModelFile, loadValidModel } from '../context.js';
import { c, formatPlan } from '../output.js';

export function register(program: Command): void {
  program
    .command('apply')
    .description('apply the model: the whole plan in one transaction under an advisory lock')
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-u, --url <url>', 'database URL (default: $DATABASE_URL)')
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .option('-y, --yes', 'apply without asking (needed when not on a terminal)')
    .option('--lock-timeout <duration>', 'how long to wait for locks', '10s')
    .option('--sql', 'print the SQL of every step')
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden apply --model examples/crm/model.ts --url postgres://postgres@localhost/crm --yes\n',
    )
    .action(
      async (opts: {
        model?: string;
        url?: string;
        rolePrefix: string;
        yes?: boolean;
        lockTimeout: string;
        sql?: boolean;
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
          const result = await apply(db, compile(model, { rolePrefix: opts.rolePrefix }), {
            modelName: model.name,
            modelHash: hash,
            lockTimeout: opts.lockTimeout,
            confirm: async (plan) => {
              process.stdout.write(formatPlan(plan, opts.sql === true));
              if (opts.yes) return true;
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
        } finally {
          await db.end();
        }
      },
    );
}
