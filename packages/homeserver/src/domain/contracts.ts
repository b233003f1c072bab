/**
 * The seams between the homeserver's room core and its third-party-invite and federation
 * pieces, which are built side by side. The room core implements these interfaces
 * (`RoomOps`, `ProfileOps`, `AccountOps`); the 3PID code consumes them and exports the
 * functions at the bottom of this file's contract (see `ThreepidApi`).
 */
import type { MatrixError } from "@beckon/protocol";

/** The parts of a stored event the 3PID code reads. */
export interface StoredEvent {
  event_id: string;
  room_id: string;
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
}

export type Membership = "join" | "invite" | "leave" | "ban" | "knock";

/** Input for a new event; the core fills prev/auth events, depth, hashes, signatures. */
export interface NewEvent {
  roomId: string;
  sender: string;
  type: string;
  stateKey?: string;
  content: Record<string, unknown>;
  /**
   * For a state event: when the room's current event at (type, stateKey) passes this test,
   * nothing is sent and that event is the answer (checked under the room's write lock).
   */
  keepCurrentIf?: (content: Record<string, unknown>) => boolean;
  /**
   * Database work that must commit or roll back with the event, run inside the room's
   * transaction (`db` is that transaction; also run when `keepCurrentIf` kept the current one).
   */
  inTransaction?: (db: unknown) => Promise<void>;
}

/** Room details the identity server's store-invite wants (Synapse sends these). */
export interface InviteRoomDetails {
  room_alias?: string;
  room_avatar_url?: string;
  room_join_rules?: string;
  room_name?: string;
  room_type?: string;
}

export interface RoomOps {
  /** Room version when this server hosts the room, else undefined. */
  getRoomVersion(roomId: string): Promise<string | undefined>;
  /** Current state event for (type, stateKey), or undefined. */
  getStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | undefined>;
  /** Current membership of a user, or undefined if none. */
  getMembership(roomId: string, userId: string): Promise<Membership | undefined>;
  /**
   * Throws a MatrixError (403 M_FORBIDDEN, 404 for an unknown room) unless `sender` may invite
   * in `roomId` now (joined, power ≥ invite); called before any identity-server traffic. The
   * same read of the room's state gives the room details store-invite sends (as Synapse does).
   */
  checkInviteAndDetails(roomId: string, sender: string): Promise<InviteRoomDetails>;
  /**
   * Builds, authorises (spec auth rules), persists and announces an event. Throws MatrixError
   * 403 M_FORBIDDEN when the auth rules refuse it. Idempotency is the caller's concern.
   */
  sendEvent(ev: NewEvent): Promise<{ eventId: string }>;
}

export interface ProfileOps {
  getProfile(userId: string): Promise<{ displayname?: string; avatar_url?: string }>;
}

export interface AccountOps {
  /** True when the user exists locally and is not deactivated. */
  userExists(userId: string): Promise<boolean>;
}

/** One entry of `invite_3pid` or the 3PID body of POST rooms/{roomId}/invite. */
export interface ThreepidInviteRequest {
  id_server: string;
  id_access_token?: string;
  medium: string;
  address: string;
}

/** What the identity server said for one 3PID, before the room commits anything. */
export type PreparedThreepidInvite =
  | { kind: "user"; userId: string }
  | { kind: "third_party"; token: string; content: Record<string, unknown> };

/** Room facts for store-invite when the room does not exist yet (createRoom). */
export interface InviteRoomContext {
  roomId: string;
  sender: string;
  room_alias?: string;
  room_avatar_url?: string;
  room_join_rules?: string;
  room_name?: string;
  room_type?: string;
}

/**
 * What the 3PID module exports (implemented in `third-party-invites.ts`):
 * - `prepareThreepidInvite(req, ctx)`: lookup, else store-invite — no room changes. Throws
 *   MatrixError (400 M_MISSING_PARAM / M_SERVER_NOT_TRUSTED, 502/504 M_UNKNOWN when the IS fails).
 * - `inviteByThreepid(roomId, sender, req)`: checkInviteAndDetails, de-duplicate a pending invite,
 *   prepare, then send the resulting event (m.room.member invite or m.room.third_party_invite).
 */
export interface ThreepidApi {
  prepareThreepidInvite(req: ThreepidInviteRequest, ctx: InviteRoomContext): Promise<PreparedThreepidInvite>;
  /**
   * The two halves of `prepareThreepidInvite`, for callers that must look every address up
   * before storing any invite (createRoom with several `invite_3pid` entries: a failing lookup
   * must not leave an invite mail behind for a room that is never created).
   * `lookupThreepidInvite` validates the request, checks the identity server is trusted and
   * looks the address up; `storeThreepidInvite` does the store-invite for an unbound address.
   */
  lookupThreepidInvite?(req: ThreepidInviteRequest): Promise<{ kind: "user"; userId: string } | { kind: "unbound" }>;
  storeThreepidInvite?(req: ThreepidInviteRequest, ctx: InviteRoomContext): Promise<PreparedThreepidInvite>;
  /** The key under which two requests name the same invitee (medium + normalised address). */
  threepidInviteKey?(req: Pick<ThreepidInviteRequest, "medium" | "address">): string;
  inviteByThreepid(roomId: string, sender: string, req: ThreepidInviteRequest): Promise<void>;
}

export type { MatrixError };
