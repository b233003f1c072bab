/**
 * Client-Server API membership: invite (by user ID or by 3PID), join (incl.
 * `third_party_signed`), leave, forget, kick, ban, unban
 * (https://spec.matrix.org/v1.18/client-server-api/#room-membership).
 */
import { isJsonObject } from "../canonical-json.js";
import { v, type Infer, type Validator } from "../validate.js";
import { clientPaths, vAddress, vEmpty, vIdServer, vRoomId, vThirdPartySigned, vUserId, type EmptyObject } from "./common.js";
import { endpoint } from "./descriptor.js";

const vReason = v.optional(v.string({ maxLength: 4096 }));

/**
 * One 3PID invite (`Invite3pid`), in `rooms/{roomId}/invite` and `createRoom.invite_3pid`.
 * `id_access_token` is required (Synapse ≥ 1.67; issue 4): its absence is 400 `M_MISSING_PARAM`.
 */
export const vInvite3pid = v.object({
  id_server: vIdServer,
  id_access_token: v.string({ minLength: 1, maxLength: 1024 }),
  medium: v.string({ minLength: 1, maxLength: 32 }),
  address: vAddress,
});
export type Invite3pid = Infer<typeof vInvite3pid>;

export const vInviteUserRequest = v.object({ user_id: vUserId, reason: vReason });
export type InviteUserRequest = Infer<typeof vInviteUserRequest>;
export type InviteRequest = InviteUserRequest | Invite3pid;

/** True for the 3PID form (Synapse's rule: the body has both `medium` and `address`). */
export function isInvite3pidRequest(body: InviteRequest): body is Invite3pid {
  return typeof body.medium === "string" && typeof body.address === "string";
}

/** Both body forms: the 3PID form when `medium` and `address` are both present, else `user_id` is required. */
export const vInviteRequest: Validator<InviteRequest> = v.select<InviteRequest>((x) =>
  isJsonObject(x) && x.medium !== undefined && x.address !== undefined ? vInvite3pid : vInviteUserRequest,
);

/** `200 {}` in both forms. */
export const invite = endpoint<InviteRequest, EmptyObject>({
  id: "client.membership.invite",
  api: "client",
  method: "POST",
  ...clientPaths("/rooms/{roomId}/invite"),
  auth: "user",
  rateLimited: true,
  body: vInviteRequest,
  response: vEmpty,
});

export const vJoinRequest = v.object({ reason: vReason, third_party_signed: v.optional(vThirdPartySigned) });
export type JoinRequest = Infer<typeof vJoinRequest>;
/** `via` (v1.12) and the older `server_name`, each may repeat. */
export const vJoinQuery = v.object({
  via: v.optional(v.stringList({ maxItems: 50, maxLength: 255 })),
  server_name: v.optional(v.stringList({ maxItems: 50, maxLength: 255 })),
});
export type JoinQuery = Infer<typeof vJoinQuery>;
export const vJoinResponse = v.object({ room_id: vRoomId });
export type JoinResponse = Infer<typeof vJoinResponse>;

/** Synapse accepts an empty body: so do we. */
export const joinRoomIdOrAlias = endpoint<JoinRequest, JoinResponse, JoinQuery>({
  id: "client.membership.join_id_or_alias",
  api: "client",
  method: "POST",
  ...clientPaths("/join/{roomIdOrAlias}"),
  auth: "user",
  rateLimited: true,
  body: vJoinRequest,
  bodyOptional: true,
  query: vJoinQuery,
  response: vJoinResponse,
});

export const joinRoom = endpoint<JoinRequest, JoinResponse>({
  id: "client.membership.join",
  api: "client",
  method: "POST",
  ...clientPaths("/rooms/{roomId}/join"),
  auth: "user",
  rateLimited: true,
  body: vJoinRequest,
  bodyOptional: true,
  response: vJoinResponse,
});

export const vReasonRequest = v.object({ reason: vReason });
export type LeaveRequest = Infer<typeof vReasonRequest>;
export const leave = endpoint<LeaveRequest, EmptyObject>({
  id: "client.membership.leave",
  api: "client",
  method: "POST",
  ...clientPaths("/rooms/{roomId}/leave"),
  auth: "user",
  rateLimited: true,
  body: vReasonRequest,
  bodyOptional: true,
  response: vEmpty,
});

export const forget = endpoint<EmptyObject, EmptyObject>({
  id: "client.membership.forget",
  api: "client",
  method: "POST",
  ...clientPaths("/rooms/{roomId}/forget"),
  auth: "user",
  rateLimited: true,
  body: vEmpty,
  bodyOptional: true,
  response: vEmpty,
});

export const vTargetUserRequest = v.object({ user_id: vUserId, reason: vReason });
export type TargetUserRequest = Infer<typeof vTargetUserRequest>;
function targetEndpoint(name: "kick" | "ban" | "unban") {
  return endpoint<TargetUserRequest, EmptyObject>({
    id: `client.membership.${name}`,
    api: "client",
    method: "POST",
    ...clientPaths(`/rooms/{roomId}/${name}`),
    auth: "user",
    rateLimited: true,
    body: vTargetUserRequest,
    response: vEmpty,
  });
}
export const kick = targetEndpoint("kick");
export const ban = targetEndpoint("ban");
export const unban = targetEndpoint("unban");

export const clientMembershipEndpoints = [invite, joinRoomIdOrAlias, joinRoom, leave, forget, kick, ban, unban] as const;
