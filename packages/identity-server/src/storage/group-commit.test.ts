import { test } from "node:test";
import assert from "node:assert/strict";
import { sql, type Kysely } from "kysely";
import { openDatabase } from "@beckon/server-kit";
import { GroupCommitter } from "./group-commit.js";

interface T {
  t: { k: string };
}

test("group commit: concurrent jobs share a commit, a failing job is rolled back alone, results settle after commit", async () => {
  const h = await openDatabase<T>({ url: "sqlite::memory:" });
  try {
    await sql`CREATE TABLE t (k TEXT PRIMARY KEY)`.execute(h.db);
    let commits = 0;
    const g = new GroupCommitter<T, Kysely<T>>(h.db, (trx) => {
      commits++;
      return trx;
    });
    const insert = (k: string, fail = false) =>
      g.run(async (db) => {
        await db.insertInto("t").values({ k }).execute();
        if (fail) throw new Error(`job ${k} failed`);
        return k;
      });
    const results = await Promise.allSettled([insert("a"), insert("b", true), insert("c"), insert("a")]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled", "rejected"]);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /job b failed/);
    assert.equal(commits, 1, "one transaction for the four jobs");
    const rows = await h.db.selectFrom("t").select("k").orderBy("k").execute();
    assert.deepEqual(rows.map((r) => r.k), ["a", "c"]);
    // A lone job still works (its own transaction, its error propagates).
    assert.equal(await insert("d"), "d");
    await assert.rejects(insert("e", true), /job e failed/);
    assert.equal((await h.db.selectFrom("t").select("k").where("k", "=", "e").execute()).length, 0);
  } finally {
    await h.close();
  }
});
