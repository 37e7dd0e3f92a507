/**
 * Model lints: risky but valid. Everything invalid is already a problem of src/model/validate.ts
 * (the model would not load); these are what a valid model can still get wrong.
 */
import { formatPath } from '../model/problems.js';
import { ANY_JOB, type CellWhen, type Model, type TableModel } from '../model/types.js';
import { type Finding, finding } from './rules.js';

const where = (...path: (string | number)[]) => `model ${formatPath(path)}`;

/** A constant-true expression as people write it or as the server prints it. */
export function alwaysTrue(expr: string | null): boolean {
  if (expr === null) return false;
  let e = expr.trim().toLowerCase().replace(/\s+/g, ' ');
  for (;;) {
    const inner = stripParens(e);
    if (inner === e) break;
    e = inner;
  }
  e = e.replace(/::bool(ean)?$/, '');
  e = stripParens(e);
  if (e === 'true' || e === "'t'" || e === "'true'" || e === 'not false') return true;
  // 1 = 1, 'a' = 'a', (1)::integer = 1: the same constant on both sides
  const m = /^(.+?) = (.+)$/.exec(e);
  if (m) {
    const side = (s: string) => stripParens(s.trim()).replace(/::[a-z ]+$/, '');
    const a = side(m[1] as string);
    const b = side(m[2] as string);
    if (a === b && /^(-?\d+(\.\d+)?|'[^']*'|true|false)$/.test(a)) return true;
  }
  return false;
}

/** `(x)` -> `x` when the outer parentheses enclose the whole text. */
function stripParens(e: string): string {
  if (!e.startsWith('(') || !e.endsWith(')')) return e;
  let depth = 0;
  for (let i = 0; i < e.length; i++) {
    if (e[i] === '(') depth++;
    else if (e[i] === ')') {
      depth--;
      if (depth === 0 && i < e.length - 1) return e;
    }
  }
  return e.slice(1, -1).trim();
}

function jobsNamedBy(whens: readonly CellWhen[]): string[] {
  return whens.flatMap((w) => (w.kind === 'job' ? [w.job] : []));
}

function jobsUsed(model: Model): Set<string> {
  const used = new Set<string>([...model.approvers, ...model.auditReaders]);
  for (const j of model.jobs) if (j.admin) used.add(j.name);
  for (const t of model.tables) {
    for (const r of t.rules) for (const j of r.jobs) used.add(j);
    for (const c of t.cells) for (const j of jobsNamedBy(c.cases.map((x) => x.when))) used.add(j);
    for (const e of t.edits ?? []) for (const j of jobsNamedBy(e.who)) used.add(j);
    for (const e of t.reveal?.columns ?? []) for (const j of jobsNamedBy(e.who)) used.add(j);
    for (const e of t.exports) used.add(e.job);
    for (const j of t.claims?.jobs ?? []) used.add(j);
    for (const c of t.readCaps) used.add(c.job);
  }
  return used;
}

/** Columns whose cells are not full for everyone, plus the table's `sensitive` list. */
function sensitiveColumns(t: TableModel): Set<string> {
  const out = new Set<string>(t.sensitive);
  for (const c of t.cells) {
    const levels = [...c.cases.map((x) => x.level), c.otherwise];
    if (levels.some((l) => l.kind !== 'full')) out.add(c.column);
  }
  return out;
}

export function checkModel(model: Model): Finding[] {
  const out: Finding[] = [];
  const used = jobsUsed(model);
  for (const job of model.jobs) {
    if (!used.has(job.name)) {
      out.push(
        finding(
          'job_without_rules',
          where('jobs', job.name),
          `Job ${JSON.stringify(job.name)} gives nothing: no rule, cell, edit, reveal, export, claim or read cap names it, and it is not admin, an approver or an audit reader. People holding it see what any active person sees.`,
          'Add rules for the job, or remove it from jobs.',
        ),
      );
    }
    if (job.admin && !job.privileged) {
      out.push(
        finding(
          'admin_job_not_privileged',
          where('jobs', job.name),
          `Job ${JSON.stringify(job.name)} is admin but not privileged: an admin may grant it to anyone else without an approval, creating more admins.`,
          `Mark it privileged (jobs.${job.name}.privileged: true) so that a grant needs an approver, or accept that admins appoint admins.`,
        ),
      );
    }
  }
  for (const t of model.tables) {
    for (const [i, r] of t.rules.entries()) {
      if (r.jobs.includes(ANY_JOB) && r.scopes.some((s) => s.kind === 'all')) {
        out.push(
          finding(
            'rule_any_job_all_rows',
            where('tables', t.name, 'rules', i),
            `Every active person may ${r.commands.join(', ')} every row of ${t.name} (jobs: ["*"], scope all).`,
            'Name the jobs that need all rows, or narrow the scope.',
          ),
        );
      }
      for (const [si, s] of r.scopes.entries()) {
        if (s.kind === 'filter' && alwaysTrue(s.sql)) {
          out.push(
            finding(
              'filter_always_true',
              where('tables', t.name, 'rules', i, 'scopes', si, 'filter'),
              `The filter ${JSON.stringify(s.sql)} is always true: the rule reaches every row of ${t.name}.`,
              'Write the condition the rule means, or use the scope `all` to say so explicitly.',
            ),
          );
        }
      }
    }
    const sensitive = sensitiveColumns(t);
    for (const e of t.exports) {
      const cols = e.columns.filter((c) => sensitive.has(c) && !e.approvalColumns.includes(c));
      if (cols.length > 0) {
        out.push(
          finding(
            'export_sensitive_without_approval',
            where('tables', t.name, 'exports', e.job),
            `Job ${JSON.stringify(e.job)} may export the sensitive column${cols.length === 1 ? '' : 's'} ${cols.join(', ')} of ${t.name} without an approved request (up to ${e.perDay} rows a day).`,
            `Add ${cols.length === 1 ? 'it' : 'them'} to exports.${e.job}.approval.columns, or remove ${cols.length === 1 ? 'it' : 'them'} from the exportable columns.`,
          ),
        );
      }
    }
    if (!t.recycleBin) {
      for (const [i, r] of t.rules.entries()) {
        if (r.commands.includes('delete')) {
          out.push(
            finding(
              'delete_without_recycle_bin',
              where('tables', t.name, 'rules', i),
              `Rows of ${t.name} may be deleted (jobs ${r.jobs.join(', ')}), and the table has no recycle bin: a delete cannot be undone.`,
              `Add recycleBin: { retentionDays: N } to tables.${t.name}, or remove delete from the rule's commands.`,
            ),
          );
        }
      }
    }
  }
  return out;
}
