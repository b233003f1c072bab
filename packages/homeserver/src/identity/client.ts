/**
 * The homeserver's client for identity servers (Identity Service API v2): `hash_details`,
 * `lookup`, `store-invite`, `3pid/bind`, the X-Matrix signed `3pid/unbind`, and
 * `key_validity_url` checks — every call through the guarded outbound client with a timeout,
 * every failure turned into the Matrix error DECISIONS.md "Errors between the servers" names:
 *
 * - the IS answers a Matrix 4xx → the same errcode with 400 (403 for `M_TERMS_NOT_SIGNED` and
 *   `M_FORBIDDEN`), never 401; a 429 stays a 429 with `retry_after_ms` (nothing happened,
 *   the client may retry);
 * - unreachable, 5xx, a 4xx without a Matrix body, or garbage → 502 `M_UNKNOWN`;
 * - timeout → 504 `M_UNKNOWN`;
 * - a target the outbound guard refuses (private address) → 400 `M_SERVER_NOT_TRUSTED`.
 */
import type { Logger } from "pino";
import {
  IDENTITY_V2,
  MatrixError,
  isJsonObject,
  isValidUserId,
  lookupHash,
  normalizeEmail,
  normalizeMsisdn,
  signIdentityUnbindRequest,
  IDENTITY_UNBIND_URI,
  SECRET_PATTERN,
} from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { outboundErrorKind, type OutboundLike, type OutboundResponse } from "./outbound.js";
import { checkValidityUrl, resolveIdentityServer, type IdentityServerTrust, type ResolvedIdentityServer } from "./trust.js";

export interface IdentityClientOptions {
  outbound: OutboundLike;
  trust: IdentityServerTrust;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /**
   * How long a `hash_details` answer is reused for lookups at the same identity server
   * (default 60 s; 0 disables). A pepper change in between is survived: the IS answers
   * `M_INVALID_PEPPER` with the new one and the lookup is retried once.
   */
  hashDetailsCacheMs?: number;
  /** Time source for the cache (default `Date.now`). */
  now?: () => number;
  /** The homeserver's name and signing key, for the signed unbind. */
  serverName: string;
  signingKey: { keyId: string; seed: Uint8Array };
  logger?: Pick<Logger, "warn" | "info" | "error" | "debug">;
}

/** The store-invite answer, reduced to what the room event needs. */
export interface StoredInvite {
  token: string;
  display_name: string;
  public_keys: { public_key: string; key_validity_url: string }[];
  /** The legacy single key and its validity URL, copied from the answer (DECISIONS.md). */
  public_key: string;
  key_validity_url: string;
}

/** What store-invite decided: stored, or the address turned out to be bound already. */
export type StoreInviteOutcome = { kind: "stored"; invite: StoredInvite } | { kind: "bound"; mxid: string };

/** Room and inviter details Synapse sends with store-invite (absent ones as `""`). */
export interface StoreInviteDetails {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  room_alias: string;
  room_avatar_url: string;
  room_join_rules: string;
  room_name: string;
  room_type?: string;
  sender_display_name: string;
  sender_avatar_url: string;
}

export type KeyValidity = "valid" | "invalid" | "unreachable" | "refused";

export interface IdentityClient {
  /** Where `id_server` lives, or 400 `M_SERVER_NOT_TRUSTED` (no connection made). */
  resolve(idServer: string): ResolvedIdentityServer;
  /** `hash_details` + `lookup` of one 3PID: the bound mxid, or undefined (absent or `null`). */
  lookup(is: ResolvedIdentityServer, accessToken: string, medium: string, address: string): Promise<string | undefined>;
  storeInvite(is: ResolvedIdentityServer, accessToken: string, details: StoreInviteDetails): Promise<StoreInviteOutcome>;
  /** `3pid/bind`; resolves to the association's medium and address when the IS returned them. */
  bind(is: ResolvedIdentityServer, accessToken: string, req: { sid: string; client_secret: string; mxid: string }): Promise<{ medium?: string; address?: string }>;
  /**
   * The X-Matrix signed `3pid/unbind` (Synapse's form, `destination_is`). `no-support` when the
   * IS answers 400, 404 or 501 (as Synapse does); other failures throw as above.
   */
  unbind(idServer: string, mxid: string, threepid: { medium: string; address: string }): Promise<"success" | "no-support">;
  /** `GET <key_validity_url>?public_key=<key>` → valid, invalid (`valid` not true), unreachable, or refused (URL not allowed). */
  checkKeyValidity(keyValidityUrl: string, publicKey: string): Promise<KeyValidity>;
}

/** HS → client error for an identity-server Matrix 4xx. */
export function mapIdentityServerError(status: number, body: unknown): MatrixError {
  const parsed = MatrixError.fromBody(status, body);
  if (!parsed || status < 400 || status >= 500) {
    return new MatrixError("M_UNKNOWN", `The identity server answered ${status} without a Matrix error`, 502);
  }
  const message = parsed.message ? `Identity server: ${parsed.message}` : "Identity server refused the request";
  if (status === 429) {
    const extra: Record<string, unknown> = {};
    const retry = parsed.extra.retry_after_ms;
    if (typeof retry === "number" && Number.isSafeInteger(retry) && retry >= 0) extra.retry_after_ms = retry;
    return new MatrixError(parsed.errcode, message, 429, extra);
  }
  const forbidden = parsed.errcode === "M_TERMS_NOT_SIGNED" || parsed.errcode === "M_FORBIDDEN";
  return new MatrixError(parsed.errcode, message, forbidden ? 403 : 400);
}

function unreachable(what: string): MatrixError {
  return new MatrixError("M_UNKNOWN", `Could not reach the identity server (${what})`, 502);
}

function garbage(what: string): MatrixError {
  return new MatrixError("M_UNKNOWN", `The identity server sent an invalid response (${what})`, 502);
}

function bodyOf(res: OutboundResponse): unknown {
  try {
    return res.json();
  } catch {
    return undefined;
  }
}

function normalizeAddress(medium: string, address: string): string {
  if (medium === "email") return normalizeEmail(address);
  if (medium === "msisdn") return normalizeMsisdn(address);
  return address;
}

type TokenMode = "header" | "query";

export function createIdentityClient(opts: IdentityClientOptions): IdentityClient {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  // Only a cache: which token transport each base URL accepted last (Bearer first).
  const tokenModes = new Map<string, TokenMode>();
  const hashCacheMs = opts.hashDetailsCacheMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const hashCache = new Map<string, { pepper: string; algorithms: string[]; at: number }>();

  async function send(is: ResolvedIdentityServer, url: string, init: { method: string; headers?: Record<string, string>; body?: string }): Promise<OutboundResponse> {
    try {
      return await opts.outbound.request(url, { ...init, timeoutMs, trusted: is.mapped });
    } catch (e) {
      const kind = outboundErrorKind(e);
      if (kind === "blocked") {
        throw new MatrixError("M_SERVER_NOT_TRUSTED", `Identity server ${JSON.stringify(is.idServer)} is not trusted: it is not at a public address`, 400);
      }
      if (kind === "timeout") throw new MatrixError("M_UNKNOWN", "Timed out contacting the identity server", 504);
      opts.logger?.warn({ idServer: is.idServer, err: e instanceof Error ? e.message : String(e) }, "identity server request failed");
      throw unreachable(kind ?? "network error");
    }
  }

  function isTokenProblem(res: OutboundResponse): boolean {
    if (res.status === 401) return true;
    if (res.status !== 400 && res.status !== 403) return false;
    const b = bodyOf(res);
    const code = isJsonObject(b) ? b.errcode : undefined;
    // SyTest's mock answers 400 M_MISSING_PARAM without its token; Sydent M_MISSING_PARAMS.
    return code === "M_MISSING_PARAM" || code === "M_MISSING_PARAMS" || code === "M_MISSING_TOKEN" || code === "M_UNKNOWN_TOKEN";
  }

  /** An authenticated call: Bearer, falling back to `?access_token=` for servers that want it. */
  async function authed(is: ResolvedIdentityServer, path: string, accessToken: string, method: string, body?: unknown): Promise<OutboundResponse> {
    // The token goes into a header: anything but visible ASCII could never be sent, and must
    // not look like an unreachable identity server (502).
    if (!/^[\x21-\x7e]{1,1024}$/.test(accessToken)) {
      throw new MatrixError("M_INVALID_PARAM", "id_access_token is not a valid token", 400);
    }
    const url = is.baseUrl + path;
    const json = body === undefined ? undefined : JSON.stringify(body);
    const attempt = (mode: TokenMode) => {
      const headers: Record<string, string> = { accept: "application/json" };
      if (json !== undefined) headers["content-type"] = "application/json";
      let target = url;
      if (mode === "header") headers.authorization = `Bearer ${accessToken}`;
      else target += `${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(accessToken)}`;
      return send(is, target, json === undefined ? { method, headers } : { method, headers, body: json });
    };
    const first = tokenModes.get(is.baseUrl) ?? "header";
    const res = await attempt(first);
    if (!isTokenProblem(res)) return res;
    const other: TokenMode = first === "header" ? "query" : "header";
    const retry = await attempt(other);
    if (!isTokenProblem(retry)) tokenModes.set(is.baseUrl, other);
    return retry;
  }

  /** The JSON object of a 2xx answer, or the mapped error. */
  function expectObject(res: OutboundResponse, what: string): Record<string, unknown> {
    if (res.status >= 200 && res.status < 300) {
      const b = bodyOf(res);
      if (!isJsonObject(b)) throw garbage(`${what}: not a JSON object`);
      return b;
    }
    if (res.status >= 500) {
      opts.logger?.warn({ status: res.status, what }, "identity server error");
      throw unreachable(`${what}: HTTP ${res.status}`);
    }
    if (res.status < 400) throw garbage(`${what}: HTTP ${res.status}`);
    return throwMapped(res);
  }

  function throwMapped(res: OutboundResponse): never {
    throw mapIdentityServerError(res.status, bodyOf(res));
  }

  async function hashDetails(is: ResolvedIdentityServer, accessToken: string): Promise<{ pepper: string; algorithms: string[] }> {
    const res = await authed(is, `${IDENTITY_V2}/hash_details`, accessToken, "GET");
    const b = expectObject(res, "hash_details");
    const pepper = b.lookup_pepper;
    const algorithms = b.algorithms;
    if (typeof pepper !== "string" || !Array.isArray(algorithms) || !algorithms.every((a) => typeof a === "string")) {
      throw garbage("hash_details: lookup_pepper or algorithms missing");
    }
    return { pepper, algorithms: algorithms as string[] };
  }

  async function lookup(is: ResolvedIdentityServer, accessToken: string, medium: string, address: string): Promise<string | undefined> {
    const normal = normalizeAddress(medium, address);
    const cached = hashCache.get(is.baseUrl);
    let pepper: string;
    let algorithms: string[];
    if (cached && now() - cached.at < hashCacheMs) {
      ({ pepper, algorithms } = cached);
    } else {
      ({ pepper, algorithms } = await hashDetails(is, accessToken));
      if (hashCacheMs > 0) {
        if (hashCache.size > 1000) hashCache.clear();
        hashCache.set(is.baseUrl, { pepper, algorithms, at: now() });
      }
    }
    for (let attempt = 0; ; attempt++) {
      let algorithm: string;
      let hashed: string;
      if (algorithms.includes("sha256")) {
        algorithm = "sha256";
        hashed = lookupHash(normal, medium, pepper);
      } else if (algorithms.includes("none")) {
        algorithm = "none";
        hashed = `${normal} ${medium}`;
      } else {
        throw new MatrixError("M_UNKNOWN", "The identity server offers no lookup algorithm this server supports", 502);
      }
      const res = await authed(is, `${IDENTITY_V2}/lookup`, accessToken, "POST", { addresses: [hashed], algorithm, pepper });
      if (res.status === 400 && attempt === 0) {
        // The pepper changed between the two calls: the IS names the new one.
        const b = bodyOf(res);
        if (isJsonObject(b) && b.errcode === "M_INVALID_PEPPER" && typeof b.lookup_pepper === "string") {
          pepper = b.lookup_pepper;
          if (typeof b.algorithm === "string" && !algorithms.includes(b.algorithm)) algorithms = [b.algorithm];
          hashCache.delete(is.baseUrl);
          continue;
        }
      }
      const b = expectObject(res, "lookup");
      if (attempt > 0 && hashCacheMs > 0) hashCache.set(is.baseUrl, { pepper, algorithms, at: now() });
      const mappings = b.mappings;
      if (!isJsonObject(mappings)) throw garbage("lookup: mappings missing");
      const hit = Object.prototype.hasOwnProperty.call(mappings, hashed) ? mappings[hashed] : undefined;
      // SyTest's mock answers `null` for unknown addresses: the same as absent.
      if (hit === undefined || hit === null) return undefined;
      if (typeof hit !== "string" || !isValidUserId(hit)) throw garbage("lookup: mapping is not a user ID");
      return hit;
    }
  }

  async function storeInvite(is: ResolvedIdentityServer, accessToken: string, details: StoreInviteDetails): Promise<StoreInviteOutcome> {
    const res = await authed(is, `${IDENTITY_V2}/store-invite`, accessToken, "POST", details);
    if (res.status === 400) {
      const b = bodyOf(res);
      if (isJsonObject(b) && b.errcode === "M_THREEPID_IN_USE" && typeof b.mxid === "string" && isValidUserId(b.mxid)) {
        return { kind: "bound", mxid: b.mxid };
      }
    }
    const b = expectObject(res, "store-invite");
    const token = b.token;
    if (typeof token !== "string" || !SECRET_PATTERN.test(token)) throw garbage("store-invite: token missing or malformed");
    const displayName = b.display_name;
    if (typeof displayName !== "string") throw garbage("store-invite: display_name missing");
    const rawKeys = b.public_keys;
    const publicKeys: StoredInvite["public_keys"] = [];
    if (rawKeys !== undefined) {
      if (!Array.isArray(rawKeys)) throw garbage("store-invite: public_keys is not a list");
      for (const k of rawKeys) {
        if (!isJsonObject(k) || typeof k.public_key !== "string" || k.public_key === "" || typeof k.key_validity_url !== "string" || k.key_validity_url === "") {
          throw garbage("store-invite: a public_keys entry lacks public_key or key_validity_url");
        }
        publicKeys.push({ public_key: k.public_key, key_validity_url: k.key_validity_url });
      }
    }
    if (publicKeys.length === 0) throw garbage("store-invite: no public keys");
    // DECISIONS.md: the top-level pair is the answer's `public_key` and its entry in
    // `public_keys` — never a URL we build (that breaks plain-http identity servers).
    const top = typeof b.public_key === "string" && b.public_key !== "" ? b.public_key : publicKeys[0]!.public_key;
    const entry = publicKeys.find((k) => k.public_key === top);
    if (!entry) throw garbage("store-invite: public_key is not among public_keys");
    return {
      kind: "stored",
      invite: { token, display_name: displayName, public_keys: publicKeys, public_key: top, key_validity_url: entry.key_validity_url },
    };
  }

  async function bind(is: ResolvedIdentityServer, accessToken: string, req: { sid: string; client_secret: string; mxid: string }) {
    const res = await authed(is, `${IDENTITY_V2}/3pid/bind`, accessToken, "POST", req);
    const b = expectObject(res, "3pid/bind");
    const out: { medium?: string; address?: string } = {};
    if (typeof b.medium === "string") out.medium = b.medium;
    if (typeof b.address === "string") out.address = b.address;
    return out;
  }

  async function unbind(idServer: string, mxid: string, threepid: { medium: string; address: string }): Promise<"success" | "no-support"> {
    const is = resolveIdentityServer(idServer, opts.trust);
    const content = { mxid, threepid: { medium: threepid.medium, address: threepid.address } };
    const authorization = await signIdentityUnbindRequest(
      { origin: opts.serverName, idServer, content, uri: IDENTITY_UNBIND_URI, method: "POST" },
      opts.signingKey.keyId,
      opts.signingKey.seed,
      nodeCryptoProvider,
    );
    const res = await send(is, is.baseUrl + IDENTITY_UNBIND_URI, {
      method: "POST",
      headers: { authorization, "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(content),
    });
    if (res.status >= 200 && res.status < 300) return "success";
    if (res.status === 400 || res.status === 404 || res.status === 501) {
      opts.logger?.warn({ idServer, status: res.status }, "identity server did not unbind (treated as no-support)");
      return "no-support";
    }
    if (res.status >= 500) throw unreachable(`3pid/unbind: HTTP ${res.status}`);
    return throwMapped(res);
  }

  async function checkKeyValidity(keyValidityUrl: string, publicKey: string): Promise<KeyValidity> {
    const allowed = checkValidityUrl(keyValidityUrl, opts.trust);
    if (!allowed) {
      opts.logger?.warn({ keyValidityUrl }, "key_validity_url refused: neither mapped nor public https");
      return "refused";
    }
    const url = `${keyValidityUrl}${keyValidityUrl.includes("?") ? "&" : "?"}public_key=${encodeURIComponent(publicKey)}`;
    let res: OutboundResponse;
    try {
      res = await opts.outbound.request(url, { method: "GET", headers: { accept: "application/json" }, timeoutMs, trusted: allowed.mapped });
    } catch (e) {
      const kind = outboundErrorKind(e);
      opts.logger?.warn({ keyValidityUrl, kind: kind ?? "error" }, "key_validity_url could not be fetched");
      return kind === "blocked" ? "refused" : "unreachable";
    }
    if (res.status < 200 || res.status >= 300) return "unreachable";
    const b = bodyOf(res);
    if (!isJsonObject(b)) return "unreachable";
    // Synapse: anything but `valid: true` in a JSON answer means invalid.
    return b.valid === true ? "valid" : "invalid";
  }

  return {
    resolve: (idServer) => resolveIdentityServer(idServer, opts.trust),
    lookup,
    storeInvite,
    bind,
    unbind,
    checkKeyValidity,
  };
}
