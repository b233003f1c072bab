/**
 * Forward-only schema migrations, applied in order, each in its own transaction and
 * recorded by id. On PostgreSQL an advisory lock serialises concurrent starters
 * (several processes may share one database).
 */
import { sql, type Kysely } from "kysely";
import type { DatabaseHandle, Engine } from "./db.js";

export interface Migration {
  /** Unique, ordered id, e.g. "0001_accounts". */
  id: string;
  up(db: Kysely<unknown>, engine: Engine): Promise<void>;
}

export async function runMigrations<DB>(handle: DatabaseHandle<DB>, migrations: readonly Migration[], table = "beckon_migrations"): Promise<string[]> {
  const db = handle.db as unknown as Kysely<unknown>;
  const engine = handle.engine;
  await sql`CREATE TABLE IF NOT EXISTS ${sql.table(table)} (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`.execute(db);
  const applied: string[] = [];
  for (const m of migrations) {
    await db.transaction().execute(async (trx) => {
      if (engine === "postgres") await sql`SELECT pg_advisory_xact_lock(727274)`.execute(trx);
      const done = await sql<{ id: string }>`SELECT id FROM ${sql.table(table)} WHERE id = ${m.id}`.execute(trx);
      if (done.rows.length > 0) return;
      await m.up(trx as unknown as Kysely<unknown>, engine);
      await sql`INSERT INTO ${sql.table(table)} (id, applied_at) VALUES (${m.id}, ${Date.now()})`.execute(trx);
      applied.push(m.id);
    });
  }
  return applied;
}
