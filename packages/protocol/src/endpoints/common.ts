/**
 * Validators and types shared by several endpoint families: identifiers as branded types,
 * 3PID session secrets, the signed `{mxid, token, signatures}` block, OpenID tokens, and the
 * client event formats that responses carry.
 *
 * @example
 * const body = v.object({ user_id: vUserId, reason: v.optional(v.string()) });
 * body({ user_id: "@bob:example.org" }).user_id; // UserId
 */
import { MatrixError } from "../errors.js";
import {
  isValidEventId,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  type EventId,
  type RoomAlias,
  type RoomId,
  type ServerName,
  type UserId,
} from "../identifiers.js";
import type { Signatures } from "../signing.js";
import { v, type Infer, type Validator } from "../validate.js";

function branded<B extends string>(check: (s: string) => boolean, what: string): Validator<B> {
  return (x, path = "value") => {
    if (typeof x !== "string") throw new MatrixError("M_INVALID_PARAM", `${path}: must be a string`);
    if (!check(x)) throw new MatrixError("M_INVALID_PARAM", `${path}: must be ${what}`);
    return x as B;
  };
}

/** A user ID (historical localparts accepted), as {@link UserId}. */
export const vUserId: Validator<UserId> = branded<UserId>((s) => isValidUserId(s), "a user ID");
/** A room ID, as {@link RoomId}. */
export const vRoomId: Validator<RoomId> = branded<RoomId>(isValidRoomId, "a room ID");
/** A room alias, as {@link RoomAlias}. */
export const vRoomAlias: Validator<RoomAlias> = branded<RoomAlias>(isValidRoomAlias, "a room alias");
/** An event ID, as {@link EventId}. */
export const vEventId: Validator<EventId> = branded<EventId>(isValidEventId, "an event ID");
/** A server name (`host[:port]`), as {@link ServerName}. */
export const vServerName: Validator<ServerName> = branded<ServerName>(isValidServerName, "a server name");

/** `client_secret`, `sid` and store-invite tokens: `[0-9a-zA-Z.=_-]{1,255}` (IS spec). */
export const SECRET_PATTERN = /^[0-9a-zA-Z.=_-]{1,255}$/;
export const vClientSecret = v.string({ pattern: SECRET_PATTERN });
export const vSid = v.string({ pattern: SECRET_PATTERN });

/**
 * An identity server as clients name it: `host[:port]`, no scheme (Synapse also tolerates a
 * `/path` suffix). Whether it is trusted is the homeserver's decision, not the validator's.
 */
export const vIdServer = v.string({ minLength: 1, maxLength: 255, pattern: /^(?!.*:\/\/)[A-Za-z0-9.\-[\]:]+(\/[^\s?#]*)?$/ });

/** A 3PID medium that the spec enumerates for account endpoints. */
export const vMedium = v.literal("email", "msisdn");
/** An address (email or msisdn), bounded as Sydent bounds it. */
export const vAddress = v.string({ minLength: 1, maxLength: 500 });

/** A `{medium, address}` pair. */
export const vThreepid = v.object({ medium: v.string({ minLength: 1, maxLength: 32 }), address: vAddress });
export type Threepid = Infer<typeof vThreepid>;

/** `signatures`: entity → key id → base64 signature. */
export const vSignatures: Validator<Signatures> = v.record(v.record(v.string()));

/**
 * The block an identity server signs for a 3PID invite: `{mxid, token, signatures}` (and
 * `sender` when it comes from `sign-ed25519`). Used by onbind invites, `third_party_signed`
 * and `m.room.member` `third_party_invite.signed`.
 */
export const vSignedThirdPartyInvite = v.object({
  mxid: vUserId,
  token: v.string({ minLength: 1, maxLength: 255 }),
  signatures: vSignatures,
  sender: v.optional(vUserId),
});
export type SignedThirdPartyInvite = Infer<typeof vSignedThirdPartyInvite>;

/** `third_party_signed` of a join: all four fields required (C-S spec). */
export const vThirdPartySigned = v.object({
  sender: vUserId,
  mxid: vUserId,
  token: v.string({ minLength: 1, maxLength: 255 }),
  signatures: vSignatures,
});
export type ThirdPartySigned = Infer<typeof vThirdPartySigned>;

/** The OpenID token a homeserver issues (`user/{userId}/openid/request_token`), sent to IS `account/register`. */
export const vOpenIdToken = v.object({
  access_token: v.string({ minLength: 1, maxLength: 1024 }),
  token_type: v.string(),
  matrix_server_name: v.string({ minLength: 1, maxLength: 255 }),
  expires_in: v.looseInteger({ min: 0 }),
});
export type OpenIdToken = Infer<typeof vOpenIdToken>;

/** A response with nothing to say (`{}`), or extra fields we ignore. */
export type EmptyObject = Record<string, unknown>;
export const vEmpty = v.anyObject();

/** Any event content. */
export type EventContent = Record<string, unknown>;

/** An event in the Client-Server API's client format (sync timelines, `state`, `messages`). */
export interface ClientEvent {
  type: string;
  content: EventContent;
  event_id: EventId;
  sender: UserId;
  origin_server_ts: number;
  room_id: RoomId;
  state_key?: string;
  unsigned?: Record<string, unknown>;
}

/** A client event without `room_id` (inside sync's per-room blocks). */
export type ClientEventWithoutRoomId = Omit<ClientEvent, "room_id">;

/** A stripped state event (`invite_state`): enough to describe a room to an invitee. */
export interface StrippedStateEvent {
  type: string;
  state_key: string;
  sender: UserId;
  content: EventContent;
}

/** A validator for a positive integer query parameter with a cap (e.g. `limit`, `timeout`). */
export function vQueryInt(min: number, max: number): Validator<number> {
  return v.looseInteger({ min, max });
}

export const CLIENT_V3 = "/_matrix/client/v3";
export const CLIENT_R0 = "/_matrix/client/r0";
export const CLIENT_UNSTABLE = "/_matrix/client/unstable";

/**
 * The v3 path of a Client-Server endpoint with its `r0` alias (still used by older clients
 * and bots), plus `unstable` and extra aliases when asked.
 */
export function clientPaths(
  suffix: string,
  opts: { unstable?: boolean; r0?: boolean; extra?: string[] } = {},
): { path: string; aliases: string[] } {
  const aliases: string[] = [];
  if (opts.r0 !== false) aliases.push(CLIENT_R0 + suffix);
  if (opts.unstable) aliases.push(CLIENT_UNSTABLE + suffix);
  for (const e of opts.extra ?? []) aliases.push(e);
  return { path: CLIENT_V3 + suffix, aliases };
}
