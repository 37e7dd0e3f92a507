/**
 * `pgwarden review`: an access review of the live database. Per person: jobs, managed units,
 * shares and temporary grants with their windows; the rows and the column levels they reach per
 * table, counted by reading each exposed view AS THAT PERSON (in a rolled-back transaction, with
 * the read caps lifted so a count is never refused) and comparing each cell with the stored
 * value; and findings for the auditor.
 *
 * readReview (database) is separate from the renderers (pure): reviewText, reviewCsv,
 * reviewHtml. Every value in the HTML is escaped.
 */
import type postgres from 'postgres';
import type { Model, TableModel } from '../model/types.js';
import { ident, join, qualified, sql } from '../sql/fragment.js';
import { csvCell } from './audit.js';
import { liftReadCaps, rolledBack } from './explain.js';

type Db = postgres.Sql;

export type WindowState = 'active' | 'expired' | 'revoked' | 'future';

export interface Held {
  id: number;
  what: string;
  from: string;
  until: string | null;
  state: WindowState;
  grantedBy: string;
  detail?: Record<string, unknown>;
}

export interface ColumnAccess {
  column: string;
  full: number;
  masked: number;
  hidden: number;
  /** rows whose stored value is NULL (no level can be told) */
  empty: number;
}

export interface TableAccess {
  table: string;
  total: number;
  rows: number;
  /** columns with cell rules; every other column is shown in full on each visible row */
  columns: ColumnAccess[];
  /** the count could not be made (the message) */
  error?: string;
}

export interface PersonReview {
  name: string;
  role: string;
  unit: string;
  active: boolean;
  deactivatedAt: string | null;
  canLogin: boolean;
  /** the authenticator can still act as this person */
  authenticatorMember: boolean;
  jobs: (Held & { privileged: boolean; admin: boolean })[];
  manages: Held[];
  shares: Held[];
  grants: Held[];
  /** attribute assignments (directly, or through a team: detail.team) */
  assignments: Held[];
  /** project team memberships (until the membership or the team ends); detail.grants: the team's scopes */
  teams: Held[];
  tables: TableAccess[];
}

export type Severity = 'high' | 'medium' | 'low' | 'info';

export interface Finding {
  severity: Severity;
  code:
    | 'inactive_holds'
    | 'grant_expiring'
    | 'expired_still_recorded'
    | 'privileged_job'
    | 'old_share'
    | 'whole_table_rule'
    | 'count_failed';
  person?: string;
  table?: string;
  message: string;
}

export interface Review {
  at: string;
  database: string;
  model: string;
  options: { soonDays: number; shareAgeDays: number };
  tables: { name: string; total: number; cellColumns: string[]; otherColumns: string[] }[];
  people: PersonReview[];
  findings: Finding[];
}

export interface ReviewOptions {
  /** a grant ending within this many days is "expiring soon" (default 7) */
  soonDays?: number;
  /** a share in force longer than this many days is old (default 90) */
  shareAgeDays?: number;
  /** only these people (names) */
  people?: readonly string[];
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function state(from: Date, until: Date | null, revoked: Date | null, now: Date): WindowState {
  if (revoked) return 'revoked';
  if (from > now) return 'future';
  if (until && until <= now) return 'expired';
  return 'active';
}

interface Window {
  id: string;
  person: string;
  valid_from: Date;
  valid_until: Date | null;
  revoked_at: Date | null;
  granted_by: string;
}

/** Reads everything the review needs; `db` is a superuser connection. Changes nothing. */
export async function readReview(db: Db, model: Model, o: ReviewOptions = {}): Promise<Review> {
  const soonDays = o.soonDays ?? 7;
  const shareAgeDays = o.shareAgeDays ?? 90;
  const [meta] = await db<{ now: Date; db: string; auth: string | null }[]>`
    SELECT statement_timestamp() AS now, current_database() AS db,
      (SELECT value FROM pgwarden.settings WHERE key = 'authenticator') AS auth`;
  const now = meta?.now ?? new Date();
  const people = await db<
    {
      name: string;
      role: string;
      unit: string;
      active: boolean;
      deactivated_at: Date | null;
      can_login: boolean | null;
      member: boolean | null;
    }[]
  >`SELECT p.name, p.role::text AS role, p.unit, p.active, p.deactivated_at, r.rolcanlogin AS can_login,
      CASE WHEN r.oid IS NULL OR ${meta?.auth ?? null}::text IS NULL OR to_regrole(${meta?.auth ?? null}) IS NULL THEN false
           ELSE pg_has_role(${meta?.auth ?? ''}::text::name, r.oid, 'MEMBER') END AS member
    FROM pgwarden.people p LEFT JOIN pg_roles r ON r.rolname = p.role
    ORDER BY p.name`;
  const jobs = await db<(Window & { job: string })[]>`
    SELECT id, person, job, valid_from, valid_until, revoked_at, granted_by::text AS granted_by FROM pgwarden.job_grants ORDER BY person, job, id`;
  const jobDefs = await db<{ name: string; privileged: boolean; admin: boolean }[]>`
    SELECT name, privileged, admin FROM pgwarden.jobs`;
  const manages = await db<(Window & { unit: string })[]>`
    SELECT id, person, unit, valid_from, valid_until, revoked_at, granted_by::text AS granted_by FROM pgwarden.unit_managers ORDER BY person, unit, id`;
  const shares = await db<(Window & { table_name: string; row_key: string })[]>`
    SELECT id, person, table_name, row_key, valid_from, valid_until, revoked_at, granted_by::text AS granted_by FROM pgwarden.shares ORDER BY person, id`;
  const grants = await db<
    (Window & { table_name: string; label: string | null; access: string; filter: unknown })[]
  >`SELECT id, person, table_name, label, access, filter, valid_from, valid_until, revoked_at, granted_by::text AS granted_by FROM pgwarden.temp_grants ORDER BY person, id`;

  const assignments = await db<
    (Window & { attribute: string; value: string; team: string | null })[]
  >`SELECT a.id, COALESCE(a.person, m.person) AS person, a.attribute, a.value, a.team,
      GREATEST(a.valid_from, COALESCE(m.valid_from, a.valid_from)) AS valid_from,
      NULLIF(LEAST(COALESCE(a.valid_until, 'infinity'), COALESCE(m.valid_until, 'infinity'), COALESCE(t.ends_at, 'infinity')), 'infinity') AS valid_until,
      COALESCE(a.revoked_at, m.revoked_at) AS revoked_at, a.granted_by::text AS granted_by
    FROM pgwarden.assignments a
    LEFT JOIN pgwarden.team_members m ON m.team = a.team
    LEFT JOIN pgwarden.teams t ON t.name = a.team
    WHERE a.person IS NOT NULL OR m.person IS NOT NULL
    ORDER BY 2, a.attribute, a.value, a.id`;
  const teams = await db<(Window & { team: string; grants: unknown })[]>`
    SELECT m.id, m.person, m.team, m.valid_from,
      NULLIF(LEAST(COALESCE(m.valid_until, 'infinity'), t.ends_at), 'infinity') AS valid_until,
      m.revoked_at, m.added_by::text AS granted_by,
      COALESCE((SELECT jsonb_agg(jsonb_build_object('table', g.table_name, 'access', g.access, 'filter', g.filter) ORDER BY g.id)
                FROM pgwarden.team_grants g WHERE g.team = m.team AND g.revoked_at IS NULL), '[]') AS grants
    FROM pgwarden.team_members m JOIN pgwarden.teams t ON t.name = m.team
    ORDER BY m.person, m.team, m.id`;
  const held = (w: Window, what: string, detail?: Record<string, unknown>): Held => ({
    id: Number(w.id),
    what,
    from: w.valid_from.toISOString(),
    until: iso(w.valid_until),
    state: state(w.valid_from, w.valid_until, w.revoked_at, now),
    grantedBy: w.granted_by,
    ...(detail ? { detail } : {}),
  });

  // base values of the cell columns, per table (superuser)
  const tables = model.tables;
  const base = new Map<string, Map<string, Record<string, string | null>>>();
  for (const t of tables) {
    const cols = cellColumns(t);
    const rows = await db.unsafe(selectText(t, qualified(model.schemas.protected, t.table), cols));
    base.set(
      t.name,
      new Map(
        (rows as unknown as Record<string, string | null>[]).map((r) => [String(r.pgw_key), r]),
      ),
    );
  }

  const selected = o.people ? people.filter((p) => o.people?.includes(p.name)) : people;
  const reviews: PersonReview[] = [];
  for (const p of selected) {
    const access: TableAccess[] = [];
    for (const t of tables) {
      const b = base.get(t.name) ?? new Map();
      const cols = cellColumns(t);
      const ta: TableAccess = {
        table: t.name,
        total: b.size,
        rows: 0,
        columns: cols.map((c) => ({ column: c, full: 0, masked: 0, hidden: 0, empty: 0 })),
      };
      try {
        const seen = await rolledBack(db, async (tx) => {
          await liftReadCaps(tx);
          await tx`SELECT pg_catalog.set_config('role', ${p.role}, true)`;
          return (await tx.unsafe(
            selectText(t, qualified(model.schemas.exposed, t.name), cols),
          )) as unknown as Record<string, string | null>[];
        });
        ta.rows = seen.length;
        for (const r of seen) {
          const stored = b.get(String(r.pgw_key));
          for (const ca of ta.columns) {
            const v = stored?.[ca.column] ?? null;
            const shown = r[ca.column] ?? null;
            if (v === null) ca.empty += 1;
            else if (shown === null) ca.hidden += 1;
            else if (shown === v) ca.full += 1;
            else ca.masked += 1;
          }
        }
      } catch (e) {
        ta.error = (e as Error).message;
      }
      access.push(ta);
    }
    const mine = <T extends Window>(xs: readonly T[]) => xs.filter((x) => x.person === p.name);
    reviews.push({
      name: p.name,
      role: p.role,
      unit: p.unit,
      active: p.active,
      deactivatedAt: iso(p.deactivated_at),
      canLogin: p.can_login === true,
      authenticatorMember: p.member === true,
      jobs: mine(jobs).map((j) => {
        const def = jobDefs.find((d) => d.name === j.job);
        return {
          ...held(j, j.job),
          privileged: def?.privileged === true,
          admin: def?.admin === true,
        };
      }),
      manages: mine(manages).map((m) => held(m, m.unit)),
      shares: mine(shares).map((s) => held(s, `${s.table_name} ${s.row_key}`)),
      grants: mine(grants).map((g) =>
        held(g, `${g.label ? `"${g.label}" ` : ''}${g.table_name} ${g.access}`, {
          table: g.table_name,
          access: g.access,
          filter: g.filter,
          label: g.label,
        }),
      ),
      assignments: mine(assignments).map((a) =>
        held(a, `${a.attribute} = ${a.value}${a.team ? ` (team ${a.team})` : ''}`, {
          attribute: a.attribute,
          value: a.value,
          team: a.team,
        }),
      ),
      teams: mine(teams).map((m) => held(m, `team ${m.team}`, { team: m.team, grants: m.grants })),
      tables: access,
    });
  }
  const review: Review = {
    at: now.toISOString(),
    database: meta?.db ?? '',
    model: model.name,
    options: { soonDays, shareAgeDays },
    tables: tables.map((t) => ({
      name: t.name,
      total: base.get(t.name)?.size ?? 0,
      cellColumns: cellColumns(t),
      otherColumns: t.columns.map((c) => c.name).filter((c) => !cellColumns(t).includes(c)),
    })),
    people: reviews,
    findings: [],
  };
  review.findings = findings(review, model, now);
  return review;
}

function cellColumns(t: TableModel): string[] {
  return t.cells.map((c) => c.column);
}

function selectText(t: TableModel, from: ReturnType<typeof qualified>, cols: readonly string[]) {
  const parts = [
    sql`${ident(t.key)}::text AS "pgw_key"`,
    ...cols.map((c) => sql`${ident(c)}::text AS ${ident(c)}`),
  ];
  return sql`SELECT ${join(parts, ', ')} FROM ${from}`.text;
}

const DAY = 86_400_000;

/** The findings (pure over the review and the model). */
export function findings(r: Review, model: Model, now: Date): Finding[] {
  const out: Finding[] = [];
  const soon = now.getTime() + r.options.soonDays * DAY;
  for (const p of r.people) {
    const holding = [
      ...p.jobs.filter((x) => x.state === 'active').map((x) => `job ${x.what}`),
      ...p.manages.filter((x) => x.state === 'active').map((x) => `management of ${x.what}`),
      ...p.shares
        .filter((x) => x.state === 'active')
        .map((x) => `a share of ${x.what} ${x.until ? `until ${x.until}` : 'with no end'}`),
      ...p.grants
        .filter((x) => x.state === 'active')
        .map((x) => `temporary grant ${x.what} until ${x.until}`),
      ...(p.assignments ?? [])
        .filter((x) => x.state === 'active')
        .map((x) => `assignment ${x.what} ${x.until ? `until ${x.until}` : 'with no end'}`),
      ...(p.teams ?? [])
        .filter((x) => x.state === 'active')
        .map((x) => `membership of ${x.what} until ${x.until}`),
    ];
    if (!p.active) {
      const extra = [
        ...(p.canLogin ? ['a role that can log in'] : []),
        ...(p.authenticatorMember ? ['the authenticator can still act as them'] : []),
      ];
      const owned = p.tables.reduce((n, t) => n + t.rows, 0);
      if (owned > 0) extra.push(`${owned} visible row(s)`);
      if (holding.length + extra.length > 0) {
        out.push({
          severity: 'high',
          code: 'inactive_holds',
          person: p.name,
          message: `${p.name} is ${p.deactivatedAt ? `offboarded (inactive since ${p.deactivatedAt})` : 'inactive'} but still holds ${[...holding, ...extra].join(', ')}`,
        });
      }
    }
    const timed = [
      ...p.jobs.map((x) => ({ ...x, kind: 'job' })),
      ...p.manages.map((x) => ({ ...x, kind: 'management of' })),
      ...p.shares.map((x) => ({ ...x, kind: 'share of' })),
      ...p.grants.map((x) => ({ ...x, kind: 'temporary grant' })),
      ...(p.assignments ?? []).map((x) => ({ ...x, kind: 'assignment' })),
      ...(p.teams ?? []).map((x) => ({ ...x, kind: 'membership of' })),
    ];
    for (const x of timed) {
      if (x.state === 'active' && x.until && new Date(x.until).getTime() <= soon) {
        out.push({
          severity: 'low',
          code: 'grant_expiring',
          person: p.name,
          message: `${p.name}'s ${x.kind} ${x.what} (#${x.id}) ends at ${x.until}, within ${r.options.soonDays} days`,
        });
      }
      if (x.state === 'expired' || x.state === 'revoked') {
        out.push({
          severity: 'info',
          code: 'expired_still_recorded',
          person: p.name,
          message: `${p.name}'s ${x.kind} ${x.what} (#${x.id}) ${x.state === 'expired' ? `expired at ${x.until}` : 'was revoked'} but is still recorded (pgwarden sweep removes it)`,
        });
      }
    }
    for (const j of p.jobs.filter((x) => x.state === 'active' && (x.privileged || x.admin))) {
      out.push({
        severity: 'medium',
        code: 'privileged_job',
        person: p.name,
        message: `${p.name} holds the ${j.admin ? 'admin' : 'privileged'} job ${j.what}${j.until ? ` until ${j.until}` : ' with no end'} (granted by ${j.grantedBy})`,
      });
    }
    for (const s of p.shares.filter((x) => x.state === 'active')) {
      const age = (now.getTime() - new Date(s.from).getTime()) / DAY;
      if (age > r.options.shareAgeDays) {
        out.push({
          severity: 'low',
          code: 'old_share',
          person: p.name,
          message: `${p.name} has held a share of ${s.what} for ${Math.floor(age)} days (since ${s.from}, more than ${r.options.shareAgeDays})`,
        });
      }
    }
    for (const t of p.tables.filter((x) => x.error)) {
      out.push({
        severity: 'medium',
        code: 'count_failed',
        person: p.name,
        table: t.table,
        message: `the rows of ${t.table} could not be counted as ${p.name}: ${t.error}`,
      });
    }
  }
  for (const t of model.tables) {
    t.rules.forEach((rule, i) => {
      if (!rule.scopes.some((s) => s.kind === 'all')) return;
      const whole = t.columns.length;
      out.push({
        severity: 'medium',
        code: 'whole_table_rule',
        table: t.name,
        message: `rule ${i + 1} of ${t.name} gives ${rule.jobs.join(', ')} the whole table (scope all) for ${rule.commands.join(', ')}, ${whole} column(s): more than a least-privilege scope`,
      });
    });
  }
  const order: Record<Severity, number> = { high: 0, medium: 1, low: 2, info: 3 };
  return out.sort((a, b) => order[a.severity] - order[b.severity]);
}

// ------------------------------------------------------------------ renderers (pure)

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function columnSummary(c: ColumnAccess): string {
  const parts: string[] = [];
  if (c.full) parts.push(`${c.full}F`);
  if (c.masked) parts.push(`${c.masked}M`);
  if (c.hidden) parts.push(`${c.hidden}H`);
  return parts.join('/') || '-';
}

export function reviewText(r: Review): string {
  const out: string[] = [];
  out.push(`Access review of ${r.database} (model ${r.model}) at ${r.at}`);
  out.push('');
  const header = ['person', 'unit', 'jobs', ...r.tables.map((t) => `${t.name} (${t.total})`)];
  const rows = r.people.map((p) => [
    p.active ? p.name : `${p.name} (inactive)`,
    p.unit,
    p.jobs
      .filter((j) => j.state === 'active')
      .map((j) => j.what)
      .join(',') || '-',
    ...p.tables.map((t) => (t.error ? 'error' : String(t.rows))),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((x) => (x[i] ?? '').length)));
  out.push(header.map((h, i) => pad(h, widths[i] ?? 0)).join('  '));
  for (const x of rows) out.push(x.map((v, i) => pad(v, widths[i] ?? 0)).join('  '));
  out.push('');
  out.push('Columns (F full, M masked, H hidden; rows per level):');
  for (const p of r.people) {
    const parts = p.tables
      .filter((t) => t.rows > 0 && t.columns.length > 0)
      .map(
        (t) => `${t.table}: ${t.columns.map((c) => `${c.column} ${columnSummary(c)}`).join(', ')}`,
      );
    if (parts.length) out.push(`  ${pad(p.name, 8)} ${parts.join('; ')}`);
  }
  out.push('');
  out.push('Held (shares, temporary grants, management; with their end):');
  for (const p of r.people) {
    const items = [
      ...p.manages.map(
        (m) => `manages ${m.what} ${m.until ? `until ${m.until}` : ''} [${m.state}]`,
      ),
      ...p.shares.map(
        (s) => `share ${s.what} ${s.until ? `until ${s.until}` : 'no end'} [${s.state}]`,
      ),
      ...p.grants.map(
        (g) =>
          `grant ${g.what} ${JSON.stringify((g.detail as { filter?: unknown })?.filter ?? {})} until ${g.until} [${g.state}]`,
      ),
      ...(p.assignments ?? []).map(
        (a) => `assigned ${a.what} ${a.until ? `until ${a.until}` : 'no end'} [${a.state}]`,
      ),
      ...(p.teams ?? []).map(
        (m) =>
          `member of ${m.what} ${JSON.stringify((m.detail as { grants?: unknown })?.grants ?? [])} until ${m.until} [${m.state}]`,
      ),
    ];
    for (const i of items) out.push(`  ${pad(p.name, 8)} ${i.replace(/\s+\[/, ' [')}`);
  }
  out.push('');
  out.push(`Findings (${r.findings.length}):`);
  for (const f of r.findings)
    out.push(`  ${pad(f.severity.toUpperCase(), 6)} ${pad(f.code, 22)} ${f.message}`);
  return `${out.join('\n')}\n`;
}

export const REVIEW_CSV_COLUMNS = [
  'kind',
  'person',
  'unit',
  'active',
  'table',
  'rows',
  'total',
  'column',
  'full',
  'masked',
  'hidden',
  'severity',
  'code',
  'message',
] as const;

export function reviewCsv(r: Review): string {
  const lines = [REVIEW_CSV_COLUMNS.join(',')];
  const row = (o: Partial<Record<(typeof REVIEW_CSV_COLUMNS)[number], unknown>>) =>
    lines.push(REVIEW_CSV_COLUMNS.map((k) => csvCell(o[k])).join(','));
  for (const p of r.people) {
    for (const t of p.tables) {
      row({
        kind: 'rows',
        person: p.name,
        unit: p.unit,
        active: p.active,
        table: t.table,
        rows: t.rows,
        total: t.total,
      });
      for (const c of t.columns)
        row({
          kind: 'column',
          person: p.name,
          unit: p.unit,
          active: p.active,
          table: t.table,
          rows: t.rows,
          total: t.total,
          column: c.column,
          full: c.full,
          masked: c.masked,
          hidden: c.hidden,
        });
    }
    for (const h of [
      ...p.jobs,
      ...p.manages,
      ...p.shares,
      ...p.grants,
      ...(p.assignments ?? []),
      ...(p.teams ?? []),
    ])
      row({
        kind: 'held',
        person: p.name,
        unit: p.unit,
        active: p.active,
        column: h.what,
        message: `${h.state}${h.until ? ` until ${h.until}` : ''}`,
      });
  }
  for (const f of r.findings)
    row({
      kind: 'finding',
      person: f.person,
      table: f.table,
      severity: f.severity,
      code: f.code,
      message: f.message,
    });
  return `${lines.join('\n')}\n`;
}

/** Escapes text for HTML content and attribute values. */
export function esc(v: unknown): string {
  return String(v ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Heat: 0 (nothing reachable) .. 1 (every row in full). */
function heat(full: number, masked: number, total: number): number {
  return total === 0 ? 0 : Math.min(1, (full + masked * 0.4) / total);
}

function heatStyle(h: number): string {
  // white -> amber -> red
  const light = Math.round(97 - h * 45);
  const hue = Math.round(45 - h * 45);
  return `background:hsl(${hue},85%,${light}%)`;
}

export const HTML_STYLE = `
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.meta{color:#5a6270;margin-bottom:16px}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #d5d9e0;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#f2f4f8;font-weight:600}
table.matrix td.cell{text-align:center;min-width:54px;font-variant-numeric:tabular-nums}
table.matrix th.tbl{text-align:center;background:#e4e8f0}
table.matrix td.cell small{display:block;color:#3b3f48;font-size:11px}
.inactive{color:#9a3a3a}
.sev-high{color:#fff;background:#b42318}.sev-medium{background:#f79009;color:#fff}.sev-low{background:#fde68a}.sev-info{background:#e5e7eb}
.sev{padding:1px 6px;border-radius:3px;font-size:12px;font-weight:600}
.legend span{display:inline-block;padding:2px 8px;margin-right:4px;border:1px solid #ccd}
.ok{color:#067647;font-weight:600}.bad{color:#b42318;font-weight:600}
`;

/**
 * The HTML access matrix: people x tables x column levels, as a heat map (the darker, the more
 * of the table the person reaches in full).
 */
export function matrixHtml(r: Review): string {
  const head1 = r.tables
    .map(
      (t) =>
        `<th class="tbl" colspan="${1 + t.cellColumns.length}">${esc(t.name)} <small>(${esc(t.total)} rows)</small></th>`,
    )
    .join('');
  const head2 = r.tables
    .map(
      (t) =>
        `<th title="rows the person sees">rows</th>${t.cellColumns.map((c) => `<th>${esc(c)}</th>`).join('')}`,
    )
    .join('');
  const body = r.people
    .map((p) => {
      const cells = p.tables
        .map((t) => {
          const rowsCell = `<td class="cell" data-person="${esc(p.name)}" data-table="${esc(t.table)}" data-column="" data-rows="${esc(t.rows)}" style="${heatStyle(heat(t.rows, 0, t.total))}" title="${esc(`${p.name}: ${t.rows} of ${t.total} rows of ${t.table}${t.error ? ` (error: ${t.error})` : ''}`)}">${t.error ? '!' : esc(t.rows)}</td>`;
          const cols = t.columns
            .map((c) => {
              const parts = [
                c.full ? `${c.full} full` : '',
                c.masked ? `${c.masked} masked` : '',
                c.hidden ? `${c.hidden} hidden` : '',
              ].filter(Boolean);
              return `<td class="cell" data-person="${esc(p.name)}" data-table="${esc(t.table)}" data-column="${esc(c.column)}" data-full="${esc(c.full)}" data-masked="${esc(c.masked)}" data-hidden="${esc(c.hidden)}" style="${heatStyle(heat(c.full, c.masked, t.total))}" title="${esc(`${p.name} / ${t.table}.${c.column}: ${parts.join(', ') || 'no rows'}`)}">${c.full ? esc(c.full) : '·'}<small>${c.masked ? `${esc(c.masked)}m ` : ''}${c.hidden ? `${esc(c.hidden)}h` : ''}</small></td>`;
            })
            .join('');
          return rowsCell + cols;
        })
        .join('');
      const jobs = p.jobs
        .filter((j) => j.state === 'active')
        .map((j) => j.what)
        .join(', ');
      return `<tr><th class="${p.active ? '' : 'inactive'}">${esc(p.name)}${p.active ? '' : ' (inactive)'}<br><small>${esc(p.unit)} · ${esc(jobs || 'no job')}</small></th>${cells}</tr>`;
    })
    .join('\n');
  return `<table class="matrix" id="access-matrix"><thead><tr><th rowspan="2">person</th>${head1}</tr><tr>${head2}</tr></thead><tbody>
${body}
</tbody></table>
<p class="legend"><span style="${heatStyle(0)}">nothing</span><span style="${heatStyle(0.4)}">some / masked</span><span style="${heatStyle(1)}">every row in full</span> Numbers: rows in full; <small>m</small> masked, <small>h</small> hidden (NULL). Columns not shown are in full on every visible row.</p>`;
}

export function findingsHtml(fs: readonly Finding[]): string {
  if (fs.length === 0) return '<p class="ok">No findings.</p>';
  return `<table id="findings"><thead><tr><th>severity</th><th>finding</th><th>person</th><th>message</th></tr></thead><tbody>${fs
    .map(
      (f) =>
        `<tr class="finding"><td><span class="sev sev-${esc(f.severity)}">${esc(f.severity)}</span></td><td>${esc(f.code)}</td><td>${esc(f.person ?? f.table ?? '')}</td><td>${esc(f.message)}</td></tr>`,
    )
    .join('\n')}</tbody></table>`;
}

export function heldHtml(r: Review): string {
  const rows = r.people.flatMap((p) =>
    [
      ...p.jobs.map((h) => ['job', h] as const),
      ...p.manages.map((h) => ['manages', h] as const),
      ...p.shares.map((h) => ['share', h] as const),
      ...p.grants.map((h) => ['temporary grant', h] as const),
      ...(p.assignments ?? []).map((h) => ['assignment', h] as const),
      ...(p.teams ?? []).map((h) => ['team', h] as const),
    ].map(
      ([kind, h]) =>
        `<tr><td>${esc(p.name)}</td><td>${esc(kind)}</td><td>${esc(h.what)}${h.detail && 'filter' in h.detail ? ` <small>${esc(JSON.stringify(h.detail.filter))}</small>` : ''}</td><td>${esc(h.from)}</td><td>${esc(h.until ?? 'no end')}</td><td>${esc(h.state)}</td><td>${esc(h.grantedBy)}</td></tr>`,
    ),
  );
  return `<table id="held"><thead><tr><th>person</th><th>kind</th><th>what</th><th>from</th><th>until</th><th>state</th><th>granted by</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/**
 * A small inline script: marks the document as rendered (data-rendered="ok" and the number of
 * matrix cells) so a headless browser test can tell that it ran without errors.
 */
export const RENDER_CHECK_SCRIPT = `<script>
(function(){var errs=[];window.addEventListener('error',function(e){errs.push(String(e.message));document.documentElement.setAttribute('data-errors',errs.join(' | '));});
try{var cells=document.querySelectorAll('#access-matrix td.cell').length;document.documentElement.setAttribute('data-matrix-cells',String(cells));
document.documentElement.setAttribute('data-rendered',errs.length?'errors':'ok');}catch(e){document.documentElement.setAttribute('data-errors',String(e));}})();
</script>`;

export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title><style>${HTML_STYLE}</style></head>
<body>
${body}
${RENDER_CHECK_SCRIPT}
</body></html>
`;
}

export function reviewHtml(r: Review): string {
  return htmlPage(
    `Access review ${r.database} ${r.at}`,
    `<h1>Access review</h1>
<div class="meta">Database <b>${esc(r.database)}</b>, model <b>${esc(r.model)}</b>, at ${esc(r.at)}. Counts were made by reading each view as each person.</div>
<h2>Access matrix</h2>
${matrixHtml(r)}
<h2>Findings</h2>
${findingsHtml(r.findings)}
<h2>Jobs, management, shares and temporary grants</h2>
${heldHtml(r)}`,
  );
}
