/**
 * The durable onbind delivery queue: one row per (mxid, invite token). Rows are claimed by
 * pushing their due time forward by a lease (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
 * two workers never take the same row); a worker that dies simply lets the lease run out and
 * the row falls due again — at-least-once delivery across crashes and restarts.
 */
import { sql, type ExpressionBuilder, type Kysely } from "kysely";
import type { Engine } from "@beckon/server-kit";
import type { IsDatabase } from "./schema.js";

export type DeliveryState = "pending" | "delivered" | "failed";

export interface DeliveryItem {
  mxid: string;
  token: string;
  medium: string;
  address: string;
  attempts: number;
}

export interface DeliveryKey {
  mxid: string;
  token: string;
}

export interface DeliveryStore {
  /** Queues deliveries (an existing (mxid, token) row is left alone). */
  enqueue(items: readonly Omit<DeliveryItem, "attempts">[], now: number): Promise<void>;
  /** Claims up to `limit` due pending rows for `leaseMs`. Call inside a transaction. */
  claimDue(now: number, limit: number, leaseMs: number): Promise<DeliveryItem[]>;
  markDelivered(keys: readonly DeliveryKey[], now: number): Promise<void>;
  markFailed(keys: readonly DeliveryKey[], error: string, now: number): Promise<void>;
  reschedule(keys: readonly DeliveryKey[], attempts: number, nextAttemptTs: number, error: string, now: number): Promise<void>;
  /** Earliest due time of a pending row, if any. */
  nextDue(): Promise<number | undefined>;
  counts(): Promise<Record<DeliveryState, number>>;
  list(): Promise<(DeliveryItem & { state: string; nextAttemptTs: number; lastError: string | null })[]>;
}

export class KyselyDeliveryStore implements DeliveryStore {
  constructor(
    private readonly db: Kysely<IsDatabase>,
    private readonly engine: Engine,
  ) {}

  async enqueue(items: readonly Omit<DeliveryItem, "attempts">[], now: number): Promise<void> {
    if (items.length === 0) return;
    await this.db
      .insertInto("is_delivery_queue")
      .values(
        items.map((i) => ({
          mxid: i.mxid,
          token: i.token,
          medium: i.medium,
          address: i.address,
          state: "pending",
          attempts: 0,
          next_attempt_ts: now,
          last_error: null,
          created_ts: now,
          updated_ts: now,
        })),
      )
      .onConflict((oc) => oc.columns(["mxid", "token"]).doNothing())
      .execute();
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<DeliveryItem[]> {
    let q = this.db
      .selectFrom("is_delivery_queue")
      .select(["mxid", "token", "medium", "address", "attempts"])
      .where("state", "=", "pending")
      .where("next_attempt_ts", "<=", now)
      .orderBy("next_attempt_ts")
      .limit(limit);
    if (this.engine === "postgres") q = q.forUpdate().skipLocked();
    const rows = await q.execute();
    for (const r of rows) {
      await this.db
        .updateTable("is_delivery_queue")
        .set({ next_attempt_ts: now + leaseMs, updated_ts: now })
        .where("mxid", "=", r.mxid)
        .where("token", "=", r.token)
        .where("state", "=", "pending")
        .execute();
    }
    return rows.map((r) => ({ ...r, attempts: Number(r.attempts) }));
  }

  #whereKeys(keys: readonly DeliveryKey[]) {
    return (eb: ExpressionBuilder<IsDatabase, "is_delivery_queue">) =>
      eb.or(keys.map((k) => eb.and([eb("mxid", "=", k.mxid), eb("token", "=", k.token)])));
  }

  async markDelivered(keys: readonly DeliveryKey[], now: number): Promise<void> {
    if (keys.length === 0) return;
    await this.db.updateTable("is_delivery_queue").set({ state: "delivered", updated_ts: now, last_error: null }).where(this.#whereKeys(keys)).execute();
  }

  async markFailed(keys: readonly DeliveryKey[], error: string, now: number): Promise<void> {
    if (keys.length === 0) return;
    await this.db
      .updateTable("is_delivery_queue")
      .set({ state: "failed", updated_ts: now, last_error: error.slice(0, 1000) })
      .where(this.#whereKeys(keys))
      .execute();
  }

  async reschedule(keys: readonly DeliveryKey[], attempts: number, nextAttemptTs: number, error: string, now: number): Promise<void> {
    if (keys.length === 0) return;
    await this.db
      .updateTable("is_delivery_queue")
      .set({ attempts, next_attempt_ts: nextAttemptTs, updated_ts: now, last_error: error.slice(0, 1000) })
      .where(this.#whereKeys(keys))
      .where("state", "=", "pending")
      .execute();
  }

  async nextDue(): Promise<number | undefined> {
    const r = await this.db
      .selectFrom("is_delivery_queue")
      .select((eb) => eb.fn.min<number>("next_attempt_ts").as("t"))
      .where("state", "=", "pending")
      .executeTakeFirst();
    return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
  }

  async counts(): Promise<Record<DeliveryState, number>> {
    const rows = await this.db
      .selectFrom("is_delivery_queue")
      .select(["state", sql<number>`count(*)`.as("n")])
      .groupBy("state")
      .execute();
    const out: Record<DeliveryState, number> = { pending: 0, delivered: 0, failed: 0 };
    for (const r of rows) if (r.state === "pending" || r.state === "delivered" || r.state === "failed") out[r.state] = Number(r.n);
    return out;
  }

  async list(): Promise<(DeliveryItem & { state: string; nextAttemptTs: number; lastError: string | null })[]> {
    const rows = await this.db.selectFrom("is_delivery_queue").selectAll().orderBy("created_ts").execute();
    return rows.map((r) => ({
      mxid: r.mxid,
      token: r.token,
      medium: r.medium,
      address: r.address,
      attempts: Number(r.attempts),
      state: r.state,
      nextAttemptTs: Number(r.next_attempt_ts),
      lastError: r.last_error,
    }));
  }
}
