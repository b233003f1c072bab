import { test } from "node:test";
import assert from "node:assert/strict";
import { sql } from "kysely";
import { tempDir, createTempDatabase, postgresSkipReason } from "@beckon/test-support";
import { openDatabase, isUniqueViolation } from "./db.js";
import { runMigrations, type Migration } from "./migrate.js";

const migrations: Migration[] = [
  { id: "0001_t", up: async (db) => void (await sql`CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)`.execute(db)) },
];

async function contract(url: string, schema?: string) {
  const h = await openDatabase<{ t: { k: string; n: number } }>(schema ? { url, schema } : { url });
  try {
    assert.deepEqual(await runMigrations(h, migrations), ["0001_t"]);
    assert.deepEqual(await runMigrations(h, migrations), []);
    await h.db.insertInto("t").values({ k: "a", n: 2 ** 40 }).execute();
    const row = await h.db.selectFrom("t").selectAll().executeTakeFirstOrThrow();
    assert.equal(row.n, 2 ** 40);
    await assert.rejects(h.db.insertInto("t").values({ k: "a", n: 1 }).execute(), (e) => isUniqueViolation(e));
  } finally {
    await h.close();
  }
}

test("sqlite engine: migrations, bigint, unique violations", async () => {
  const dir = tempDir();
  try {
    await contract(`sqlite:${dir.path}/db.sqlite`);
  } finally {
    dir.cleanup();
  }
});

test("postgres engine: migrations, bigint, unique violations", { skip: postgresSkipReason() }, async () => {
  const tmp = await createTempDatabase();
  try {
    await contract(tmp.url, "beckon_hs");
  } finally {
    await tmp.drop();
  }
});

test("postgres schema: every pooled connection uses it, including the first", { skip: postgresSkipReason() }, async () => {
  const tmp = await createTempDatabase();
  try {
    const h = await openDatabase<{ t: { k: string; n: number } }>({ url: tmp.url, schema: "beckon_is", poolSize: 3 });
    try {
      await runMigrations(h, migrations);
      const rows = await Promise.all(
        Array.from({ length: 6 }, () => sql<{ s: string }>`SELECT current_schema() AS s`.execute(h.db)),
      );
      for (const r of rows) assert.equal(r.rows[0]?.s, "beckon_is");
      const where = await sql<{ n: string }>`SELECT table_schema AS n FROM information_schema.tables WHERE table_name = 't'`.execute(h.db);
      assert.deepEqual(where.rows.map((r) => r.n), ["beckon_is"]);
    } finally {
      await h.close();
    }
  } finally {
    await tmp.drop();
  }
});
