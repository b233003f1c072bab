/**
 * Hot read paths on SQLite (token checks and hashed lookups) through a separate read-only
 * better-sqlite3 connection with cached prepared statements. Kysely's SQLite driver prepares
 * every statement on every call, which dominated a 1000-hash lookup. WAL mode lets this
 * connection read concurrently with the writer; it sees every committed transaction, so a
 * request still reads what earlier requests wrote. PostgreSQL keeps the Kysely path.
 */
import Database from "better-sqlite3";
import type { TokenOwner } from "./accounts.js";
import type { Association } from "./associations.js";

/** Padded IN-list sizes: a bounded set of prepared statements whatever the request sizes. */
const SIZES = [1, 4, 16, 64, 256, 500];

export class SqliteHotReads {
  readonly #db: Database.Database;
  readonly #token: Database.Statement<[string], { user_id: string; consent_version: string | null }>;
  readonly #lookup = new Map<number, Database.Statement<unknown[], [string, string]>>();
  readonly #assoc: Database.Statement<[string, string, number, number], { mxid: string; ts: number; not_before: number; not_after: number }>;

  constructor(path: string) {
    this.#db = new Database(path, { readonly: true, fileMustExist: true });
    // A WAL reader waits only in rare moments (another connection recovering the WAL); that
    // wait is synchronous and stalls the event loop, so it is kept short.
    this.#db.pragma("busy_timeout = 100");
    this.#token = this.#db.prepare(
      "SELECT t.user_id AS user_id, a.consent_version AS consent_version FROM is_access_tokens t JOIN is_accounts a ON a.user_id = t.user_id WHERE t.token = ?",
    );
    this.#assoc = this.#db.prepare(
      "SELECT mxid, ts, not_before, not_after FROM is_associations WHERE medium = ? AND address = ? AND not_before <= ? AND not_after > ?",
    );
  }

  association(medium: string, address: string, now: number): Association | undefined {
    const r = this.#assoc.get(medium, address, now, now);
    return r ? { medium, address, mxid: r.mxid, ts: Number(r.ts), notBefore: Number(r.not_before), notAfter: Number(r.not_after) } : undefined;
  }

  tokenOwner(token: string): TokenOwner | undefined {
    const r = this.#token.get(token);
    return r ? { userId: r.user_id, consentVersion: r.consent_version } : undefined;
  }

  #stmt(size: number) {
    let s = this.#lookup.get(size);
    if (!s) {
      const marks = Array.from({ length: size }, () => "?").join(",");
      // Raw rows (arrays): no per-row object with named keys for up to 500 rows per call.
      s = this.#db
        .prepare<unknown[], [string, string]>(`SELECT lookup_hash, mxid FROM is_associations WHERE lookup_hash IN (${marks}) AND not_before <= ? AND not_after > ?`)
        .raw(true);
      this.#lookup.set(size, s);
    }
    return s;
  }

  lookupHashes(hashes: readonly string[], now: number): Map<string, string> {
    const out = new Map<string, string>();
    const max = SIZES[SIZES.length - 1]!;
    for (let i = 0; i < hashes.length; i += max) {
      const n = Math.min(max, hashes.length - i);
      const size = SIZES.find((s) => s >= n) ?? max;
      const params: unknown[] = new Array(size + 2);
      for (let j = 0; j < size; j++) params[j] = j < n ? hashes[i + j] : "";
      params[size] = now;
      params[size + 1] = now;
      for (const r of this.#stmt(size).all(...params)) out.set(r[0], r[1]);
    }
    return out;
  }

  close(): void {
    this.#db.close();
  }
}
