/**
 * Power levels as the auth rules read them, with the spec's defaults
 * (https://spec.matrix.org/v1.18/client-server-api/#mroompower_levels,
 * https://spec.matrix.org/v1.18/server-server-api/#definitions).
 *
 * Defaults: `ban`, `kick`, `redact`, `state_default` 50; `invite`, `events_default`,
 * `users_default` 0 — with or without a power-levels event. Without one (room versions ≤ 11)
 * the room creator has 100 and everyone else 0.
 *
 * @example
 * const pl = powerLevelsFromState(state, "10");
 * pl.userLevel("@alice:hs") >= pl.invite; // may alice invite?
 */
import { isJsonObject, stateKeyId, type PDU, type RoomVersion } from "@beckon/protocol";

/** Level defaults for properties missing from (or with no) `m.room.power_levels`. */
export const POWER_LEVEL_DEFAULTS = Object.freeze({
  ban: 50,
  kick: 50,
  redact: 50,
  invite: 0,
  events_default: 0,
  state_default: 50,
  users_default: 0,
});

/** The creator's level when the room has no `m.room.power_levels` event (room versions 1–11). */
export const CREATOR_LEVEL_WITHOUT_POWER_LEVELS = 100;

/** The power levels of a room, resolved against the defaults. */
export interface PowerLevels {
  /** Whether the room has an `m.room.power_levels` event. */
  readonly hasEvent: boolean;
  readonly ban: number;
  readonly kick: number;
  readonly redact: number;
  readonly invite: number;
  readonly eventsDefault: number;
  readonly stateDefault: number;
  readonly usersDefault: number;
  readonly events: Readonly<Record<string, number>>;
  readonly users: Readonly<Record<string, number>>;
  readonly notifications: Readonly<Record<string, number>>;
  /** A user's level: `users[userId]`, else `users_default`; without an event, 100 for the creator and 0 otherwise. */
  userLevel(userId: string): number;
  /** The level needed to send an event of `eventType`: `events[type]`, else `state_default` or `events_default`. */
  eventLevel(eventType: string, isState: boolean): number;
}

/** True for a JSON integer within the canonical-JSON range (v10+: power levels must be these). */
export function isPowerLevelInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v);
}

function integerMap(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isJsonObject(v)) return out;
  for (const [k, x] of Object.entries(v)) if (isPowerLevelInteger(x)) out[k] = x;
  return out;
}

function level(content: Record<string, unknown>, key: keyof typeof POWER_LEVEL_DEFAULTS): number {
  const v = content[key];
  return isPowerLevelInteger(v) ? v : POWER_LEVEL_DEFAULTS[key];
}

/**
 * The creator of a room from its `m.room.create` event: `content.creator` in room version 10,
 * the event's `sender` in 11 (https://spec.matrix.org/v1.18/rooms/v11/#event-format).
 */
export function roomCreator(createEvent: Pick<PDU, "sender" | "content"> | undefined, roomVersion: RoomVersion): string | undefined {
  if (!createEvent) return undefined;
  if (roomVersion === "10") {
    const c = createEvent.content.creator;
    return typeof c === "string" ? c : undefined;
  }
  return createEvent.sender;
}

/**
 * Resolves power levels from the content of the current `m.room.power_levels` event
 * (`undefined` when the room has none) and the room creator. Values that are not integers
 * (impossible in v10+ rooms, whose auth rules reject them) count as absent.
 */
export function resolvePowerLevels(content: Record<string, unknown> | undefined, creator: string | undefined): PowerLevels {
  const c = content ?? {};
  const users = integerMap(c.users);
  const events = integerMap(c.events);
  const pl = {
    hasEvent: content !== undefined,
    ban: level(c, "ban"),
    kick: level(c, "kick"),
    redact: level(c, "redact"),
    invite: level(c, "invite"),
    eventsDefault: level(c, "events_default"),
    stateDefault: level(c, "state_default"),
    usersDefault: level(c, "users_default"),
    events,
    users,
    notifications: integerMap(c.notifications),
    userLevel(userId: string): number {
      if (content === undefined) return userId === creator ? CREATOR_LEVEL_WITHOUT_POWER_LEVELS : 0;
      return Object.prototype.hasOwnProperty.call(users, userId) ? users[userId]! : pl.usersDefault;
    },
    eventLevel(eventType: string, isState: boolean): number {
      if (Object.prototype.hasOwnProperty.call(events, eventType)) return events[eventType]!;
      return isState ? pl.stateDefault : pl.eventsDefault;
    },
  };
  return pl;
}

/** Power levels of a room from its (auth or current) state map, keyed by {@link stateKeyId}. */
export function powerLevelsFromState(state: ReadonlyMap<string, Pick<PDU, "sender" | "content">>, roomVersion: RoomVersion): PowerLevels {
  const plEvent = state.get(stateKeyId("m.room.power_levels", ""));
  const create = state.get(stateKeyId("m.room.create", ""));
  return resolvePowerLevels(plEvent?.content, roomCreator(create, roomVersion));
}
