/**
 * One line of the benchmark table, shared by every bench module (bench/run.ts prints them).
 * `baseline` is the hand-written floor measured in the same run; `ratio` = pgwarden / baseline
 * for times (ms) and baseline-relative throughput for rates (tx/s, rows/s), as the target says.
 */
export interface BenchRow {
  /** group heading, e.g. 'reads', 'masking', 'writes', 'audit', 'toolchain' */
  group: string;
  /** what was measured, e.g. 'carol: count of visible customers' */
  name: string;
  unit: 'ms' | 'tx/s' | 'rows/s';
  /** median of the baseline runs; null when the case has no baseline (an absolute target) */
  baseline: number | null;
  /** median of pgwarden's runs */
  pgwarden: number;
  /** pgwarden / baseline for ms, pgwarden / baseline for rates too (higher is better there); null without baseline */
  ratio: number | null;
  /** the target as text, e.g. '<= 1.15x', '>= 0.9x', '< 2000 ms'; '' when none */
  target: string;
  /** true / false when the target is met / missed; null when there is no target */
  met: boolean | null;
  /** raw samples and anything else worth keeping in --json output */
  detail?: Record<string, unknown>;
}

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
