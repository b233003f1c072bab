/**
 * 3PID → mxid associations with their sha256 lookup hash at the current pepper
 * (an indexed column: a lookup of N hashes is N index probes, whatever the table size).
 */
import type { Kysely } from "kysely";
import type { IsDatabase } from "./schema.js";

export interface Association {
  medium: string;
  address: string;
  mxid: string;
  ts: number;
  notBefore: number;
  notAfter: number;
}

export interface AssociationStore {
  /** Inserts or replaces the association of (medium, address). */
  upsert(a: Association, lookupHash: string): Promise<void>;
  /** The association of (medium, address) valid at `now`. */
  get(medium: string, address: string, now: number): Promise<Association | undefined>;
  /** Removes the association if it maps to `mxid`; true when one was removed. */
  delete(medium: string, address: string, mxid: string): Promise<boolean>;
  /** hash → mxid for the given sha256 hashes (current pepper), valid at `now`; unknown hashes are absent. */
  lookupHashes(hashes: readonly string[], now: number): Promise<Map<string, string>>;
  /** `"<address> <medium>"` → mxid for plain (algorithm `none`) lookups. */
  lookupPlain(pairs: readonly { medium: string; address: string }[], now: number): Promise<Map<string, string>>;
  /** Rewrites every row's lookup hash (pepper rotation); returns the number of rows. */
  rehashAll(hash: (address: string, medium: string) => string, batchSize?: number): Promise<number>;
  count(): Promise<number>;
}

const CHUNK = 500;

export class KyselyAssociationStore implements AssociationStore {
  constructor(private readonly db: Kysely<IsDatabase>) {}

  async upsert(a: Association, lookupHash: string): Promise<void> {
    const row = {
      medium: a.medium,
      address: a.address,
      mxid: a.mxid,
      ts: a.ts,
      not_before: a.notBefore,
      not_after: a.notAfter,
      lookup_hash: lookupHash,
    };
    await this.db
      .insertInto("is_associations")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["medium", "address"]).doUpdateSet({
          mxid: row.mxid,
          ts: row.ts,
          not_before: row.not_before,
          not_after: row.not_after,
          lookup_hash: row.lookup_hash,
        }),
      )
      .execute();
  }

  async get(medium: string, address: string, now: number): Promise<Association | undefined> {
    const r = await this.db
      .selectFrom("is_associations")
      .selectAll()
      .where("medium", "=", medium)
      .where("address", "=", address)
      .where("not_before", "<=", now)
      .where("not_after", ">", now)
      .executeTakeFirst();
    return r ? { medium: r.medium, address: r.address, mxid: r.mxid, ts: r.ts, notBefore: r.not_before, notAfter: r.not_after } : undefined;
  }

  async delete(medium: string, address: string, mxid: string): Promise<boolean> {
    const res = await this.db
      .deleteFrom("is_associations")
      .where("medium", "=", medium)
      .where("address", "=", address)
      .where("mxid", "=", mxid)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  async lookupHashes(hashes: readonly string[], now: number): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < hashes.length; i += CHUNK) {
      const chunk = hashes.slice(i, i + CHUNK);
      const rows = await this.db
        .selectFrom("is_associations")
        .select(["lookup_hash", "mxid"])
        .where("lookup_hash", "in", chunk)
        .where("not_before", "<=", now)
        .where("not_after", ">", now)
        .execute();
      for (const r of rows) out.set(r.lookup_hash, r.mxid);
    }
    return out;
  }

  async lookupPlain(pairs: readonly { medium: string; address: string }[], now: number): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < pairs.length; i += CHUNK) {
      const chunk = pairs.slice(i, i + CHUNK);
      const rows = await this.db
        .selectFrom("is_associations")
        .select(["medium", "address", "mxid"])
        .where((eb) => eb.or(chunk.map((p) => eb.and([eb("medium", "=", p.medium), eb("address", "=", p.address)]))))
        .where("not_before", "<=", now)
        .where("not_after", ">", now)
        .execute();
      for (const r of rows) out.set(`${r.address} ${r.medium}`, r.mxid);
    }
    return out;
  }

  async rehashAll(hash: (address: string, medium: string) => string, batchSize = 1000): Promise<number> {
    let n = 0;
    let after: { medium: string; address: string } | undefined;
    for (;;) {
      let q = this.db.selectFrom("is_associations").select(["medium", "address"]).orderBy("medium").orderBy("address").limit(batchSize);
      if (after) {
        const a = after;
        q = q.where((eb) => eb.or([eb("medium", ">", a.medium), eb.and([eb("medium", "=", a.medium), eb("address", ">", a.address)])]));
      }
      const rows = await q.execute();
      if (rows.length === 0) return n;
      for (const r of rows) {
        await this.db
          .updateTable("is_associations")
          .set({ lookup_hash: hash(r.address, r.medium) })
          .where("medium", "=", r.medium)
          .where("address", "=", r.address)
          .execute();
      }
      n += rows.length;
      const last = rows[rows.length - 1];
      if (!last) return n;
      after = last;
    }
  }

  async count(): Promise<number> {
    const r = await this.db.selectFrom("is_associations").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
