/**
 * Exponential back-off with jitter.
 *
 * @example
 * backoffDelay(3, { initialMs: 500, factor: 2, maxMs: 30_000, jitter: 0.5 }, Math.random) // 1000..2000 ms
 */
export interface BackoffOptions {
  /** Delay before the first retry. Default 500 ms. */
  readonly initialMs?: number;
  /** Growth per retry. Default 2. */
  readonly factor?: number;
  /** Upper bound of one delay. Default 30 s. */
  readonly maxMs?: number;
  /** Fraction of the delay that is randomised (0 = none, 1 = full jitter). Default 0.5. */
  readonly jitter?: number;
}

/** The delay before retry number `retry` (1-based): `min(max, initial·factor^(retry−1))`, minus up to `jitter` of it. */
export function backoffDelay(retry: number, opts: BackoffOptions, random: () => number): number {
  const initial = opts.initialMs ?? 500;
  const factor = opts.factor ?? 2;
  const max = opts.maxMs ?? 30_000;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, retry - 1)));
  return Math.round(base * (1 - jitter * random()));
}

/**
 * Parses a `Retry-After` header (delay-seconds or an HTTP date) into milliseconds from `now`.
 * Returns undefined when absent or unparsable.
 */
export function parseRetryAfter(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
