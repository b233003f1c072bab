/**
 * Moves SQLite's WAL checkpoints off the event loop.
 *
 * With SQLite's own auto-checkpoint, the commit that takes the WAL past 1000 pages copies the
 * WAL into the database and fsyncs both files before it returns: measured under the 3PID
 * invite benchmark, about one commit in 30 took 5–20 ms, half of all the time spent in
 * commits, with every request waiting behind it. Here the server's connection only
 * checkpoints by itself as a fallback (at `fallbackPages`), and a worker thread with its own
 * connection checkpoints every `intervalMs` while the server writes
 * ({@link ./wal-checkpoint-worker.ts}). The thread is started after `startAfterWrites` write
 * commits and ends after `idleExitMs` without writes, so an idle server carries no extra
 * isolate (about 9 MB). If the thread cannot run, the connection goes back to SQLite's
 * default auto-checkpoint.
 */
import { Worker } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";
import type { WalCheckpointMessage, WalCheckpointWorkerData } from "./wal-checkpoint-worker.js";

export interface WalCheckpointerOptions {
  /** The database file (WAL mode). */
  path: string;
  /** The server's connection to it. */
  connection: BetterSqlite3.Database;
  /** Pause between the thread's checkpoints (default 100 ms). */
  intervalMs?: number;
  /** The thread ends after this long without a change to the WAL (default 5 s). */
  idleExitMs?: number;
  /** Write commits on the connection before the thread is (re)started (default 64). */
  startAfterWrites?: number;
  /** The connection's own auto-checkpoint, in pages, in case the thread falls behind (default 10 000). */
  fallbackPages?: number;
  /** Called once if the thread fails; the connection then checkpoints by itself. */
  onError?: (message: string) => void;
}

/** SQLite's default `wal_autocheckpoint`. */
const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

export class WalCheckpointer {
  readonly #o: WalCheckpointerOptions;
  readonly #startAfter: number;
  #worker: Worker | undefined;
  #exited: Promise<void> | undefined;
  #writes = 0;
  #failed = false;
  #closed = false;
  /** Threads started, and checkpoint rounds that found new frames (for tests). */
  readonly stats = { starts: 0, checkpoints: 0 };

  constructor(opts: WalCheckpointerOptions) {
    this.#o = opts;
    this.#startAfter = Math.max(1, opts.startAfterWrites ?? 64);
    opts.connection.pragma(`wal_autocheckpoint = ${Math.max(1, Math.floor(opts.fallbackPages ?? 10_000))}`);
  }

  /** Whether the checkpoint thread is running now. */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  /** Call after each write commit on the connection; cheap. */
  noteWrite(): void {
    if (this.#worker !== undefined || this.#failed || this.#closed) return;
    if (++this.#writes < this.#startAfter) return;
    this.#writes = 0;
    this.#start();
  }

  #start(): void {
    const workerData: WalCheckpointWorkerData = {
      path: this.#o.path,
      intervalMs: this.#o.intervalMs ?? 100,
      idleExitMs: this.#o.idleExitMs ?? 5000,
    };
    let worker: Worker;
    try {
      worker = new Worker(new URL("./wal-checkpoint-worker.js", import.meta.url), {
        workerData,
        resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
      });
    } catch (e) {
      this.#fail(e instanceof Error ? e.message : String(e));
      return;
    }
    this.stats.starts++;
    // The thread never keeps the process alive: what it has not copied stays in the WAL, as safe.
    worker.unref();
    this.#worker = worker;
    this.#exited = new Promise((resolve) => {
      worker.once("exit", () => {
        if (this.#worker === worker) this.#worker = undefined;
        resolve();
      });
    });
    worker.on("message", (m: WalCheckpointMessage) => {
      if (m.kind === "checkpointed") this.stats.checkpoints++;
      else this.#fail(m.message);
    });
    worker.on("error", (e) => this.#fail(e.message));
  }

  #fail(message: string): void {
    if (this.#failed) return;
    this.#failed = true;
    try {
      if (this.#o.connection.open) this.#o.connection.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
    } catch {
      /* closing anyway */
    }
    this.#o.onError?.(message);
    void this.#stop();
  }

  async #stop(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    worker.postMessage("stop");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#exited,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => void worker.terminate().then(() => resolve(), () => resolve()), 2000);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Stops the thread (a checkpoint in progress completes first). Call before closing the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#stop();
  }
}
