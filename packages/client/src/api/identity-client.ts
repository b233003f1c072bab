/**
 * Typed calls for the Identity Service API v2, plus the session an SDK keeps with an identity
 * server: registration via an OpenID token from the homeserver, terms, cached `hash_details`,
 * hashed lookups (sha256, else `none`), email validation, binds.
 *
 * @example
 * const is = new IdentityClient({ baseUrl: "http://127.0.0.1:8090" });
 * await is.registerWithOpenId(await matrix.requestOpenIdToken());
 * const [mxid] = await is.lookup([{ medium: "email", address: "Bob@Example.org" }]);
 */
import {
  isAccount,
  isAcceptTerms,
  isBind,
  isEmailRequestToken,
  isEmailSubmitToken,
  isEphemeralPubkeyIsValid,
  isGetTerms,
  isGetValidated3pid,
  isHashDetails,
  isLogout,
  isLookup,
  isMsisdnRequestToken,
  isMsisdnSubmitToken,
  isPubkey,
  isPubkeyIsValid,
  isRegister,
  isSignEd25519,
  isStatus,
  isStoreInvite,
  isUnbind,
  isVersions,
  isMedium,
  lookupHash,
  normalizeThreepid,
  vSignEd25519Response,
  type IsHashDetailsResponse,
  type IsSignEd25519Response,
  type IsStoreInviteRequest,
  type IsTermsResponse,
  type Medium,
  type OpenIdToken,
} from "@beckon/protocol";
import { MatrixCallError, errcodeOf } from "../http/errors.js";
import { Transport, type CallOptions } from "../http/transport.js";
import { ApiClient, type ApiClientOptions } from "./base.js";
import { idServerHost } from "./matrix-client.js";

export interface IdentityClientOptions extends Omit<ApiClientOptions, "baseUrl"> {
  /** The identity server: a base URL (`http://127.0.0.1:8090`) or a server name (`id.example.org` → https). */
  readonly baseUrl: string;
}

/** A 3PID to look up. */
export interface ThreepidQuery {
  readonly medium: Medium | (string & {});
  readonly address: string;
}

/** Normalises an identity server given as a URL or a bare server name into a base URL. */
export function identityBaseUrl(server: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server.replace(/\/+$/, "") : `https://${server.replace(/\/+$/, "")}`;
}

/** Picks, per policy, the URL in `lang` (else the first language entry), as matrix-bot-sdk does. */
export function termsUrls(terms: IsTermsResponse, lang = "en"): string[] {
  const urls: string[] = [];
  for (const policy of Object.values(terms.policies)) {
    const entry = (policy[lang] ?? Object.entries(policy).find(([k]) => k !== "version")?.[1]) as { url?: unknown } | undefined;
    if (entry && typeof entry.url === "string") urls.push(entry.url);
  }
  return urls;
}

export class IdentityClient extends ApiClient {
  #hashDetails: Promise<IsHashDetailsResponse> | undefined;

  constructor(opts: IdentityClientOptions) {
    super({ ...opts, baseUrl: identityBaseUrl(opts.baseUrl) });
  }

  /** `host[:port]`: the `id_server` value homeservers expect. */
  get serverName(): string {
    return idServerHost(this.baseUrl);
  }

  versions(opts?: CallOptions) {
    return this.call(isVersions, {}, opts);
  }

  /** `GET /_matrix/identity/v2`: `{}` when the server speaks v2. */
  status(opts?: CallOptions) {
    return this.call(isStatus, {}, opts);
  }

  // ── account ────────────────────────────────────────────────────────────────

  /** Exchanges an OpenID token from the homeserver for an identity-server token, kept on this client. */
  async registerWithOpenId(openId: OpenIdToken, opts?: CallOptions): Promise<string> {
    const r = await this.call(isRegister, { body: openId }, opts);
    this.accessToken = r.token;
    this.#hashDetails = undefined;
    return r.token;
  }

  account(opts?: CallOptions) {
    return this.call(isAccount, {}, opts);
  }

  async logout(opts?: CallOptions): Promise<void> {
    await this.call(isLogout, { body: {} }, { idempotent: true, ...opts });
    this.accessToken = undefined;
    this.#hashDetails = undefined;
  }

  // ── terms ──────────────────────────────────────────────────────────────────

  getTerms(opts?: CallOptions) {
    return this.call(isGetTerms, {}, opts);
  }

  acceptTerms(urls: string[], opts?: CallOptions) {
    return this.call(isAcceptTerms, { body: { user_accepts: urls } }, { idempotent: true, ...opts });
  }

  /** Accepts every current policy (in `lang`, else its first language); returns the URLs accepted. */
  async acceptAllTerms(opts?: CallOptions & { lang?: string }): Promise<string[]> {
    const urls = termsUrls(await this.getTerms(opts), opts?.lang);
    await this.acceptTerms(urls, opts);
    return urls;
  }

  // ── lookup ─────────────────────────────────────────────────────────────────

  /** `hash_details`, cached until the pepper is rejected or the token changes. */
  hashDetails(opts?: CallOptions & { refresh?: boolean }): Promise<IsHashDetailsResponse> {
    if (opts?.refresh || !this.#hashDetails) {
      const p = this.call(isHashDetails, {}, opts);
      this.#hashDetails = p;
      p.catch(() => {
        if (this.#hashDetails === p) this.#hashDetails = undefined;
      });
    }
    return this.#hashDetails;
  }

  /**
   * Looks 3PIDs up; returns each one's Matrix ID (or undefined), in input order. Hashes with
   * `sha256` when offered; falls back to `none` (plain text) only when the server offers
   * nothing else and `allowPlaintext` is not false. A rejected pepper refreshes
   * `hash_details` and retries once.
   */
  async lookup(threepids: readonly ThreepidQuery[], opts?: CallOptions & { allowPlaintext?: boolean }): Promise<(string | undefined)[]> {
    if (threepids.length === 0) return [];
    for (let round = 0; ; round++) {
      const details = await this.hashDetails({ ...opts, refresh: round > 0 });
      const algorithm = details.algorithms.includes("sha256") ? "sha256" : details.algorithms.includes("none") && opts?.allowPlaintext !== false ? "none" : undefined;
      if (!algorithm) throw new MatrixCallError("M_INVALID_PARAM", `no usable lookup algorithm (server offers ${details.algorithms.join(", ") || "none"})`, 400, {});
      const keys = threepids.map(({ medium, address }) => {
        const normal = isMedium(medium) ? normalizeThreepid(medium, address) : address;
        return algorithm === "sha256" ? lookupHash(normal, medium, details.lookup_pepper) : `${normal} ${medium}`;
      });
      try {
        const r = await this.call(isLookup, { body: { addresses: [...new Set(keys)], algorithm, pepper: details.lookup_pepper } }, { idempotent: true, ...opts });
        return keys.map((k) => r.mappings[k] ?? undefined);
      } catch (e) {
        if (round === 0 && errcodeOf(e) === "M_INVALID_PEPPER") continue;
        throw e;
      }
    }
  }

  /** Looks up one 3PID. */
  async lookupOne(medium: ThreepidQuery["medium"], address: string, opts?: CallOptions & { allowPlaintext?: boolean }): Promise<string | undefined> {
    return (await this.lookup([{ medium, address }], opts))[0];
  }

  // ── validation sessions ────────────────────────────────────────────────────

  /** Starts email validation; the same `sendAttempt` again returns the same `sid` and sends no mail. */
  requestEmailToken(req: { email: string; clientSecret: string; sendAttempt: number; nextLink?: string }, opts?: CallOptions) {
    const body = { client_secret: req.clientSecret, email: req.email, send_attempt: req.sendAttempt, ...(req.nextLink ? { next_link: req.nextLink } : {}) };
    // Idempotent by (client_secret, send_attempt): the spec says a repeat sends nothing new.
    return this.call(isEmailRequestToken, { body }, { idempotent: true, ...opts });
  }

  submitEmailToken(req: { sid: string; clientSecret: string; token: string }, opts?: CallOptions) {
    return this.call(isEmailSubmitToken, { body: { sid: req.sid, client_secret: req.clientSecret, token: req.token } }, { idempotent: true, ...opts });
  }

  requestMsisdnToken(req: { country: string; phoneNumber: string; clientSecret: string; sendAttempt: number; nextLink?: string }, opts?: CallOptions) {
    const body = {
      client_secret: req.clientSecret,
      country: req.country,
      phone_number: req.phoneNumber,
      send_attempt: req.sendAttempt,
      ...(req.nextLink ? { next_link: req.nextLink } : {}),
    };
    return this.call(isMsisdnRequestToken, { body }, { idempotent: true, ...opts });
  }

  submitMsisdnToken(req: { sid: string; clientSecret: string; token: string }, opts?: CallOptions) {
    return this.call(isMsisdnSubmitToken, { body: { sid: req.sid, client_secret: req.clientSecret, token: req.token } }, { idempotent: true, ...opts });
  }

  getValidated3pid(sid: string, clientSecret: string, opts?: CallOptions) {
    return this.call(isGetValidated3pid, { query: { sid, client_secret: clientSecret } }, opts);
  }

  // ── bindings ───────────────────────────────────────────────────────────────

  /** Binds a validated session to `mxid` directly at the identity server (clients usually bind through the homeserver). */
  bind(req: { sid: string; clientSecret: string; mxid: string }, opts?: CallOptions) {
    return this.call(isBind, { body: { sid: req.sid, client_secret: req.clientSecret, mxid: req.mxid as never } }, { idempotent: true, ...opts });
  }

  /** Unbinds with the validation session's `sid` + `client_secret` as proof. */
  unbind(req: { mxid: string; medium: string; address: string; sid: string; clientSecret: string }, opts?: CallOptions) {
    const body = { mxid: req.mxid as never, threepid: { medium: req.medium, address: req.address }, sid: req.sid, client_secret: req.clientSecret };
    return this.call(isUnbind, { body }, { idempotent: true, ...opts });
  }

  // ── invitations ────────────────────────────────────────────────────────────

  /** `store-invite` (what a homeserver, or matrix-bot-sdk's `makeEmailInvite`, calls). Never resent once it may have arrived. */
  storeInvite(req: IsStoreInviteRequest, opts?: CallOptions) {
    return this.call(isStoreInvite, { body: req }, { ...opts, idempotent: false });
  }

  /** `sign-ed25519` with the token and ephemeral private key of an invite mail (no auth needed). */
  signEd25519(req: { mxid: string; token: string; privateKey: string }, opts?: CallOptions): Promise<IsSignEd25519Response> {
    return this.call(isSignEd25519, { body: { mxid: req.mxid as never, token: req.token, private_key: req.privateKey } }, { idempotent: true, ...opts });
  }

  // ── public keys ────────────────────────────────────────────────────────────

  getPubkey(keyId: string, opts?: CallOptions) {
    return this.call(isPubkey, { params: { keyId } }, opts);
  }

  async isPubkeyValid(publicKey: string, opts?: CallOptions): Promise<boolean> {
    return (await this.call(isPubkeyIsValid, { query: { public_key: publicKey } }, opts)).valid;
  }

  async isEphemeralPubkeyValid(publicKey: string, opts?: CallOptions): Promise<boolean> {
    return (await this.call(isEphemeralPubkeyIsValid, { query: { public_key: publicKey } }, opts)).valid;
  }
}

/**
 * Calls an invite mail's sign URL (`…/sign-ed25519?token=…&private_key=…`) the way
 * matrix-js-sdk does: `POST`, `mxid` appended to the query, no body, no auth. The URL's secrets
 * are redacted from errors.
 */
export function signWithUrl(transport: Transport, signUrl: string, mxid: string, opts?: CallOptions): Promise<IsSignEd25519Response> {
  const url = new URL(signUrl);
  return transport.send({ baseUrl: url.origin, method: "POST", path: url.pathname + url.search, query: { mxid }, validate: vSignEd25519Response }, { idempotent: true, ...opts });
}
