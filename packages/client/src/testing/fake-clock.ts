/**
 * A manual clock for tests: timers fire only when the test advances time, so retries,
 * timeouts and back-off run without real sleeps.
 *
 * @example
 * const clock = new FakeClock();
 * const p = transport.send(req);         // schedules a retry in 500 ms after a 503
 * await clock.advance(500);              // fires it
 */
import type { Clock } from "../http/clock.js";

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** Yields to the event loop (macrotask), so I/O-free promise chains and stream reads settle. */
function yieldMacrotask(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : globalThis.setTimeout(resolve, 0)));
}

export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Delays (from now) of the pending timers, soonest first. */
  get pending(): number[] {
    return this.#timers.map((t) => t.at - this.#now).sort((a, b) => a - b);
  }

  /** Lets pending promise chains run (a few event-loop turns, no time passes). */
  async flush(turns = 5): Promise<void> {
    for (let i = 0; i < turns; i++) await yieldMacrotask();
  }

  /** Moves time forward by `ms`, firing due timers in order and settling work between them. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await this.flush();
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers) if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      if (!next) break;
      const due = next;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = due.at;
      due.fn();
      await this.flush();
    }
    this.#now = target;
    await this.flush();
  }

  /** Advances to the soonest pending timer and fires it; returns how far time moved. */
  async advanceToNext(): Promise<number> {
    await this.flush();
    const soonest = this.pending[0];
    if (soonest === undefined) return 0;
    await this.advance(soonest);
    return soonest;
  }
}
