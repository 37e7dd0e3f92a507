/**
 * The auditor's side of the audit log: seal, anchor, verify (recomputed here, outside the
 * database, with pgwarden's own copy of the canonical encoding, so replacing a function in the
 * database cannot fake a clean result), streaming log queries and archives.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type postgres from 'postgres';
import { PgwardenError } from '../errors.js';
import { quoteIdent } from '../sql/quote.js';

type Db = postgres.Sql | postgres.TransactionSql | postgres.ReservedSql;

/** The canonical text of a record `r` (must equal pgwarden_audit.canonical() in sql/003_audit.sql). */
export const CANONICAL_SQL = `pg_catalog.jsonb_build_object(
    'id', r.id,
    'recorded_at', pg_catalog.to_char(r.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'kind', r.kind, 'table', r.table_name, 'operation', r.operation, 'row_key', r.row_key,
    'changes', r.changes, 'person', r.person, 'actor', r.actor::text, 'authenticator', r.authenticator::text,
    'txid', r.txid::text,
    'statement_at', pg_catalog.to_char(r.statement_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'detail', r.detail)::text`;

export interface Anchor {
  seq: number;
  hash: string | null;
  records?: number;
  at?: string;
}

export interface VerifyProblem {
  kind:
    | 'edited'
    | 'missing_record'
    | 'missing_link'
    | 'not_in_chain'
    | 'tail_cut'
    | 'anchor_mismatch';
  seq?: number;
  recordId?: number;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  archived: number;
  unsealed: number;
  head: Anchor;
  problems: VerifyProblem[];
}

export function linkHash(prev: Buffer, canonical: string): Buffer {
  return createHash('sha256').update(prev).update(Buffer.from(canonical, 'utf8')).digest();
}

export async function seal(db: Db): Promise<number> {
  const [r] = await db<{ n: number }[]>`SELECT pgwarden_audit.seal() AS n`;
  return Number(r?.n ?? 0);
}

export async function anchor(db: Db): Promise<Anchor> {
  const [r] = await db<{ a: Anchor }[]>`SELECT pgwarden_audit.anchor() AS a`;
  return r?.a as Anchor;
}

export function parseAnchor(text: string): Anchor {
  const a = JSON.parse(text) as Partial<Anchor>;
  if (
    typeof a.seq !== 'number' ||
    !Number.isSafeInteger(a.seq) ||
    a.seq < 0 ||
    (a.hash !== null && typeof a.hash !== 'string')
  ) {
    throw new Error(
      'an anchor is {"seq": <number>, "hash": "<hex>"} as printed by pgwarden audit anchor',
    );
  }
  // link 0 is the empty chain (an anchor taken before the first seal): it has no hash, and every
  // later link has one
  if ((a.seq === 0) !== (a.hash === null || a.hash === undefined)) {
    throw new Error(
      a.seq === 0
        ? 'an anchor at link 0 (an empty chain) has "hash": null'
        : `an anchor at link ${a.seq} needs the hash of that link`,
    );
  }
  return { seq: a.seq, hash: a.hash ?? null };
}

/**
 * Recomputes the chain from its start and compares every link; reports every problem found,
 * in chain order (the first is the first broken link). Read-only: it does not seal.
 */
export async function verify(
  db: postgres.Sql,
  options: { anchor?: Anchor; onProgress?: (n: number) => void } = {},
): Promise<VerifyResult> {
  const problems: VerifyProblem[] = [];
  // archived partitions: their records are in files, by the time range they were recorded in
  const archivedRanges = await db<
    { lo: Date; hi: Date }[]
  >`SELECT range_from AS lo, range_to AS hi FROM pgwarden_audit.archives`;
  const isArchived = (at: Date) => archivedRanges.some((a) => at >= a.lo && at < a.hi);
  let prev: Buffer = Buffer.alloc(0);
  let expectedSeq = 1;
  let checked = 0;
  let archived = 0;
  let lastHash: string | null = null;
  let lastSeq = 0;
  const hashAt = new Map<number, string>();
  const cursor = db.unsafe(
    `SELECT c.seq, c.record_id, c.hash, c.recorded_at, r.id IS NULL AS missing, CASE WHEN r.id IS NULL THEN NULL ELSE ${CANONICAL_SQL} END AS canon
     FROM pgwarden_audit.chain c LEFT JOIN pgwarden_audit.records r ON r.id = c.record_id
     ORDER BY c.seq`,
  );
  // the async iterator waits for each batch to be handled (a callback's promise is not awaited)
  for await (const rows of cursor.cursor(2000)) {
    for (const row of rows as unknown as {
      seq: string;
      record_id: string;
      hash: string;
      recorded_at: Date;
      missing: boolean;
      canon: string | null;
    }[]) {
      const seq = Number(row.seq);
      const recordId = Number(row.record_id);
      if (seq !== expectedSeq) {
        problems.push({
          kind: 'missing_link',
          seq: expectedSeq,
          message: `chain links ${expectedSeq}..${seq - 1} are missing (deleted from pgwarden_audit.chain)`,
        });
        // continue from the stored hash so later links can still be checked
      }
      if (row.missing || row.canon === null) {
        if (isArchived(row.recorded_at)) archived += 1;
        else
          problems.push({
            kind: 'missing_record',
            seq,
            recordId,
            message: `record ${recordId} (chain link ${seq}) is missing: it was deleted`,
          });
        prev = Buffer.from(row.hash, 'hex');
      } else {
        const h = linkHash(prev, row.canon);
        if (h.toString('hex') !== row.hash) {
          problems.push({
            kind: 'edited',
            seq,
            recordId,
            message: `record ${recordId} (chain link ${seq}) does not match its hash: it was changed after it was sealed`,
          });
          prev = Buffer.from(row.hash, 'hex');
        } else prev = h;
      }
      checked += 1;
      expectedSeq = seq + 1;
      lastSeq = seq;
      lastHash = row.hash;
      if (options.anchor && seq === options.anchor.seq) hashAt.set(seq, row.hash);
      if (checked % 10000 === 0) options.onProgress?.(checked);
    }
  }
  // genuine records of transactions older than the last complete seal are all sealed: an
  // unsealed one was inserted behind pgwarden's back
  const [stats] = await db<{ unsealed: string; suspicious: { id: string }[] | null }[]>`
    WITH st AS (SELECT horizon FROM pgwarden_audit.seal_state)
    SELECT
      (SELECT count(*) FROM pgwarden_audit.records r WHERE NOT EXISTS (SELECT FROM pgwarden_audit.chain c WHERE c.record_id = r.id)) AS unsealed,
      (SELECT json_agg(json_build_object('id', r.id) ORDER BY r.id) FROM pgwarden_audit.records r, st
        WHERE st.horizon IS NOT NULL AND r.txid < st.horizon
          AND NOT EXISTS (SELECT FROM pgwarden_audit.chain c WHERE c.record_id = r.id)) AS suspicious`;
  for (const s of stats?.suspicious ?? []) {
    problems.push({
      kind: 'not_in_chain',
      recordId: Number(s.id),
      message: `record ${s.id} is not in the chain although its transaction is older than the last seal: it was inserted behind pgwarden's back`,
    });
  }
  // an anchor at link 0 was taken before anything was sealed: every chain extends it
  if (options.anchor && options.anchor.seq > 0) {
    if (lastSeq < options.anchor.seq) {
      problems.push({
        kind: 'tail_cut',
        seq: options.anchor.seq,
        message: `the chain ends at link ${lastSeq}, but the anchor says it reached link ${options.anchor.seq}: records were cut off the end`,
      });
    } else if (hashAt.get(options.anchor.seq) !== options.anchor.hash) {
      problems.push({
        kind: 'anchor_mismatch',
        seq: options.anchor.seq,
        message: `link ${options.anchor.seq} has hash ${hashAt.get(options.anchor.seq) ?? '(none)'}, the anchor says ${options.anchor.hash}: the chain was rewritten`,
      });
    }
  }
  problems.sort((a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER));
  return {
    ok: problems.length === 0,
    checked,
    archived,
    unsealed: Number(stats?.unsealed ?? 0) - (stats?.suspicious?.length ?? 0),
    head: { seq: lastSeq, hash: lastHash },
    problems,
  };
}

export interface LogFilter {
  person?: string;
  table?: string;
  row?: string;
  operation?: string;
  kind?: string;
  from?: string;
  to?: string;
}

export const LOG_COLUMNS = [
  'id',
  'recorded_at',
  'kind',
  'table_name',
  'operation',
  'row_key',
  'person',
  'actor',
  'authenticator',
  'txid',
  'changes',
  'detail',
  'chain_seq',
] as const;

/** Streams log rows (as the connected person: readers only) in id order, in batches. */
export async function streamLog(
  db: postgres.Sql | postgres.TransactionSql,
  filter: LogFilter,
  onRows: (rows: Record<string, unknown>[]) => Promise<void> | void,
): Promise<number> {
  let n = 0;
  const q = db`
    SELECT id, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS recorded_at, kind, table_name, operation,
      row_key, person, actor, authenticator, txid::text AS txid, changes, detail, chain_seq
    FROM pgwarden_audit.log
    WHERE (${filter.person ?? null}::text IS NULL OR person = ${filter.person ?? null})
      AND (${filter.table ?? null}::text IS NULL OR table_name = ${filter.table ?? null} OR table_name LIKE '%.' || ${filter.table ?? null})
      AND (${filter.row ?? null}::text IS NULL OR row_key = ${filter.row ?? null})
      AND (${filter.operation ?? null}::text IS NULL OR operation = upper(${filter.operation ?? null}))
      AND (${filter.kind ?? null}::text IS NULL OR kind = ${filter.kind ?? null})
      AND (${filter.from ?? null}::timestamptz IS NULL OR recorded_at >= ${filter.from ?? null}::timestamptz)
      AND (${filter.to ?? null}::timestamptz IS NULL OR recorded_at < ${filter.to ?? null}::timestamptz)
    ORDER BY id`;
  for await (const rows of q.cursor(2000)) {
    n += rows.length;
    await onRows(rows as unknown as Record<string, unknown>[]);
  }
  return n;
}

export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export interface ArchivedPartition {
  /** the month, as the events' partition name records_YYYY_MM */
  partition: string;
  records: number;
  file: string | null;
  sha256: string | null;
  /** the tables detached and kept: the events' and each data log's partition of the month */
  detached: string[];
}

/**
 * Archives the months before `before` (YYYY-MM; only months that are over). A month is the
 * events' partition `records_YYYY_MM` and each data log's partition of the same month (sql/018);
 * its records, read through pgwarden_audit.records, go to `<out>/records_YYYY_MM.jsonl` (a
 * header line with the previous link's hash, then one line per link, a link whose predecessor is
 * in another month carrying that hash), the file's sha256 is recorded in pgwarden_audit.archives,
 * then every partition of the month is detached and kept, still append-only.
 */
export async function archive(
  db: postgres.Sql,
  o: { before: string; out: string; dryRun: boolean },
): Promise<ArchivedPartition[]> {
  if (!/^\d{4}-\d{2}$/.test(o.before)) {
    throw new PgwardenError(
      'invalid_option',
      `--before ${o.before} is not a month`,
      'Use YYYY-MM, e.g. 2026-01.',
    );
  }
  await seal(db);
  const parts = await db<{ name: string; lo: string; hi: string }[]>`
    SELECT c.relname AS name, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1] AS lo,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1] AS hi
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'pgwarden_audit.events'::regclass AND c.relname ~ '^records_[0-9]{4}_[0-9]{2}$'
      AND c.relname < ${`records_${o.before.replace('-', '_')}`} ORDER BY c.relname`;
  const thisMonth = new Date().toISOString().slice(0, 7);
  const open = parts.filter((p) => p.name >= `records_${thisMonth.replace('-', '_')}`);
  if (open.length > 0) {
    throw new PgwardenError(
      'month_not_over',
      `${open.map((p) => p.name).join(', ')} ${open.length === 1 ? 'is' : 'are'} this month or later: only months that are over can be archived`,
      `Use --before ${thisMonth} or earlier.`,
    );
  }
  const done: ArchivedPartition[] = [];
  if (!o.dryRun && parts.length > 0) mkdirSync(o.out, { recursive: true });
  for (const part of parts) {
    // the month's records of every kind: the events and every data log, by their time
    const month = `FROM pgwarden_audit.records r JOIN pgwarden_audit.chain c ON c.record_id = r.id
       WHERE r.recorded_at >= $1::timestamptz AND r.recorded_at < $2::timestamptz`;
    const range = [part.lo, part.hi];
    const [cnt] = await db.unsafe(
      `SELECT count(*)::int AS n, count(c.seq)::int AS sealed, min(c.seq) AS first_seq, max(c.seq) AS last_seq
       FROM pgwarden_audit.records r LEFT JOIN pgwarden_audit.chain c ON c.record_id = r.id
       WHERE r.recorded_at >= $1::timestamptz AND r.recorded_at < $2::timestamptz`,
      range,
    );
    const records = Number(cnt?.n ?? 0);
    if (o.dryRun) {
      done.push({ partition: part.name, records, file: null, sha256: null, detached: [] });
      continue;
    }
    if (records !== Number(cnt?.sealed ?? 0)) {
      throw new PgwardenError(
        'unsealed_records',
        `${part.name} has ${records - Number(cnt?.sealed ?? 0)} unsealed record(s)`,
        'Run pgwarden audit seal first (records of open transactions are sealed after they end).',
      );
    }
    const file = join(o.out, `${part.name}.jsonl`);
    const hash = createHash('sha256');
    const stream = createWriteStream(file);
    const write = async (line: string) => {
      hash.update(line);
      if (!stream.write(line)) await new Promise<void>((res) => stream.once('drain', () => res()));
    };
    const first = cnt?.first_seq
      ? await db`SELECT hash FROM pgwarden_audit.chain WHERE seq = ${Number(cnt.first_seq) - 1}`
      : [];
    await write(
      `${JSON.stringify({ partition: part.name, from: part.lo, to: part.hi, records, first_seq: cnt?.first_seq, last_seq: cnt?.last_seq, prev_hash: first[0]?.hash ?? '' })}\n`,
    );
    const links = db.unsafe(
      `SELECT c.seq, c.hash, ${CANONICAL_SQL} AS canonical,
         CASE WHEN lag(c.seq) OVER (ORDER BY c.seq) IS DISTINCT FROM c.seq - 1
              THEN (SELECT p.hash FROM pgwarden_audit.chain p WHERE p.seq = c.seq - 1) END AS prev
       ${month} ORDER BY c.seq`,
      range,
    );
    // the async iterator waits for each batch to be written
    for await (const rows of links.cursor(2000)) {
      for (const r of rows) {
        const link =
          r.prev === null
            ? { seq: Number(r.seq), hash: r.hash, record: r.canonical }
            : { seq: Number(r.seq), prev: r.prev ?? '', hash: r.hash, record: r.canonical };
        await write(`${JSON.stringify(link)}\n`);
      }
    }
    await new Promise<void>((res) => stream.end(res));
    const digest = hash.digest('hex');
    // the same month's partition of each data log
    const suffix = part.name.slice('records'.length);
    const logParts = await db<{ parent: string; name: string }[]>`
      SELECT p.relname AS parent, c.relname AS name FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      JOIN pgwarden_audit.data_logs d ON d.log = p.relname
      JOIN pg_namespace n ON n.oid = p.relnamespace AND n.nspname = 'pgwarden_audit'
      WHERE c.relname = p.relname || ${suffix} ORDER BY 1`;
    const detached = [{ parent: 'events', name: part.name }, ...logParts];
    await db.begin(async (tx) => {
      await tx`INSERT INTO pgwarden_audit.archives (partition_name, range_from, range_to, records, first_seq, last_seq, file, file_sha256)
        VALUES (${part.name}, ${part.lo}, ${part.hi}, ${records}, ${cnt?.first_seq ?? null}, ${cnt?.last_seq ?? null}, ${file}, ${digest})`;
      for (const p of detached) {
        await tx.unsafe(
          `ALTER TABLE pgwarden_audit.${quoteIdent(p.parent)} DETACH PARTITION pgwarden_audit.${quoteIdent(p.name)}`,
        );
        // a detached partition loses the parent's triggers: it stays append-only
        await tx`SELECT pgwarden_audit.protect(${p.name})`;
      }
    });
    done.push({
      partition: part.name,
      records,
      file,
      sha256: digest,
      detached: detached.map((p) => `pgwarden_audit.${p.name}`),
    });
  }
  return done;
}
