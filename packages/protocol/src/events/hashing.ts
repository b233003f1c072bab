/**
 * Content hashes, reference hashes and event IDs
 * (https://spec.matrix.org/v1.18/server-server-api/#calculating-the-content-hash-for-an-event,
 * https://spec.matrix.org/v1.18/server-server-api/#calculating-the-reference-hash-for-an-event,
 * https://spec.matrix.org/v1.18/rooms/v10/#event-ids).
 *
 * Everything here is synchronous and browser-safe. The hash function defaults to the protocol's
 * pure-JS `sha256`; servers pass `nodeCryptoProvider.sha256Sync` for speed.
 *
 * @example
 * const withHash = { ...event, hashes: { sha256: computeContentHash(event) } };
 * const eventId = computeEventId(signedEvent, "10"); // "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
 */
import { decodeBase64, encodeBase64, encodeBase64Url } from "../base64.js";
import { encodeCanonicalJson, isJsonObject } from "../canonical-json.js";
import { sha256 } from "../sha256.js";
import { utf8Encode } from "../utf8.js";
import { redactEvent } from "./redaction.js";
import type { RoomVersion } from "./types.js";

/** A synchronous SHA-256. */
export type HashFunction = (data: Uint8Array) => Uint8Array;

/** The SHA-256 content hash of `event` (all of it except `unsigned`, `signatures`, `hashes`), as raw bytes. */
export function computeContentHashBytes(event: object, hash: HashFunction = sha256): Uint8Array {
  const { unsigned: _u, signatures: _s, hashes: _h, ...rest } = event as Record<string, unknown>;
  return hash(utf8Encode(encodeCanonicalJson(rest)));
}

/** The content hash of `event` as unpadded standard base64 — the value of `hashes.sha256`. */
export function computeContentHash(event: object, hash: HashFunction = sha256): string {
  return encodeBase64(computeContentHashBytes(event, hash));
}

/**
 * Whether `event.hashes.sha256` matches the event's content. Compares decoded bytes, so either
 * base64 alphabet, padded or not, is accepted. Never throws: malformed input gives `false`.
 */
export function verifyContentHash(event: object, hash: HashFunction = sha256): boolean {
  const hashes = (event as Record<string, unknown>).hashes;
  if (!isJsonObject(hashes) || typeof hashes.sha256 !== "string") return false;
  let claimed: Uint8Array;
  let actual: Uint8Array;
  try {
    claimed = decodeBase64(hashes.sha256);
    actual = computeContentHashBytes(event, hash);
  } catch {
    return false;
  }
  if (claimed.length !== actual.length) return false;
  let diff = 0;
  for (let i = 0; i < actual.length; i++) diff |= claimed[i]! ^ actual[i]!;
  return diff === 0;
}

/**
 * The object an event's server signature covers (and its reference hash is taken over):
 * the redacted event without `signatures` and `unsigned`. Also without a top-level `event_id`:
 * in room versions 4+ the ID is derived from this object, so it cannot be part of it
 * (our PDUs never carry one; a client-format copy may).
 */
export function eventSigningObject(event: object, roomVersion: RoomVersion): Record<string, unknown> {
  const { signatures: _s, unsigned: _u, event_id: _e, ...rest } = redactEvent(event, roomVersion);
  return rest;
}

/** The canonical JSON bytes of {@link eventSigningObject}: what the server's ed25519 key signs. */
export function eventSigningBytes(event: object, roomVersion: RoomVersion): Uint8Array {
  return utf8Encode(encodeCanonicalJson(eventSigningObject(event, roomVersion)));
}

/** The reference hash of `event` (SHA-256 of its {@link eventSigningBytes}). */
export function computeReferenceHash(event: object, roomVersion: RoomVersion, hash: HashFunction = sha256): Uint8Array {
  return hash(eventSigningBytes(event, roomVersion));
}

/** The event ID of `event` in room versions 4+: `$` + unpadded URL-safe base64 of its reference hash. */
export function computeEventId(event: object, roomVersion: RoomVersion, hash: HashFunction = sha256): string {
  return "$" + encodeBase64Url(computeReferenceHash(event, roomVersion, hash));
}
