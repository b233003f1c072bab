/**
 * A small sync loop for bots and tests: long-polls `GET /sync`, yields each response, backs off
 * on failures (exponential with jitter, reset after a success) and stops on `stop()`, on its
 * signal, or on an error that waiting cannot fix (unauthorised, deactivated).
 *
 * @example
 * const loop = syncLoop(client, { timeoutMs: 30_000 });
 * for await (const batch of loop) {
 *   for (const roomId of Object.keys(batch.rooms?.invite ?? {})) await client.join(roomId);
 *   if (done) loop.stop();
 * }
 */
import type { SyncResponse } from "@beckon/protocol";
import { backoffDelay, type BackoffOptions } from "../http/backoff.js";
import { sleep } from "../http/clock.js";
import { ConnectionError, errorKind } from "../http/errors.js";
import type { MatrixClient } from "../api/matrix-client.js";

export interface SyncLoopOptions {
  /** Start from this token (default: an initial sync). */
  readonly since?: string;
  /** Long-poll timeout per request (default 30 000 ms). */
  readonly timeoutMs?: number;
  /** A filter ID or inline JSON filter. */
  readonly filter?: string;
  readonly signal?: AbortSignal;
  /** Back-off between failed polls (default 1 s doubling to 60 s). */
  readonly backoff?: BackoffOptions;
  /** Called for each failed poll before waiting (not for the final, fatal one). */
  readonly onError?: (error: unknown, delayMs: number) => void;
}

export interface SyncLoop extends AsyncIterableIterator<SyncResponse> {
  /** The token of the last batch yielded. */
  readonly since: string | undefined;
  /** Ends the loop: the pending poll is aborted and the iterator finishes. */
  stop(): void;
}

const FATAL = new Set(["unauthorised", "user-deactivated", "network-auth-required", "user-consent-required"]);

export function syncLoop(client: MatrixClient, opts: SyncLoopOptions = {}): SyncLoop {
  const ctrl = new AbortController();
  const onOuterAbort = (): void => ctrl.abort(opts.signal?.reason);
  if (opts.signal?.aborted) ctrl.abort(opts.signal.reason);
  else opts.signal?.addEventListener("abort", onOuterAbort, { once: true });
  let since = opts.since;
  let failures = 0;
  let finished = false;
  const backoff: BackoffOptions = { initialMs: 1000, maxMs: 60_000, ...opts.backoff };
  const finish = (): IteratorResult<SyncResponse> => {
    finished = true;
    opts.signal?.removeEventListener("abort", onOuterAbort);
    return { value: undefined, done: true };
  };

  const loop: SyncLoop = {
    get since() {
      return since;
    },
    stop() {
      ctrl.abort(new ConnectionError("aborted", "sync loop stopped"));
    },
    async next(): Promise<IteratorResult<SyncResponse>> {
      while (!finished) {
        if (ctrl.signal.aborted) return finish();
        try {
          const batch = await client.syncOnce(
            { ...(since !== undefined ? { since } : {}), timeout: since === undefined ? 0 : (opts.timeoutMs ?? 30_000), ...(opts.filter ? { filter: opts.filter } : {}) },
            { signal: ctrl.signal, maxAttempts: 1 },
          );
          since = batch.next_batch;
          failures = 0;
          return { value: batch, done: false };
        } catch (e) {
          if (ctrl.signal.aborted) return finish();
          if (FATAL.has(errorKind(e))) {
            finish();
            throw e;
          }
          failures++;
          const delayMs = backoffDelay(failures, backoff, client.transport.random);
          opts.onError?.(e, delayMs);
          try {
            await sleep(client.transport.clock, delayMs, ctrl.signal);
          } catch {
            return finish();
          }
        }
      }
      return { value: undefined, done: true };
    },
    async return(): Promise<IteratorResult<SyncResponse>> {
      loop.stop();
      return finish();
    },
    [Symbol.asyncIterator]() {
      return loop;
    },
  };
  return loop;
}
