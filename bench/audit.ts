/**
 * Audit overhead benchmark: the cost of pgwarden's generated audit triggers on writes to
 * crm.customers, against no audit and against a minimal hand-written row trigger, measured in
 * one run on one server.
 *
 * Three fresh databases hold the CRM tables (examples/crm/schema.sql):
 *   none     just the tables
 *   row      + AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger inserting
 *              (table, op, pk, to_jsonb(NEW/OLD)) into a plain table; also the floor trigger
 *              (one bigint per updated row, no index), enabled instead for one more
 *              throughput run after each repetition
 *   pgwarden + the CRM model applied (compile + apply, role prefix unique to the run): the
 *              generated statement-level audit triggers, keyed hashes, hash chain
 * Cases: bulk INSERT ... SELECT generate_series of N rows, bulk UPDATE of all N rows (median of
 * `reps` repetitions, variants interleaved), single-row UPDATE transactions from `clients`
 * connections for `seconds` seconds (tx/s), then one seal of every bench record, and an
 * EXPLAIN ANALYZE breakdown of the bulk statements (trigger share) in rolled-back transactions.
 * Everything runs as the superuser on the base table: the audit trigger fires for any writer.
 */
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import postgres from 'postgres';
import { crmModel, readCrmFile } from '../examples/crm/setup.js';
import { apply } from '../src/apply/index.js';
import { canonicalJson, sha256 } from '../src/catalog/fingerprint.js';
import { compile, roleNames } from '../src/compile/index.js';
import type { Model } from '../src/model/types.js';
import { quoteIdent } from '../src/sql/quote.js';
import { cleanupOnSignal } from './rows.js';

export const VARIANTS = ['none', 'row', 'pgwarden'] as const;
export type Variant = (typeof VARIANTS)[number];

export const VARIANT_LABEL: Record<Variant, string> = {
  none: 'no audit',
  row: 'row trigger (to_jsonb)',
  pgwarden: 'pgwarden',
};

export interface AuditBenchOptions {
  /** Superuser URL of the server (any database; the bench creates its own). */
  url: string;
  /** Rows inserted / updated by the bulk cases. */
  scale: number;
  /** Concurrent connections for the single-row update case. */
  clients: number;
  /** Measured seconds of the single-row update case, per variant and repetition. */
  seconds: number;
  /** Repetitions of the bulk cases (median reported); at least 3. */
  reps: number;
  /** Repetitions of the throughput case (median reported). */
  tpReps: number;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  server: string;
  settings: Record<string, string>;
}

export interface BreakdownRow {
  variant: Variant;
  statement:
    | 'insert'
    | 'update'
    | 'update 1 row'
    | 'update 1 row, person lookup stubbed'
    | 'update 1 row, same session after bulk update';
  executionMs: number;
  triggerMs: number;
  triggers: string;
}

export interface AuditBenchResult {
  options: Omit<AuditBenchOptions, 'url' | 'log'>;
  machine: Machine;
  insertMs: Record<Variant, number[]>;
  updateMs: Record<Variant, number[]>;
  tps: Record<Variant, number[]>;
  /** The throughput case with the floor trigger (FLOOR_TRIGGER_SQL) instead of audit_row. */
  floorTps: number[];
  latencyP50Ms: Record<Variant, number[]>;
  /** WAL bytes per transaction during the throughput case (cluster-wide, so approximate). */
  walBytesPerTx: Record<Variant, number[]>;
  auditRecords: { row: number; pgwarden: number };
  seal: { records: number; ms: number; calls: number };
  breakdown: BreakdownRow[];
  /** pgwarden bulk update with every non-primary-key index of its data log dropped (rolled back). */
  noSecondaryIndexes?: { executionMs: number; triggerMs: number; dropped?: string[] };
  /** Diagnostics that were skipped, and why. */
  diagnosticNotes?: string[];
}

/** The minimal hand-written baseline: one row trigger, one plain table. */
const ROW_TRIGGER_SQL = `
CREATE TABLE public.audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL,
  op text NOT NULL,
  pk text,
  row_data jsonb,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION public.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO public.audit_log (table_name, op, pk, row_data)
    VALUES (TG_TABLE_NAME, TG_OP, OLD.id::text, to_jsonb(OLD));
    RETURN OLD;
  END IF;
  INSERT INTO public.audit_log (table_name, op, pk, row_data)
  VALUES (TG_TABLE_NAME, TG_OP, NEW.id::text, to_jsonb(NEW));
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON crm.customers FOR EACH ROW EXECUTE FUNCTION public.audit_row();
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON crm.contacts FOR EACH ROW EXECUTE FUNCTION public.audit_row();
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON crm.contracts FOR EACH ROW EXECUTE FUNCTION public.audit_row();
CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON crm.deals FOR EACH ROW EXECUTE FUNCTION public.audit_row();
`;

/**
 * The least any audit trigger can do, for the throughput case only (in the `row` database,
 * enabled instead of audit_row while it runs): one bigint per updated row into a table with no
 * index, no default and no other column. No person, no time, no values: not an audit, a floor.
 */
const FLOOR_TRIGGER_SQL = `
CREATE TABLE public.floor_log (id bigint);
CREATE FUNCTION public.floor_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.floor_log VALUES (NEW.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER floor_row AFTER UPDATE ON crm.customers FOR EACH ROW EXECUTE FUNCTION public.floor_row();
ALTER TABLE crm.customers DISABLE TRIGGER floor_row;
`;

/** Swaps the `row` database's customers trigger between audit_row and the floor's. */
function floorSwap(on: boolean): string {
  return on
    ? 'ALTER TABLE crm.customers DISABLE TRIGGER audit_row, ENABLE TRIGGER floor_row'
    : 'ALTER TABLE crm.customers DISABLE TRIGGER floor_row, ENABLE TRIGGER audit_row';
}

/** N customers with every column filled, sensitive ones included (phone, email, id_number, address). */
function insertSql(n: number): string {
  return `INSERT INTO crm.customers (name, owner, region, customer_type, status, in_pool, phone, email, id_number, address)
SELECT 'Customer ' || g, 'rep_' || (g % 50), 'region_' || (g % 10), CASE WHEN g % 3 = 0 THEN 'enterprise' ELSE 'smb' END,
       'lead', g % 7 = 0, '+1-555-' || lpad(g::text, 7, '0'), 'customer' || g || '@example.com',
       'ID' || lpad(g::text, 9, '0'), g || ' Main Street, Springfield'
FROM generate_series(1, ${Math.trunc(n)}) g`;
}

const UPDATE_SQL = `UPDATE crm.customers SET status = 'active', name = name || ' (updated)'`;

const MAX_SEAL = 1_000_000;

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function randomSuffix(length = 8): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (const b of randomBytes(length)) out += alphabet[b % alphabet.length];
  return out;
}

function urlFor(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

function connect(url: string, max = 1): postgres.Sql {
  return postgres(url, {
    max,
    onnotice: () => {},
    idle_timeout: 30,
    connect_timeout: 30,
    // bounded: no statement of the bench may run away
    connection: { statement_timeout: 900_000, application_name: 'pgwarden-bench' },
  });
}

function emptyRecord(): Record<Variant, number[]> {
  return { none: [], row: [], pgwarden: [] };
}

/** Rotates the variant order per repetition so no variant always runs first (or last). */
function order(rep: number): Variant[] {
  return VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length] as Variant);
}

interface Setup {
  runId: string;
  prefix: string;
  databases: Record<Variant, string>;
  dbs: Partial<Record<Variant, postgres.Sql>>;
  tableOwner: string;
}

/** Drops the bench databases and every role with the run's prefix. Safe to call twice. */
async function cleanup(adminUrl: string, s: Setup, log: (line: string) => void): Promise<void> {
  for (const db of Object.values(s.dbs)) await db?.end({ timeout: 5 }).catch(() => undefined);
  s.dbs = {};
  const admin = connect(adminUrl);
  try {
    for (const name of Object.values(s.databases))
      await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    const roles = await admin<{ rolname: string }[]>`
      SELECT rolname FROM pg_roles WHERE left(rolname, ${s.prefix.length}) = ${s.prefix}`;
    let left = roles.map((r) => r.rolname);
    for (let pass = 0; pass < 5 && left.length > 0; pass++) {
      const failed: string[] = [];
      for (const r of left) {
        await admin.unsafe(`DROP ROLE IF EXISTS ${quoteIdent(r)}`).catch(() => failed.push(r));
      }
      if (failed.length === left.length) break;
      left = failed;
    }
    if (left.length > 0) log(`warning: could not drop roles ${left.join(', ')}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

async function machineInfo(db: postgres.Sql): Promise<Machine> {
  const [v] = await db<{ version: string }[]>`SELECT version()`;
  const names = [
    'shared_buffers',
    'synchronous_commit',
    'fsync',
    'wal_level',
    'max_wal_size',
    'work_mem',
  ];
  const rows = await db<{ name: string; setting: string }[]>`
    SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY(${names})`;
  const settings: Record<string, string> = {};
  for (const r of rows) settings[r.name] = r.setting;
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    server: v?.version ?? 'unknown',
    settings,
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Empties the CRM tables (pgwarden refuses TRUNCATE except for the table owner role). */
async function reset(db: postgres.Sql, variant: Variant, tableOwner: string): Promise<void> {
  await db.begin(async (tx) => {
    if (variant === 'pgwarden') await tx.unsafe(`SET LOCAL ROLE ${quoteIdent(tableOwner)}`);
    await tx.unsafe(
      'TRUNCATE crm.contacts, crm.contracts, crm.deals, crm.customers RESTART IDENTITY',
    );
  });
}

async function settle(db: postgres.Sql): Promise<void> {
  await db.unsafe('VACUUM ANALYZE crm.customers');
  await db.unsafe('CHECKPOINT');
}

/** `clients` connections updating random rows for `seconds`; returns tx/s and median latency. */
async function throughput(
  url: string,
  rows: number,
  clients: number,
  seconds: number,
): Promise<{ tps: number; p50: number; walPerTx: number }> {
  const conns = Array.from({ length: clients }, () => connect(url));
  try {
    const one = async (c: postgres.Sql, until: number, lat: number[] | null): Promise<number> => {
      let n = 0;
      // bounded by the deadline; every statement is bounded by statement_timeout
      while (performance.now() < until) {
        const id = 1 + Math.floor(Math.random() * rows);
        const t0 = performance.now();
        await c`UPDATE crm.customers SET name = ${`Customer ${id} v${n}`} WHERE id = ${id}`;
        lat?.push(performance.now() - t0);
        n++;
      }
      return n;
    };
    // warm-up: connect, prepare, fill caches (not counted)
    const warm = performance.now() + Math.min(2000, seconds * 200);
    await Promise.all(conns.map((c) => one(c, warm, null)));
    const lat: number[] = [];
    const first = conns[0] as postgres.Sql;
    const [w0] = await first<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`;
    const start = performance.now();
    const end = start + seconds * 1000;
    const counts = await Promise.all(conns.map((c) => one(c, end, lat)));
    const elapsed = (performance.now() - start) / 1000;
    const [w1] = await first<{ bytes: string }[]>`
      SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${w0?.lsn ?? '0/0'}::pg_lsn)::text AS bytes`;
    const total = counts.reduce((a, b) => a + b, 0);
    return {
      tps: total / elapsed,
      p50: median(lat),
      walPerTx: total > 0 ? Number(w1?.bytes ?? 0) / total : 0,
    };
  } finally {
    await Promise.all(conns.map((c) => c.end({ timeout: 5 })));
  }
}

interface ExplainNode {
  'Execution Time': number;
  Triggers?: { 'Trigger Name': string; Time: number; Calls: number }[];
}

/** EXPLAIN ANALYZE of a statement in a transaction that is rolled back. */
async function explain(
  db: postgres.Sql,
  statement: string,
  before?: string,
): Promise<{ executionMs: number; triggerMs: number; triggers: string }> {
  let out: { executionMs: number; triggerMs: number; triggers: string } | undefined;
  await db
    .begin(async (tx) => {
      if (before) await tx.unsafe(before);
      const rows = await tx.unsafe<{ 'QUERY PLAN': ExplainNode[] }[]>(
        `EXPLAIN (ANALYZE, FORMAT JSON) ${statement}`,
      );
      const plan = rows[0]?.['QUERY PLAN'][0];
      if (!plan) throw new Error('EXPLAIN returned no plan');
      const trig = (plan.Triggers ?? []).filter((t) => !t['Trigger Name'].startsWith('RI_'));
      out = {
        executionMs: plan['Execution Time'],
        triggerMs: trig.reduce((a, t) => a + t.Time, 0),
        triggers: trig.map((t) => `${t['Trigger Name']} x${t.Calls}`).join(', ') || '-',
      };
      throw new RollbackSignal();
    })
    .catch((e: unknown) => {
      if (!(e instanceof RollbackSignal)) throw e;
    });
  if (!out) throw new Error('EXPLAIN produced no result');
  return out;
}

class RollbackSignal extends Error {}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/**
 * Median EXPLAIN ANALYZE of 1-row updates, 25 in one transaction that is rolled back (the first
 * 5 warm up). `before` runs first in that transaction (a diagnostic change, never kept).
 */
async function singleRow(
  db: postgres.Sql,
  rows: number,
  before?: string,
): Promise<{ executionMs: number; triggerMs: number; triggers: string }> {
  const runs: { executionMs: number; triggerMs: number; triggers: string }[] = [];
  await db
    .begin(async (tx) => {
      if (before) await tx.unsafe(before);
      for (let i = 0; i < 25; i++) {
        const id = 1 + Math.floor(Math.random() * rows);
        const rows_ = await tx.unsafe<{ 'QUERY PLAN': ExplainNode[] }[]>(
          `EXPLAIN (ANALYZE, FORMAT JSON) UPDATE crm.customers SET name = 'explained ${i}' WHERE id = ${id}`,
        );
        const plan = rows_[0]?.['QUERY PLAN'][0];
        if (!plan) throw new Error('EXPLAIN returned no plan');
        const trig = (plan.Triggers ?? []).filter((t) => !t['Trigger Name'].startsWith('RI_'));
        if (i >= 5)
          runs.push({
            executionMs: plan['Execution Time'],
            triggerMs: trig.reduce((a, t) => a + t.Time, 0),
            triggers: trig.map((t) => t['Trigger Name']).join(', ') || '-',
          });
      }
      throw new RollbackSignal();
    })
    .catch((e: unknown) => {
      if (!(e instanceof RollbackSignal)) throw e;
    });
  return {
    executionMs: median(runs.map((r) => r.executionMs)),
    triggerMs: median(runs.map((r) => r.triggerMs)),
    triggers: runs[0]?.triggers ?? '-',
  };
}

/** Diagnostic only (rolled back): the generated trigger with the person lookup replaced by NULL. */
const STUB_PERSON = `DO $$
DECLARE
  src text := pg_catalog.pg_get_functiondef('pgwarden_audit.changed_customers'::regproc);
  lookup text := '(SELECT p.name FROM pgwarden.people p WHERE p.role = actor AND p.active)';
BEGIN
  IF pg_catalog.strpos(src, lookup) = 0 THEN
    RAISE EXCEPTION 'bench: person lookup not found in pgwarden_audit.changed_customers';
  END IF;
  EXECUTE pg_catalog.replace(src, lookup, 'NULL::text');
END $$`;

/**
 * The CRM model without encrypted columns (customers.id_number is encrypted since issue #11):
 * this bench measures the audit triggers alone, and its inserts supply no key. The cost of
 * encryption is measured by bench/scale.ts.
 */
function withoutEncryption(model: Model): Model {
  return {
    ...model,
    tables: model.tables.map((t) => ('encrypted' in t ? { ...t, encrypted: [] } : t)),
  } as Model;
}

export async function runAuditBench(opts: AuditBenchOptions): Promise<AuditBenchResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const reps = Math.max(3, Math.trunc(opts.reps));
  const tpReps = Math.max(1, Math.trunc(opts.tpReps));
  const scale = Math.max(1, Math.trunc(opts.scale));
  const runId = `pgwb_${randomSuffix()}`;
  const s: Setup = {
    runId,
    prefix: `${runId}_`,
    databases: { none: `${runId}_none`, row: `${runId}_row`, pgwarden: `${runId}_pgwarden` },
    dbs: {},
    tableOwner: '',
  };
  const stopHandlers = cleanupOnSignal(
    runId,
    `the databases ${Object.values(s.databases).join(', ')} and the roles ${s.prefix}*`,
    () => cleanup(opts.url, s, log),
    log,
  );

  const admin = connect(opts.url);
  try {
    const machine = await machineInfo(admin);
    log(`run ${runId}: ${machine.server.split(' on ')[0]}, scale ${scale}, reps ${reps}`);
    for (const v of VARIANTS) await admin.unsafe(`CREATE DATABASE ${quoteIdent(s.databases[v])}`);
    await admin.end({ timeout: 5 });

    const model = await crmModel();
    const schema = readCrmFile('schema.sql');
    s.tableOwner = roleNames(model, { rolePrefix: s.prefix }).tableOwner;
    const dbs = {} as Record<Variant, postgres.Sql>;
    for (const v of VARIANTS) {
      const db = connect(urlFor(opts.url, s.databases[v]));
      s.dbs[v] = db;
      dbs[v] = db;
      await db.begin((tx) => tx.unsafe(schema).simple());
      if (v === 'row') {
        await db.begin((tx) => tx.unsafe(ROW_TRIGGER_SQL).simple());
        await db.begin((tx) => tx.unsafe(FLOOR_TRIGGER_SQL).simple());
      }
      if (v === 'pgwarden') {
        const ms = await timed(() =>
          apply(db, compile(withoutEncryption(model), { rolePrefix: s.prefix }), {
            modelName: model.name,
            modelHash: sha256(canonicalJson(model)),
          }),
        );
        log(`pgwarden: model applied in ${ms.toFixed(0)} ms (role prefix ${s.prefix})`);
      }
    }

    const insertMs = emptyRecord();
    const updateMs = emptyRecord();
    for (let rep = 0; rep < reps; rep++) {
      for (const v of order(rep)) {
        const db = dbs[v];
        await reset(db, v, s.tableOwner);
        await settle(db);
        const ins = await timed(() => db.unsafe(insertSql(scale)));
        await settle(db);
        const upd = await timed(() => db.unsafe(UPDATE_SQL));
        insertMs[v].push(ins);
        updateMs[v].push(upd);
        log(
          `bulk rep ${rep + 1}/${reps} ${v}: insert ${ins.toFixed(0)} ms, update ${upd.toFixed(0)} ms`,
        );
      }
    }

    const tps = emptyRecord();
    const floorTps: number[] = [];
    const latencyP50Ms = emptyRecord();
    const walBytesPerTx = emptyRecord();
    for (const v of VARIANTS) await settle(dbs[v]);
    for (let rep = 0; rep < tpReps; rep++) {
      for (const v of order(rep)) {
        const r = await throughput(
          urlFor(opts.url, s.databases[v]),
          scale,
          opts.clients,
          opts.seconds,
        );
        tps[v].push(r.tps);
        latencyP50Ms[v].push(r.p50);
        walBytesPerTx[v].push(r.walPerTx);
        log(
          `throughput rep ${rep + 1}/${tpReps} ${v}: ${r.tps.toFixed(0)} tx/s, p50 ${r.p50.toFixed(2)} ms`,
        );
      }
      // the floor: the row database with the least trigger instead of audit_row (swapped back)
      await dbs.row.unsafe(floorSwap(true));
      try {
        const f = await throughput(
          urlFor(opts.url, s.databases.row),
          scale,
          opts.clients,
          opts.seconds,
        );
        floorTps.push(f.tps);
        log(`throughput rep ${rep + 1}/${tpReps} floor trigger: ${f.tps.toFixed(0)} tx/s`);
      } finally {
        await dbs.row.unsafe(floorSwap(false));
      }
    }

    // sealing runs off the write path (after commit, one sealer at a time): measured on its own
    const [rc] = await dbs.row<{ n: string }[]>`SELECT count(*) AS n FROM public.audit_log`;
    const [pc] = await dbs.pgwarden<
      { n: string }[]
    >`SELECT count(*) AS n FROM pgwarden_audit.records`;
    let sealed = 0;
    let calls = 0;
    const sealMs = await timed(async () => {
      for (; calls < 100; ) {
        const [r] = await dbs.pgwarden<
          { n: number }[]
        >`SELECT pgwarden_audit.seal(${MAX_SEAL}) AS n`;
        calls++;
        sealed += r?.n ?? 0;
        if ((r?.n ?? 0) < MAX_SEAL) break;
      }
    });
    log(`seal: ${sealed} records in ${sealMs.toFixed(0)} ms`);

    // where the time goes: trigger time inside the bulk statements (rolled back)
    const breakdown: BreakdownRow[] = [];
    for (const v of VARIANTS) {
      await settle(dbs[v]);
      const ins = await explain(dbs[v], insertSql(scale));
      breakdown.push({ variant: v, statement: 'insert', ...ins });
      const upd = await explain(dbs[v], UPDATE_SQL);
      breakdown.push({ variant: v, statement: 'update', ...upd });
    }
    // 1-row updates on fresh sessions (as the throughput case), then on the session that just
    // ran the bulk EXPLAINs: plpgsql keeps the plan it made for the 100k-row transition tables
    const fresh = async (v: Variant, before?: string) => {
      const c = connect(urlFor(opts.url, s.databases[v]));
      try {
        return await singleRow(c, scale, before);
      } finally {
        await c.end({ timeout: 5 });
      }
    };
    for (const v of VARIANTS) {
      breakdown.push({ variant: v, statement: 'update 1 row', ...(await fresh(v)) });
    }
    // The two diagnostics below edit pgwarden's objects (rolled back). They depend on the shape
    // of the generated trigger and of the data log, so a failure is reported as a
    // note and skipped instead of failing the whole run.
    const notes: string[] = [];
    try {
      breakdown.push({
        variant: 'pgwarden',
        statement: 'update 1 row, person lookup stubbed',
        ...(await fresh('pgwarden', STUB_PERSON)),
      });
    } catch (e) {
      notes.push(`skipped "person lookup stubbed": ${errorText(e)}`);
    }
    breakdown.push({
      variant: 'pgwarden',
      statement: 'update 1 row, same session after bulk update',
      ...(await singleRow(dbs.pgwarden, scale)),
    });
    let noSecondaryIndexes: AuditBenchResult['noSecondaryIndexes'];
    try {
      // every index of the customers' data log (sql/018): only the sealer's txid index
      const idx = await dbs.pgwarden<{ name: string }[]>`
        SELECT c.relname AS name
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'pgwarden_audit.data_customers'::regclass AND NOT i.indisprimary
        ORDER BY 1`;
      const dropped = idx.map((r) => r.name);
      if (dropped.length === 0) {
        notes.push(
          'skipped "data log w/o secondary indexes": data_customers has no secondary index',
        );
      } else {
        const e = await explain(
          dbs.pgwarden,
          UPDATE_SQL,
          `DROP INDEX ${dropped.map((n) => `pgwarden_audit.${quoteIdent(n)}`).join(', ')}`,
        );
        noSecondaryIndexes = { executionMs: e.executionMs, triggerMs: e.triggerMs, dropped };
      }
    } catch (e) {
      notes.push(`skipped "data log w/o secondary indexes": ${errorText(e)}`);
    }
    for (const n of notes) log(`diagnostic ${n}`);

    return {
      options: {
        scale,
        clients: opts.clients,
        seconds: opts.seconds,
        reps,
        tpReps,
      },
      machine,
      insertMs,
      updateMs,
      tps,
      floorTps,
      latencyP50Ms,
      walBytesPerTx,
      auditRecords: { row: Number(rc?.n ?? 0), pgwarden: Number(pc?.n ?? 0) },
      seal: { records: sealed, ms: sealMs, calls },
      breakdown,
      noSecondaryIndexes,
      diagnosticNotes: notes,
    };
  } finally {
    await admin.end({ timeout: 5 }).catch(() => undefined);
    await cleanup(opts.url, s, log);
    stopHandlers();
  }
}

// ------------------------------------------------------------------ report

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
    .join('  ')
    .trimEnd();
}

function table(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  const lines = rows.map((r) => pad(r, widths));
  const rule = '-'.repeat(Math.max(...lines.map((l) => l.length)));
  return [lines[0], rule, ...lines.slice(1)].join('\n');
}

const fmtMs = (ms: number): string => `${ms < 10 ? ms.toFixed(3) : ms.toFixed(0)} ms`;
const fmtX = (x: number): string => `${x.toFixed(2)}x`;

export function formatMachine(m: Machine): string {
  const settings = Object.entries(m.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return [
    `machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB memory`,
    `server:  ${m.server}`,
    `         ${settings}`,
  ].join('\n');
}

export function formatReport(r: AuditBenchResult): string {
  const o = r.options;
  const rows: string[][] = [
    ['case', 'no audit', 'row trigger', 'ratio', 'pgwarden', 'ratio', 'target', 'met'],
  ];
  const bulk = (label: string, data: Record<Variant, number[]>): void => {
    const base = median(data.none);
    const row = median(data.row);
    const pgw = median(data.pgwarden);
    rows.push([
      label,
      fmtMs(base),
      fmtMs(row),
      fmtX(row / base),
      fmtMs(pgw),
      fmtX(pgw / base),
      '<= 2.0x',
      pgw / base <= 2.0 ? 'yes' : 'NO',
    ]);
  };
  bulk(`bulk insert ${o.scale} rows (median of ${o.reps})`, r.insertMs);
  bulk(`bulk update ${o.scale} rows (median of ${o.reps})`, r.updateMs);
  const base = median(r.tps.none);
  const row = median(r.tps.row);
  const pgw = median(r.tps.pgwarden);
  rows.push([
    `1-row updates, ${o.clients} clients x ${o.seconds} s (median of ${o.tpReps})`,
    `${base.toFixed(0)} tx/s`,
    `${row.toFixed(0)} tx/s`,
    fmtX(row / base),
    `${pgw.toFixed(0)} tx/s`,
    fmtX(pgw / base),
    '>= 0.9x',
    pgw / base >= 0.9 ? 'yes' : 'NO',
  ]);
  const floor = median(r.floorTps);
  rows.push([
    `  the least trigger (one bigint per row, no index) in the row trigger's place`,
    '',
    `${floor.toFixed(0)} tx/s`,
    fmtX(floor / base),
    '',
    '',
    '',
    '',
  ]);
  rows.push([
    `  p50 latency`,
    `${median(r.latencyP50Ms.none).toFixed(2)} ms`,
    `${median(r.latencyP50Ms.row).toFixed(2)} ms`,
    '',
    `${median(r.latencyP50Ms.pgwarden).toFixed(2)} ms`,
    '',
    '',
    '',
  ]);
  rows.push([
    `  WAL per transaction`,
    `${median(r.walBytesPerTx.none).toFixed(0)} B`,
    `${median(r.walBytesPerTx.row).toFixed(0)} B`,
    '',
    `${median(r.walBytesPerTx.pgwarden).toFixed(0)} B`,
    '',
    '',
    '',
  ]);
  rows.push([
    `seal ${r.seal.records} records (off the write path)`,
    '',
    '',
    '',
    fmtMs(r.seal.ms),
    '',
    '',
    '',
  ]);

  const raw = (label: string, data: Record<Variant, number[]>, unit: string): string =>
    `  ${label}: ${VARIANTS.map((v) => `${v} [${data[v].map((x) => x.toFixed(0)).join(', ')}]`).join('; ')} ${unit}`;

  const bd: string[][] = [['EXPLAIN ANALYZE (rolled back)', 'execution', 'audit trigger', 'share']];
  for (const b of r.breakdown) {
    bd.push([
      b.statement.startsWith('update 1 row')
        ? `${b.statement}, ${VARIANT_LABEL[b.variant]} (median of 20)`
        : `${b.statement} ${o.scale}, ${VARIANT_LABEL[b.variant]}`,
      fmtMs(b.executionMs),
      fmtMs(b.triggerMs),
      b.executionMs > 0 ? `${((100 * b.triggerMs) / b.executionMs).toFixed(0)}%` : '-',
    ]);
  }
  if (r.noSecondaryIndexes) {
    const n = r.noSecondaryIndexes;
    bd.push([
      `update ${o.scale}, pgwarden, data log w/o ${n.dropped ? `index ${n.dropped.join(', ')}` : 'its secondary indexes'}`,
      fmtMs(n.executionMs),
      fmtMs(n.triggerMs),
      `${((100 * n.triggerMs) / n.executionMs).toFixed(0)}%`,
    ]);
  }

  return [
    formatMachine(r.machine),
    '',
    table(rows),
    '',
    'raw:',
    raw('insert', r.insertMs, 'ms'),
    raw('update', r.updateMs, 'ms'),
    `${raw('throughput', r.tps, 'tx/s')}; floor trigger [${r.floorTps.map((x) => x.toFixed(0)).join(', ')}] tx/s`,
    `  audit rows written: row trigger ${r.auditRecords.row}, pgwarden ${r.auditRecords.pgwarden}; seal calls ${r.seal.calls}`,
    '',
    table(bd),
    ...(r.diagnosticNotes ?? []).map((n) => `diagnostic ${n}`),
    '',
    'All writes run as the superuser on crm.customers (the audit triggers fire for any writer;',
    'RLS and the masking views are not involved). Ratios are medians over the no-audit median.',
  ].join('\n');
}
