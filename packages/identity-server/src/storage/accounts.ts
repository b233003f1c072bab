/** Accounts, their access tokens, and accepted terms (one aggregate: an account). */
import type { Kysely } from "kysely";
import type { IsDatabase } from "./schema.js";

export interface TokenOwner {
  userId: string;
  consentVersion: string | null;
}

export interface AccountStore {
  /** Creates the account if absent (an existing consent version is kept) and adds a token. */
  addToken(userId: string, token: string, now: number): Promise<void>;
  /** Owner of a live token, with the account's consent version. */
  tokenOwner(token: string): Promise<TokenOwner | undefined>;
  deleteToken(token: string): Promise<void>;
  /** Adds accepted URLs (accumulating) and returns all URLs the user accepted so far. */
  acceptTerms(userId: string, urls: readonly string[]): Promise<string[]>;
  setConsentVersion(userId: string, version: string): Promise<void>;
}

export class KyselyAccountStore implements AccountStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}

  async addToken(userId: string, token: string, now: number): Promise<void> {
    await this.db
      .insertInto("is_accounts")
      .values({ user_id: userId, created_ts: now, consent_version: null })
      .onConflict((oc) => oc.column("user_id").doNothing())
      .execute();
    await this.db.insertInto("is_access_tokens").values({ token, user_id: userId, created_ts: now }).execute();
  }

  async tokenOwner(token: string): Promise<TokenOwner | undefined> {
    const row = await this.db
      .selectFrom("is_access_tokens as t")
      .innerJoin("is_accounts as a", "a.user_id", "t.user_id")
      .select(["t.user_id", "a.consent_version"])
      .where("t.token", "=", token)
      .executeTakeFirst();
    return row ? { userId: row.user_id, consentVersion: row.consent_version } : undefined;
  }

  async deleteToken(token: string): Promise<void> {
    await this.db.deleteFrom("is_access_tokens").where("token", "=", token).execute();
  }

  async acceptTerms(userId: string, urls: readonly string[]): Promise<string[]> {
    const unique = [...new Set(urls)];
    if (unique.length > 0) {
      await this.db
        .insertInto("is_accepted_terms")
        .values(unique.map((url) => ({ user_id: userId, url })))
        .onConflict((oc) => oc.columns(["user_id", "url"]).doNothing())
        .execute();
    }
    const rows = await this.db.selectFrom("is_accepted_terms").select("url").where("user_id", "=", userId).execute();
    return rows.map((r) => r.url);
  }

  async setConsentVersion(userId: string, version: string): Promise<void> {
    await this.db.updateTable("is_accounts").set({ consent_version: version }).where("user_id", "=", userId).execute();
  }
}
