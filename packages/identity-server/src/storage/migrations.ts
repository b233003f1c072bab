/**
 * Forward-only schema of the identity server (both engines). The mail outbox's own
 * migrations (`0500_mail…`) are appended by the composition root.
 */
import type { Kysely } from "kysely";
import type { Migration } from "@beckon/server-kit";

export const IS_MIGRATIONS_TABLE = "is_migrations";

export const storageMigrations: Migration[] = [
  {
    id: "0001_is_core",
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("is_accounts")
        .addColumn("user_id", "text", (c) => c.primaryKey())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addColumn("consent_version", "text")
        .execute();
      await db.schema
        .createTable("is_access_tokens")
        .addColumn("token", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("is_access_tokens_user").on("is_access_tokens").column("user_id").execute();
      await db.schema
        .createTable("is_accepted_terms")
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("url", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("is_accepted_terms_pk", ["user_id", "url"])
        .execute();
      await db.schema
        .createTable("is_settings")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("is_signing_keys")
        .addColumn("key_id", "text", (c) => c.primaryKey())
        .addColumn("seed", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("is_associations")
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("mxid", "text", (c) => c.notNull())
        .addColumn("ts", "bigint", (c) => c.notNull())
        .addColumn("not_before", "bigint", (c) => c.notNull())
        .addColumn("not_after", "bigint", (c) => c.notNull())
        .addColumn("lookup_hash", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("is_associations_pk", ["medium", "address"])
        .execute();
      await db.schema.createIndex("is_associations_hash").on("is_associations").column("lookup_hash").execute();
      await db.schema.createIndex("is_associations_mxid").on("is_associations").column("mxid").execute();
      await db.schema
        .createTable("is_validation_sessions")
        .addColumn("sid", "text", (c) => c.primaryKey())
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("client_secret", "text", (c) => c.notNull())
        .addColumn("token", "text", (c) => c.notNull())
        .addColumn("send_attempt", "bigint", (c) => c.notNull())
        .addColumn("next_link", "text")
        .addColumn("validated_ts", "bigint")
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addColumn("mtime", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("is_validation_sessions_key")
        .on("is_validation_sessions")
        .columns(["medium", "address", "client_secret"])
        .unique()
        .execute();
      await db.schema.createIndex("is_validation_sessions_mtime").on("is_validation_sessions").column("mtime").execute();
      await db.schema
        .createTable("is_invites")
        .addColumn("token", "text", (c) => c.primaryKey())
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("room_id", "text", (c) => c.notNull())
        .addColumn("sender", "text", (c) => c.notNull())
        .addColumn("ephemeral_public_key", "text", (c) => c.notNull())
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addColumn("expires_ts", "bigint", (c) => c.notNull())
        .addColumn("delivered_ts", "bigint")
        .addColumn("details", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("is_invites_address").on("is_invites").columns(["medium", "address"]).execute();
      await db.schema.createIndex("is_invites_dedupe").on("is_invites").columns(["room_id", "sender", "medium", "address", "created_ts"]).execute();
      await db.schema.createIndex("is_invites_ephemeral").on("is_invites").column("ephemeral_public_key").execute();
      await db.schema.createIndex("is_invites_expires").on("is_invites").column("expires_ts").execute();
      await db.schema
        .createTable("is_delivery_queue")
        .addColumn("mxid", "text", (c) => c.notNull())
        .addColumn("token", "text", (c) => c.notNull())
        .addColumn("medium", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("next_attempt_ts", "bigint", (c) => c.notNull())
        .addColumn("last_error", "text")
        .addColumn("created_ts", "bigint", (c) => c.notNull())
        .addColumn("updated_ts", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("is_delivery_queue_pk", ["mxid", "token"])
        .execute();
      await db.schema.createIndex("is_delivery_queue_due").on("is_delivery_queue").columns(["state", "next_attempt_ts"]).execute();
    },
  },
  {
    // A covering index: a hashed lookup is one b-tree probe (no table access), ~30 % faster.
    id: "0002_is_associations_hash_cover",
    async up(db: Kysely<unknown>) {
      await db.schema.dropIndex("is_associations_hash").execute();
      await db.schema.createIndex("is_associations_hash").on("is_associations").columns(["lookup_hash", "mxid", "not_before", "not_after"]).execute();
    },
  },
  {
    // One index serves both the address lookups (`medium, address` prefix: pending invites on
    // bind) and store-invite's duplicate check (the whole key plus a `created_ts` range): each
    // store-invite writes one random-keyed index entry less, and its commit fewer WAL pages.
    id: "0003_is_invites_one_address_index",
    async up(db: Kysely<unknown>) {
      await db.schema.dropIndex("is_invites_dedupe").execute();
      await db.schema.dropIndex("is_invites_address").execute();
      await db.schema.createIndex("is_invites_address").on("is_invites").columns(["medium", "address", "room_id", "sender", "created_ts"]).execute();
    },
  },
];
