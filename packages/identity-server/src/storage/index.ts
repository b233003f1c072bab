/**
 * Storage of the identity server: one interface per aggregate, one Kysely implementation
 * running on SQLite and PostgreSQL. {@link createStores} binds them all to a database or a
 * transaction, so a domain operation that spans aggregates commits atomically.
 */
import type { Kysely } from "kysely";
import type { Engine } from "@beckon/server-kit";
import { KyselyAccountStore, type AccountStore } from "./accounts.js";
import { KyselyAssociationStore, type AssociationStore } from "./associations.js";
import { KyselyDeliveryStore, type DeliveryStore } from "./delivery.js";
import { KyselyInviteStore, type InviteStore } from "./invites.js";
import { KyselySessionStore, type SessionStore } from "./sessions.js";
import { KyselySettingsStore, KyselySigningKeyStore, type SettingsStore, type SigningKeyStore } from "./settings.js";
import type { IsDatabase } from "./schema.js";
import type { SqliteHotReads } from "./sqlite-hot-reads.js";

export * from "./accounts.js";
export * from "./associations.js";
export * from "./delivery.js";
export * from "./invites.js";
export * from "./migrations.js";
export * from "./schema.js";
export * from "./sessions.js";
export * from "./settings.js";
export * from "./sqlite-hot-reads.js";
export * from "./group-commit.js";

export interface Stores {
  /** The executor the stores are bound to (a database or a transaction), e.g. for the mail outbox. */
  readonly db: Kysely<IsDatabase>;
  readonly engine: Engine;
  readonly accounts: AccountStore;
  readonly settings: SettingsStore;
  readonly signingKeys: SigningKeyStore;
  readonly associations: AssociationStore;
  readonly sessions: SessionStore;
  readonly invites: InviteStore;
  readonly delivery: DeliveryStore;
}

/**
 * Binds the stores to `db`. `hot` (SQLite, outside transactions only) serves token checks,
 * association reads and hashed lookups from prepared statements on a read-only connection.
 */
export function createStores(db: Kysely<IsDatabase>, engine: Engine, hot?: SqliteHotReads): Stores {
  const accounts = new KyselyAccountStore(db);
  const associations = new KyselyAssociationStore(db);
  if (hot) {
    accounts.tokenOwner = async (token) => hot.tokenOwner(token);
    associations.lookupHashes = async (hashes, now) => hot.lookupHashes(hashes, now);
    associations.get = async (medium, address, now) => hot.association(medium, address, now);
  }
  return {
    db,
    engine,
    accounts,
    settings: new KyselySettingsStore(db),
    signingKeys: new KyselySigningKeyStore(db),
    associations,
    sessions: new KyselySessionStore(db),
    invites: new KyselyInviteStore(db),
    delivery: new KyselyDeliveryStore(db, engine),
  };
}

/** Runs `fn` with stores bound to one transaction (retried on serialization failures). */
export type TransactionRunner = <T>(fn: (stores: Stores) => Promise<T>) => Promise<T>;
