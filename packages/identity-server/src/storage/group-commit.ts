/**
 * Group commit for SQLite's single writer: transactions requested while one is running are
 * queued and then run together in ONE database transaction, each inside its own SAVEPOINT, so
 * one commit (the costly part: WAL writes) serves the whole group. A job that throws is rolled
 * back to its savepoint alone; the others still commit. Every job's promise settles only after
 * the group's COMMIT (or with the commit's error), so a caller never answers before its writes
 * are durable — the same guarantee as its own transaction.
 *
 * Used for store-invite on SQLite (one invite row + one outbox row per request). PostgreSQL
 * has real concurrent writers and keeps one transaction per request.
 */
import { sql, type Kysely, type Transaction } from "kysely";
import { inTransaction } from "@beckon/server-kit";

interface Job<S> {
  fn: (stores: S) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommitter<DB, S> {
  readonly #db: Kysely<DB>;
  readonly #bind: (trx: Transaction<DB>) => S;
  readonly #maxBatch: number;
  #queue: Job<S>[] = [];
  #running = false;

  constructor(db: Kysely<DB>, bind: (trx: Transaction<DB>) => S, maxBatch = 64) {
    this.#db = db;
    this.#bind = bind;
    this.#maxBatch = maxBatch;
  }

  run<T>(fn: (stores: S) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#running) {
        // Start on the next turn of the event loop: requests parsed in this turn join the group.
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        let outcomes: Outcome[] = [];
        try {
          await inTransaction(this.#db, async (trx) => {
            // A retried transaction (SQLITE_BUSY) runs every job again from scratch.
            outcomes = [];
            const stores = this.#bind(trx);
            for (const job of batch) {
              if (batch.length === 1) {
                outcomes.push({ ok: true, value: await job.fn(stores) });
                continue;
              }
              await sql`SAVEPOINT beckon_group`.execute(trx);
              try {
                const value = await job.fn(stores);
                await sql`RELEASE beckon_group`.execute(trx);
                outcomes.push({ ok: true, value });
              } catch (error) {
                await sql`ROLLBACK TO beckon_group`.execute(trx);
                await sql`RELEASE beckon_group`.execute(trx);
                outcomes.push({ ok: false, error });
              }
            }
          });
        } catch (e) {
          // A lone job's own error, or the group's BEGIN/COMMIT failing: nothing was committed.
          for (const job of batch) job.reject(e);
          continue;
        }
        batch.forEach((job, i) => {
          const o = outcomes[i];
          if (o?.ok) job.resolve(o.value);
          else job.reject(o ? o.error : new Error("group commit lost a job"));
        });
      }
    } finally {
      this.#running = false;
    }
  }
}
