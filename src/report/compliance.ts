/**
 * `pgwarden report`: a compliance evidence pack for a period (PIPL Art. 51 style). The
 * permission changes, applies, exports, reveals, refused attempts and alerts of the period (from
 * the audit views and pgwarden.alerts_since), a count of the data changes, the access review
 * findings at the time of the report, and the result of verifying the audit hash chain.
 *
 * readCompliance (database, a superuser connection) is separate from the renderers (pure).
 */
import type postgres from 'postgres';
import { PgwardenError } from '../errors.js';
import type { Model } from '../model/types.js';
import { csvCell, type VerifyResult, verify } from './audit.js';
import {
  esc,
  type Finding,
  findingsHtml,
  htmlPage,
  matrixHtml,
  type Review,
  type ReviewOptions,
  readReview,
} from './review.js';

export interface EvidenceRecord {
  id: number;
  at: string;
  kind: string;
  table: string | null;
  operation: string;
  rowKey: string | null;
  person: string | null;
  actor: string;
  authenticator: string;
  detail: unknown;
  changes: unknown;
  chainSeq: number | null;
}

export interface AlertRecord {
  id: number;
  at: string;
  kind: string;
  person: string | null;
  table: string | null;
  detail: unknown;
}

export const SECTIONS = ['permission_changes', 'applies', 'exports', 'reveals', 'refused'] as const;
export type Section = (typeof SECTIONS)[number];

const KIND_OF: Record<Section, string> = {
  permission_changes: 'permission',
  applies: 'apply',
  exports: 'export',
  reveals: 'reveal',
  refused: 'denied',
};

export interface Compliance {
  from: string;
  to: string;
  generatedAt: string;
  database: string;
  sections: Record<Section, EvidenceRecord[]>;
  alerts: AlertRecord[];
  dataChanges: { table: string; operation: string; count: number }[];
  review: Review;
  findings: Finding[];
  chain: VerifyResult;
}

function time(option: string, v: string): string {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new PgwardenError(
      'invalid_option',
      `${option} ${JSON.stringify(v)} is not a time`,
      'Use an ISO date or time, e.g. 2026-11-01.',
    );
  return d.toISOString();
}

export async function readCompliance(
  db: postgres.Sql,
  model: Model,
  o: { from: string; to: string } & ReviewOptions,
): Promise<Compliance> {
  const from = time('--from', o.from);
  const to = time('--to', o.to);
  if (from >= to)
    throw new PgwardenError(
      'invalid_option',
      `--from ${o.from} is not before --to ${o.to}`,
      'The period is [from, to).',
    );
  const rows = await db<
    {
      id: string;
      at: Date;
      kind: string;
      table_name: string | null;
      operation: string;
      row_key: string | null;
      person: string | null;
      actor: string;
      authenticator: string;
      detail: unknown;
      changes: unknown;
      chain_seq: string | null;
    }[]
  >`SELECT id, recorded_at AS at, kind, table_name, operation, row_key, person, actor::text AS actor, authenticator::text AS authenticator,
      detail, changes, chain_seq
    FROM pgwarden_audit.log
    WHERE kind <> 'data' AND recorded_at >= ${from}::timestamptz AND recorded_at < ${to}::timestamptz ORDER BY id`;
  const sections = Object.fromEntries(SECTIONS.map((s) => [s, [] as EvidenceRecord[]])) as Record<
    Section,
    EvidenceRecord[]
  >;
  for (const r of rows) {
    const s = SECTIONS.find((x) => KIND_OF[x] === r.kind);
    if (!s) continue;
    sections[s].push({
      id: Number(r.id),
      at: r.at.toISOString(),
      kind: r.kind,
      table: r.table_name,
      operation: r.operation,
      rowKey: r.row_key,
      person: r.person,
      actor: r.actor,
      authenticator: r.authenticator,
      detail: r.detail,
      changes: r.changes,
      chainSeq: r.chain_seq === null ? null : Number(r.chain_seq),
    });
  }
  const data = await db<{ table_name: string; operation: string; n: number }[]>`
    SELECT table_name, operation, count(*)::int AS n FROM pgwarden_audit.data_changes
    WHERE recorded_at >= ${from}::timestamptz AND recorded_at < ${to}::timestamptz
    GROUP BY 1, 2 ORDER BY 1, 2`;
  const alerts = await db<
    {
      id: string;
      at: Date;
      kind: string;
      person: string | null;
      table_name: string | null;
      detail: unknown;
    }[]
  >`SELECT id, at, kind, person, table_name, detail FROM pgwarden.alerts_since(${from}::timestamptz) WHERE at < ${to}::timestamptz ORDER BY id`;
  const [meta] = await db<
    { db: string; now: Date }[]
  >`SELECT current_database() AS db, now() AS now`;
  const review = await readReview(db, model, o);
  const chain = await verify(db);
  return {
    from,
    to,
    generatedAt: (meta?.now ?? new Date()).toISOString(),
    database: meta?.db ?? '',
    sections,
    alerts: alerts.map((a) => ({
      id: Number(a.id),
      at: a.at.toISOString(),
      kind: a.kind,
      person: a.person,
      table: a.table_name,
      detail: a.detail,
    })),
    dataChanges: data.map((d) => ({ table: d.table_name, operation: d.operation, count: d.n })),
    review,
    findings: review.findings,
    chain,
  };
}

// ------------------------------------------------------------------ renderers (pure)

const TITLES: Record<Section, string> = {
  permission_changes: 'Permission changes',
  applies: 'Model applies',
  exports: 'Exports',
  reveals: 'Reveals',
  refused: 'Refused attempts',
};

export function complianceJson(c: Compliance): string {
  return `${JSON.stringify(c, null, 2)}\n`;
}

export const COMPLIANCE_CSV_COLUMNS = [
  'section',
  'id',
  'at',
  'kind',
  'person',
  'table',
  'row_key',
  'operation',
  'actor',
  'authenticator',
  'detail',
] as const;

export function complianceCsv(c: Compliance): string {
  const lines = [COMPLIANCE_CSV_COLUMNS.join(',')];
  const add = (v: unknown[]) => lines.push(v.map(csvCell).join(','));
  add([
    'period',
    '',
    c.from,
    '',
    '',
    '',
    '',
    '',
    '',
    '',
    { to: c.to, generated_at: c.generatedAt, database: c.database },
  ]);
  for (const s of SECTIONS)
    for (const r of c.sections[s])
      add([
        s,
        r.id,
        r.at,
        r.kind,
        r.person,
        r.table,
        r.rowKey,
        r.operation,
        r.actor,
        r.authenticator,
        r.detail ?? r.changes,
      ]);
  for (const a of c.alerts)
    add(['alerts', a.id, a.at, a.kind, a.person, a.table, '', '', '', '', a.detail]);
  for (const d of c.dataChanges)
    add(['data_changes', '', '', 'data', '', d.table, '', d.operation, '', '', { count: d.count }]);
  for (const f of c.findings)
    add([
      'findings',
      '',
      c.generatedAt,
      f.code,
      f.person,
      f.table,
      '',
      f.severity,
      '',
      '',
      f.message,
    ]);
  add([
    'chain',
    '',
    c.generatedAt,
    c.chain.ok ? 'verified' : 'TAMPERED',
    '',
    '',
    '',
    '',
    '',
    '',
    {
      checked: c.chain.checked,
      head: c.chain.head,
      problems: c.chain.problems.map((p) => p.message),
    },
  ]);
  return `${lines.join('\n')}\n`;
}

/** Long details (an apply's whole plan) are cut in the HTML; JSON and CSV keep them whole. */
function short(s: string, n = 400): string {
  return s.length > n ? `${s.slice(0, n)}… (${s.length} characters; see the JSON or CSV pack)` : s;
}

function recordsTable(s: Section, rs: readonly EvidenceRecord[]): string {
  if (rs.length === 0) return '<p>None in the period.</p>';
  return `<table class="evidence" data-section="${esc(s)}"><thead><tr><th>#</th><th>time (UTC)</th><th>person / actor</th><th>table</th><th>row</th><th>operation</th><th>detail</th></tr></thead><tbody>${rs
    .map(
      (r) =>
        `<tr><td>${esc(r.id)}</td><td>${esc(r.at)}</td><td>${esc(r.person ?? r.actor)}${r.authenticator !== r.actor ? ` <small>via ${esc(r.authenticator)}</small>` : ''}</td><td>${esc(r.table ?? '')}</td><td>${esc(r.rowKey ?? '')}</td><td>${esc(r.operation)}</td><td><code>${esc(short(JSON.stringify(r.detail ?? r.changes ?? {})))}</code></td></tr>`,
    )
    .join('\n')}</tbody></table>`;
}

export function complianceHtml(c: Compliance): string {
  const chain = c.chain.ok
    ? `<p class="ok" id="chain-result">The audit hash chain verifies: ${esc(c.chain.checked)} link(s), head ${esc(c.chain.head.seq)} <code>${esc(c.chain.head.hash ?? '')}</code>${c.chain.unsealed ? `; ${esc(c.chain.unsealed)} record(s) not sealed yet` : ''}.</p>`
    : `<p class="bad" id="chain-result">The audit hash chain is BROKEN: ${esc(c.chain.problems.length)} problem(s).</p><ul>${c.chain.problems.map((p) => `<li>${esc(p.message)}</li>`).join('')}</ul>`;
  const summary = SECTIONS.map(
    (s) => `<tr><td>${esc(TITLES[s])}</td><td>${esc(c.sections[s].length)}</td></tr>`,
  ).join('');
  return htmlPage(
    `Compliance evidence ${c.database} ${c.from} - ${c.to}`,
    `<h1>Compliance evidence pack</h1>
<div class="meta">Database <b>${esc(c.database)}</b>; period <b>${esc(c.from)}</b> to <b>${esc(c.to)}</b> (end exclusive); generated ${esc(c.generatedAt)}.</div>
<h2>Audit chain</h2>
${chain}
<h2>Summary</h2>
<table id="summary"><tbody>${summary}<tr><td>Alerts</td><td>${esc(c.alerts.length)}</td></tr><tr><td>Data changes</td><td>${esc(c.dataChanges.reduce((n, d) => n + d.count, 0))}</td></tr><tr><td>Review findings (now)</td><td>${esc(c.findings.length)}</td></tr></tbody></table>
${SECTIONS.map((s) => `<h2>${esc(TITLES[s])}</h2>\n${recordsTable(s, c.sections[s])}`).join('\n')}
<h2>Alerts</h2>
${c.alerts.length ? `<table id="alerts"><thead><tr><th>#</th><th>time</th><th>kind</th><th>person</th><th>table</th><th>detail</th></tr></thead><tbody>${c.alerts.map((a) => `<tr><td>${esc(a.id)}</td><td>${esc(a.at)}</td><td>${esc(a.kind)}</td><td>${esc(a.person ?? '')}</td><td>${esc(a.table ?? '')}</td><td><code>${esc(JSON.stringify(a.detail))}</code></td></tr>`).join('\n')}</tbody></table>` : '<p>None in the period.</p>'}
<h2>Data changes</h2>
${c.dataChanges.length ? `<table id="data-changes"><thead><tr><th>table</th><th>operation</th><th>records</th></tr></thead><tbody>${c.dataChanges.map((d) => `<tr><td>${esc(d.table)}</td><td>${esc(d.operation)}</td><td>${esc(d.count)}</td></tr>`).join('')}</tbody></table>` : '<p>None in the period.</p>'}
<h2>Access review at the time of this report</h2>
${findingsHtml(c.findings)}
${matrixHtml(c.review)}`,
  );
}
