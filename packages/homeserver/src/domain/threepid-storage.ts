/**
 * Tables of the 3PID pieces and their queries (one Kysely implementation for SQLite and
 * PostgreSQL). Work that must happen once across processes is guarded by a unique key
 * (DESIGN.md "Storage rule"):
 *
 * - `threepid_pending_invites`: one row per (room, sender, medium, normalised address) while a
 *   3PID invite is being made (`token` NULL) or is pending (`token` set). Inserted BEFORE the
 *   identity server is called, removed when the call fails: ten parallel identical requests
 *   make one `store-invite` and one event.
 * - `threepid_onbind_claims`: one row per (room, token, mxid) turned into an invite, claimed
 *   before the member event is sent: a replayed or concurrent onbind never re-invites.
 * - `threepid_id_server_binds`: which identity servers a user bound which 3PIDs at, for unbind.
 * - `openid_tokens`: OpenID tokens with their expiry.
 */
import type { Kysely } from "kysely";
import { batched, inTransaction, runSql, type Migration } from "@beckon/server-kit";

export interface PendingInviteRow {
  room_id: string;
  sender: string;
  medium: string;
  address: string;
  token: string | null;
  created_ts: number;
}

export interface OnbindClaimRow {
  room_id: string;
  token: string;
  mxid: string;
  state: string;
  created_ts: number;
}

export interface BindRow {
  user_id: string;
  medium: string;
  address: string;
  id_server: string;
  added_ts: number;
}

export interface OpenidTokenRow {
  token: string;
  user_id: string;
  valid_until_ms: number;
}

export interface ThreepidDatabase {
  threepid_pending_invites: PendingInviteRow;
  threepid_onbind_claims: OnbindClaimRow;
  threepid_id_server_binds: BindRow;
  openid_tokens: OpenidTokenRow;
}

/** Migrations of these tables; the core runs them with its own (ids start with `0500_3pid`). */
export const threepidMigrations: readonly Migration[] = [
  {
    id: "0500_3pid_tables",
    async up(raw) {
      const db = raw as unknown as Kysely<ThreepidDatabase>;
      await db.schema
        .createTable("threepid_pending_invites")
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("sender", "text", (c) => c.notNull())
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("token", "text")
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("threepid_pending_invites_pk", ["room_id", "sender", "medium", "address"])
        .execute();
      await db.schema.createIndex("threepid_pending_invites_token").on("threepid_pending_invites").columns(["room_id", "token"]).execute();
      await db.schema
        .createTable("threepid_onbind_claims")
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("token", "text", (c) => c.notNull())
        .addColumn("mxid", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("threepid_onbind_claims_pk", ["room_id", "token", "mxid"])
        .execute();
      await db.schema
        .createTable("threepid_id_server_binds")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("id_server", "text", (c) => c.notNull())
        .addColumn("added_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("threepid_id_server_binds_pk", ["user_id", "medium", "address", "id_server"])
        .execute();
      await db.schema
        .createTable("openid_tokens")
        .addColumn("token", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("valid_until_ms", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("openid_tokens_valid_until").on("openid_tokens").column("valid_until_ms").execute();
    },
  },
];

/**
 * Names the token of a claimed pending invite, on `db` (a transaction: the room event's, so the
 * row and the event commit together).
 */
export async function setPendingToken(db: Kysely<ThreepidDatabase>, key: Omit<PendingInviteRow, "token" | "created_ts">, token: string): Promise<void> {
  await runSql(db, "UPDATE threepid_pending_invites SET token = ? WHERE room_id = ? AND sender = ? AND medium = ? AND address = ?", [
    token,
    key.room_id,
    key.sender,
    key.medium,
    key.address,
  ]);
}

/** Typed queries over the tables above. */
export class ThreepidStore {
  readonly db: Kysely<ThreepidDatabase>;
  constructor(db: Kysely<ThreepidDatabase>) {
    this.db = db;
  }

  // ── pending 3PID invites ────────────────────────────────────────────────────

  /**
   * Claims the key; false when a row already holds it. Claims made in the same turn of the
   * event loop share one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` (one statement
   * and one commit instead of one each); a key claimed twice in one batch goes to the first.
   */
  claimPendingInvite(key: Omit<PendingInviteRow, "token" | "created_ts">, now: number): Promise<boolean> {
    return this.#claim({ ...key, token: null, created_ts: now });
  }

  readonly #claim = batched(async (rows: PendingInviteRow[]) => {
    const k = (r: Pick<PendingInviteRow, "room_id" | "sender" | "medium" | "address">) => `${r.room_id}\u0000${r.sender}\u0000${r.medium}\u0000${r.address}`;
    const params: unknown[] = [];
    for (const r of rows) params.push(r.room_id, r.sender, r.medium, r.address, r.token, r.created_ts);
    const inserted = await runSql<Pick<PendingInviteRow, "room_id" | "sender" | "medium" | "address">>(
      this.db,
      `INSERT INTO threepid_pending_invites (room_id, sender, medium, address, token, created_ts) VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?)").join(", ")} ` +
        "ON CONFLICT DO NOTHING RETURNING room_id, sender, medium, address",
      params,
    );
    const won = new Set(inserted.map(k));
    return rows.map((r) => won.delete(k(r)));
  });

  async getPendingInvite(key: Omit<PendingInviteRow, "token" | "created_ts">): Promise<PendingInviteRow | undefined> {
    return this.db
      .selectFrom("threepid_pending_invites")
      .selectAll()
      .where("room_id", "=", key.room_id)
      .where("sender", "=", key.sender)
      .where("medium", "=", key.medium)
      .where("address", "=", key.address)
      .executeTakeFirst();
  }

  setPendingToken(key: Omit<PendingInviteRow, "token" | "created_ts">, token: string): Promise<void> {
    return setPendingToken(this.db, key, token);
  }

  /**
   * Releases a claim. With `expect`, only the row in that state is removed (a stale row taken
   * over by one request must not be deleted by another).
   */
  async releasePendingInvite(key: Omit<PendingInviteRow, "token" | "created_ts">, expect?: { token: string | null; created_ts: number }): Promise<boolean> {
    let q = this.db
      .deleteFrom("threepid_pending_invites")
      .where("room_id", "=", key.room_id)
      .where("sender", "=", key.sender)
      .where("medium", "=", key.medium)
      .where("address", "=", key.address);
    if (expect) {
      q = q.where("created_ts", "=", expect.created_ts);
      q = expect.token === null ? q.where("token", "is", null) : q.where("token", "=", expect.token);
    }
    const res = await q.executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /** The invite for `token` in `roomId` became a membership (or was revoked): no longer pending. */
  async forgetPendingToken(roomId: string, token: string): Promise<void> {
    // Most tokens have no row (createRoom invites, replays): a read is cheaper than a write.
    const row = await this.db.selectFrom("threepid_pending_invites").select("room_id").where("room_id", "=", roomId).where("token", "=", token).executeTakeFirst();
    if (!row) return;
    await this.db.deleteFrom("threepid_pending_invites").where("room_id", "=", roomId).where("token", "=", token).execute();
  }

  // ── onbind claims ────────────────────────────────────────────────────────────

  async claimOnbind(roomId: string, token: string, mxid: string, now: number): Promise<boolean> {
    const res = await this.db
      .insertInto("threepid_onbind_claims")
      .values({ room_id: roomId, token, mxid, state: "pending", created_ts: now })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /**
   * Claims several (room, token, mxid) at once (one statement per 100); returns, per item,
   * whether this call inserted its row (false: a row already held it).
   */
  async claimOnbindMany(items: readonly { roomId: string; token: string; mxid: string }[], now: number): Promise<boolean[]> {
    const won = new Set<string>();
    const k = (r: string, t: string, m: string) => `${r}\u0000${t}\u0000${m}`;
    for (let i = 0; i < items.length; i += 100) {
      const part = items.slice(i, i + 100);
      const rows = await this.db
        .insertInto("threepid_onbind_claims")
        .values(part.map((x) => ({ room_id: x.roomId, token: x.token, mxid: x.mxid, state: "pending", created_ts: now })))
        .onConflict((oc) => oc.doNothing())
        .returning(["room_id", "token", "mxid"])
        .execute();
      for (const r of rows) won.add(k(r.room_id, r.token, r.mxid));
    }
    // A key listed twice is won by its first item only.
    return items.map((x) => won.delete(k(x.roomId, x.token, x.mxid)));
  }

  /**
   * For invites sent: their claims become done and their tokens stop being pending, all in one
   * transaction (one commit for a whole onbind batch instead of two per invite).
   */
  async finishOnbindMany(items: readonly { roomId: string; token: string; mxid: string }[]): Promise<void> {
    if (items.length === 0) return;
    await inTransaction(this.db, async (trx) => {
      for (const x of items) {
        await trx.updateTable("threepid_onbind_claims").set({ state: "done" }).where("room_id", "=", x.roomId).where("token", "=", x.token).where("mxid", "=", x.mxid).execute();
        await trx.deleteFrom("threepid_pending_invites").where("room_id", "=", x.roomId).where("token", "=", x.token).execute();
      }
    });
  }

  async getOnbindClaim(roomId: string, token: string, mxid: string): Promise<OnbindClaimRow | undefined> {
    return this.db
      .selectFrom("threepid_onbind_claims")
      .selectAll()
      .where("room_id", "=", roomId)
      .where("token", "=", token)
      .where("mxid", "=", mxid)
      .executeTakeFirst();
  }

  async finishOnbind(roomId: string, token: string, mxid: string): Promise<void> {
    await this.db
      .updateTable("threepid_onbind_claims")
      .set({ state: "done" })
      .where("room_id", "=", roomId)
      .where("token", "=", token)
      .where("mxid", "=", mxid)
      .execute();
  }

  /** Records that (room, token, mxid) was exchanged outside onbind (`join` with `third_party_signed`). */
  async markOnbindDone(roomId: string, token: string, mxid: string, now: number): Promise<void> {
    await this.db
      .insertInto("threepid_onbind_claims")
      .values({ room_id: roomId, token, mxid, state: "done", created_ts: now })
      .onConflict((oc) => oc.columns(["room_id", "token", "mxid"]).doUpdateSet({ state: "done" }))
      .execute();
  }

  async releaseOnbind(roomId: string, token: string, mxid: string, createdTs?: number): Promise<void> {
    let q = this.db.deleteFrom("threepid_onbind_claims").where("room_id", "=", roomId).where("token", "=", token).where("mxid", "=", mxid);
    if (createdTs !== undefined) q = q.where("created_ts", "=", createdTs).where("state", "=", "pending");
    await q.execute();
  }

  // ── identity-server binds ────────────────────────────────────────────────────

  async recordBind(row: BindRow): Promise<void> {
    await this.db
      .insertInto("threepid_id_server_binds")
      .values(row)
      .onConflict((oc) => oc.columns(["user_id", "medium", "address", "id_server"]).doNothing())
      .execute();
  }

  async bindsFor(userId: string, medium?: string, address?: string): Promise<BindRow[]> {
    let q = this.db.selectFrom("threepid_id_server_binds").selectAll().where("user_id", "=", userId);
    if (medium !== undefined) q = q.where("medium", "=", medium);
    if (address !== undefined) q = q.where("address", "=", address);
    return q.orderBy("added_ts").execute();
  }

  async removeBind(userId: string, medium: string, address: string, idServer: string): Promise<void> {
    await this.db
      .deleteFrom("threepid_id_server_binds")
      .where("user_id", "=", userId)
      .where("medium", "=", medium)
      .where("address", "=", address)
      .where("id_server", "=", idServer)
      .execute();
  }

  // ── OpenID tokens ────────────────────────────────────────────────────────────

  async insertOpenidToken(row: OpenidTokenRow): Promise<void> {
    await this.db.insertInto("openid_tokens").values(row).execute();
  }

  async openidUser(token: string, now: number): Promise<string | undefined> {
    const row = await this.db.selectFrom("openid_tokens").select(["user_id", "valid_until_ms"]).where("token", "=", token).executeTakeFirst();
    return row && row.valid_until_ms > now ? row.user_id : undefined;
  }

  async purgeOpenidTokens(now: number): Promise<void> {
    await this.db.deleteFrom("openid_tokens").where("valid_until_ms", "<=", now).execute();
  }
}
