/**
 * Identity Service API v2 (https://spec.matrix.org/v1.18/identity-service-api/), plus the
 * read-only v1 routes that links and room state in the wild still use (served as aliases of
 * their v2 twins; DECISIONS.md and issue 9: the v1 lookup, bind and store-invite are never served).
 *
 * @example
 * const res = await fetch(base + buildPath(isLookup), { method: isLookup.method, body: JSON.stringify(req) });
 * const { mappings } = isLookup.response!(await res.json());
 */
import type { UserId } from "../identifiers.js";
import type { Signatures } from "../signing.js";
import { v, type Infer, type Validator } from "../validate.js";
import {
  vAddress,
  vClientSecret,
  vEmpty,
  vOpenIdToken,
  vRoomId,
  vSid,
  vSignatures,
  vThreepid,
  vUserId,
  type EmptyObject,
  type OpenIdToken,
} from "./common.js";
import { endpoint } from "./descriptor.js";

export const IDENTITY_V2 = "/_matrix/identity/v2";
export const IDENTITY_V1 = "/_matrix/identity/api/v1";

// ── discovery ────────────────────────────────────────────────────────────────

export interface IsVersionsResponse {
  versions: string[];
}
export const isVersions = endpoint<undefined, IsVersionsResponse>({
  id: "identity.discovery.versions",
  api: "identity",
  method: "GET",
  path: "/_matrix/identity/versions",
  auth: "none",
  rateLimited: false,
  response: v.object({ versions: v.array(v.string()) }),
});

/** `GET /_matrix/identity/v2` → `{}` (matrix-js-sdk's discovery probe); v1 `GET /_matrix/identity/api/v1` too. */
export const isStatus = endpoint<undefined, EmptyObject>({
  id: "identity.discovery.status",
  api: "identity",
  method: "GET",
  path: IDENTITY_V2,
  aliases: [IDENTITY_V1],
  auth: "none",
  rateLimited: false,
  response: vEmpty,
});

// ── account ──────────────────────────────────────────────────────────────────

export type IsRegisterRequest = OpenIdToken;
/** Spec: `{token}`; Sydent and Beckon also send `access_token` (older Element reads only that). */
export const vIsRegisterResponse = v.object({ token: v.string({ minLength: 1 }), access_token: v.optional(v.string()) });
export type IsRegisterResponse = Infer<typeof vIsRegisterResponse>;
export const isRegister = endpoint<IsRegisterRequest, IsRegisterResponse>({
  id: "identity.account.register",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/account/register`,
  auth: "none",
  rateLimited: true,
  body: vOpenIdToken,
  response: vIsRegisterResponse,
});

export interface IsAccountResponse {
  user_id: UserId;
}
export const isAccount = endpoint<undefined, IsAccountResponse>({
  id: "identity.account.get",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/account`,
  auth: "identity",
  rateLimited: false,
  response: v.object({ user_id: vUserId }),
});

/** The body may be absent (IS spec). */
export const isLogout = endpoint<EmptyObject, EmptyObject>({
  id: "identity.account.logout",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/account/logout`,
  auth: "identity-no-terms",
  rateLimited: false,
  body: vEmpty,
  bodyOptional: true,
  response: vEmpty,
});

// ── terms ────────────────────────────────────────────────────────────────────

/** One policy: `version` and one `{name, url}` per language code. */
export type TermsPolicy = { version: string } & Record<string, unknown>;
export interface IsTermsResponse {
  policies: Record<string, TermsPolicy>;
}
export const vTermsPolicy = v.object({ version: v.string() });
export const isGetTerms = endpoint<undefined, IsTermsResponse>({
  id: "identity.terms.get",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/terms`,
  auth: "none",
  rateLimited: false,
  response: v.object({ policies: v.record(vTermsPolicy) }),
});

export const vAcceptTermsRequest = v.object({ user_accepts: v.array(v.string({ maxLength: 2048 }), { maxItems: 100 }) });
export type IsAcceptTermsRequest = Infer<typeof vAcceptTermsRequest>;
export const isAcceptTerms = endpoint<IsAcceptTermsRequest, EmptyObject>({
  id: "identity.terms.accept",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/terms`,
  auth: "identity-no-terms",
  rateLimited: false,
  body: vAcceptTermsRequest,
  response: vEmpty,
});

// ── lookup ───────────────────────────────────────────────────────────────────

export const vHashDetailsResponse = v.object({ lookup_pepper: v.string(), algorithms: v.array(v.string()) });
export type IsHashDetailsResponse = Infer<typeof vHashDetailsResponse>;
/** Synapse sends the token as `?access_token=`: servers accept both forms. */
export const isHashDetails = endpoint<undefined, IsHashDetailsResponse>({
  id: "identity.lookup.hash_details",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/hash_details`,
  auth: "identity",
  rateLimited: false,
  response: vHashDetailsResponse,
});

export const vLookupRequest = v.object({
  addresses: v.array(v.string({ maxLength: 1024 })),
  algorithm: v.string({ maxLength: 64 }),
  pepper: v.string({ maxLength: 1024 }),
});
export type IsLookupRequest = Infer<typeof vLookupRequest>;
/** Unknown addresses are omitted; some servers (SyTest's mock) send `null` instead. */
const vMappingValue: Validator<UserId | null> = (x, path) => (x === null ? null : vUserId(x, path));
export const vLookupResponse = v.object({ mappings: v.record(vMappingValue) });
export type IsLookupResponse = Infer<typeof vLookupResponse>;
export const isLookup = endpoint<IsLookupRequest, IsLookupResponse>({
  id: "identity.lookup.lookup",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/lookup`,
  auth: "identity",
  rateLimited: false,
  body: vLookupRequest,
  response: vLookupResponse,
});

// ── validation sessions ──────────────────────────────────────────────────────

/** matrix-js-sdk sends `send_attempt` as a string: accept numeric strings. */
export const vEmailRequestTokenRequest = v.object({
  client_secret: vClientSecret,
  email: v.string({ minLength: 1, maxLength: 500 }),
  send_attempt: v.looseInteger({ min: 0 }),
  next_link: v.nullable(v.string({ maxLength: 2048 })),
});
export type IsEmailRequestTokenRequest = Infer<typeof vEmailRequestTokenRequest>;
export const vSidResponse = v.object({ sid: v.string() });
export type IsRequestTokenResponse = Infer<typeof vSidResponse>;
export const isEmailRequestToken = endpoint<IsEmailRequestTokenRequest, IsRequestTokenResponse>({
  id: "identity.validate.email_request_token",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/validate/email/requestToken`,
  auth: "identity",
  rateLimited: true,
  body: vEmailRequestTokenRequest,
  response: vSidResponse,
});

export const vSubmitTokenRequest = v.object({
  sid: vSid,
  client_secret: vClientSecret,
  token: v.string({ minLength: 1, maxLength: 255 }),
});
export type IsSubmitTokenRequest = Infer<typeof vSubmitTokenRequest>;
export const vSubmitTokenResponse = v.object({ success: v.boolean() });
export type IsSubmitTokenResponse = Infer<typeof vSubmitTokenResponse>;
export const isEmailSubmitToken = endpoint<IsSubmitTokenRequest, IsSubmitTokenResponse>({
  id: "identity.validate.email_submit_token",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/validate/email/submitToken`,
  auth: "identity",
  rateLimited: true,
  body: vSubmitTokenRequest,
  response: vSubmitTokenResponse,
});

/** Query of the mail link; Sydent's own links say `nextLink`, the spec `next_link`. */
export const vSubmitTokenQuery = v.object({
  sid: vSid,
  client_secret: vClientSecret,
  token: v.string({ minLength: 1, maxLength: 255 }),
  next_link: v.optional(v.string({ maxLength: 2048 })),
  nextLink: v.optional(v.string({ maxLength: 2048 })),
});
export type IsSubmitTokenQuery = Infer<typeof vSubmitTokenQuery>;
/**
 * The link in the validation mail: an HTML page, or a redirect to `next_link`.
 * NOTSPEC: no token (DECISIONS.md: mail links carry none). Also served at the v1 path.
 */
export const isEmailSubmitTokenGet = endpoint<undefined, string, IsSubmitTokenQuery>({
  id: "identity.validate.email_submit_token_get",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/validate/email/submitToken`,
  aliases: [`${IDENTITY_V1}/validate/email/submitToken`],
  auth: "none",
  rateLimited: true,
  query: vSubmitTokenQuery,
  responseKind: "html",
});

export const vMsisdnRequestTokenRequest = v.object({
  client_secret: vClientSecret,
  country: v.string({ pattern: /^[A-Za-z]{2}$/ }),
  phone_number: v.string({ minLength: 1, maxLength: 64 }),
  send_attempt: v.looseInteger({ min: 0 }),
  next_link: v.nullable(v.string({ maxLength: 2048 })),
});
export type IsMsisdnRequestTokenRequest = Infer<typeof vMsisdnRequestTokenRequest>;
/** `{sid}`; Sydent adds `msisdn` and `intl_fmt`. */
export const vMsisdnRequestTokenResponse = v.object({ sid: v.string(), msisdn: v.optional(v.string()), intl_fmt: v.optional(v.string()) });
export type IsMsisdnRequestTokenResponse = Infer<typeof vMsisdnRequestTokenResponse>;
export const isMsisdnRequestToken = endpoint<IsMsisdnRequestTokenRequest, IsMsisdnRequestTokenResponse>({
  id: "identity.validate.msisdn_request_token",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/validate/msisdn/requestToken`,
  auth: "identity",
  rateLimited: true,
  body: vMsisdnRequestTokenRequest,
  response: vMsisdnRequestTokenResponse,
});

export const isMsisdnSubmitToken = endpoint<IsSubmitTokenRequest, IsSubmitTokenResponse>({
  id: "identity.validate.msisdn_submit_token",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/validate/msisdn/submitToken`,
  auth: "identity",
  rateLimited: true,
  body: vSubmitTokenRequest,
  response: vSubmitTokenResponse,
});

// ── bindings ─────────────────────────────────────────────────────────────────

export const vSessionQuery = v.object({ sid: vSid, client_secret: vClientSecret });
export type IsSessionQuery = Infer<typeof vSessionQuery>;
export const vValidated3pidResponse = v.object({ medium: v.string(), address: v.string(), validated_at: v.integer({ min: 0 }) });
export type IsValidated3pidResponse = Infer<typeof vValidated3pidResponse>;
export const isGetValidated3pid = endpoint<undefined, IsValidated3pidResponse, IsSessionQuery>({
  id: "identity.3pid.get_validated",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/3pid/getValidated3pid`,
  auth: "identity",
  rateLimited: false,
  query: vSessionQuery,
  response: vValidated3pidResponse,
});

export const vBindRequest = v.object({ sid: vSid, client_secret: vClientSecret, mxid: vUserId });
export type IsBindRequest = Infer<typeof vBindRequest>;
/** The signed association the IS returns (and, with `invites`, posts to `onbind`). */
export const vAssociation = v.object({
  address: v.string(),
  medium: v.string(),
  mxid: vUserId,
  not_before: v.integer(),
  not_after: v.integer(),
  ts: v.integer(),
  signatures: vSignatures,
});
export type IsBindResponse = Infer<typeof vAssociation>;
export const isBind = endpoint<IsBindRequest, IsBindResponse>({
  id: "identity.3pid.bind",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/3pid/bind`,
  auth: "identity",
  rateLimited: true,
  body: vBindRequest,
  response: vAssociation,
});

export const vUnbindRequest = v.object({
  mxid: vUserId,
  threepid: vThreepid,
  sid: v.optional(vSid),
  client_secret: v.optional(vClientSecret),
});
export type IsUnbindRequest = Infer<typeof vUnbindRequest>;
/**
 * Authenticated by `sid` + `client_secret` in the body, or by an X-Matrix signature of the
 * mxid's homeserver with `destination_is` in the signed object (protocol-notes §6, x-matrix.ts).
 */
export const isUnbind = endpoint<IsUnbindRequest, EmptyObject>({
  id: "identity.3pid.unbind",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/3pid/unbind`,
  auth: "server-or-session",
  rateLimited: true,
  body: vUnbindRequest,
  response: vEmpty,
});

// ── invitations ──────────────────────────────────────────────────────────────

const optText = (max: number) => v.nullable(v.string({ maxLength: max }));
/** Synapse sends `""` for absent room details, so those are plain strings, not identifiers. */
export const vStoreInviteRequest = v.object({
  medium: v.string({ minLength: 1, maxLength: 32 }),
  address: vAddress,
  room_id: vRoomId,
  sender: vUserId,
  room_alias: optText(255),
  room_avatar_url: optText(2048),
  room_join_rules: optText(255),
  room_name: optText(4096),
  room_type: optText(255),
  sender_display_name: optText(4096),
  sender_avatar_url: optText(2048),
  "org.matrix.web_client_location": optText(2048),
});
export type IsStoreInviteRequest = Infer<typeof vStoreInviteRequest>;
export const vPublicKeyEntry = v.object({ public_key: v.string({ minLength: 1 }), key_validity_url: v.string({ minLength: 1 }) });
export type PublicKeyEntry = Infer<typeof vPublicKeyEntry>;
export const vStoreInviteResponse = v.object({
  token: v.string({ minLength: 1, maxLength: 255 }),
  public_keys: v.array(vPublicKeyEntry, { minItems: 1 }),
  public_key: v.optional(v.string({ minLength: 1 })),
  display_name: v.string(),
});
export type IsStoreInviteResponse = Infer<typeof vStoreInviteResponse>;
export const isStoreInvite = endpoint<IsStoreInviteRequest, IsStoreInviteResponse>({
  id: "identity.invite.store",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/store-invite`,
  auth: "identity",
  rateLimited: true,
  body: vStoreInviteRequest,
  response: vStoreInviteResponse,
});

/**
 * NOTSPEC (DECISIONS.md): no token, and `mxid`, `token`, `private_key` may come from the query
 * string or the body — so each is optional here and the handler merges both and requires all
 * three. Also served at the v1 path (the sign URL of mails in the wild).
 */
export const vSignEd25519Request = v.object({
  mxid: v.optional(vUserId),
  token: v.optional(v.string({ minLength: 1, maxLength: 255 })),
  private_key: v.optional(v.string({ minLength: 1, maxLength: 128 })),
});
export type IsSignEd25519Request = Infer<typeof vSignEd25519Request>;
export const vSignEd25519Query = vSignEd25519Request;
export interface IsSignEd25519Response {
  mxid: UserId;
  sender: UserId;
  token: string;
  signatures: Signatures;
}
export const vSignEd25519Response: Validator<IsSignEd25519Response> = v.object({
  mxid: vUserId,
  sender: vUserId,
  token: v.string({ minLength: 1 }),
  signatures: vSignatures,
});
export const isSignEd25519 = endpoint<IsSignEd25519Request, IsSignEd25519Response, IsSignEd25519Request>({
  id: "identity.invite.sign_ed25519",
  api: "identity",
  method: "POST",
  path: `${IDENTITY_V2}/sign-ed25519`,
  aliases: [`${IDENTITY_V1}/sign-ed25519`],
  auth: "none",
  rateLimited: true,
  body: vSignEd25519Request,
  bodyOptional: true,
  query: vSignEd25519Query,
  response: vSignEd25519Response,
});

// ── public keys ──────────────────────────────────────────────────────────────

export interface IsPubkeyResponse {
  public_key: string;
}
export const isPubkey = endpoint<undefined, IsPubkeyResponse>({
  id: "identity.pubkey.get",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/pubkey/{keyId}`,
  aliases: [`${IDENTITY_V1}/pubkey/{keyId}`],
  auth: "none",
  rateLimited: false,
  response: v.object({ public_key: v.string({ minLength: 1 }) }),
});

export const vPublicKeyQuery = v.object({ public_key: v.string({ minLength: 1, maxLength: 128 }) });
export type IsPublicKeyQuery = Infer<typeof vPublicKeyQuery>;
export interface IsKeyValidResponse {
  valid: boolean;
}
export const vKeyValidResponse: Validator<IsKeyValidResponse> = v.object({ valid: v.boolean() });
export const isPubkeyIsValid = endpoint<undefined, IsKeyValidResponse, IsPublicKeyQuery>({
  id: "identity.pubkey.is_valid",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/pubkey/isvalid`,
  aliases: [`${IDENTITY_V1}/pubkey/isvalid`],
  auth: "none",
  rateLimited: false,
  query: vPublicKeyQuery,
  response: vKeyValidResponse,
});

export const isEphemeralPubkeyIsValid = endpoint<undefined, IsKeyValidResponse, IsPublicKeyQuery>({
  id: "identity.pubkey.ephemeral_is_valid",
  api: "identity",
  method: "GET",
  path: `${IDENTITY_V2}/pubkey/ephemeral/isvalid`,
  aliases: [`${IDENTITY_V1}/pubkey/ephemeral/isvalid`],
  auth: "none",
  rateLimited: false,
  query: vPublicKeyQuery,
  response: vKeyValidResponse,
});

/** Every identity-server endpoint. */
export const identityEndpoints = [
  isVersions,
  isStatus,
  isRegister,
  isAccount,
  isLogout,
  isGetTerms,
  isAcceptTerms,
  isHashDetails,
  isLookup,
  isEmailRequestToken,
  isEmailSubmitToken,
  isEmailSubmitTokenGet,
  isMsisdnRequestToken,
  isMsisdnSubmitToken,
  isGetValidated3pid,
  isBind,
  isUnbind,
  isStoreInvite,
  isSignEd25519,
  isPubkey,
  isPubkeyIsValid,
  isEphemeralPubkeyIsValid,
] as const;
