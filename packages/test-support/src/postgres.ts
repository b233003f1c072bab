import pg from "pg";
import { randomBytes } from "node:crypto";

/** The server URL CI exports (`.ci/run`), or undefined when PostgreSQL is not available. */
export function testPostgresUrl(): string | undefined {
  const url = process.env.TEST_POSTGRES_URL;
  return url && url.length > 0 ? url : undefined;
}

/** Reason to skip PostgreSQL tests, or undefined when they can run. */
export function postgresSkipReason(): string | undefined {
  return testPostgresUrl() ? undefined : "TEST_POSTGRES_URL is not set (.ci/run sets it)";
}

export interface TempDatabase {
  /** Connection URL of the fresh database. */
  url: string;
  name: string;
  /** Drops the database (terminating leftover connections). */
  drop(): Promise<void>;
}

/**
 * Creates a fresh, empty database on the TEST_POSTGRES_URL server; call `drop()` when done.
 * Throws when TEST_POSTGRES_URL is not set: check {@link postgresSkipReason} first.
 */
export async function createTempDatabase(prefix = "beckon_test"): Promise<TempDatabase> {
  const base = testPostgresUrl();
  if (!base) throw new Error("TEST_POSTGRES_URL is not set");
  const name = `${prefix}_${randomBytes(6).toString("hex")}`.toLowerCase();
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
