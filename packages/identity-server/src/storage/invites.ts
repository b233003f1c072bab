/** Pending 3PID invites (store-invite) and their ephemeral public keys. */
import type { Kysely } from "kysely";
import { runSql } from "@beckon/server-kit";
import type { IsDatabase } from "./schema.js";

export interface StoredInvite {
  token: string;
  medium: string;
  address: string;
  roomId: string;
  sender: string;
  ephemeralPublicKey: string;
  createdTs: number;
  expiresTs: number;
  deliveredTs: number | null;
  details: Record<string, unknown>;
}

export interface InviteStore {
  insert(i: StoredInvite): Promise<void>;
  get(token: string): Promise<StoredInvite | undefined>;
  /** The newest unexpired invite with the same room, sender, medium and address created at or after `since`. */
  findDuplicate(roomId: string, sender: string, medium: string, address: string, since: number, now: number): Promise<StoredInvite | undefined>;
  /** Undelivered, unexpired invites for an address. */
  pendingFor(medium: string, address: string, now: number): Promise<StoredInvite[]>;
  /** Whether some unexpired invite has this ephemeral key (URL-safe unpadded form). */
  ephemeralKeyValid(publicKey: string, now: number): Promise<boolean>;
  markDelivered(tokens: readonly string[], now: number): Promise<void>;
  /** Deletes invites expired at `now` (and their queued deliveries); returns how many invites. */
  purgeExpired(now: number): Promise<number>;
}

type Row = IsDatabase["is_invites"];

function parseDetails(s: string): Record<string, unknown> {
  try {
    const x: unknown = JSON.parse(s);
    return typeof x === "object" && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function fromRow(r: Row): StoredInvite {
  return {
    token: r.token,
    medium: r.medium,
    address: r.address,
    roomId: r.room_id,
    sender: r.sender,
    ephemeralPublicKey: r.ephemeral_public_key,
    createdTs: Number(r.created_ts),
    expiresTs: Number(r.expires_ts),
    deliveredTs: r.delivered_ts === null ? null : Number(r.delivered_ts),
    details: parseDetails(r.details),
  };
}

export class KyselyInviteStore implements InviteStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}

  // store-invite's statements are fixed SQL (runSql): the query builder cost more than SQLite.
  async insert(i: StoredInvite): Promise<void> {
    await runSql(
      this.db,
      "INSERT INTO is_invites (token, medium, address, room_id, sender, ephemeral_public_key, created_ts, expires_ts, delivered_ts, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [i.token, i.medium, i.address, i.roomId, i.sender, i.ephemeralPublicKey, i.createdTs, i.expiresTs, i.deliveredTs, JSON.stringify(i.details)],
    );
  }

  async get(token: string): Promise<StoredInvite | undefined> {
    const r = await this.db.selectFrom("is_invites").selectAll().where("token", "=", token).executeTakeFirst();
    return r ? fromRow(r) : undefined;
  }

  async findDuplicate(roomId: string, sender: string, medium: string, address: string, since: number, now: number): Promise<StoredInvite | undefined> {
    const rows = await runSql<Row>(
      this.db,
      "SELECT token, medium, address, room_id, sender, ephemeral_public_key, created_ts, expires_ts, delivered_ts, details FROM is_invites " +
        "WHERE medium = ? AND address = ? AND room_id = ? AND sender = ? AND created_ts >= ? AND expires_ts > ? ORDER BY created_ts DESC LIMIT 1",
      [medium, address, roomId, sender, since, now],
    );
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async pendingFor(medium: string, address: string, now: number): Promise<StoredInvite[]> {
    const rows = await this.db
      .selectFrom("is_invites")
      .selectAll()
      .where("medium", "=", medium)
      .where("address", "=", address)
      .where("delivered_ts", "is", null)
      .where("expires_ts", ">", now)
      .orderBy("created_ts")
      .execute();
    return rows.map(fromRow);
  }

  async ephemeralKeyValid(publicKey: string, now: number): Promise<boolean> {
    const r = await this.db
      .selectFrom("is_invites")
      .select("token")
      .where("ephemeral_public_key", "=", publicKey)
      .where("expires_ts", ">", now)
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  async markDelivered(tokens: readonly string[], now: number): Promise<void> {
    if (tokens.length === 0) return;
    await this.db.updateTable("is_invites").set({ delivered_ts: now }).where("token", "in", [...tokens]).where("delivered_ts", "is", null).execute();
  }

  async purgeExpired(now: number): Promise<number> {
    const expired = this.db.selectFrom("is_invites").select("token").where("expires_ts", "<=", now);
    await this.db.deleteFrom("is_delivery_queue").where("token", "in", expired).execute();
    const res = await this.db.deleteFrom("is_invites").where("expires_ts", "<=", now).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
