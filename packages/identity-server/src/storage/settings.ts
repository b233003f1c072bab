/** Named server settings (the lookup pepper) and the long-term signing keys. */
import type { Kysely } from "kysely";
import type { IsDatabase } from "./schema.js";

export interface SettingsStore {
  get(name: string): Promise<string | undefined>;
  /** Sets `name` only if it has no value yet; returns the value now stored. */
  setIfAbsent(name: string, value: string): Promise<string>;
  set(name: string, value: string): Promise<void>;
}

export interface SigningKeyStore {
  get(keyId: string): Promise<{ keyId: string; seed: string } | undefined>;
  /** Stores a key unless one exists under that id; returns the stored one (first writer wins). */
  insertIfAbsent(keyId: string, seed: string, now: number): Promise<{ keyId: string; seed: string }>;
}

export class KyselySettingsStore implements SettingsStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}
  async get(name: string): Promise<string | undefined> {
    const row = await this.db.selectFrom("is_settings").select("value").where("name", "=", name).executeTakeFirst();
    return row?.value;
  }
  async setIfAbsent(name: string, value: string): Promise<string> {
    await this.db.insertInto("is_settings").values({ name, value }).onConflict((oc) => oc.column("name").doNothing()).execute();
    return (await this.get(name)) ?? value;
  }
  async set(name: string, value: string): Promise<void> {
    await this.db
      .insertInto("is_settings")
      .values({ name, value })
      .onConflict((oc) => oc.column("name").doUpdateSet({ value }))
      .execute();
  }
}

export class KyselySigningKeyStore implements SigningKeyStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}
  async get(keyId: string): Promise<{ keyId: string; seed: string } | undefined> {
    const row = await this.db.selectFrom("is_signing_keys").select(["key_id", "seed"]).where("key_id", "=", keyId).executeTakeFirst();
    return row ? { keyId: row.key_id, seed: row.seed } : undefined;
  }
  async insertIfAbsent(keyId: string, seed: string, now: number): Promise<{ keyId: string; seed: string }> {
    await this.db
      .insertInto("is_signing_keys")
      .values({ key_id: keyId, seed, created_ts: now })
      .onConflict((oc) => oc.column("key_id").doNothing())
      .execute();
    return (await this.get(keyId)) ?? { keyId, seed };
  }
}
