/** Runs the real pgwarden binary (bin/pgwarden.js) as a user would, without colours. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TEST_KEY } from './keys.js';

const run = promisify(execFile);
export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'pgwarden.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `unset`: environment variables the command must not see (e.g. DATABASE_URL). The command gets
 * the test encryption key in PGWARDEN_KEY (test/helpers/keys.ts) unless `env` sets it or `unset`
 * lists it.
 */
export async function cli(
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; unset?: readonly string[] } = {},
): Promise<CliResult> {
  const full: Record<string, string | undefined> = {
    ...process.env,
    NO_COLOR: '1',
    PGWARDEN_KEY: TEST_KEY,
    ...env,
  };
  for (const k of options.unset ?? []) delete full[k];
  try {
    const r = await run(process.execPath, [BIN, ...args], {
      env: full,
      timeout: 120_000,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : -1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}
