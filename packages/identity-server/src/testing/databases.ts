/** Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database (TEST_POSTGRES_URL). */
import { join } from "node:path";
import { createTempDatabase, postgresSkipReason, tempDir } from "@beckon/test-support";

export interface TestDatabase {
  url: string;
  cleanup(): Promise<void>;
}

export async function createDatabase(engine: "sqlite" | "postgres"): Promise<TestDatabase> {
  if (engine === "postgres") {
    const reason = postgresSkipReason();
    if (reason) throw new Error(reason);
    const t = await createTempDatabase("beckon_is");
    return { url: t.url, cleanup: () => t.drop() };
  }
  const dir = tempDir("beckon-is-");
  return {
    url: `sqlite:${join(dir.path, "is.db")}`,
    async cleanup() {
      dir.cleanup();
    },
  };
}

/** The engines to run a suite on, with the skip reason for PostgreSQL when it is unavailable. */
export function engines(): { name: "sqlite" | "postgres"; skip: string | false }[] {
  const reason = postgresSkipReason();
  return [
    { name: "sqlite", skip: false },
    { name: "postgres", skip: reason ?? false },
  ];
}
