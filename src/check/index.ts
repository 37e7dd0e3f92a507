/**
 * `pgwarden check`: lints for what is risky but valid, in the model (offline) and in the live
 * database (facts read by src/introspect/lint.ts). Pure functions returning findings; only cli/
 * turns them into output and exit codes. The rules are listed in docs/checks.md.
 */
import { cmp } from '../catalog/objects.js';
import { CHECK_RULES, type CheckCode, type Finding, isCheckCode } from './rules.js';

export { checkLive, lintTargets, scopeColumns } from './live.js';
export { alwaysTrue, checkModel } from './model.js';
export {
  CHECK_CODES,
  CHECK_RULES,
  type CheckCode,
  type Finding,
  finding,
  isCheckCode,
  type RuleInfo,
  type RuleSource,
  type Severity,
} from './rules.js';

export interface CheckResult {
  /** the findings that count, errors first */
  findings: Finding[];
  errors: number;
  warnings: number;
  /** findings left out by `ignore` */
  ignored: number;
}

/** Parses `--ignore a,b c`: returns the codes, and the words that are not codes. */
export function parseIgnore(values: readonly string[]): { codes: CheckCode[]; unknown: string[] } {
  const codes: CheckCode[] = [];
  const unknown: string[] = [];
  for (const v of values.flatMap((x) => x.split(/[\s,]+/)).filter((x) => x !== '')) {
    if (isCheckCode(v)) {
      if (!codes.includes(v)) codes.push(v);
    } else unknown.push(v);
  }
  return { codes, unknown };
}

/** Drops ignored codes and duplicates; sorts errors first, then by code and object. */
export function summarize(
  findings: readonly Finding[],
  ignore: readonly CheckCode[] = [],
): CheckResult {
  const seen = new Set<string>();
  const kept: Finding[] = [];
  let ignored = 0;
  for (const f of findings) {
    const key = `${f.code}\u0000${f.object}\u0000${f.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (ignore.includes(f.code)) ignored += 1;
    else kept.push(f);
  }
  const rank = (f: Finding) => (CHECK_RULES[f.code].severity === 'error' ? 0 : 1);
  kept.sort(
    (a, b) =>
      rank(a) - rank(b) ||
      cmp(a.code, b.code) ||
      cmp(a.object, b.object) ||
      cmp(a.message, b.message),
  );
  return {
    findings: kept,
    errors: kept.filter((f) => f.severity === 'error').length,
    warnings: kept.filter((f) => f.severity === 'warning').length,
    ignored,
  };
}
