/**
 * Client-Server API `GET /sync` (https://spec.matrix.org/v1.18/client-server-api/#syncing).
 */
import type { RoomId } from "../identifiers.js";
import { v, type Infer } from "../validate.js";
import { clientPaths, type ClientEventWithoutRoomId, type StrippedStateEvent } from "./common.js";
import { endpoint } from "./descriptor.js";

/** `filter` is a filter ID or inline JSON (we read `room.include_leave` and `room.timeline.limit`). */
export const vSyncQuery = v.object({
  since: v.optional(v.string({ maxLength: 255 })),
  timeout: v.optional(v.looseInteger({ min: 0 })),
  filter: v.optional(v.string({ maxLength: 8192 })),
  full_state: v.optional(v.literal("true", "false")),
  set_presence: v.optional(v.literal("offline", "online", "unavailable")),
});
export type SyncQuery = Infer<typeof vSyncQuery>;

export interface Timeline {
  events: ClientEventWithoutRoomId[];
  limited?: boolean;
  prev_batch?: string;
}
export interface JoinedRoomSync {
  timeline?: Timeline;
  state?: { events: ClientEventWithoutRoomId[] };
  account_data?: { events: { type: string; content: Record<string, unknown> }[] };
  ephemeral?: { events: { type: string; content: Record<string, unknown> }[] };
  summary?: { "m.heroes"?: string[]; "m.joined_member_count"?: number; "m.invited_member_count"?: number };
  unread_notifications?: { highlight_count?: number; notification_count?: number };
}
export interface InvitedRoomSync {
  invite_state?: { events: StrippedStateEvent[] };
}
export interface LeftRoomSync {
  timeline?: Timeline;
  state?: { events: ClientEventWithoutRoomId[] };
}
export interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<RoomId, JoinedRoomSync>;
    invite?: Record<RoomId, InvitedRoomSync>;
    leave?: Record<RoomId, LeftRoomSync>;
    knock?: Record<RoomId, unknown>;
  };
  account_data?: { events: { type: string; content: Record<string, unknown> }[] };
  presence?: { events: unknown[] };
  to_device?: { events: unknown[] };
}

/** Initial or incremental (`since`), long-polling up to `timeout` ms. */
export const sync = endpoint<undefined, SyncResponse, SyncQuery>({
  id: "client.sync.sync",
  api: "client",
  method: "GET",
  ...clientPaths("/sync"),
  auth: "user",
  rateLimited: false,
  query: vSyncQuery,
});

export const clientSyncEndpoints = [sync] as const;
