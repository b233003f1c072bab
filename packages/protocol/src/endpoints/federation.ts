/**
 * The Server-Server pieces that 3PID invites need
 * (https://spec.matrix.org/v1.18/server-server-api/#third-party-invites), OpenID userinfo, and
 * the server key endpoint.
 */

import type { Signatures } from "../signing.js";
import { v, type Infer, type Validator } from "../validate.js";
import { vEmpty, vRoomId, vServerName, vSignatures, vSignedThirdPartyInvite, vUserId, type EmptyObject } from "./common.js";
import { endpoint } from "./descriptor.js";

export const FEDERATION_V1 = "/_matrix/federation/v1";

/** One invite in an onbind: `signed` is the IS's signature over `{mxid, token}`. */
export const vOnbindInvite = v.object({
  medium: v.string(),
  address: v.string(),
  mxid: vUserId,
  room_id: vRoomId,
  sender: vUserId,
  signed: vSignedThirdPartyInvite,
  /** Sydent extra. */
  token: v.optional(v.string()),
});
export type OnbindInvite = Infer<typeof vOnbindInvite>;

/**
 * The onbind body. Each invite is validated on its own by the handler (issue 9: one bad invite
 * must not sink the batch), so `invites` is only checked to be an array of objects here; use
 * {@link vOnbindInvite} per entry. `invites` is absent when nothing was pending (Sydent).
 */
export const vOnbindRequest = v.object({
  medium: v.string(),
  address: v.string(),
  mxid: vUserId,
  invites: v.optional(v.array(v.anyObject(), { maxItems: 10000 })),
  ts: v.optional(v.integer()),
  not_before: v.optional(v.integer()),
  not_after: v.optional(v.integer()),
  signatures: v.optional(vSignatures),
});
export type OnbindRequest = Infer<typeof vOnbindRequest>;

const onbindBase = {
  api: "federation",
  path: `${FEDERATION_V1}/3pid/onbind`,
  auth: "signed-content",
  rateLimited: false,
  body: vOnbindRequest,
  response: vEmpty,
} as const;
/** Synapse registers and Sydent sends POST. */
export const onbindPost = endpoint<OnbindRequest, EmptyObject>({ id: "federation.3pid.onbind_post", method: "POST", ...onbindBase });
/** The spec says PUT. */
export const onbindPut = endpoint<OnbindRequest, EmptyObject>({ id: "federation.3pid.onbind_put", method: "PUT", ...onbindBase });

export const vUserinfoQuery = v.object({ access_token: v.string({ minLength: 1, maxLength: 1024 }) });
export type UserinfoQuery = Infer<typeof vUserinfoQuery>;
export const vUserinfoResponse = v.object({ sub: vUserId });
export type UserinfoResponse = Infer<typeof vUserinfoResponse>;
/** No X-Matrix: the token is in the query by design. 401 `M_UNKNOWN_TOKEN` (`M_MISSING_TOKEN` without). */
export const openidUserinfo = endpoint<undefined, UserinfoResponse, UserinfoQuery>({
  id: "federation.openid.userinfo",
  api: "federation",
  method: "GET",
  path: `${FEDERATION_V1}/openid/userinfo`,
  auth: "none",
  rateLimited: true,
  query: vUserinfoQuery,
  response: vUserinfoResponse,
});

export interface ServerKeysResponse {
  server_name: string;
  valid_until_ts: number;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys?: Record<string, { key: string; expired_ts: number }>;
  signatures: Signatures;
}
export const vServerKeysResponse: Validator<ServerKeysResponse> = v.object({
  server_name: vServerName,
  valid_until_ts: v.integer(),
  verify_keys: v.record(v.object({ key: v.string({ minLength: 1 }) })),
  old_verify_keys: v.optional(v.record(v.object({ key: v.string({ minLength: 1 }), expired_ts: v.integer() }))),
  signatures: vSignatures,
});
/** Also served with the trailing slash (Sydent fetches `/_matrix/key/v2/server/`; see `servedPaths`). */
export const serverKeys = endpoint<undefined, ServerKeysResponse>({
  id: "key.server.keys",
  api: "key",
  method: "GET",
  path: "/_matrix/key/v2/server",
  auth: "none",
  rateLimited: false,
  response: vServerKeysResponse,
});

/** A partial `m.room.member` invite event (spec §third-party-invites). */
export const vExchangeThirdPartyInviteRequest = v.object({
  type: v.literal("m.room.member"),
  room_id: vRoomId,
  sender: vUserId,
  state_key: vUserId,
  content: v.object({
    membership: v.literal("invite"),
    third_party_invite: v.object({ display_name: v.optional(v.string()), signed: vSignedThirdPartyInvite }),
  }),
});
export type ExchangeThirdPartyInviteRequest = Infer<typeof vExchangeThirdPartyInviteRequest>;
/** Descriptor only: federation is out of scope (DECISIONS.md). */
export const exchangeThirdPartyInvite = endpoint<ExchangeThirdPartyInviteRequest, EmptyObject>({
  id: "federation.3pid.exchange_third_party_invite",
  api: "federation",
  method: "PUT",
  path: `${FEDERATION_V1}/exchange_third_party_invite/{roomId}`,
  auth: "server",
  rateLimited: false,
  body: vExchangeThirdPartyInviteRequest,
  response: vEmpty,
});


export const federationEndpoints = [onbindPost, onbindPut, openidUserinfo, serverKeys, exchangeThirdPartyInvite] as const;
