/** Terminal output: colour only on a TTY and never with NO_COLOR. */
import { Chalk } from 'chalk';
import type { Problem } from '../src/model/problems.js';
import { formatPath } from '../src/model/problems.js';
import { type Plan, stepsNeedingPermission } from '../src/plan/index.js';

const colour =
  process.stdout.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';
export const c = new Chalk({ level: colour ? 1 : 0 });

/**
 * 0 ok; 1 error; 2 changes or findings (with --exit-code); 3 invalid model or spec;
 * 4 another apply holds the lock past --lock-timeout; 5 the plan widens access or is destructive
 * and the matching --allow-* option was not given.
 */
export const EXIT = {
  ok: 0,
  error: 1,
  changes: 2,
  invalidModel: 3,
  locked: 4,
  needsAllow: 5,
} as const;

export function printProblems(
  problems: readonly Problem[],
  out: (s: string) => void = (s) => process.stderr.write(s),
): void {
  out(c.red(`The model has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n`));
  for (const p of problems) {
    const where = p.location
      ? `${p.location.file}:${p.location.line}:${p.location.column}`
      : formatPath(p.path) || '(model)';
    out(`  ${c.bold(where)} ${c.yellow(`[${p.code}]`)} ${p.message}\n`);
    if (p.location && p.path.length) out(`    at ${formatPath(p.path)}\n`);
    out(`    ${c.dim('fix:')} ${p.fix}\n`);
  }
}

const EFFECT_LABEL = {
  widens: 'widens access',
  narrows: 'narrows access',
  neutral: 'neutral',
  destructive: 'DESTRUCTIVE',
} as const;

export function formatPlan(plan: Plan, showSql: boolean): string {
  if (plan.steps.length === 0)
    return `${c.green('No changes.')} The database matches the model (${plan.unchanged} objects).\n`;
  const order = { destructive: 0, widens: 1, narrows: 2, neutral: 3 } as const;
  const lines: string[] = [];
  const counts = { create: 0, replace: 0, drop: 0 };
  for (const s of plan.steps) counts[s.action] += 1;
  lines.push(
    c.bold(
      `Plan: ${counts.create} to create, ${counts.replace} to replace, ${counts.drop} to drop (${plan.unchanged} unchanged)`,
    ),
  );
  // what a non-interactive apply needs --allow-widen / --allow-destructive for
  const needs = stepsNeedingPermission(plan, {});
  const flagged = [...needs.destructive, ...needs.widen];
  if (flagged.length) {
    lines.push(c.red.bold('\nNeeds attention:'));
    for (const s of [...flagged].sort((a, b) => order[a.effect] - order[b.effect]))
      lines.push(`  ${c.red('!')} ${s.summary} ${c.red(`[${EFFECT_LABEL[s.effect]}]`)}`);
  }
  lines.push('');
  for (const [i, s] of plan.steps.entries()) {
    const mark =
      s.action === 'drop' ? c.red('-') : s.action === 'replace' ? c.yellow('~') : c.green('+');
    lines.push(
      `${String(i + 1).padStart(3)}. ${mark} ${s.summary} ${c.dim(`(${EFFECT_LABEL[s.effect]})`)}`,
    );
    if (showSql)
      for (const q of s.sql)
        lines.push(
          c.dim(
            q
              .split('\n')
              .map((l) => `       ${l}`)
              .join('\n'),
          ),
        );
  }
  return `${lines.join('\n')}\n`;
}

/** Rows as an aligned plain-text table (header in bold); `(none)` when empty. */
export function table(rows: readonly Record<string, unknown>[]): string {
  if (rows.length === 0) return c.dim('(none)\n');
  const cols = Object.keys(rows[0] as object);
  const cell = (v: unknown) =>
    v === null || v === undefined
      ? ''
      : v instanceof Date
        ? v.toISOString()
        : Array.isArray(v)
          ? v.join(',')
          : typeof v === 'object'
            ? JSON.stringify(v)
            : String(v);
  const widths = cols.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return `${c.bold(line(cols))}\n${rows.map((r) => line(cols.map((k) => cell(r[k])))).join('\n')}\n`;
}

/** A one-line success message on stdout. */
export const ok = (s: string) => process.stdout.write(`${c.green('ok')} ${s}\n`);
