/**
 * The SQLite engine with a prepared-statement cache.
 *
 * Kysely's SQLite driver prepares every statement anew, which costs more than SQLite takes to
 * run our hot statements (measured here: 47 µs per query through Kysely versus 15 µs with the
 * statement reused). This opens the database exactly as `@beckon/server-kit`'s `openDatabase`
 * does (WAL, synchronous=NORMAL, busy_timeout, foreign keys, optional page limit) and hands
 * Kysely a `Database` whose `prepare` reuses statements (bounded, least recently used first out).
 * PostgreSQL keeps using the kit. Remove once the kit caches statements itself.
 */
import Database from "better-sqlite3";
import { Kysely, SqliteDialect, type SqliteDatabase, type SqliteStatement } from "kysely";
import { sqlitePath, type DatabaseHandle } from "@beckon/server-kit";

const MAX_STATEMENTS = 500;

export function openSqliteWithStatementCache<DB>(url: string, opts: { sqliteMaxPageCount?: number } = {}): DatabaseHandle<DB> {
  const path = sqlitePath(url);
  const sqlite = new Database(path);
  sqlite.pragma("journal_mode = WAL");
  // NORMAL in WAL mode survives process crashes; only an OS crash may lose the last commits.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 5000");
  sqlite.pragma("foreign_keys = ON");
  if (opts.sqliteMaxPageCount !== undefined) sqlite.pragma(`max_page_count = ${Math.floor(opts.sqliteMaxPageCount)}`);
  const cache = new Map<string, SqliteStatement>();
  const database: SqliteDatabase = {
    prepare(sql) {
      let st = cache.get(sql);
      if (st) {
        cache.delete(sql);
      } else {
        st = sqlite.prepare(sql) as unknown as SqliteStatement;
        if (cache.size >= MAX_STATEMENTS) {
          const oldest = cache.keys().next();
          if (!oldest.done) cache.delete(oldest.value);
        }
      }
      cache.set(sql, st);
      return st;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  };
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database }) });
  return { db, engine: "sqlite", describe: `sqlite:${path}`, close: () => db.destroy() };
}
