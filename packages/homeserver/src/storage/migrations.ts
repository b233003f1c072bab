/**
 * Forward-only schema of the homeserver's room core (both engines). The 3PID module's
 * migrations are appended by the app (`threepidMigrations`).
 */
import { sql, type Kysely } from "kysely";
import type { Migration } from "@beckon/server-kit";

export const HS_MIGRATIONS_TABLE = "hs_migrations";

export const storageMigrations: Migration[] = [
  {
    id: "0001_hs_core",
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("hs_settings")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("hs_signing_keys")
        .addColumn("key_id", "text", (c) => c.primaryKey())
        .addColumn("seed", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("hs_users")
        .addColumn("user_id", "text", (c) => c.primaryKey())
        .addColumn("localpart", "text", (c) => c.notNull().unique())
        .addColumn("password_hash", "text")
        .addColumn("displayname", "text")
        .addColumn("avatar_url", "text")
        .addColumn("is_admin", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("deactivated", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("hs_devices")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("display_name", "text")
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("hs_devices_pk", ["user_id", "device_id"])
        .execute();
      await db.schema
        .createTable("hs_access_tokens")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("hs_access_tokens_user").on("hs_access_tokens").columns(["user_id", "device_id"]).execute();
      await db.schema
        .createTable("hs_admin_nonces")
        .addColumn("nonce", "text", (c) => c.primaryKey())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("hs_rooms")
        .addColumn("room_id", "text", (c) => c.primaryKey())
        .addColumn("room_version", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addColumn("latest_event_id", "text", (c) => c.notNull())
        .addColumn("latest_depth", "bigint", (c) => c.notNull())
        .addColumn("latest_stream", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("hs_events")
        .addColumn("event_id", "text", (c) => c.primaryKey())
        .addColumn("stream_ordering", "bigint", (c) => c.notNull().unique())
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("state_key", "text")
        .addColumn("sender", "text", (c) => c.notNull())
        .addColumn("origin_server_ts", "bigint", (c) => c.notNull())
        .addColumn("json", "text", (c) => c.notNull())
        .addColumn("unsigned_json", "text")
        .addColumn("txn_device_id", "text")
        .addColumn("txn_id", "text")
        .execute();
      await db.schema.createIndex("hs_events_room_stream").on("hs_events").columns(["room_id", "stream_ordering"]).execute();
      await db.schema
        .createTable("hs_stream")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("pos", "bigint", (c) => c.notNull())
        .execute();
      await sql`INSERT INTO hs_stream (id, pos) VALUES (1, 0)`.execute(db);
      await db.schema
        .createTable("hs_current_state")
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("state_key", "text", (c) => c.notNull())
        .addColumn("event_id", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("hs_current_state_pk", ["room_id", "type", "state_key"])
        .execute();
      await db.schema
        .createTable("hs_memberships")
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("membership", "text", (c) => c.notNull())
        .addColumn("event_id", "text", (c) => c.notNull())
        .addColumn("stream_ordering", "bigint", (c) => c.notNull())
        .addColumn("forgotten", "integer", (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint("hs_memberships_pk", ["room_id", "user_id"])
        .execute();
      await db.schema.createIndex("hs_memberships_user").on("hs_memberships").columns(["user_id", "membership"]).execute();
      await db.schema
        .createTable("hs_txns")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("device_id", "text", (c) => c.notNull())
        .addColumn("txn_id", "text", (c) => c.notNull())
        .addColumn("event_id", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("hs_txns_pk", ["user_id", "device_id", "txn_id"])
        .execute();
      await db.schema
        .createTable("hs_aliases")
        .addColumn("alias", "text", (c) => c.primaryKey())
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("hs_aliases_room").on("hs_aliases").column("room_id").execute();
    },
  },
  {
    id: "0002_hs_account_data",
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("hs_account_data")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("content", "text", (c) => c.notNull())
        .addColumn("stream_ordering", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("hs_account_data_pk", ["user_id", "room_id", "type"])
        .execute();
    },
  },
  {
    id: "0003_hs_filters",
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("hs_filters")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("filter_id", "text", (c) => c.notNull())
        .addColumn("json", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("hs_filters_pk", ["user_id", "filter_id"])
        .execute();
    },
  },
];
