import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type Command, Option } from 'commander';
import type { CatalogObject } from '../../src/catalog/objects.js';
import { citusDistribution } from '../../src/compile/citus.js';
import { compile, TARGETS, type Target } from '../../src/compile/index.js';
import { type DrizzleResult, drizzleMigration } from '../../src/generate/drizzle.js';
import { generate } from '../../src/generate/index.js';
import { findModelFile, loadValidModel } from '../context.js';
import { c } from '../output.js';

interface GenerateOptions {
  model?: string;
  out: string;
  drizzle?: string;
  rolePrefix: string;
  target: Target;
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('write the SQL for the model as ordered files (offline, deterministic)')
    .option('-m, --model <file>', 'model file (.ts, .yaml, .json)')
    .option('-o, --out <dir>', 'folder for the SQL files', 'pgwarden-sql')
    .option(
      '--drizzle <folder>',
      'instead: add the SQL as a custom migration to this drizzle-kit migrations folder (drizzle.config `out`)',
    )
    .option('--role-prefix <prefix>', 'prefix for every role pgwarden creates', '')
    .addOption(
      new Option(
        '--target <target>',
        'postgres, or citus: policies without subqueries, no masking views, co-located audit (docs/distributed.md); also writes the Citus distribution steps to <out>/citus/',
      )
        .choices(TARGETS)
        .default('postgres'),
    )
    .addHelpText(
      'after',
      '\nExample:\n  $ pgwarden generate --model examples/crm/model.ts --out migrations/pgwarden\n  $ cat migrations/pgwarden/*.sql | psql --single-transaction -v ON_ERROR_STOP=1 "$DATABASE_URL"\n  $ pgwarden generate --model examples/crm/model.ts --drizzle drizzle && npx drizzle-kit migrate\n  $ pgwarden generate --model examples/crm/model.ts --target citus --out citus-sql   # see docs/distributed.md\n',
    )
    .action(async (opts: GenerateOptions) => {
      const { model, hash } = await loadValidModel(findModelFile(opts.model));
      const objects = compile(model, { rolePrefix: opts.rolePrefix, target: opts.target });
      const meta = { modelName: model.name, modelHash: hash };
      if (opts.drizzle !== undefined) {
        const r = await writeDrizzleMigration(opts.drizzle, objects, meta);
        process.stdout.write(
          r.status === 'unchanged'
            ? `No changes: the model matches ${join(opts.drizzle, `${r.tag}.sql`)}; no migration added.\n`
            : `${c.green('wrote')} drizzle-kit migration ${join(opts.drizzle, `${r.tag}.sql`)} (journal entry ${r.idx}${r.removed.length ? `; drops ${r.removed.length} object(s) no longer in the model` : ''}); apply it with drizzle-kit migrate\n`,
        );
        if (opts.target === 'citus')
          process.stdout.write(
            'The Citus distribution steps are not part of the migration: `pgwarden generate --target citus --out DIR` writes them to DIR/citus/ (docs/distributed.md).\n',
          );
        return;
      }
      const files = generate(objects, meta);
      await mkdir(opts.out, { recursive: true });
      // remove our own stale files, never anything else
      for (const f of await readdir(opts.out))
        if (/^\d\d_[a-z]+\.sql$/.test(f)) await rm(join(opts.out, f));
      for (const f of files) await writeFile(join(opts.out, f.name), f.content);
      process.stdout.write(
        `${c.green('wrote')} ${files.length} files to ${opts.out}/ (${files.map((f) => f.name).join(', ')})\n`,
      );
      if (opts.target === 'citus') {
        // the DBA's distribution steps: in a folder of their own, so `cat *.sql` leaves them out
        const steps = citusDistribution(model);
        await mkdir(join(opts.out, 'citus'), { recursive: true });
        for (const f of steps) await writeFile(join(opts.out, 'citus', f.name), f.content);
        process.stdout.write(
          `${c.green('wrote')} the Citus distribution steps to ${join(opts.out, 'citus')}/ (${steps.map((f) => f.name).join(', ')}): run 1 before the SQL above and 2 after it, on the coordinator (docs/distributed.md)\n`,
        );
      }
    });
}

/**
 * Reads a drizzle-kit migrations folder (the journal, the snapshots, the migrations' SQL), adds
 * pgwarden's migration if the model changed, and writes it: the SQL and the snapshot first, the
 * journal last, so an interrupted run leaves no journal entry without its file.
 */
export async function writeDrizzleMigration(
  folder: string,
  objects: readonly CatalogObject[],
  meta: { modelName: string; modelHash: string },
): Promise<DrizzleResult> {
  const files = new Map<string, string>();
  if (existsSync(folder)) {
    for (const f of await readdir(folder))
      if (f.endsWith('.sql')) files.set(f, await readFile(join(folder, f), 'utf8'));
    const metaDir = join(folder, 'meta');
    if (existsSync(metaDir))
      for (const f of await readdir(metaDir))
        if (f.endsWith('.json')) files.set(`meta/${f}`, await readFile(join(metaDir, f), 'utf8'));
  }
  const result = drizzleMigration({ folder, files, objects, meta });
  if (result.status === 'added')
    for (const f of result.files) {
      const path = join(folder, f.path);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, f.content);
    }
  return result;
}
