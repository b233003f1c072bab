/**
 * Observable events of the request layer: a callback API and an async iterator.
 *
 * @example
 * const off = client.events.on((e) => { if (e.type === "retry-scheduled") console.log(`retry in ${e.delayMs} ms`); });
 * for await (const e of client.events.stream({ signal })) console.log(e.type);
 */
import type { ErrorKind } from "./errors.js";

export type RequestEvent =
  | {
      readonly type: "retry-scheduled";
      readonly method: string;
      readonly url: string;
      /** The attempt that failed (1-based). */
      readonly attempt: number;
      readonly delayMs: number;
      readonly reason: ErrorKind;
    }
  | {
      readonly type: "rate-limited";
      readonly method: string;
      readonly url: string;
      readonly attempt: number;
      /** The wait the server asked for (or the back-off used when it named none). */
      readonly retryAfterMs: number;
    }
  | {
      readonly type: "background-error";
      readonly label: string;
      readonly error: unknown;
    };

export type RequestEventListener = (event: RequestEvent) => void;

/** A small event hub. Listener exceptions are swallowed (they must not break a request). */
export class RequestEvents {
  readonly #listeners = new Set<RequestEventListener>();

  /** Subscribes; returns the unsubscribe function. */
  on(listener: RequestEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: RequestEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch {
        // A faulty observer must not fail the request it observes.
      }
    }
  }

  /** True when someone listens (lets the request layer skip building events). */
  get observed(): boolean {
    return this.#listeners.size > 0;
  }

  /**
   * An async iterator over future events. Ends when `signal` aborts or the consumer stops;
   * at most `buffer` unread events are kept (the oldest are dropped).
   */
  stream(opts: { signal?: AbortSignal; buffer?: number } = {}): AsyncIterableIterator<RequestEvent> {
    const max = opts.buffer ?? 1000;
    const queue: RequestEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const off = this.on((e) => {
      queue.push(e);
      if (queue.length > max) queue.shift();
      wake?.();
    });
    const finish = (): void => {
      done = true;
      off();
      wake?.();
    };
    opts.signal?.addEventListener("abort", finish, { once: true });
    if (opts.signal?.aborted) finish();
    const iterator: AsyncIterableIterator<RequestEvent> = {
      async next(): Promise<IteratorResult<RequestEvent>> {
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        const e = queue.shift();
        return e ? { value: e, done: false } : { value: undefined, done: true };
      },
      async return(): Promise<IteratorResult<RequestEvent>> {
        finish();
        opts.signal?.removeEventListener("abort", finish);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
