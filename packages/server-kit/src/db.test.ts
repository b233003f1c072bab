import { test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { sql } from "kysely";
import { tempDir, createTempDatabase, postgresSkipReason } from "@beckon/test-support";
import { openDatabase, isUniqueViolation } from "./db.js";
import { WalCheckpointer } from "./wal-checkpointer.js";
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

test("sqlite WAL checkpoints run in a thread while the server writes, which ends when it stops", async () => {
  const dir = tempDir();
  const url = `sqlite:${dir.path}/db.sqlite`;
  try {
    const h = await openDatabase<{ t: { k: string; n: number } }>({
      url,
      sqliteCheckpoints: { intervalMs: 20, idleExitMs: 300, startAfterWrites: 10 },
    });
    const cp = h.walCheckpointer;
    assert.ok(cp, "a file database gets a checkpointer");
    await runMigrations(h, migrations);
    const fileSize = () => statSync(`${dir.path}/db.sqlite`).size;
    const before = fileSize();
    // Each row fills most of a page: 40 single-row commits are far below the connection's own
    // fallback (10 000 pages), so only the thread can have copied them into the database file.
    const pad = "x".repeat(3000);
    for (let i = 0; i < 40; i++) await sql`INSERT INTO t (k, n) VALUES (${`${i}${pad}`}, ${i})`.execute(h.db);
    await waitFor(() => cp.stats.checkpoints > 0 && fileSize() >= before + 40 * 3000);
    assert.equal(cp.stats.starts, 1);
    await waitFor(() => !cp.running);
    // Writing again starts it again.
    for (let i = 40; i < 60; i++) await h.db.insertInto("t").values({ k: `${i}${pad}`, n: i }).execute();
    await waitFor(() => cp.stats.starts === 2);
    await h.close();
    const again = await openDatabase<{ t: { k: string; n: number } }>({ url });
    try {
      const n = await sql<{ n: number }>`SELECT COUNT(*) AS n FROM t`.execute(again.db);
      assert.equal(Number(n.rows[0]?.n), 60);
    } finally {
      await again.close();
    }
  } finally {
    dir.cleanup();
  }
});

test("sqlite: reads and a transaction's inner statements do not count as writes; inline mode has no thread", async () => {
  const dir = tempDir();
  const url = `sqlite:${dir.path}/db.sqlite`;
  try {
    const setup = await openDatabase({ url, sqliteCheckpoints: "inline" });
    assert.equal(setup.walCheckpointer, undefined);
    await runMigrations(setup, migrations);
    await setup.close();
    const h = await openDatabase<{ t: { k: string; n: number } }>({ url, sqliteCheckpoints: { startAfterWrites: 2, idleExitMs: 60_000 } });
    try {
      const cp = h.walCheckpointer;
      assert.ok(cp);
      for (let i = 0; i < 20; i++) await h.db.selectFrom("t").selectAll().execute();
      await h.db.transaction().execute(async (trx) => {
        for (let i = 0; i < 5; i++) await trx.insertInto("t").values({ k: `r${i}`, n: i }).execute();
      });
      assert.equal(cp.stats.starts, 0, "twenty reads and one commit are not two writes");
      await h.db.insertInto("t").values({ k: "x", n: 1 }).execute();
      assert.equal(cp.stats.starts, 1);
    } finally {
      await h.close();
    }
    const memory = await openDatabase({ url: "sqlite::memory:" });
    assert.equal(memory.walCheckpointer, undefined);
    await memory.close();
  } finally {
    dir.cleanup();
  }
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !cond(); ) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("a checkpoint thread that cannot run reports it and hands checkpoints back to the connection", async () => {
  const dir = tempDir();
  try {
    const { default: Database } = await import("better-sqlite3");
    const conn = new Database(`${dir.path}/db.sqlite`);
    conn.pragma("journal_mode = WAL");
    const errors: string[] = [];
    // The thread opens the file it is given, which does not exist: it fails at start.
    const cp = new WalCheckpointer({ path: `${dir.path}/missing.sqlite`, connection: conn, startAfterWrites: 1, onError: (m) => errors.push(m) });
    assert.equal(conn.pragma("wal_autocheckpoint", { simple: true }), 10_000);
    cp.noteWrite();
    await waitFor(() => errors.length > 0);
    assert.equal(conn.pragma("wal_autocheckpoint", { simple: true }), 1000);
    cp.noteWrite(); // no second thread, no second report
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(cp.stats.starts, 1);
    assert.equal(errors.length, 1);
    await cp.close();
    conn.close();
  } finally {
    dir.cleanup();
  }
});
