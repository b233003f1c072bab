/**
 * Inviting by email, the whole way: identity-server token (OpenID from the homeserver →
 * `account/register`, terms only if the caller allows), hashed lookup, then an invite by user
 * ID when the address is bound, else a 3PID invite with `id_access_token` filled in.
 *
 * @example
 * const identity = new IdentityClient({ baseUrl: "http://127.0.0.1:8090", transport: client.transport });
 * const outcome = await inviteByEmail(client, roomId, "bob@example.org", { identity, acceptTerms: true });
 * // { status: "invited-by-3pid", email: "bob@example.org" }
 */
import { ACCOUNT_DATA_IDENTITY_SERVER, EventType, normalizeEmail, type IsTermsResponse } from "@beckon/protocol";
import { IdentityClient, termsUrls } from "../api/identity-client.js";
import type { MatrixClient } from "../api/matrix-client.js";
import { errcodeOf, errorKind, MatrixCallError, type ErrorKind } from "../http/errors.js";
import type { CallOptions } from "../http/transport.js";

/** Whether to accept an identity server's terms: never (default), always, or ask. */
export type TermsConsent = boolean | ((urls: string[], terms: IsTermsResponse) => boolean | Promise<boolean>);

export interface InviteByEmailOptions extends CallOptions {
  /**
   * The identity server: a client (its token is obtained or refreshed as needed), a base URL or
   * server name (a client is made and kept per `MatrixClient`), or absent: the user's
   * `m.identity_server` account data, as Element sets it.
   */
  readonly identity?: IdentityClient | string;
  /** Accept the identity server's terms when it requires them (default false: throw {@link TermsNotAcceptedError}). */
  readonly acceptTerms?: TermsConsent;
  /** Allow the `none` lookup algorithm (plain-text addresses) when the server offers no hash (default true). */
  readonly allowPlaintextLookup?: boolean;
  readonly reason?: string;
}

export type InviteStatus = "invited" | "invited-by-3pid" | "already-member";

export interface InviteOutcome {
  readonly email: string;
  readonly status: InviteStatus;
  /** The invitee's Matrix ID, when the address is bound. */
  readonly userId?: string;
}

/** The identity server requires terms the caller did not allow accepting. */
export class TermsNotAcceptedError extends Error {
  override name = "TermsNotAcceptedError";
  readonly kind: ErrorKind = "content-access";
  readonly errcode = "M_TERMS_NOT_SIGNED";
  /** The policy URLs that would have to be accepted. */
  readonly urls: string[];
  readonly terms: IsTermsResponse;

  constructor(urls: string[], terms: IsTermsResponse, cause: unknown) {
    super(`the identity server requires accepting its terms (${urls.join(", ") || "no URLs listed"}); pass acceptTerms to allow it`, { cause });
    this.urls = urls;
    this.terms = terms;
  }
}

/** The flow's options once the identity server is known. */
export type IdentitySessionOptions = Omit<InviteByEmailOptions, "identity"> & { readonly identity: IdentityClient };

/** No identity server was given and the account names none (`m.identity_server`). */
export class NoIdentityServerError extends Error {
  override name = "NoIdentityServerError";
  readonly kind: ErrorKind = "incorrect-request";
}

const identityClients = new WeakMap<MatrixClient, Map<string, IdentityClient>>();

/**
 * The identity server for a flow: the given client; or one made from a URL or server name
 * (kept per `MatrixClient`, so its token is reused); or the user's `m.identity_server` account data.
 */
export async function resolveIdentity(matrix: MatrixClient, identity: IdentityClient | string | undefined, opts: CallOptions = {}): Promise<IdentityClient> {
  if (identity instanceof IdentityClient) return identity;
  let server = identity;
  if (server === undefined) {
    const data = await matrix.getAccountData(ACCOUNT_DATA_IDENTITY_SERVER, opts).catch((e: unknown) => {
      if (errorKind(e) === "not-found") return {} as Record<string, unknown>;
      throw e;
    });
    const base = data["base_url"];
    if (typeof base !== "string" || base === "") throw new NoIdentityServerError("no identity server: pass `identity`, or set the m.identity_server account data");
    server = base;
  }
  let byUrl = identityClients.get(matrix);
  if (!byUrl) identityClients.set(matrix, (byUrl = new Map()));
  let client = byUrl.get(server);
  if (!client) byUrl.set(server, (client = new IdentityClient({ baseUrl: server, transport: matrix.transport })));
  return client;
}

async function resolved(matrix: MatrixClient, opts: InviteByEmailOptions): Promise<IdentitySessionOptions> {
  return { ...opts, identity: await resolveIdentity(matrix, opts.identity, callOpts(opts)) };
}

/** Call options without the flow's own fields (what goes to each request). */
function callOpts(opts: InviteByEmailOptions): CallOptions {
  const { identity: _i, acceptTerms: _a, allowPlaintextLookup: _p, reason: _r, ...rest } = opts;
  return rest;
}

/** Gets an identity-server token from the homeserver's OpenID token, if the client has none. */
export async function ensureIdentityToken(matrix: MatrixClient, identity: IdentityClient, opts: CallOptions = {}, force = false): Promise<string> {
  if (identity.accessToken && !force) return identity.accessToken;
  const openId = await matrix.requestOpenIdToken(opts);
  return identity.registerWithOpenId(openId, opts);
}

/**
 * Runs `step` with a valid identity-server token: registers when there is none, re-registers
 * once when the token is refused (`M_UNAUTHORIZED`), accepts terms once when required and allowed.
 */
export async function withIdentitySession<T>(matrix: MatrixClient, opts: IdentitySessionOptions, step: () => Promise<T>): Promise<T> {
  const co = callOpts(opts);
  await ensureIdentityToken(matrix, opts.identity, co);
  let reRegistered = false;
  let termsDone = false;
  for (;;) {
    try {
      return await step();
    } catch (e) {
      const code = errcodeOf(e);
      // The identity server refused its token: directly (401), or relayed by the homeserver (400).
      const fromIdentity = e instanceof MatrixCallError && e.request?.url.startsWith(opts.identity.baseUrl) === true;
      if (!reRegistered && (code === "M_UNAUTHORIZED" || (fromIdentity && errorKind(e) === "unauthorised"))) {
        reRegistered = true;
        await ensureIdentityToken(matrix, opts.identity, co, true);
        continue;
      }
      if (code === "M_TERMS_NOT_SIGNED" && !termsDone) {
        termsDone = true;
        const terms = await opts.identity.getTerms(co);
        const urls = termsUrls(terms);
        const consent = typeof opts.acceptTerms === "function" ? await opts.acceptTerms(urls, terms) : opts.acceptTerms === true;
        if (!consent) throw new TermsNotAcceptedError(urls, terms, e);
        await opts.identity.acceptTerms(urls, co);
        continue;
      }
      throw e;
    }
  }
}

/** True when `userId` is joined to the room (used to tell "already a member" from other 403s). */
async function isJoined(matrix: MatrixClient, roomId: string, userId: string, opts: CallOptions): Promise<boolean> {
  try {
    const content = await matrix.getStateEvent(roomId, EventType.Member, userId, opts);
    return content["membership"] === "join";
  } catch {
    return false;
  }
}

async function inviteUser(matrix: MatrixClient, roomId: string, email: string, userId: string, opts: IdentitySessionOptions): Promise<InviteOutcome> {
  const co = callOpts(opts);
  try {
    await matrix.invite(roomId, userId, { ...co, ...(opts.reason ? { reason: opts.reason } : {}) });
    return { email, status: "invited", userId };
  } catch (e) {
    if (errorKind(e) === "content-access" && (await isJoined(matrix, roomId, userId, co))) return { email, status: "already-member", userId };
    throw e;
  }
}

/**
 * Invites `email` to `roomId`: looks the address up at `opts.identity` (hashed), invites the
 * bound Matrix ID if there is one, else sends a 3PID invite (the homeserver stores it at the
 * identity server, which mails the address).
 *
 * **Exactly once:** the 3PID invite POST is never resent once it may have reached the
 * homeserver — a timeout, a reset connection or a 5xx is thrown to you, never retried. It is
 * retried only after a 429 or a connection refused before sending, and resent once after a
 * definite refusal that guarantees nothing happened (the homeserver relaying the identity
 * server's `M_UNAUTHORIZED` / `M_TERMS_NOT_SIGNED`, after refreshing the token or accepting terms).
 *
 * Outcomes: `invited` (bound address), `invited-by-3pid`, `already-member` (the address's
 * user is already joined: the homeserver's 403 is checked against the room's membership).
 * Errors: the SDK's typed errors; {@link TermsNotAcceptedError} when terms are needed and not allowed.
 */
export async function inviteByEmail(matrix: MatrixClient, roomId: string, email: string, options: InviteByEmailOptions = {}): Promise<InviteOutcome> {
  const opts = await resolved(matrix, options);
  const userId = await withIdentitySession(matrix, opts, () => opts.identity.lookupOne("email", email, lookupOptions(opts)));
  return userId ? inviteUser(matrix, roomId, email, userId, opts) : inviteUnbound(matrix, roomId, email, opts);
}

function lookupOptions(opts: InviteByEmailOptions): CallOptions & { allowPlaintext?: boolean } {
  return { ...callOpts(opts), ...(opts.allowPlaintextLookup === false ? { allowPlaintext: false } : {}) };
}

/** The 3PID invite of an address the lookup did not know. */
async function inviteUnbound(matrix: MatrixClient, roomId: string, email: string, opts: IdentitySessionOptions): Promise<InviteOutcome> {
  const co = callOpts(opts);
  try {
    await withIdentitySession(matrix, opts, () =>
      matrix.inviteBy3PID(roomId, { idServer: opts.identity.serverName, idAccessToken: opts.identity.accessToken ?? "", medium: "email", address: email }, co),
    );
    return { email, status: "invited-by-3pid" };
  } catch (e) {
    // The address was bound after our lookup (a race): the homeserver may name the user.
    const mxid = e instanceof MatrixCallError && typeof e.extra["mxid"] === "string" ? e.extra["mxid"] : undefined;
    if (errcodeOf(e) === "M_THREEPID_IN_USE" && mxid) return inviteUser(matrix, roomId, email, mxid, opts);
    if (errorKind(e) === "content-access" && errcodeOf(e) !== "M_TERMS_NOT_SIGNED") {
      const now = await opts.identity.lookupOne("email", email, lookupOptions(opts)).catch(() => undefined);
      if (now && (await isJoined(matrix, roomId, now, co))) return { email, status: "already-member", userId: now };
    }
    throw e;
  }
}

export type BulkInviteResult = InviteOutcome | { readonly email: string; readonly status: "failed"; readonly error: unknown };

/**
 * Invites many addresses and reports each one's outcome without failing the batch: the
 * identity-server session is set up once, all addresses are looked up in one hashed lookup,
 * then invited one by one (or `concurrency` at a time). Duplicate addresses (same normal form)
 * are invited once and share the result. Each invite follows {@link inviteByEmail}'s
 * exactly-once rule.
 */
export async function inviteManyByEmail(
  matrix: MatrixClient,
  roomId: string,
  emails: readonly string[],
  opts: InviteByEmailOptions & { concurrency?: number } = {},
): Promise<BulkInviteResult[]> {
  const { concurrency = 1, ...rest } = opts;
  let flowOpts: IdentitySessionOptions;
  try {
    flowOpts = await resolved(matrix, rest);
  } catch (error) {
    return emails.map((email) => ({ email, status: "failed", error }));
  }
  // Duplicates (same normal form) are invited once, as first written.
  const firstForm = new Map<string, string>();
  for (const e of emails) if (!firstForm.has(normalizeEmail(e))) firstForm.set(normalizeEmail(e), e);
  const unique = [...firstForm.entries()];
  const byNormal = new Map<string, BulkInviteResult>();
  const lookupOpts = lookupOptions(flowOpts);
  let bound: (string | undefined)[];
  try {
    bound = await withIdentitySession(matrix, flowOpts, () => flowOpts.identity.lookup(unique.map(([, address]) => ({ medium: "email", address })), lookupOpts));
  } catch (error) {
    return emails.map((email) => ({ email, status: "failed", error }));
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < unique.length) {
      const i = next++;
      const [normal, email] = unique[i]!;
      const userId = bound[i];
      try {
        byNormal.set(normal, userId ? await inviteUser(matrix, roomId, email, userId, flowOpts) : await inviteUnbound(matrix, roomId, email, flowOpts));
      } catch (error) {
        byNormal.set(normal, { email, status: "failed", error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, unique.length)) }, worker));
  return emails.map((email) => ({ ...byNormal.get(normalizeEmail(email))!, email }));
}
