/**
 * Accounts, devices, access tokens (stored as hashes), shared-secret registration nonces,
 * server settings and the server signing key — one Kysely implementation for both engines.
 */
import type { Kysely } from "kysely";
import { inTransaction, runSql } from "@beckon/server-kit";
import type { HomeserverDB } from "./schema.js";

export interface UserRecord {
  userId: string;
  localpart: string;
  passwordHash: string | null;
  displayname: string | null;
  avatarUrl: string | null;
  isAdmin: boolean;
  deactivated: boolean;
  createdTs: number;
}

export interface NewUser {
  userId: string;
  localpart: string;
  passwordHash: string | null;
  displayname: string | null;
  isAdmin: boolean;
  createdTs: number;
}

export interface TokenOwner {
  userId: string;
  deviceId: string;
  deactivated: boolean;
}

export interface AccountStore {
  /** Throws a unique violation (see `isUniqueViolation`) when the user exists. */
  createUser(u: NewUser): Promise<void>;
  getUser(userId: string): Promise<UserRecord | undefined>;
  setProfile(userId: string, profile: { displayname?: string | null; avatarUrl?: string | null }): Promise<void>;
  /** Marks deactivated, clears password and profile, removes devices and tokens. */
  deactivateUser(userId: string): Promise<void>;
  /** Creates (or reuses) a device and issues a token for it, in one transaction. */
  createSession(s: { userId: string; deviceId: string; tokenHash: string; deviceDisplayName: string | null; now: number }): Promise<void>;
  getTokenOwner(tokenHash: string): Promise<TokenOwner | undefined>;
  /** Deletes the token and its device (logout). */
  deleteSession(tokenHash: string): Promise<void>;
  /** Deletes every token and device of the user (logout/all). */
  deleteAllSessions(userId: string): Promise<void>;
  insertNonce(nonce: string, now: number): Promise<void>;
  /** True when the nonce existed and was created at or after `notBefore`; it is removed either way. */
  consumeNonce(nonce: string, notBefore: number): Promise<boolean>;
  getSetting(name: string): Promise<string | undefined>;
  /** Stores `value` unless a value exists; returns the stored value. */
  setSettingIfAbsent(name: string, value: string): Promise<string>;
  getSigningKey(): Promise<{ keyId: string; seed: string } | undefined>;
  /** Stores a sync filter (the same JSON again gets the same ID). */
  putFilter(userId: string, filterId: string, json: string): Promise<void>;
  getFilter(userId: string, filterId: string): Promise<string | undefined>;
  /** Sets account data ("" room = global); returns its new stream position. */
  setAccountData(userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<number>;
  getAccountData(userId: string, roomId: string, type: string): Promise<Record<string, unknown> | undefined>;
  /** The user's account data changed after stream position `since` (all of it without). */
  listAccountData(userId: string, since?: number): Promise<{ roomId: string; type: string; content: Record<string, unknown>; streamOrdering: number }[]>;
  /** Stores the key unless one exists; returns the stored key (first writer wins). */
  ensureSigningKey(key: { keyId: string; seed: string; now: number }): Promise<{ keyId: string; seed: string }>;
}

const SIGNING_KEY_SETTING = "signing_key";

function parseKeySetting(v: string): { keyId: string; seed: string } {
  const [keyId, seed] = v.split(" ");
  if (!keyId || !seed) throw new Error("corrupt signing key setting");
  return { keyId, seed };
}

export function createAccountStore(db: Kysely<HomeserverDB>): AccountStore {
  const store: AccountStore = {
    async createUser(u) {
      await db
        .insertInto("hs_users")
        .values({
          user_id: u.userId,
          localpart: u.localpart,
          password_hash: u.passwordHash,
          displayname: u.displayname,
          avatar_url: null,
          is_admin: u.isAdmin ? 1 : 0,
          deactivated: 0,
          created_ts: u.createdTs,
        })
        .execute();
    },
    async getUser(userId) {
      const [r] = await runSql<HomeserverDB["hs_users"]>(db, "SELECT user_id, localpart, password_hash, displayname, avatar_url, is_admin, deactivated, created_ts FROM hs_users WHERE user_id = ?",
        [userId],
      );
      if (!r) return undefined;
      return {
        userId: r.user_id,
        localpart: r.localpart,
        passwordHash: r.password_hash,
        displayname: r.displayname,
        avatarUrl: r.avatar_url,
        isAdmin: r.is_admin === 1,
        deactivated: r.deactivated === 1,
        createdTs: Number(r.created_ts),
      };
    },
    async setProfile(userId, profile) {
      const set: { displayname?: string | null; avatar_url?: string | null } = {};
      if (profile.displayname !== undefined) set.displayname = profile.displayname;
      if (profile.avatarUrl !== undefined) set.avatar_url = profile.avatarUrl;
      if (Object.keys(set).length === 0) return;
      await db.updateTable("hs_users").set(set).where("user_id", "=", userId).execute();
    },
    async deactivateUser(userId) {
      await inTransaction(db, async (trx) => {
        await trx
          .updateTable("hs_users")
          .set({ deactivated: 1, password_hash: null, displayname: null, avatar_url: null })
          .where("user_id", "=", userId)
          .execute();
        await trx.deleteFrom("hs_access_tokens").where("user_id", "=", userId).execute();
        await trx.deleteFrom("hs_devices").where("user_id", "=", userId).execute();
      });
    },
    async createSession(s) {
      await inTransaction(db, async (trx) => {
        await trx
          .insertInto("hs_devices")
          .values({ user_id: s.userId, device_id: s.deviceId, display_name: s.deviceDisplayName, created_ts: s.now })
          .onConflict((oc) => oc.columns(["user_id", "device_id"]).doNothing())
          .execute();
        await trx.insertInto("hs_access_tokens").values({ token_hash: s.tokenHash, user_id: s.userId, device_id: s.deviceId, created_ts: s.now }).execute();
      });
    },
    async getTokenOwner(tokenHash) {
      const [r] = await runSql<{ user_id: string; device_id: string; deactivated: number }>(db, "SELECT t.user_id, t.device_id, u.deactivated FROM hs_access_tokens t JOIN hs_users u ON u.user_id = t.user_id WHERE t.token_hash = ?",
        [tokenHash],
      );
      return r ? { userId: r.user_id, deviceId: r.device_id, deactivated: r.deactivated === 1 } : undefined;
    },
    async deleteSession(tokenHash) {
      await inTransaction(db, async (trx) => {
        const t = await trx.selectFrom("hs_access_tokens").select(["user_id", "device_id"]).where("token_hash", "=", tokenHash).executeTakeFirst();
        if (!t) return;
        await trx.deleteFrom("hs_access_tokens").where("user_id", "=", t.user_id).where("device_id", "=", t.device_id).execute();
        await trx.deleteFrom("hs_devices").where("user_id", "=", t.user_id).where("device_id", "=", t.device_id).execute();
      });
    },
    async deleteAllSessions(userId) {
      await inTransaction(db, async (trx) => {
        await trx.deleteFrom("hs_access_tokens").where("user_id", "=", userId).execute();
        await trx.deleteFrom("hs_devices").where("user_id", "=", userId).execute();
      });
    },
    async insertNonce(nonce, now) {
      await db.insertInto("hs_admin_nonces").values({ nonce, created_ts: now }).execute();
    },
    async consumeNonce(nonce, notBefore) {
      const r = await db.deleteFrom("hs_admin_nonces").where("nonce", "=", nonce).returning(["created_ts"]).executeTakeFirst();
      // Old nonces of other requests are swept here too (bounded table).
      await db.deleteFrom("hs_admin_nonces").where("created_ts", "<", notBefore).execute();
      return r !== undefined && Number(r.created_ts) >= notBefore;
    },
    async getSetting(name) {
      const r = await db.selectFrom("hs_settings").select("value").where("name", "=", name).executeTakeFirst();
      return r?.value;
    },
    async setSettingIfAbsent(name, value) {
      await db
        .insertInto("hs_settings")
        .values({ name, value })
        .onConflict((oc) => oc.column("name").doNothing())
        .execute();
      const r = await db.selectFrom("hs_settings").select("value").where("name", "=", name).executeTakeFirstOrThrow();
      return r.value;
    },
    async setAccountData(userId, roomId, type, content) {
      return inTransaction(db, async (trx) => {
        const [row] = await runSql<{ pos: number | string }>(trx, "UPDATE hs_stream SET pos = pos + 1 WHERE id = 1 RETURNING pos", []);
        const pos = Number(row!.pos);
        await runSql(trx, "INSERT INTO hs_account_data (user_id, room_id, type, content, stream_ordering) VALUES (?, ?, ?, ?, ?) " +
            "ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream_ordering = excluded.stream_ordering",
          [userId, roomId, type, JSON.stringify(content), pos],
        );
        return pos;
      });
    },
    async getAccountData(userId, roomId, type) {
      const r = await db.selectFrom("hs_account_data").select("content").where("user_id", "=", userId).where("room_id", "=", roomId).where("type", "=", type).executeTakeFirst();
      return r ? (JSON.parse(r.content) as Record<string, unknown>) : undefined;
    },
    async listAccountData(userId, since) {
      let q = db.selectFrom("hs_account_data").selectAll().where("user_id", "=", userId);
      if (since !== undefined) q = q.where("stream_ordering", ">", since);
      const rows = await q.orderBy("stream_ordering").execute();
      return rows.map((r) => ({ roomId: r.room_id, type: r.type, content: JSON.parse(r.content) as Record<string, unknown>, streamOrdering: Number(r.stream_ordering) }));
    },
    async putFilter(userId, filterId, json) {
      await db
        .insertInto("hs_filters")
        .values({ user_id: userId, filter_id: filterId, json })
        .onConflict((oc) => oc.columns(["user_id", "filter_id"]).doNothing())
        .execute();
    },
    async getFilter(userId, filterId) {
      const r = await db.selectFrom("hs_filters").select("json").where("user_id", "=", userId).where("filter_id", "=", filterId).executeTakeFirst();
      return r?.json;
    },
    async getSigningKey() {
      const v = await store.getSetting(SIGNING_KEY_SETTING);
      return v === undefined ? undefined : parseKeySetting(v);
    },
    async ensureSigningKey(key) {
      // The settings row is the single source (unique by name, first writer wins across processes);
      // hs_signing_keys keeps every key we ever used, for old_verify_keys later.
      const stored = parseKeySetting(await store.setSettingIfAbsent(SIGNING_KEY_SETTING, `${key.keyId} ${key.seed}`));
      await db
        .insertInto("hs_signing_keys")
        .values({ key_id: stored.keyId, seed: stored.seed, created_ts: key.now })
        .onConflict((oc) => oc.column("key_id").doNothing())
        .execute();
      return stored;
    },
  };
  return store;
}
