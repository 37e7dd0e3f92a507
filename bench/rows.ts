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

/**
 * Drops a run's databases and roles when the bench is interrupted (SIGINT, SIGTERM). The first
 * signal starts `cleanup` and exits (130) when it is done; a second one (a second Ctrl-C, or
 * `npm run` passing on the signal its process group also got) is ignored, with a line saying so;
 * a third exits at once and says what is left to drop. Returns the function that removes the
 * handlers, for the end of a run that cleaned up itself.
 */
export function cleanupOnSignal(
  what: string,
  leftBehind: string,
  cleanup: () => Promise<void>,
  log: (line: string) => void,
): () => void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals === 1) {
      log(`${sig}: cleaning up ${what} ...`);
      cleanup()
        .catch((e: unknown) => log(`cleanup failed: ${String(e)}; left behind: ${leftBehind}`))
        .finally(() => process.exit(130));
    } else if (signals === 2) {
      log(`${sig}: still cleaning up ${what}; a third signal stops now and leaves it behind`);
    } else {
      log(`${sig}: stopped; left behind: ${leftBehind}`);
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}
