/**
 * The redaction algorithm for room versions 10 and 11
 * (https://spec.matrix.org/v1.18/rooms/v10/#redactions — the v9 rules, unchanged in v10;
 * https://spec.matrix.org/v1.18/rooms/v11/#redactions).
 *
 * Redaction decides what event hashes and signatures cover, so it must match every other
 * server byte for byte: keep exactly the listed keys, nothing more.
 *
 * @example
 * redactEvent({ type: "m.room.create", content: { creator: "@a:x", room_version: "10" }, ... }, "10")
 * // → content: { creator: "@a:x" }
 */
import { isJsonObject } from "../canonical-json.js";
import type { RoomVersion } from "./types.js";

const TOP_LEVEL_V10: ReadonlySet<string> = new Set([
  "event_id",
  "type",
  "room_id",
  "sender",
  "state_key",
  "content",
  "hashes",
  "signatures",
  "depth",
  "prev_events",
  "prev_state",
  "auth_events",
  "origin",
  "origin_server_ts",
  "membership",
]);

// v11 no longer protects the top-level `origin`, `membership` and `prev_state`.
const TOP_LEVEL_V11: ReadonlySet<string> = new Set([
  "event_id",
  "type",
  "room_id",
  "sender",
  "state_key",
  "content",
  "hashes",
  "signatures",
  "depth",
  "prev_events",
  "auth_events",
  "origin_server_ts",
]);

const CONTENT_V10: Readonly<Record<string, readonly string[]>> = {
  "m.room.member": ["membership", "join_authorised_via_users_server"],
  "m.room.create": ["creator"],
  "m.room.join_rules": ["join_rule", "allow"],
  "m.room.power_levels": ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"],
  "m.room.history_visibility": ["history_visibility"],
};

const CONTENT_V11: Readonly<Record<string, readonly string[]>> = {
  "m.room.member": ["membership", "join_authorised_via_users_server"], // + third_party_invite.signed (below)
  // m.room.create keeps all of its content (below).
  "m.room.join_rules": ["join_rule", "allow"],
  "m.room.power_levels": ["ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default"],
  "m.room.history_visibility": ["history_visibility"],
  "m.room.redaction": ["redacts"],
};

function clone<T>(v: T): T {
  // Event JSON only: a structural deep copy so the redacted event shares nothing with the input.
  if (Array.isArray(v)) return v.map(clone) as T;
  if (isJsonObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === "__proto__") Object.defineProperty(out, k, { value: clone(x), enumerable: true, writable: true, configurable: true });
      else out[k] = clone(x);
    }
    return out as T;
  }
  return v;
}

function pick(content: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    if (Object.prototype.hasOwnProperty.call(content, k)) out[k] = clone(content[k]);
  }
  return out;
}

function redactContent(type: unknown, content: Record<string, unknown>, roomVersion: RoomVersion): Record<string, unknown> {
  if (typeof type !== "string") return {};
  if (roomVersion === "10") {
    // Own properties only: an event type such as "constructor" must not find Object.prototype's.
    const keys = Object.hasOwn(CONTENT_V10, type) ? CONTENT_V10[type] : undefined;
    return keys ? pick(content, keys) : {};
  }
  if (type === "m.room.create") return clone(content);
  const keys = Object.hasOwn(CONTENT_V11, type) ? CONTENT_V11[type] : undefined;
  if (!keys) return {};
  const out = pick(content, keys);
  if (type === "m.room.member") {
    // v11 keeps `third_party_invite`, reduced to its `signed` key ({} when it has none),
    // so the event signature covers the identity server's signature.
    const tpi = content.third_party_invite;
    if (isJsonObject(tpi)) {
      out.third_party_invite = Object.prototype.hasOwnProperty.call(tpi, "signed") ? { signed: clone(tpi.signed) } : {};
    }
  }
  return out;
}

/**
 * Returns the redacted copy of `event` (a PDU, or any event-shaped object) for `roomVersion`:
 * only the protected top-level keys, and `content` reduced to the keys its type keeps.
 * `unsigned` is dropped (it is not in the list). The input is not modified and
 * the result shares no objects with it. A missing or non-object `content` becomes `{}`.
 */
export function redactEvent<T extends object>(event: T, roomVersion: RoomVersion): Record<string, unknown> {
  const src = event as Record<string, unknown>;
  const keep = roomVersion === "10" ? TOP_LEVEL_V10 : TOP_LEVEL_V11;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (k === "content" || !keep.has(k)) continue;
    out[k] = clone(src[k]);
  }
  out.content = isJsonObject(src.content) ? redactContent(src.type, src.content, roomVersion) : {};
  return out;
}
