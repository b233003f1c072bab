/**
 * Client-Server API rooms: creation, state, sending, history, members, aliases
 * (https://spec.matrix.org/v1.18/client-server-api/#rooms).
 */
import type { UserId } from "../identifiers.js";
import { v, type Infer } from "../validate.js";
import {
  CLIENT_R0,
  CLIENT_V3,
  clientPaths,
  vEmpty,
  vEventId,
  vRoomId,
  vUserId,
  type ClientEvent,
  type EmptyObject,
  type EventContent,
} from "./common.js";
import { vInvite3pid } from "./client-membership.js";
import { endpoint } from "./descriptor.js";

export const vStateEventInput = v.object({
  type: v.string({ minLength: 1, maxLength: 255 }),
  state_key: v.optional(v.string({ maxLength: 255 })),
  content: v.anyObject(),
});
export type StateEventInput = Infer<typeof vStateEventInput>;

export const vCreateRoomRequest = v.object({
  visibility: v.optional(v.literal("public", "private")),
  room_alias_name: v.optional(v.string({ minLength: 1, maxLength: 255 })),
  name: v.optional(v.string({ maxLength: 1024 })),
  topic: v.optional(v.string({ maxLength: 4096 })),
  invite: v.optional(v.array(vUserId, { maxItems: 1000 })),
  invite_3pid: v.optional(v.array(vInvite3pid, { maxItems: 100 })),
  room_version: v.optional(v.string({ minLength: 1, maxLength: 32 })),
  creation_content: v.optional(v.anyObject()),
  initial_state: v.optional(v.array(vStateEventInput, { maxItems: 1000 })),
  preset: v.optional(v.literal("private_chat", "public_chat", "trusted_private_chat")),
  is_direct: v.optional(v.boolean()),
  power_level_content_override: v.optional(v.anyObject()),
});
export type CreateRoomRequest = Infer<typeof vCreateRoomRequest>;
export const vRoomIdResponse = v.object({ room_id: vRoomId });
export type RoomIdResponse = Infer<typeof vRoomIdResponse>;
/** Rooms versions 10 and 11 (default 10, DECISIONS.md); `invite_3pid` entries need all four fields. */
export const createRoom = endpoint<CreateRoomRequest, RoomIdResponse>({
  id: "client.rooms.create",
  api: "client",
  method: "POST",
  ...clientPaths("/createRoom"),
  auth: "user",
  rateLimited: true,
  body: vCreateRoomRequest,
  response: vRoomIdResponse,
});

/** `GET rooms/{roomId}/state`: every current state event. */
export const getRoomState = endpoint<undefined, ClientEvent[]>({
  id: "client.rooms.state",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/state"),
  auth: "user",
  rateLimited: false,
});

const STATE_EVENT = "/rooms/{roomId}/state/{eventType}";
/**
 * Empty state key: `…/state/{eventType}`, also with a trailing slash (matrix-bot-sdk uses the
 * slash; every path is served with and without one, see `servedPaths`).
 */
const stateEventAliases = [CLIENT_R0 + STATE_EVENT + "/{stateKey}", CLIENT_V3 + STATE_EVENT, CLIENT_R0 + STATE_EVENT];

export const vStateEventQuery = v.object({ format: v.optional(v.literal("content", "event")) });
export type StateEventQuery = Infer<typeof vStateEventQuery>;
/** The content of one state event (or the event with `?format=event`); 404 `M_NOT_FOUND`. */
export const getStateEvent = endpoint<undefined, EventContent, StateEventQuery>({
  id: "client.rooms.get_state_event",
  api: "client",
  method: "GET",
  path: CLIENT_V3 + STATE_EVENT + "/{stateKey}",
  aliases: stateEventAliases,
  auth: "user",
  rateLimited: false,
  query: vStateEventQuery,
});

export const vEventIdResponse = v.object({ event_id: vEventId });
export type EventIdResponse = Infer<typeof vEventIdResponse>;
/** Body = the event content. */
export const setStateEvent = endpoint<EventContent, EventIdResponse>({
  id: "client.rooms.set_state_event",
  api: "client",
  method: "PUT",
  path: CLIENT_V3 + STATE_EVENT + "/{stateKey}",
  aliases: stateEventAliases,
  auth: "user",
  rateLimited: true,
  body: v.anyObject(),
  response: vEventIdResponse,
});

/** Idempotent per (device, `txnId`). Body = the event content. */
export const sendEvent = endpoint<EventContent, EventIdResponse>({
  id: "client.rooms.send",
  api: "client",
  method: "PUT",
  ...clientPaths("/rooms/{roomId}/send/{eventType}/{txnId}"),
  auth: "user",
  rateLimited: true,
  body: v.anyObject(),
  response: vEventIdResponse,
});

/** `dir` is required by the spec; like Synapse we default it (to `f`) when absent. */
export const vMessagesQuery = v.object({
  from: v.optional(v.string({ maxLength: 255 })),
  to: v.optional(v.string({ maxLength: 255 })),
  dir: v.optional(v.literal("b", "f")),
  limit: v.optional(v.looseInteger({ min: 0, max: 1000 })),
  filter: v.optional(v.string({ maxLength: 8192 })),
});
export type MessagesQuery = Infer<typeof vMessagesQuery>;
export interface MessagesResponse {
  start: string;
  end?: string;
  chunk: ClientEvent[];
  state?: ClientEvent[];
}
export const getMessages = endpoint<undefined, MessagesResponse, MessagesQuery>({
  id: "client.rooms.messages",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/messages"),
  auth: "user",
  rateLimited: false,
  query: vMessagesQuery,
});

const vMembership = v.literal("invite", "join", "knock", "leave", "ban");
export const vMembersQuery = v.object({
  at: v.optional(v.string({ maxLength: 255 })),
  membership: v.optional(vMembership),
  not_membership: v.optional(vMembership),
});
export type MembersQuery = Infer<typeof vMembersQuery>;
export interface MembersResponse {
  chunk: ClientEvent[];
}
export const getMembers = endpoint<undefined, MembersResponse, MembersQuery>({
  id: "client.rooms.members",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/members"),
  auth: "user",
  rateLimited: false,
  query: vMembersQuery,
});

export interface JoinedMembersResponse {
  joined: Record<UserId, { display_name?: string | null; avatar_url?: string | null }>;
}
export const getJoinedMembers = endpoint<undefined, JoinedMembersResponse>({
  id: "client.rooms.joined_members",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/joined_members"),
  auth: "user",
  rateLimited: false,
});

export const vJoinedRoomsResponse = v.object({ joined_rooms: v.array(vRoomId) });
export type JoinedRoomsResponse = Infer<typeof vJoinedRoomsResponse>;
export const getJoinedRooms = endpoint<undefined, JoinedRoomsResponse>({
  id: "client.rooms.joined_rooms",
  api: "client",
  method: "GET",
  ...clientPaths("/joined_rooms"),
  auth: "user",
  rateLimited: false,
  response: vJoinedRoomsResponse,
});

export const vSetAliasRequest = v.object({ room_id: vRoomId });
export type SetAliasRequest = Infer<typeof vSetAliasRequest>;
/** 409 `M_UNKNOWN` when the alias exists (spec), 400 `M_INVALID_PARAM` for a bad alias. */
export const setRoomAlias = endpoint<SetAliasRequest, EmptyObject>({
  id: "client.directory.set_alias",
  api: "client",
  method: "PUT",
  ...clientPaths("/directory/room/{roomAlias}"),
  auth: "user",
  rateLimited: true,
  body: vSetAliasRequest,
  response: vEmpty,
});

export const vResolveAliasResponse = v.object({ room_id: vRoomId, servers: v.array(v.string()) });
export type ResolveAliasResponse = Infer<typeof vResolveAliasResponse>;
export const getRoomAlias = endpoint<undefined, ResolveAliasResponse>({
  id: "client.directory.get_alias",
  api: "client",
  method: "GET",
  ...clientPaths("/directory/room/{roomAlias}"),
  auth: "none",
  rateLimited: false,
  response: vResolveAliasResponse,
});

export const deleteRoomAlias = endpoint<undefined, EmptyObject>({
  id: "client.directory.delete_alias",
  api: "client",
  method: "DELETE",
  ...clientPaths("/directory/room/{roomAlias}"),
  auth: "user",
  rateLimited: false,
  response: vEmpty,
});

export const vRoomAliasesResponse = v.object({ aliases: v.array(v.string()) });
export type RoomAliasesResponse = Infer<typeof vRoomAliasesResponse>;
/** The local aliases of a room (`GET rooms/{roomId}/aliases`). */
export const getRoomAliases = endpoint<undefined, RoomAliasesResponse>({
  id: "client.rooms.aliases",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/aliases"),
  auth: "user",
  rateLimited: true,
  response: vRoomAliasesResponse,
});

/** One event by ID, if the caller may see it; 404 `M_NOT_FOUND`. */
export const getEvent = endpoint<undefined, ClientEvent>({
  id: "client.rooms.event",
  api: "client",
  method: "GET",
  ...clientPaths("/rooms/{roomId}/event/{eventId}"),
  auth: "user",
  rateLimited: false,
});

export const clientRoomEndpoints = [
  getRoomAliases,
  getEvent,
  createRoom,
  getRoomState,
  getStateEvent,
  setStateEvent,
  sendEvent,
  getMessages,
  getMembers,
  getJoinedMembers,
  getJoinedRooms,
  setRoomAlias,
  getRoomAlias,
  deleteRoomAlias,
] as const;
