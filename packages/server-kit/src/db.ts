/**
 * One typed query layer over two engines: SQLite (embedded default, WAL) and PostgreSQL.
 * URLs: `postgres://…` / `postgresql://…`; `sqlite:<path>`, `sqlite::memory:`, `file:<path>` or a plain path.
 */
import {
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
  type SqliteDatabase,
  type SqliteStatement,
  type Transaction,
} from "kysely";
import type BetterSqlite3 from "better-sqlite3";
import type PgModule from "pg";
import { WalCheckpointer } from "./wal-checkpointer.js";

// The engines are loaded on first use, only the one a URL asks for: `pg` alone adds ~16 MB to
// an idle process that runs on SQLite.
let pgModule: Promise<typeof PgModule> | undefined;
let sqliteModule: Promise<typeof BetterSqlite3> | undefined;
function loadPg(): Promise<typeof PgModule> {
  return (pgModule ??= import("pg").then((m) => m.default));
}
function loadSqlite(): Promise<typeof BetterSqlite3> {
  return (sqliteModule ??= import("better-sqlite3").then((m) => m.default));
}

export type Engine = "sqlite" | "postgres";

export interface DatabaseHandle<DB> {
  db: Kysely<DB>;
  engine: Engine;
  /** For logs: the URL with any password removed. */
  describe: string;
  /** SQLite file databases: the thread that checkpoints the WAL. */
  walCheckpointer?: WalCheckpointer;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  url: string;
  /** PostgreSQL schema to use (created if missing); lets two servers share one database. */
  schema?: string;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
  /** SQLite: SQLITE page limit (tests simulate a full disk with it). */
  sqliteMaxPageCount?: number;
  /** SQLite: how long a write waits for another connection's write lock before failing (default 5000 ms). */
  sqliteBusyTimeoutMs?: number;
  /**
   * SQLite: WAL checkpoints in a worker thread while the server writes (default), or SQLite's
   * own auto-checkpoint inside the commits ("inline"). See {@link WalCheckpointer}.
   */
  sqliteCheckpoints?: "thread" | "inline" | { intervalMs?: number; idleExitMs?: number; startAfterWrites?: number };
  /** SQLite: where a failing checkpoint thread is reported (it then falls back to "inline"). */
  onSqliteCheckpointError?: (message: string) => void;
}

let pgTypesSet = false;

/** True for a PostgreSQL URL. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** Filesystem path (or ":memory:") of an SQLite URL. */
export function sqlitePath(url: string): string {
  if (url.startsWith("sqlite:")) return url.slice("sqlite:".length) || ":memory:";
  if (url.startsWith("file:")) return url.slice("file:".length);
  return url;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

export async function openDatabase<DB>(opts: OpenDatabaseOptions): Promise<DatabaseHandle<DB>> {
  if (isPostgresUrl(opts.url)) {
    const pg = await loadPg();
    if (!pgTypesSet) {
      // int8 and numeric as JS numbers: our values stay within ±2^53.
      pg.types.setTypeParser(20, (v) => Number(v));
      pgTypesSet = true;
    }
    const schema = opts.schema;
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
    if (schema) {
      // Create the schema on a one-off connection, then give every pooled connection the
      // search path at connection start-up (no window where a connection sits on `public`).
      const c = new pg.Client({ connectionString: opts.url });
      await c.connect();
      try {
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      } finally {
        await c.end();
      }
    }
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    pool.on("error", () => {
      /* idle client errors (server restart) surface on the next query instead */
    });
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return { db, engine: "postgres", describe: redactUrl(opts.url), close: () => db.destroy() };
  }
  const path = sqlitePath(opts.url);
  const Database = await loadSqlite();
  const sqlite = new Database(path);
  // SQLite's own busy handler waits synchronously, stalling the whole event loop for up to its
  // timeout while another connection (another process, or another handle in this one) holds
  // the write lock. Waits happen in BusyRetryingDriver instead, asynchronously.
  sqlite.pragma("busy_timeout = 0");
  sqlite.pragma("journal_mode = WAL");
  // NORMAL in WAL mode is durable across process crashes (SIGKILL); only an OS crash can lose the last commits.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  if (opts.sqliteMaxPageCount !== undefined) sqlite.pragma(`max_page_count = ${Math.floor(opts.sqliteMaxPageCount)}`);
  const mode = opts.sqliteCheckpoints ?? "thread";
  const checkpointer =
    mode !== "inline" && isWalFile(sqlite)
      ? new WalCheckpointer({
          path,
          connection: sqlite,
          ...(typeof mode === "object" ? mode : {}),
          ...(opts.onSqliteCheckpointError ? { onError: opts.onSqliteCheckpointError } : {}),
        })
      : undefined;
  const driverOptions: SqliteDriverOptions = {
    inTransaction: () => sqlite.inTransaction,
    busyTimeoutMs: opts.sqliteBusyTimeoutMs ?? 5000,
    ...(checkpointer ? { afterWriteCommit: () => checkpointer.noteWrite() } : {}),
  };
  const db = new Kysely<DB>({ dialect: new BusyRetryingSqliteDialect(withStatementCache(sqlite), driverOptions) });
  const handle: DatabaseHandle<DB> = {
    db,
    engine: "sqlite",
    describe: `sqlite:${path}`,
    async close() {
      await checkpointer?.close();
      await db.destroy();
    },
  };
  if (checkpointer) handle.walCheckpointer = checkpointer;
  return handle;
}

/** True for a file database in WAL mode (not `:memory:` or a temporary one). */
function isWalFile(sqlite: BetterSqlite3.Database): boolean {
  if (sqlite.memory) return false;
  const mode: unknown = sqlite.pragma("journal_mode", { simple: true });
  return typeof mode === "string" && mode.toLowerCase() === "wal";
}

/** Statements that change the database (Kysely's own node kinds, else the SQL's first word). */
const WRITE_NODES = new Set(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode", "MergeQueryNode"]);
const WRITE_SQL = /^\s*(commit|end|insert|update|delete|replace|create|drop|alter)\b/i;
function isWrite(q: CompiledQuery): boolean {
  const kind = q.query.kind;
  if (kind === "SelectQueryNode") return false;
  return WRITE_NODES.has(kind) || WRITE_SQL.test(q.sql);
}

interface SqliteDriverOptions {
  inTransaction: () => boolean;
  busyTimeoutMs: number;
  /** Called after a statement outside a transaction that may have written (a commit included). */
  afterWriteCommit?: () => void;
}

function isSqliteBusy(e: unknown): boolean {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/**
 * Kysely's SQLite dialect with two changes for a database shared with other connections:
 * - transactions begin IMMEDIATE, taking the write lock up front: a DEFERRED transaction that
 *   reads and then writes gets SQLITE_BUSY at the upgrade with no chance to wait, even while
 *   the lock is about to be released;
 * - a statement outside a transaction (including that BEGIN) that meets SQLITE_BUSY is retried
 *   on timers with growing, jittered pauses until `busyTimeoutMs` has passed, so the event
 *   loop keeps serving while the lock is held elsewhere. Inside a transaction an error is the
 *   caller's (inTransaction retries the whole transaction).
 */
class BusyRetryingSqliteDialect extends SqliteDialect {
  readonly #database: SqliteDatabase;
  readonly #opts: SqliteDriverOptions;
  constructor(database: SqliteDatabase, opts: SqliteDriverOptions) {
    super({ database });
    this.#database = database;
    this.#opts = opts;
  }
  override createDriver(): Driver {
    return new BusyRetryingSqliteDriver(this.#database, this.#opts);
  }
}

class BusyRetryingSqliteDriver extends SqliteDriver {
  readonly #inTransaction: () => boolean;
  readonly #busyTimeoutMs: number;
  readonly #afterWriteCommit: (() => void) | undefined;
  #wrapped: DatabaseConnection | undefined;
  constructor(database: SqliteDatabase, opts: SqliteDriverOptions) {
    super({ database });
    this.#inTransaction = opts.inTransaction;
    this.#busyTimeoutMs = opts.busyTimeoutMs;
    this.#afterWriteCommit = opts.afterWriteCommit;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    const after = this.#afterWriteCommit;
    // SqliteDriver has one connection: wrap it once.
    this.#wrapped ??= {
      executeQuery: after
        ? async <R>(q: CompiledQuery) => {
            const r = await this.#retrying(() => inner.executeQuery<R>(q));
            if (!this.#inTransaction() && isWrite(q)) after();
            return r;
          }
        : <R>(q: CompiledQuery) => this.#retrying(() => inner.executeQuery<R>(q)),
      streamQuery: <R>(q: CompiledQuery, chunkSize?: number) => inner.streamQuery<R>(q, chunkSize),
    };
    return this.#wrapped;
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  async #retrying<R>(run: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const start = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (e) {
        if (!isSqliteBusy(e) || this.#inTransaction()) throw e;
        if (performance.now() - start >= this.#busyTimeoutMs) {
          // Waited the whole budget already: inTransaction must not wait it again.
          Object.assign(e as object, { busyWaitExhausted: true });
          throw e;
        }
        // 1, 2, 4 … 50 ms, jittered so that waiting connections do not retry in step.
        const pause = Math.min(50, 2 ** attempt) * (0.5 + Math.random());
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }
}

const MAX_CACHED_STATEMENTS = 500;

/**
 * Kysely's SQLite driver prepares every statement anew, which costs more than SQLite takes to
 * run a hot indexed query (measured here: ~47 µs through Kysely vs ~15 µs with the statement
 * reused). This hands Kysely a database whose `prepare` reuses statements, bounded, least
 * recently used out first.
 */
function withStatementCache(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    prepare(text) {
      let st = cache.get(text);
      if (st) {
        cache.delete(text);
      } else {
        st = sqlite.prepare(text) as unknown as SqliteStatement;
        if (cache.size >= MAX_CACHED_STATEMENTS) {
          const oldest = cache.keys().next();
          if (!oldest.done) cache.delete(oldest.value);
        }
      }
      cache.set(text, st);
      return st;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  };
}

const RETRYABLE_PG = new Set(["40001", "40P01"]);

/** PostgreSQL forms (`$1…$n`) of the texts {@link runSql} has run; bounded. */
const pgTexts = new Map<string, string>();

/**
 * Runs a fixed SQL text written with `?` placeholders (none inside string literals), without
 * the query builder: building and compiling a query costs more than SQLite takes to run a hot
 * one (here ~14 µs through the builder against ~8 µs for a primary-key read, 5 µs of it
 * SQLite's). On PostgreSQL the placeholders become `$1…$n`, converted once per text.
 */
export async function runSql<R>(db: Pick<Kysely<never>, "executeQuery" | "getExecutor">, text: string, params: readonly unknown[]): Promise<R[]> {
  let q = text;
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    let pg = pgTexts.get(text);
    if (pg === undefined) {
      let i = 0;
      pg = text.replace(/\?/g, () => `$${++i}`);
      if (pgTexts.size >= 1000) pgTexts.clear();
      pgTexts.set(text, pg);
    }
    q = pg;
  }
  const r = await db.executeQuery<R>(CompiledQuery.raw(q, [...params]));
  return r.rows;
}

/** True for errors a retry of the whole transaction may cure (serialization failure, deadlock, SQLITE_BUSY). */
export function isRetryableDbError(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const { code, busyWaitExhausted } = e as { code?: unknown; busyWaitExhausted?: unknown };
  if (busyWaitExhausted === true) return false;
  return typeof code === "string" && (RETRYABLE_PG.has(code) || code === "SQLITE_BUSY" || code === "SQLITE_LOCKED");
}

/** Runs `fn` in a transaction, retrying a few times on serialization failures and deadlocks. */
export async function inTransaction<DB, T>(db: Kysely<DB>, fn: (trx: Transaction<DB>) => Promise<T>, retries = 3): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (e) {
      if (attempt >= retries || !isRetryableDbError(e)) throw e;
      await new Promise((r) => setTimeout(r, 5 * 2 ** attempt + Math.random() * 10));
    }
  }
}

/** True when `e` is a unique-constraint violation on either engine. */
export function isUniqueViolation(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const code = (e as { code?: unknown }).code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
