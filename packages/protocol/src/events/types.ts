/**
 * Room events in the PDU format of the room versions Beckon supports (10 and 11), their
 * content types, and the constants for event types, memberships and join rules.
 *
 * - PDU format: https://spec.matrix.org/v1.18/rooms/v10/#event-format (pdu_v6) and
 *   https://spec.matrix.org/v1.18/rooms/v11/#event-format (pdu_v11, no top-level `redacts`).
 * - Event contents: https://spec.matrix.org/v1.18/client-server-api/#room-events
 *
 * @example
 * const content: MemberContent = { membership: Membership.Invite };
 */
import type { Signatures } from "../signing.js";

/** Room versions this code implements (DECISIONS.md: 10 and 11, default 10). */
export type RoomVersion = "10" | "11";

/** The room versions we can create and authorise, in preference order. */
export const supportedRoomVersions: readonly RoomVersion[] = Object.freeze(["10", "11"] as const);

/** NOTSPEC: the spec recommends 12; DECISIONS.md keeps 10 as our default. */
export const DEFAULT_ROOM_VERSION: RoomVersion = "10";

/** True for a room version string we implement. */
export function isSupportedRoomVersion(v: unknown): v is RoomVersion {
  return v === "10" || v === "11";
}

/** `hashes` on a PDU. */
export interface EventHashes {
  /** Unpadded standard base64 SHA-256 content hash. */
  sha256: string;
  [algorithm: string]: string;
}

/**
 * A persistent data unit (room event) for room versions 10 and 11.
 * The event ID is not part of the PDU: it is the reference hash ({@link computeEventId}).
 */
export interface PDU {
  room_id: string;
  sender: string;
  type: string;
  /** Present (possibly `""`) on state events only. */
  state_key?: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  depth: number;
  prev_events: string[];
  auth_events: string[];
  hashes: EventHashes;
  signatures: Signatures;
  unsigned?: Record<string, unknown>;
  /** v10 (and earlier) `m.room.redaction` only; v11 moves it to `content.redacts`. */
  redacts?: string;
  /** Historical top-level field still found on old events (protected by v10 redaction). Never set by us. */
  origin?: string;
}

/** A PDU before hashing and signing. */
export type UnsignedPDU = Omit<PDU, "hashes" | "signatures"> & { hashes?: EventHashes; signatures?: Signatures };

/** A PDU whose `type` and `state_key` make it a state event. */
export type StatePDU = PDU & { state_key: string };

/** Event types Beckon creates or reads. */
export const EventType = {
  Create: "m.room.create",
  Member: "m.room.member",
  PowerLevels: "m.room.power_levels",
  JoinRules: "m.room.join_rules",
  HistoryVisibility: "m.room.history_visibility",
  GuestAccess: "m.room.guest_access",
  Name: "m.room.name",
  Topic: "m.room.topic",
  Avatar: "m.room.avatar",
  CanonicalAlias: "m.room.canonical_alias",
  Encryption: "m.room.encryption",
  ThirdPartyInvite: "m.room.third_party_invite",
  Redaction: "m.room.redaction",
  Message: "m.room.message",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** `content.membership` of `m.room.member`. */
export const Membership = {
  Join: "join",
  Invite: "invite",
  Leave: "leave",
  Ban: "ban",
  Knock: "knock",
} as const;
export type Membership = (typeof Membership)[keyof typeof Membership];

/** `content.join_rule` of `m.room.join_rules`. */
export const JoinRule = {
  Public: "public",
  Invite: "invite",
  Knock: "knock",
  Restricted: "restricted",
  KnockRestricted: "knock_restricted",
  Private: "private",
} as const;
export type JoinRule = (typeof JoinRule)[keyof typeof JoinRule];

/** `content.history_visibility` of `m.room.history_visibility`. */
export const HistoryVisibility = {
  WorldReadable: "world_readable",
  Shared: "shared",
  Invited: "invited",
  Joined: "joined",
} as const;
export type HistoryVisibility = (typeof HistoryVisibility)[keyof typeof HistoryVisibility];

/** `m.room.create`. v11: no `creator` (the event's `sender` is the creator). */
export type CreateContent = {
  /** Required in room versions ≤ 10, absent in 11. */
  creator?: string;
  room_version?: string;
  "m.federate"?: boolean;
  predecessor?: { room_id: string; event_id?: string };
  type?: string;
};

/** The `signed` block of a third-party invite, signed by the identity server. */
export type ThirdPartyInviteSigned = {
  mxid: string;
  token: string;
  signatures: Signatures;
  /** Present in blocks from `sign-ed25519`, absent in those delivered by onbind. */
  sender?: string;
};

/** `content.third_party_invite` of an `m.room.member` invite. */
export type MemberThirdPartyInvite = {
  display_name: string;
  signed: ThirdPartyInviteSigned;
};

/** `m.room.member`. */
export type MemberContent = {
  membership: Membership;
  displayname?: string | null;
  avatar_url?: string | null;
  reason?: string;
  is_direct?: boolean;
  join_authorised_via_users_server?: string;
  third_party_invite?: MemberThirdPartyInvite;
};

/** `m.room.power_levels`. In v10+ every level must be an integer. */
export type PowerLevelsContent = {
  ban?: number;
  events?: Record<string, number>;
  events_default?: number;
  invite?: number;
  kick?: number;
  redact?: number;
  state_default?: number;
  users?: Record<string, number>;
  users_default?: number;
  notifications?: Record<string, number>;
};

/** One entry of `allow` in restricted join rules. */
export type JoinRuleAllowCondition = { type: "m.room_membership"; room_id: string };

/** `m.room.join_rules`. */
export type JoinRulesContent = {
  join_rule: JoinRule;
  allow?: JoinRuleAllowCondition[];
};

/** `m.room.history_visibility`. */
export type HistoryVisibilityContent = { history_visibility: HistoryVisibility };

/** `m.room.guest_access`. */
export type GuestAccessContent = { guest_access: "can_join" | "forbidden" };

/** `m.room.name`. */
export type NameContent = { name: string };

/** `m.room.topic`. */
export type TopicContent = { topic: string };

/** `m.room.avatar`. */
export type AvatarContent = {
  url?: string;
  info?: { h?: number; w?: number; mimetype?: string; size?: number; thumbnail_url?: string };
};

/** `m.room.canonical_alias`. */
export type CanonicalAliasContent = { alias?: string | null; alt_aliases?: string[] };

/** `m.room.encryption`. */
export type EncryptionContent = {
  algorithm: string;
  rotation_period_ms?: number;
  rotation_period_msgs?: number;
};

/** One key of an `m.room.third_party_invite`. A missing `key_validity_url` means the key never expires. */
export type ThirdPartyInvitePublicKey = { public_key: string; key_validity_url?: string };

/**
 * `m.room.third_party_invite` (state key = the identity server's token). `public_key` and
 * `key_validity_url` are the legacy single key; `public_keys` lists every key that may sign.
 * Revoked invites have empty content (Element's convention).
 */
export type ThirdPartyInviteContent = {
  display_name: string;
  key_validity_url: string;
  public_key: string;
  public_keys?: ThirdPartyInvitePublicKey[];
};

/** `m.room.redaction` content (v11 carries `redacts` here). */
export type RedactionContent = { redacts?: string; reason?: string };

/** Key of a state map entry: `type` and `state_key` joined by U+0000 (which neither may contain usefully). */
export type StateKeyId = string;

/** The state map key for (`type`, `stateKey`). */
export function stateKeyId(type: string, stateKey: string): StateKeyId {
  return `${type}\u0000${stateKey}`;
}
