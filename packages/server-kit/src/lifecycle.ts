/**
 * Graceful shutdown: stop accepting connections, let in-flight requests and tracked
 * background work (an outbox send, an onbind delivery) finish, then run closers (queues,
 * database) in the order they were registered — all bounded by a timeout.
 *
 * @example
 * const life = createLifecycle({ logger });
 * life.addCloser("http", () => app.close(), { phase: "intake" }); // Fastify waits for in-flight requests
 * life.addCloser("outbox", () => outbox.stop(), { phase: "intake" });
 * life.addCloser("database", () => handle.close());             // after tracked work has finished
 * life.installSignalHandlers();                  // SIGINT/SIGTERM → shutdown → exit
 * void life.track(deliverOne());                 // background work shutdown waits for
 */
import type { Logger } from "pino";
import { systemClock, type Clock } from "./clock.js";

export interface LifecycleOptions {
  logger?: Logger;
  /** Longest time `shutdown` waits for tracked work and each closer (default 10 s). */
  timeoutMs?: number;
  clock?: Clock;
  /** The process to watch for signals and exit (injectable for tests). */
  process?: SignalProcess;
}

/** The part of `process` the lifecycle uses. */
export interface SignalProcess {
  once(signal: "SIGINT" | "SIGTERM", fn: () => void): unknown;
  removeListener(signal: "SIGINT" | "SIGTERM", fn: () => void): unknown;
  exit(code?: number): void;
}

export interface Lifecycle {
  /**
   * Registers a closer. Shutdown runs the `intake` closers (things that start work: the HTTP
   * server, queue pollers) in registration order, then waits for tracked work, then runs the
   * `resources` closers (default; the database, the mailer) in registration order.
   */
  addCloser(name: string, close: () => unknown, options?: { phase?: "intake" | "resources" }): void;
  /** Tracks background work so shutdown waits for it; returns the same promise. */
  track<T>(work: Promise<T>): Promise<T>;
  /** True once shutdown has begun (loops should stop taking new work). */
  readonly shuttingDown: boolean;
  /** An AbortSignal aborted when shutdown begins (pass it to long polls and outbound requests). */
  readonly signal: AbortSignal;
  /** Runs the shutdown once; later calls return the same promise. Resolves true if everything closed cleanly. */
  shutdown(reason?: string): Promise<boolean>;
  /**
   * On SIGINT/SIGTERM: shutdown, then exit (0 if clean, 1 otherwise). A second signal exits
   * at once with 130. Returns a function that removes the handlers.
   */
  installSignalHandlers(): () => void;
}


function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  let cancel = () => {};
  const t = new Promise<never>((_, reject) => {
    cancel = clock.setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => cancel());
}

export function createLifecycle(options: LifecycleOptions = {}): Lifecycle {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const log = options.logger;
  const clock = options.clock ?? systemClock;
  const closers: { name: string; close: () => unknown; phase: "intake" | "resources" }[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const controller = new AbortController();
  let done: Promise<boolean> | undefined;

  async function run(reason: string): Promise<boolean> {
    log?.info({ reason }, "shutting down");
    controller.abort(new Error(`shutting down: ${reason}`));
    let clean = true;
    const close = async (name: string, fn: () => unknown) => {
      try {
        await withTimeout(clock, Promise.resolve().then(fn), timeoutMs, `closing ${name}`);
        log?.debug({ name }, "closed");
      } catch (e) {
        clean = false;
        log?.error({ err: e, name }, "error while closing");
      }
    };
    for (const c of closers) if (c.phase === "intake") await close(c.name, c.close);
    if (inFlight.size > 0) {
      try {
        await withTimeout(clock, Promise.allSettled([...inFlight]), timeoutMs, `${inFlight.size} background task(s)`);
      } catch (e) {
        clean = false;
        log?.warn({ err: e }, "background work still running at shutdown");
      }
    }
    for (const c of closers) if (c.phase === "resources") await close(c.name, c.close);
    log?.info({ clean }, "shut down");
    return clean;
  }

  const life: Lifecycle = {
    addCloser(name, close, opts = {}) {
      closers.push({ name, close, phase: opts.phase ?? "resources" });
    },
    track(work) {
      inFlight.add(work);
      const forget = () => inFlight.delete(work);
      work.then(forget, forget);
      return work;
    },
    get shuttingDown() {
      return done !== undefined;
    },
    signal: controller.signal,
    shutdown(reason = "requested") {
      done ??= run(reason);
      return done;
    },
    installSignalHandlers() {
      const proc = options.process ?? process;
      const handlers = new Map<"SIGINT" | "SIGTERM", () => void>();
      const uninstall = () => {
        for (const [sig, fn] of handlers) proc.removeListener(sig, fn);
      };
      for (const sig of ["SIGINT", "SIGTERM"] as const) {
        const fn = () => {
          if (done !== undefined) {
            log?.warn({ signal: sig }, "second signal, exiting now");
            proc.exit(130);
            return;
          }
          // Listen again so that a second signal forces the exit.
          proc.once(sig, fn);
          void life.shutdown(sig).then((clean) => {
            uninstall();
            proc.exit(clean ? 0 : 1);
          });
        };
        handlers.set(sig, fn);
        proc.once(sig, fn);
      }
      return uninstall;
    },
  };
  return life;
}
