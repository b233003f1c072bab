/**
 * Token-bucket rate limits with bounded memory. Each key (a client address, a sender, an
 * email address) has a bucket of `burst` tokens refilled at `perSecond`; the least recently
 * used keys are forgotten once `maxKeys` is reached (a forgotten key starts again with a full
 * bucket, which errs on the side of letting a request through).
 *
 * Limits are per process: with several processes each enforces its own share. That is a
 * deliberate trade (no database write per request); see DESIGN.md "caches are only caches".
 *
 * @example
 * const limiter = createRateLimiter({ perSecond: 1, burst: 5 });
 * const r = limiter.take(request.ip);
 * if (!r.ok) throw rateLimitError(r.retryAfterMs);
 */
import { MatrixError } from "@beckon/protocol";
import { systemClock, type Clock } from "./clock.js";

export interface RateLimiterOptions {
  /** Sustained rate, tokens per second (> 0). */
  perSecond: number;
  /** Bucket size: how many requests may come at once (≥ 1). */
  burst: number;
  /** Keys remembered at most (default 10 000); the least recently used go first. */
  maxKeys?: number;
  /** `false` turns the limiter off: every take succeeds (`rate_limits.enabled: false`). */
  enabled?: boolean;
  clock?: Clock;
}

export type RateLimitResult = { ok: true } | { ok: false; retryAfterMs: number };

export interface RateLimiter {
  /** Takes `cost` tokens (default 1) from `key`'s bucket, or says how long to wait. */
  take(key: string, cost?: number): RateLimitResult;
  /** Number of keys currently remembered (for tests and metrics). */
  readonly size: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { perSecond, burst } = options;
  if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError("rate limiter needs perSecond > 0 and burst ≥ 1");
  const maxKeys = Math.max(1, options.maxKeys ?? 10_000);
  const clock = options.clock ?? systemClock;
  const enabled = options.enabled ?? true;
  // A Map iterates in insertion order; re-inserting on use keeps it ordered by recency.
  const buckets = new Map<string, Bucket>();

  return {
    take(key, cost = 1) {
      if (!enabled) return { ok: true };
      // A cost above the bucket size could never pass; treat it as "needs a full bucket".
      const need = Math.min(Math.max(cost, 0), burst);
      const now = clock.now();
      let b = buckets.get(key);
      if (b) {
        buckets.delete(key);
        b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.updated) * perSecond) / 1000);
        b.updated = now;
      } else {
        b = { tokens: burst, updated: now };
        if (buckets.size >= maxKeys) {
          const oldest = buckets.keys().next();
          if (!oldest.done) buckets.delete(oldest.value);
        }
      }
      buckets.set(key, b);
      if (b.tokens >= need) {
        b.tokens -= need;
        return { ok: true };
      }
      return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((need - b.tokens) / perSecond) * 1000)) };
    },
    get size() {
      return buckets.size;
    },
  };
}

/** 429 `M_LIMIT_EXCEEDED` with `retry_after_ms` (the HTTP layer adds `Retry-After`). */
export function rateLimitError(retryAfterMs: number): MatrixError {
  return new MatrixError("M_LIMIT_EXCEEDED", "Too many requests", 429, { retry_after_ms: Math.max(1, Math.ceil(retryAfterMs)) });
}
