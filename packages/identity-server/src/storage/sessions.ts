/** 3PID validation sessions (email and msisdn). */
import type { Kysely } from "kysely";
import type { IsDatabase } from "./schema.js";

export interface ValidationSession {
  sid: string;
  medium: string;
  address: string;
  clientSecret: string;
  token: string;
  sendAttempt: number;
  nextLink: string | null;
  validatedTs: number | null;
  createdTs: number;
  mtime: number;
}

export interface SessionStore {
  /** The session of (medium, address, client_secret), if any. */
  find(medium: string, address: string, clientSecret: string): Promise<ValidationSession | undefined>;
  get(sid: string): Promise<ValidationSession | undefined>;
  /** Inserts a new session; false when (medium, address, client_secret) already has one (a concurrent request won). */
  insert(s: ValidationSession): Promise<boolean>;
  /** Records a new send attempt (and a fresh mtime, next_link). */
  touch(sid: string, sendAttempt: number, nextLink: string | null, mtime: number): Promise<void>;
  markValidated(sid: string, now: number): Promise<void>;
  /** Deletes sessions last modified before `before`; returns how many. */
  purgeOlderThan(before: number): Promise<number>;
}

type Row = IsDatabase["is_validation_sessions"];

function fromRow(r: Row): ValidationSession {
  return {
    sid: r.sid,
    medium: r.medium,
    address: r.address,
    clientSecret: r.client_secret,
    token: r.token,
    sendAttempt: Number(r.send_attempt),
    nextLink: r.next_link,
    validatedTs: r.validated_ts === null ? null : Number(r.validated_ts),
    createdTs: Number(r.created_ts),
    mtime: Number(r.mtime),
  };
}

export class KyselySessionStore implements SessionStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}

  async find(medium: string, address: string, clientSecret: string): Promise<ValidationSession | undefined> {
    const r = await this.db
      .selectFrom("is_validation_sessions")
      .selectAll()
      .where("medium", "=", medium)
      .where("address", "=", address)
      .where("client_secret", "=", clientSecret)
      .executeTakeFirst();
    return r ? fromRow(r) : undefined;
  }

  async get(sid: string): Promise<ValidationSession | undefined> {
    const r = await this.db.selectFrom("is_validation_sessions").selectAll().where("sid", "=", sid).executeTakeFirst();
    return r ? fromRow(r) : undefined;
  }

  async insert(s: ValidationSession): Promise<boolean> {
    const res = await this.db
      .insertInto("is_validation_sessions")
      .values({
        sid: s.sid,
        medium: s.medium,
        address: s.address,
        client_secret: s.clientSecret,
        token: s.token,
        send_attempt: s.sendAttempt,
        next_link: s.nextLink,
        validated_ts: s.validatedTs,
        created_ts: s.createdTs,
        mtime: s.mtime,
      })
      .onConflict((oc) => oc.columns(["medium", "address", "client_secret"]).doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async touch(sid: string, sendAttempt: number, nextLink: string | null, mtime: number): Promise<void> {
    await this.db.updateTable("is_validation_sessions").set({ send_attempt: sendAttempt, next_link: nextLink, mtime }).where("sid", "=", sid).execute();
  }

  async markValidated(sid: string, now: number): Promise<void> {
    await this.db.updateTable("is_validation_sessions").set({ validated_ts: now, mtime: now }).where("sid", "=", sid).execute();
  }

  async purgeOlderThan(before: number): Promise<number> {
    const res = await this.db.deleteFrom("is_validation_sessions").where("mtime", "<", before).executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
