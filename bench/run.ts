/**
 * Benchmark entry: `npm run bench -- [--scale 100000] [--clients 8] [--seconds 10] [--reps 3]
 * [--tp-reps 3] [--url postgres://postgres@host:port/db] [--json file]`.
 * Without --url it starts an embedded PostgreSQL (src/db/embedded.ts) and stops it at the end.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { formatReport, runAuditBench } from './audit.js';

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scale: { type: 'string' },
      clients: { type: 'string' },
      seconds: { type: 'string' },
      reps: { type: 'string' },
      'tp-reps': { type: 'string' },
      url: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench -- [--scale N] [--clients C] [--seconds S] [--reps R] [--tp-reps T] [--url URL] [--json FILE]\n',
    );
    return;
  }
  const options = {
    scale: Math.trunc(positive('scale', values.scale, 100_000)),
    clients: Math.trunc(positive('clients', values.clients, 8)),
    seconds: positive('seconds', values.seconds, 10),
    reps: Math.max(3, Math.trunc(positive('reps', values.reps, 3))),
    tpReps: Math.trunc(positive('tp-reps', values['tp-reps'], 3)),
  };

  let url = values.url;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    process.stderr.write('no --url: starting an embedded PostgreSQL ...\n');
    const server = await startEmbeddedPostgres();
    url = server.url;
    stop = server.stop;
  }
  try {
    const result = await runAuditBench({ url, ...options });
    process.stdout.write(
      `\n${formatReport(result)}\n${stop ? '(embedded PostgreSQL, started by the bench)\n' : ''}`,
    );
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await stop?.();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(
      `bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  },
);
