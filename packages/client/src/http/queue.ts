/**
 * Job queues (libkazv's `withQueue`): calls with the same queue ID run one at a time, in the
 * order they were made. With policy `CancelFutureIfFailed`, a failed call cancels every call
 * waiting behind it in that queue (they reject with a `ConnectionError` of kind `cancelled`);
 * calls made afterwards run normally. `AlwaysContinue` runs the next call regardless.
 *
 * @example
 * await Promise.all([
 *   client.sendMessage(roomId, "one", { queueId: roomId }),
 *   client.sendMessage(roomId, "two", { queueId: roomId, queuePolicy: "CancelFutureIfFailed" }),
 * ]);
 */
import { ConnectionError } from "./errors.js";

export type QueuePolicy = "AlwaysContinue" | "CancelFutureIfFailed";

interface Job {
  run: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  policy: QueuePolicy;
  /** Detaches the abort listener once the job leaves the waiting list. */
  detach: (() => void) | undefined;
  started: boolean;
  /** Aborted while waiting: skipped when its turn comes (O(1) abort, no search). */
  cancelled: boolean;
}

class Lane {
  readonly waiting: (Job | undefined)[] = [];
  head = 0;
  running = false;
}

/** A set of named FIFO lanes. Idle lanes are removed, so memory follows the waiting jobs. */
export class JobQueues {
  readonly #lanes = new Map<string, Lane>();

  /** Number of jobs waiting (not running) in `queueId`, or in all queues. */
  size(queueId?: string): number {
    const count = (l: Lane): number => {
      let n = 0;
      for (let i = l.head; i < l.waiting.length; i++) if (l.waiting[i] && !l.waiting[i]!.cancelled) n++;
      return n;
    };
    if (queueId !== undefined) {
      const lane = this.#lanes.get(queueId);
      return lane ? count(lane) : 0;
    }
    let n = 0;
    for (const l of this.#lanes.values()) n += count(l);
    return n;
  }

  /** Runs `run` when every earlier job of `queueId` has settled. */
  enqueue<T>(queueId: string, run: () => Promise<T>, policy: QueuePolicy = "AlwaysContinue", signal?: AbortSignal): Promise<T> {
    let lane = this.#lanes.get(queueId);
    if (!lane) {
      lane = new Lane();
      this.#lanes.set(queueId, lane);
    }
    const theLane = lane;
    return new Promise<T>((resolve, reject) => {
      const job: Job = { run, resolve: resolve as (v: unknown) => void, reject, policy, detach: undefined, started: false, cancelled: false };
      if (signal) {
        if (signal.aborted) {
          reject(new ConnectionError("aborted", "aborted before it was queued", undefined, { maybeSent: false, cause: signal.reason }));
          return;
        }
        const onAbort = (): void => {
          if (job.started || job.cancelled) return;
          job.cancelled = true;
          reject(new ConnectionError("aborted", "aborted while queued", undefined, { maybeSent: false, cause: signal.reason }));
        };
        signal.addEventListener("abort", onAbort, { once: true });
        job.detach = () => signal.removeEventListener("abort", onAbort);
      }
      theLane.waiting.push(job);
      if (!theLane.running) this.#pump(queueId, theLane);
    });
  }

  #take(lane: Lane): Job | undefined {
    while (lane.head < lane.waiting.length) {
      const job = lane.waiting[lane.head];
      lane.waiting[lane.head] = undefined;
      lane.head++;
      if (job && !job.cancelled) return job;
    }
    return undefined;
  }

  #pump(queueId: string, lane: Lane): void {
    const job = this.#take(lane);
    if (!job) {
      lane.running = false;
      lane.waiting.length = 0;
      lane.head = 0;
      if (this.#lanes.get(queueId) === lane) this.#lanes.delete(queueId);
      return;
    }
    // Compact now and then so a long-lived busy lane does not keep a growing array.
    if (lane.head > 1024 && lane.head * 2 > lane.waiting.length) {
      lane.waiting.splice(0, lane.head);
      lane.head = 0;
    }
    lane.running = true;
    job.started = true;
    job.detach?.();
    let p: Promise<unknown>;
    try {
      p = job.run();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (value) => {
        job.resolve(value);
        this.#pump(queueId, lane);
      },
      (error: unknown) => {
        job.reject(error);
        if (job.policy === "CancelFutureIfFailed") {
          for (let next = this.#take(lane); next; next = this.#take(lane)) {
            next.detach?.();
            next.reject(new ConnectionError("cancelled", `an earlier call in queue "${queueId}" failed`, undefined, { maybeSent: false, cause: error }));
          }
        }
        this.#pump(queueId, lane);
      },
    );
  }
}
