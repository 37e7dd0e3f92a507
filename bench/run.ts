/**
 * Benchmark entry (issue #8):
 *
 *   npm run bench -- [--scale small|full] [--url URL] [--only reads,masking,writes,encryption,audit,toolchain]
 *                    [--json FILE] [--explain] [--keep]
 *                    [--audit-rows N] [--clients C] [--seconds S] [--reps R] [--tp-reps T]
 *
 * Default scale `small` (CI: a few minutes on 2 CPUs); `full` is the issue's scale. `--keep` leaves
 * the scale database and its roles on the server (with --url) for inspection with psql. Without --url
 * it starts an embedded PostgreSQL (src/db/embedded.ts) and stops it at the end. The URL must be
 * a superuser's; every case builds its own database and roles and drops them at the end.
 * Prints one table of BenchRow rows (bench/rows.ts), the machine's description, then the audit
 * bench's own report when it ran. `npm run bench:audit` is the audit bench alone at its old
 * defaults (`--only audit --scale full`).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { type AuditBenchResult, formatReport, runAuditBench } from './audit.js';
import { type BenchRow, median } from './rows.js';
import {
  PRESETS,
  runScaleBench,
  type ScaleBenchResult,
  type ScaleName,
  type ScaleSection,
} from './scale.js';

const SECTIONS = ['reads', 'masking', 'writes', 'encryption', 'audit', 'toolchain'] as const;
type Section = (typeof SECTIONS)[number];

/** The audit bench per scale (bench/audit.ts); `full` is its old default. */
const AUDIT_PRESETS: Record<
  ScaleName,
  { scale: number; clients: number; seconds: number; reps: number; tpReps: number }
> = {
  small: { scale: 20_000, clients: 4, seconds: 3, reps: 3, tpReps: 1 },
  full: { scale: 100_000, clients: 8, seconds: 10, reps: 3, tpReps: 3 },
};

/** The toolchain bench (bench/toolchain.ts, another module): a 200-table model with 20 jobs. */
const TOOLCHAIN = { tables: 200, jobs: 20, reps: { small: 3, full: 5 } };

const USAGE = `usage: npm run bench -- [--scale small|full] [--url URL] [--only ${SECTIONS.join(',')}]
                        [--json FILE] [--explain] [--keep]
                        [--audit-rows N] [--clients C] [--seconds S] [--reps R] [--tp-reps T]
`;

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  server: string;
  settings: Record<string, string>;
  loadAverage: { start: number[]; end?: number[] };
}

const SETTINGS = [
  'shared_buffers',
  'work_mem',
  'effective_cache_size',
  'random_page_cost',
  'jit',
  'max_parallel_workers_per_gather',
  'synchronous_commit',
  'fsync',
  'wal_level',
  'max_wal_size',
];

async function machineInfo(url: string): Promise<MachineInfo> {
  const db = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 30 });
  try {
    const [v] = await db<{ version: string }[]>`SELECT version()`;
    const rows = await db<{ name: string; setting: string }[]>`
      SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY(${SETTINGS})`;
    const settings: Record<string, string> = {};
    for (const n of SETTINGS) {
      const r = rows.find((x) => x.name === n);
      if (r) settings[n] = r.setting;
    }
    return {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      server: v?.version ?? 'unknown',
      settings,
      loadAverage: { start: loadavg() },
    };
  } finally {
    await db.end({ timeout: 5 });
  }
}

function formatMachine(m: MachineInfo, embedded: boolean): string {
  const settings = Object.entries(m.settings).map(([k, v]) => `${k}=${v}`);
  const half = Math.ceil(settings.length / 2);
  const la = (x: number[]) => x.map((n) => n.toFixed(2)).join(' ');
  return [
    `machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB memory; load average ${la(m.loadAverage.start)} at start${m.loadAverage.end ? `, ${la(m.loadAverage.end)} at end` : ''}`,
    `server:  ${m.server}${embedded ? ' (embedded, started by the bench)' : ''}`,
    `         ${settings.slice(0, half).join(', ')}`,
    `         ${settings.slice(half).join(', ')}`,
  ].join('\n');
}

// ------------------------------------------------------------------ the table

function fmtValue(v: number | null, unit: BenchRow['unit']): string {
  if (v === null) return '-';
  if (unit === 'ms') return `${v < 10 ? v.toFixed(3) : v < 1000 ? v.toFixed(1) : v.toFixed(0)} ms`;
  return `${v.toFixed(0)} ${unit}`;
}

export function formatRows(rows: readonly BenchRow[]): string {
  const head = ['case', 'baseline', 'pgwarden', 'ratio', 'target', 'met'];
  const body: string[][] = [];
  let group = '';
  const groupRow = (g: string): string[] => [`${g}:`, '', '', '', '', ''];
  for (const r of rows) {
    if (r.group !== group) {
      group = r.group;
      body.push(groupRow(group));
    }
    body.push([
      `  ${r.name}`,
      fmtValue(r.baseline, r.unit),
      fmtValue(r.pgwarden, r.unit),
      r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`,
      r.target || '-',
      r.met === null ? '-' : r.met ? 'yes' : 'NO',
    ]);
  }
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(head), '-'.repeat(widths.reduce((a, b) => a + b + 2, -2))];
  for (const r of body) out.push(line(r));
  const met = rows.filter((r) => r.met === true).length;
  const missed = rows.filter((r) => r.met === false).length;
  out.push('', `targets: ${met} met, ${missed} missed`);
  return out.join('\n');
}

// ------------------------------------------------------------------ audit rows

function auditRows(r: AuditBenchResult): BenchRow[] {
  const o = r.options;
  const rows: BenchRow[] = [];
  const ms = (name: string, data: AuditBenchResult['insertMs']): void => {
    const none = median(data.none);
    const pgw = median(data.pgwarden);
    const row = median(data.row);
    rows.push({
      group: 'audit',
      name: `${name} ${o.scale} rows: pgwarden vs no audit`,
      unit: 'ms',
      baseline: none,
      pgwarden: pgw,
      ratio: pgw / none,
      target: '<= 2.0x',
      met: pgw / none <= 2.0,
      detail: { none: data.none, pgwarden: data.pgwarden, rowTrigger: data.row },
    });
    rows.push({
      group: 'audit',
      name: `${name} ${o.scale} rows: a to_jsonb row trigger vs no audit (for comparison)`,
      unit: 'ms',
      baseline: none,
      pgwarden: row,
      ratio: row / none,
      target: '',
      met: null,
    });
  };
  ms('bulk insert', r.insertMs);
  ms('bulk update', r.updateMs);
  const none = median(r.tps.none);
  const pgw = median(r.tps.pgwarden);
  rows.push({
    group: 'audit',
    name: `1-row updates, ${o.clients} clients x ${o.seconds} s: pgwarden vs no audit`,
    unit: 'tx/s',
    baseline: none,
    pgwarden: pgw,
    ratio: pgw / none,
    target: '>= 0.9x',
    met: pgw / none >= 0.9,
    detail: { none: r.tps.none, pgwarden: r.tps.pgwarden, rowTrigger: r.tps.row },
  });
  for (const [label, tps] of [
    ['a to_jsonb row trigger', r.tps.row],
    ['the least trigger (one bigint per row into a table without index)', r.floorTps],
  ] as const) {
    const t = median(tps);
    rows.push({
      group: 'audit',
      name: `1-row updates, ${o.clients} clients x ${o.seconds} s: ${label} vs no audit (for comparison)`,
      unit: 'tx/s',
      baseline: none,
      pgwarden: t,
      ratio: t / none,
      target: '',
      met: null,
    });
  }
  return rows;
}

// ------------------------------------------------------------------ toolchain

type ToolchainBench = (options: {
  url: string;
  tables: number;
  jobs: number;
  reps: number;
}) => Promise<BenchRow[]>;

/** bench/toolchain.ts is another module's: used when it is there. */
async function loadToolchain(): Promise<ToolchainBench | null> {
  const here = dirname(fileURLToPath(import.meta.url));
  if (!existsSync(join(here, 'toolchain.ts')) && !existsSync(join(here, 'toolchain.js')))
    return null;
  const spec = './toolchain.js';
  const mod = (await import(spec)) as { runToolchainBench?: ToolchainBench };
  return typeof mod.runToolchainBench === 'function' ? mod.runToolchainBench : null;
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scale: { type: 'string' },
      url: { type: 'string' },
      only: { type: 'string' },
      json: { type: 'string' },
      explain: { type: 'boolean' },
      keep: { type: 'boolean' },
      'audit-rows': { type: 'string' },
      clients: { type: 'string' },
      seconds: { type: 'string' },
      reps: { type: 'string' },
      'tp-reps': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const scaleName = (values.scale ?? 'small') as ScaleName;
  if (!(scaleName in PRESETS))
    throw new Error(
      `--scale is small or full (got ${values.scale}); the audit bench's row count is --audit-rows N`,
    );
  const only = new Set<Section>(
    values.only
      ? values.only.split(',').map((x) => {
          const s = x.trim() as Section;
          if (!SECTIONS.includes(s))
            throw new Error(`--only takes ${SECTIONS.join(', ')} (got ${x})`);
          return s;
        })
      : SECTIONS,
  );
  const auditPreset = AUDIT_PRESETS[scaleName];
  const audit = {
    scale: Math.trunc(positive('audit-rows', values['audit-rows']) ?? auditPreset.scale),
    clients: Math.trunc(positive('clients', values.clients) ?? auditPreset.clients),
    seconds: positive('seconds', values.seconds) ?? auditPreset.seconds,
    reps: Math.max(3, Math.trunc(positive('reps', values.reps) ?? auditPreset.reps)),
    tpReps: Math.trunc(positive('tp-reps', values['tp-reps']) ?? auditPreset.tpReps),
  };

  let url = values.url;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    process.stderr.write('no --url: starting an embedded PostgreSQL ...\n');
    const server = await startEmbeddedPostgres();
    url = server.url;
    stop = server.stop;
  }
  const started = performance.now();
  try {
    const machine = await machineInfo(url);
    process.stderr.write(
      `bench: scale ${scaleName}, sections ${[...only].join(', ')}; ${machine.server.split(' on ')[0]}\n`,
    );
    const rows: BenchRow[] = [];
    const notes: string[] = [];
    let scale: ScaleBenchResult | undefined;
    let auditResult: AuditBenchResult | undefined;
    const timings: Record<string, number> = {};
    const timedSection = async (name: string, fn: () => Promise<void>): Promise<void> => {
      const t0 = performance.now();
      await fn();
      timings[name] = Math.round((performance.now() - t0) / 1000);
    };

    const scaleSections = new Set(
      [...only].filter((s): s is ScaleSection =>
        ['reads', 'masking', 'writes', 'encryption'].includes(s),
      ),
    );
    if (scaleSections.size > 0) {
      await timedSection('scale', async () => {
        scale = await runScaleBench({
          url: url as string,
          preset: PRESETS[scaleName],
          sections: scaleSections,
          explainMisses: true,
          keep: values.keep === true && stop === undefined,
        });
        rows.push(...scale.rows);
        notes.push(...scale.notes);
      });
    }
    if (only.has('toolchain')) {
      await timedSection('toolchain', async () => {
        const run = await loadToolchain();
        if (!run) {
          notes.push('toolchain: not measured (bench/toolchain.ts is not there yet)');
          return;
        }
        rows.push(
          ...(await run({
            url: url as string,
            tables: TOOLCHAIN.tables,
            jobs: TOOLCHAIN.jobs,
            reps: TOOLCHAIN.reps[scaleName],
          })),
        );
      });
    }
    if (only.has('audit')) {
      await timedSection('audit', async () => {
        auditResult = await runAuditBench({ url: url as string, ...audit });
        rows.push(...auditRows(auditResult));
      });
    }
    machine.loadAverage.end = loadavg();
    const totalS = Math.round((performance.now() - started) / 1000);

    const d = scale?.data;
    const out: string[] = [
      '',
      formatMachine(machine, stop !== undefined),
      d
        ? `data:    scale ${scaleName}: ${d.customers} customers (${d.pool} in the pool), ${d.people.stepB} people in ${d.units} units (flatness: ${d.people.stepA} people), ` +
          `${d.shares.total} shares (${d.shares.active} in force), ${d.grants.total} temporary grants (${d.grants.active}), ${d.assignments.total} assignments (${d.assignments.active})`
        : '',
      d
        ? `         visible rows: ${Object.entries(d.visible)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`
        : '',
      d
        ? `build:   ${Object.entries(d.buildMs)
            .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
            .join(', ')}`
        : '',
      `time:    ${totalS} s (${Object.entries(timings)
        .map(([k, v]) => `${k} ${v} s`)
        .join(', ')})`,
      '',
      formatRows(rows),
      ...notes.map((n) => `note: ${n}`),
    ].filter((l, i, a) => l !== '' || a[i - 1] !== '');
    if (values.explain) {
      for (const r of rows) {
        const e = r.detail?.explain as { pgwarden: string; floor: string } | undefined;
        if (!e) continue;
        out.push(
          '',
          `EXPLAIN ${r.group}: ${r.name}`,
          '-- pgwarden:',
          e.pgwarden,
          '-- floor:',
          e.floor,
        );
      }
    }
    if (auditResult) out.push('', 'audit bench (bench/audit.ts):', formatReport(auditResult));
    process.stdout.write(`${out.join('\n')}\n`);
    if (values.json)
      writeFileSync(
        values.json,
        `${JSON.stringify(
          {
            scale: scaleName,
            preset: PRESETS[scaleName],
            audit,
            machine,
            seconds: totalS,
            timings,
            data: scale?.data,
            notes,
            rows,
            auditResult,
          },
          null,
          2,
        )}\n`,
      );
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
