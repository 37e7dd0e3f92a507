/**
 * Export memory benchmark (issue #5): does `pgwarden export` stream, i.e. does the client's
 * peak memory stay flat as the row count grows?
 *
 *   npx tsx bench/export.ts [--url URL] [--rows 100000,1000000] [--json FILE]
 *
 * Without --url it starts an embedded PostgreSQL (src/db/embedded.ts) and stops it at the end.
 * For each row count N, on the superuser URL:
 *   1. a fresh database; the CRM built with setupCrm() under a role prefix unique to the run
 *      (pgxb_<random>_<i>_: roles are cluster-wide);
 *   2. N extra customers owned by alice (sales_east, in the director vera's subtree), inserted
 *      with INSERT ... SELECT generate_series as the superuser (the audit triggers fire), then
 *      ANALYZE;
 *   3. vera's export quota raised for the run: export_rules 'customers:sales_director' per_day
 *      = 100000000 (the model says 500);
 *   4. the real CLI as a child process, as vera, columns without phone (no approval needed):
 *        node bin/pgwarden.js export --table customers --columns id,name,owner,region,status
 *          --format csv --out FILE --url DB --as <prefix>vera
 *      Measured: the child's peak RSS (/usr/bin/time -v "Maximum resident set size", else
 *      VmHWM polled from /proc), wall time (spawn to exit, Node and tsx start-up included),
 *      time to the first data row in the file, rows written (lines of the file minus the header).
 *      Server side, when the server runs on this machine and /proc/<pid> of its backends is
 *      readable: the peak private memory (RssAnon, sampled every 50 ms) of the database's client
 *      backends while the CLI runs, and the temporary-file bytes of the database
 *      (pg_stat_database.temp_bytes): export_rows is a plpgsql set-returning function, so its
 *      whole result goes through a tuplestore that spills to disk beyond work_mem before the
 *      first row reaches the client.
 * At the end the bench databases are dropped, then the run's roles (looping until no more can
 * be dropped).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { setupCrm } from '../examples/crm/setup.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { quoteIdent } from '../src/sql/quote.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const COLUMNS = 'id,name,owner,region,status';
const TIME = '/usr/bin/time';

export interface ExportRun {
  rows: number;
  database: string;
  rolePrefix: string;
  insertMs: number;
  /** customers vera may export (seed + inserted), as counted before the run */
  visible: number;
  /** data lines in the CSV file */
  written: number;
  fileMiB: number;
  /** spawn to exit, Node + tsx start-up included */
  wallMs: number;
  /** spawn to the first data row in the file (sampled) */
  firstRowMs: number | null;
  clientPeakRssMiB: number;
  clientRssSource: 'time -v' | '/proc VmHWM';
  /** peak RssAnon over the database's client backends during the export, null if not observable */
  serverPeakAnonMiB: number | null;
  /** peak VmHWM (shared buffers touched included) of those backends */
  serverPeakHwmMiB: number | null;
  serverTempMiB: number | null;
  exitCode: number;
}

export interface ExportBenchResult {
  machine: { cpus: number; cpuModel: string; memoryGiB: number; server: string; workMem: string };
  runs: ExportRun[];
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function procStatus(pid: number): Record<string, number> | null {
  try {
    const out: Record<string, number> = {};
    for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB$/.exec(line);
      if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
    }
    return out;
  } catch {
    return null;
  }
}

async function countLines(file: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    let i = buf.indexOf(10);
    while (i !== -1) {
      n += 1;
      i = buf.indexOf(10, i + 1);
    }
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kb: number) => Math.round((kb / 1024) * 10) / 10;

async function runOne(
  url: string,
  rows: number,
  database: string,
  rolePrefix: string,
  log: (line: string) => void,
): Promise<ExportRun> {
  const admin = postgres(url, { onnotice: () => {}, max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${quoteIdent(database)}`);
  } finally {
    await admin.end();
  }
  const dbUrl = withDatabase(url, database);
  const db = postgres(dbUrl, { onnotice: () => {}, max: 1 });
  let insertMs = 0;
  let visible = 0;
  try {
    log(`  ${database}: setupCrm (prefix ${rolePrefix}) ...`);
    await setupCrm(db, { rolePrefix });
    log(`  ${database}: inserting ${rows} customers owned by alice ...`);
    const t0 = performance.now();
    await db`
      INSERT INTO crm.customers (name, owner, region, customer_type, status)
      SELECT 'Bench customer ' || g, 'alice', (ARRAY['east', 'north', 'south'])[1 + g % 3],
             (ARRAY['retail', 'enterprise', 'vip'])[1 + g % 3],
             (ARRAY['lead', 'active', 'churned'])[1 + g % 3]
      FROM pg_catalog.generate_series(1, ${rows}::int) g`;
    insertMs = performance.now() - t0;
    await db`ANALYZE crm.customers`;
    const raised = await db`
      UPDATE pgwarden.export_rules SET per_day = 100000000 WHERE key = 'customers:sales_director'`;
    if (raised.count !== 1) throw new Error('export rule customers:sales_director not found');
    const [v] = await db.begin(async (tx) => {
      await tx`SELECT pg_catalog.set_config('role', ${`${rolePrefix}vera`}, true)`;
      return tx`SELECT count(*)::int AS n FROM crm_api.customers`;
    });
    visible = (v?.n as number) ?? 0;
  } finally {
    await db.end();
  }

  // the server side: this database's client backends, other than the monitor's own
  const monitor = postgres(dbUrl, { onnotice: () => {}, max: 1 });
  const out = join(tmpdir(), `${database}.csv`);
  rmSync(out, { force: true });
  try {
    await monitor`SELECT pg_catalog.pg_stat_clear_snapshot()`;
    const [before] = await monitor`
      SELECT temp_bytes::float8 AS b FROM pg_catalog.pg_stat_database WHERE datname = ${database}`;
    const useTime = existsSync(TIME);
    const args = [
      join(ROOT, 'bin', 'pgwarden.js'),
      'export',
      '--table',
      'customers',
      '--columns',
      COLUMNS,
      '--format',
      'csv',
      '--out',
      out,
      '--url',
      dbUrl,
      '--as',
      `${rolePrefix}vera`,
    ];
    log(`  ${database}: pgwarden export as ${rolePrefix}vera (${visible} rows visible) ...`);
    const t0 = performance.now();
    const child = useTime
      ? spawn(TIME, ['-v', process.execPath, ...args], {
          cwd: ROOT,
          stdio: ['ignore', 'ignore', 'pipe'],
        })
      : spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let done = false;
    const exited = new Promise<number>((resolve) =>
      child.on('close', (code) => {
        done = true;
        resolve(code ?? -1);
      }),
    );
    let hwmKb = 0;
    let serverAnonKb: number | null = null;
    let serverHwmKb: number | null = null;
    let firstRowMs: number | null = null;
    const headerBytes = COLUMNS.length + 1;
    const seenBackends = new Set<number>();
    while (!done) {
      if (!useTime && child.pid !== undefined) {
        const s = procStatus(child.pid);
        if (s?.VmHWM) hwmKb = Math.max(hwmKb, s.VmHWM);
      }
      if (firstRowMs === null && existsSync(out) && statSync(out).size > headerBytes)
        firstRowMs = performance.now() - t0;
      try {
        const pids = await monitor`
          SELECT pid FROM pg_catalog.pg_stat_activity
          WHERE datname = ${database} AND pid <> pg_catalog.pg_backend_pid()
            AND backend_type = 'client backend'`;
        for (const { pid } of pids) {
          const s = procStatus(pid as number);
          if (!s) continue;
          seenBackends.add(pid as number);
          if (s.RssAnon !== undefined) serverAnonKb = Math.max(serverAnonKb ?? 0, s.RssAnon);
          if (s.VmHWM !== undefined) serverHwmKb = Math.max(serverHwmKb ?? 0, s.VmHWM);
        }
      } catch {
        // the monitor is best effort
      }
      await sleep(50);
    }
    const exitCode = await exited;
    const wallMs = performance.now() - t0;
    if (exitCode !== 0) throw new Error(`pgwarden export exited with ${exitCode}:\n${stderr}`);
    let clientKb = hwmKb;
    if (useTime) {
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      if (!m?.[1]) throw new Error(`no "Maximum resident set size" from ${TIME}:\n${stderr}`);
      clientKb = Number(m[1]);
    }
    const lines = await countLines(out);
    const fileMiB = Math.round((statSync(out).size / 1048576) * 10) / 10;
    rmSync(out, { force: true });
    // the backend reports its statistics when its session ends; give it a moment
    let tempMiB: number | null = null;
    for (let i = 0; i < 20; i += 1) {
      await sleep(250);
      await monitor`SELECT pg_catalog.pg_stat_clear_snapshot()`;
      const [after] = await monitor`
        SELECT temp_bytes::float8 AS b FROM pg_catalog.pg_stat_database WHERE datname = ${database}`;
      const delta = ((after?.b as number) ?? 0) - ((before?.b as number) ?? 0);
      tempMiB = Math.round((delta / 1048576) * 10) / 10;
      if (delta > 0) break;
    }
    return {
      rows,
      database,
      rolePrefix,
      insertMs,
      visible,
      written: lines - 1,
      fileMiB,
      wallMs,
      firstRowMs,
      clientPeakRssMiB: mib(clientKb),
      clientRssSource: useTime ? 'time -v' : '/proc VmHWM',
      serverPeakAnonMiB: seenBackends.size > 0 && serverAnonKb !== null ? mib(serverAnonKb) : null,
      serverPeakHwmMiB: seenBackends.size > 0 && serverHwmKb !== null ? mib(serverHwmKb) : null,
      serverTempMiB: tempMiB,
      exitCode,
    };
  } finally {
    rmSync(out, { force: true });
    await monitor.end();
  }
}

/** Drops the databases, then the roles named runPrefix*, until nothing more can be dropped. */
async function cleanup(url: string, databases: string[], runPrefix: string): Promise<string[]> {
  const admin = postgres(url, { onnotice: () => {}, max: 1 });
  try {
    for (const d of databases)
      await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(d)} WITH (FORCE)`);
    const like = `${runPrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    for (;;) {
      const roles = await admin`SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE ${like}`;
      let dropped = 0;
      for (const { rolname } of roles) {
        try {
          await admin.unsafe(`DROP ROLE ${quoteIdent(rolname as string)}`);
          dropped += 1;
        } catch {
          // still a member of / owner of something: try again next pass
        }
      }
      if (roles.length === 0 || dropped === 0) return roles.map((r) => r.rolname as string);
    }
  } finally {
    await admin.end();
  }
}

export async function runExportBench(
  url: string,
  counts: number[],
  log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<ExportBenchResult> {
  const runId = randomBytes(3).toString('hex');
  const runPrefix = `pgxb_${runId}_`;
  const databases: string[] = [];
  const runs: ExportRun[] = [];
  const admin = postgres(url, { onnotice: () => {}, max: 1 });
  let server = '';
  let workMem = '';
  try {
    const [s] =
      await admin`SELECT pg_catalog.version() AS v, pg_catalog.current_setting('work_mem') AS w`;
    server = String(s?.v ?? '');
    workMem = String(s?.w ?? '');
  } finally {
    await admin.end();
  }
  try {
    for (const [i, rows] of counts.entries()) {
      const database = `${runPrefix}${rows}`;
      databases.push(database);
      log(`N = ${rows}`);
      const r = await runOne(url, rows, database, `${runPrefix}${i}_`, log);
      log(
        `  client peak RSS ${r.clientPeakRssMiB} MiB, ${r.written} rows in ${(r.wallMs / 1000).toFixed(1)} s`,
      );
      runs.push(r);
    }
  } finally {
    const left = await cleanup(url, databases, runPrefix);
    if (left.length > 0) log(`could not drop roles: ${left.join(', ')}`);
  }
  const cpu = cpus();
  return {
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? '?',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      server,
      workMem,
    },
    runs,
  };
}

export function formatReport(result: ExportBenchResult): string {
  const m = result.machine;
  const lines = [
    `${m.cpus} CPU (${m.cpuModel}), ${m.memoryGiB} GiB; ${m.server}; work_mem ${m.workMem}`,
    '',
    '| N inserted | rows exported | client peak RSS (MiB) | wall (s) | rows/s | first row (s) | server backend peak RssAnon (MiB) | server temp files (MiB) | CSV (MiB) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of result.runs) {
    lines.push(
      `| ${r.rows.toLocaleString('en-US')} | ${r.written.toLocaleString('en-US')} | ${r.clientPeakRssMiB} | ${(r.wallMs / 1000).toFixed(1)} | ${Math.round(r.written / (r.wallMs / 1000)).toLocaleString('en-US')} | ${r.firstRowMs === null ? '-' : (r.firstRowMs / 1000).toFixed(1)} | ${r.serverPeakAnonMiB ?? 'n/a'} | ${r.serverTempMiB ?? 'n/a'} | ${r.fileMiB} |`,
    );
  }
  lines.push('', `client RSS measured with ${result.runs[0]?.clientRssSource ?? '-'}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rows: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npx tsx bench/export.ts [--url URL] [--rows 100000,1000000] [--json FILE]\n',
    );
    return;
  }
  const counts = (values.rows ?? '100000,1000000').split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 0) throw new Error(`--rows: ${s} is not a row count`);
    return n;
  });
  let url = values.url;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    process.stderr.write('no --url: starting an embedded PostgreSQL ...\n');
    const server = await startEmbeddedPostgres();
    url = server.url;
    stop = server.stop;
  }
  try {
    const result = await runExportBench(url, counts);
    process.stdout.write(
      `\n${formatReport(result)}\n${stop ? '(embedded PostgreSQL, started by the bench)\n' : ''}`,
    );
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await stop?.();
  }
}

await main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
