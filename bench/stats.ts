/** Small statistics and formatting helpers shared by the bench sections. */

export interface Summary {
  /** Samples in nanoseconds. */
  readonly n: number;
  readonly median: number;
  readonly p95: number;
  readonly min: number;
  readonly max: number;
}

/** Nearest-rank percentile of sorted samples (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  return {
    n: sorted.length,
    median: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** Nanoseconds as microseconds, 1 decimal. */
export function us(ns: number): string {
  return Number.isFinite(ns) ? (ns / 1e3).toFixed(1) : 'n/a';
}

/** Nanoseconds as milliseconds, 2 decimals. */
export function ms(ns: number): string {
  return Number.isFinite(ns) ? (ns / 1e6).toFixed(2) : 'n/a';
}

/** `theirs / ours` as "12.3x". */
export function ratio(theirs: number, ours: number): string {
  return Number.isFinite(theirs / ours) ? `${(theirs / ours).toFixed(1)}x` : 'n/a';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
