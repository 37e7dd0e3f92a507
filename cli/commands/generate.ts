import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { compile } from '../../src/compile/index.js';
import { generate } from '../../src/generate/index.js';
import { findModelFile, loadValidModel } from '../context.js';
import { c } from '../output.js';

export function register(program: Command): void {
  program
    .command('generate')
    .description('write the SQL for the model as ordered files (offline, deterministic)')
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-o, --out <dir>', 'folder for the SQL files', 'pgwarden-sql')
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden generate --model examples/crm/model.ts --out migrations/pgwarden\n  $ cat migrations/pgwarden/*.sql | psql --single-transaction -v ON_ERROR_STOP=1 "$DATABASE_URL"\n',
    )
    .action(async (opts: { model?: string; out: string; rolePrefix: string }) => {
      const { model, hash } = await loadValidModel(findModelFile(opts.model));
      const files = generate(compile(model, { rolePrefix: opts.rolePrefix }), {
        modelName: model.name,
        modelHash: hash,
      });
      await mkdir(opts.out, { recursive: true });
      // remove our own stale files, never anything else
      for (const f of await readdir(opts.out))
        if (/^\d\d_[a-z]+\.sql$/.test(f)) await rm(join(opts.out, f));
      for (const f of files) await writeFile(join(opts.out, f.name), f.content);
      process.stdout.write(
        `${c.green('wrote')} ${files.length} files to ${opts.out}/ (${files.map((f) => f.name).join(', ')})\n`,
      );
    });
}
