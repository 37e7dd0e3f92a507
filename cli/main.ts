/** The pgwarden command line: parse -> call src -> print. */
import { Command, CommanderError } from 'commander';
import { PgwardenError } from '../src/errors.js';
import { register as admin } from './commands/admin.js';
import { register as applyCmd } from './commands/apply.js';
import { register as audit } from './commands/audit.js';
import { register as check } from './commands/check.js';
import { register as data } from './commands/data.js';
import { register as demo } from './commands/demo.js';
import { register as diffCmd } from './commands/diff.js';
import { register as doctorCmd } from './commands/doctor.js';
import { register as explain } from './commands/explain.js';
import { register as generate } from './commands/generate.js';
import { register as keys } from './commands/keys.js';
import { register as plan } from './commands/plan.js';
import { register as report } from './commands/report.js';
import { register as review } from './commands/review.js';
import { register as territories } from './commands/territories.js';
import { register as testCmd } from './commands/test.js';
import { ExitError, setKeyRefs } from './context.js';
import { c, EXIT } from './output.js';

export function buildProgram(): Command {
  const program = new Command('pgwarden')
    .description(
      'Permissions on customer data, enforced inside PostgreSQL: row level security, masking views, roles and grants from one model.',
    )
    .version('0.1.0')
    .option('--debug', 'print stack traces')
    .option(
      '--key <ref>',
      'encryption key(s) for encrypted columns: env:NAME, file:PATH or the 64-hex key (shell history!); repeat or comma-separate for several, new key first (default: $PGWARDEN_KEY)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .showHelpAfterError()
    .exitOverride();
  // --key is global: every connection of the command gets the keys (cli/context.ts connect())
  program.hook('preAction', (cmd) => setKeyRefs(cmd.opts().key as string[] | undefined));
  generate(program);
  plan(program);
  applyCmd(program);
  diffCmd(program);
  check(program);
  doctorCmd(program);
  demo(program);
  admin(program);
  territories(program);
  audit(program);
  data(program);
  testCmd(program);
  keys(program);
  explain(program);
  review(program);
  report(program);
  program.addHelpText(
    'after',
    '\nQuick start:\n  $ pgwarden demo\n  $ pgwarden plan --model examples/crm/model.ts --url "$DATABASE_URL"\n',
  );
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.error;
    if (e instanceof ExitError) return e.exitCode;
    if (e instanceof PgwardenError) {
      const code =
        e.code === 'lock_timeout'
          ? EXIT.locked
          : e.code === 'needs_allow'
            ? EXIT.needsAllow
            : EXIT.error;
      process.stderr.write(`${c.red('error:')} ${e.message}\n${c.dim('hint:')} ${e.hint}\n`);
      if (debug)
        process.stderr.write(
          `${e.stack ?? ''}\n${e.cause ? String((e.cause as Error).stack ?? e.cause) : ''}\n`,
        );
      return code;
    }
    const err = e as { message?: string; code?: string; stack?: string };
    process.stderr.write(
      `${c.red('error:')} ${err.message ?? String(e)}${err.code ? c.dim(` [${err.code}]`) : ''}\n`,
    );
    if (debug) process.stderr.write(`${err.stack ?? ''}\n`);
    else process.stderr.write(c.dim('Run with --debug for details.\n'));
    return EXIT.error;
  }
}

const isEntry = process.argv[1] !== undefined && /cli[\\/]main\.(ts|js)$/.test(process.argv[1]);
if (isEntry) {
  process.exitCode = await main(process.argv.slice(2));
}
