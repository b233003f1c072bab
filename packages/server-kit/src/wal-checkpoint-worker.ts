/**
 * The thread behind {@link WalCheckpointer}: its own connection to the database file runs
 * `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`, so that copying the WAL back into the
 * database and the two fsyncs that go with it (synchronous = NORMAL) happen here instead of
 * inside whichever commit on the server's event loop crosses SQLite's auto-checkpoint mark.
 *
 * PASSIVE never waits for and never blocks the server's connection: it copies what no reader
 * still needs and leaves the rest for the next round. After `idleExitMs` in which the WAL did
 * not change, the thread ends (an idle server keeps no extra isolate); the server starts it
 * again when it writes.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

export interface WalCheckpointWorkerData {
  path: string;
  intervalMs: number;
  idleExitMs: number;
}

/**
 * Posted after every round that found the WAL changed and some of it in the database, or once
 * on an error, after which the thread does nothing until it is told to stop. The thread ends by
 * itself (the Worker's `exit`) after `idleExitMs` without change, or when it receives "stop".
 */
export type WalCheckpointMessage = { kind: "checkpointed" } | { kind: "error"; message: string };

interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

const data = workerData as WalCheckpointWorkerData;
const port = parentPort;
if (!port) throw new Error("wal-checkpoint-worker runs as a worker thread");

const db = new Database(data.path, { fileMustExist: true });
// Never wait for a lock: the next round tries again.
db.pragma("busy_timeout = 0");
db.pragma("synchronous = NORMAL");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");

let last = "";
let quietSince = Date.now();

function round(): void {
  let row: CheckpointRow | undefined;
  try {
    row = checkpoint.get() as CheckpointRow | undefined;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    // Another connection is checkpointing (another process on the same file): its work is done.
    if (typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))) return;
    throw e;
  }
  if (!row) return;
  const state = `${row.log}/${row.checkpointed}`;
  if (state === last) return;
  last = state;
  quietSince = Date.now();
  if (row.checkpointed > 0) port!.postMessage({ kind: "checkpointed" } satisfies WalCheckpointMessage);
}

function finish(): void {
  clearInterval(timer);
  if (db.open) db.close();
  port!.close();
}

const timer = setInterval(() => {
  try {
    round();
  } catch (e) {
    clearInterval(timer);
    port.postMessage({ kind: "error", message: e instanceof Error ? e.message : String(e) } satisfies WalCheckpointMessage);
    return;
  }
  if (Date.now() - quietSince >= data.idleExitMs) finish();
}, data.intervalMs);

port.on("message", (m: unknown) => {
  if (m === "stop") finish();
});
