/**
 * Building, hashing and signing new PDUs, and choosing their auth events
 * (https://spec.matrix.org/v1.18/server-server-api/#signing-events,
 * https://spec.matrix.org/v1.18/server-server-api/#auth-events-selection).
 *
 * Synchronous on `node:crypto` (room creation and invites are hot paths): the content hash
 * covers the full event; the server signature and the event ID cover the redacted event.
 *
 * @example
 * const { eventId, pdu } = buildPdu({ roomVersion: "10", roomId, type: "m.room.name", stateKey: "",
 *   sender, content: { name: "Hi" }, prevEvents, authEvents, depth, originServerTs: now }, serverKey);
 */
import {
  computeContentHashBytes,
  computeEventId,
  decodeBase64,
  encodeBase64,
  eventSigningBytes,
  isJsonObject,
  type PDU,
  type RoomVersion,
} from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { authEventKeys } from "./auth-rules.js";

/** The synchronous crypto a PDU needs (`nodeCryptoProvider` implements it). */
export interface SyncEventCrypto {
  ed25519SignSync(seed: Uint8Array, message: Uint8Array): Uint8Array;
  ed25519VerifySync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  sha256Sync(data: Uint8Array): Uint8Array;
}

/** This server's signing key: `signatures[serverName][keyId]`, `seed` = the 32-byte ed25519 seed. */
export interface ServerSigningKey {
  serverName: string;
  /** e.g. `ed25519:a_AbCd` */
  keyId: string;
  seed: Uint8Array;
}

/** Everything a new event needs; the builder adds `hashes`, `signatures` and computes the ID. */
export interface NewPduInput {
  roomVersion: RoomVersion;
  roomId: string;
  type: string;
  /** Omit for a message (non-state) event. */
  stateKey?: string;
  sender: string;
  content: Record<string, unknown>;
  prevEvents: readonly string[];
  authEvents: readonly string[];
  depth: number;
  originServerTs: number;
  /**
   * For `m.room.redaction`: the redacted event. v10 puts it at the top level; v11 in
   * `content.redacts` (we set both places the version uses).
   */
  redacts?: string;
  /** Not covered by hashes or signatures. */
  unsigned?: Record<string, unknown>;
}

/** Largest depth (spec: 2^53 − 1 for room versions 6+; at the limit, stay at the limit). */
export const MAX_DEPTH = Number.MAX_SAFE_INTEGER;

/** The depth of a new event: the greatest depth of its prev events plus one (capped at {@link MAX_DEPTH}). */
export function nextDepth(prevDepths: readonly number[]): number {
  let max = 0;
  for (const d of prevDepths) if (d > max) max = d;
  return Math.min(max + 1, MAX_DEPTH);
}

/** Signs `pdu` (with `hashes` already set) as `key`, over its redacted form. Returns a copy; keeps other signatures. */
export function signPdu<T extends Omit<PDU, "signatures"> & { signatures?: PDU["signatures"] }>(
  pdu: T,
  roomVersion: RoomVersion,
  key: ServerSigningKey,
  crypto: SyncEventCrypto = nodeCryptoProvider,
): T & { signatures: PDU["signatures"] } {
  const sig = encodeBase64(crypto.ed25519SignSync(key.seed, eventSigningBytes(pdu, roomVersion)));
  const existing = isJsonObject(pdu.signatures) ? pdu.signatures : {};
  return { ...pdu, signatures: { ...existing, [key.serverName]: { ...(existing[key.serverName] ?? {}), [key.keyId]: sig } } };
}

/**
 * Whether `pdu` has a valid signature by `serverName`/`keyId` for `publicKey` (raw or base64),
 * checked over its redacted form as the spec requires. Never throws.
 */
export function verifyPduSignature(
  pdu: PDU,
  roomVersion: RoomVersion,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array | string,
  crypto: SyncEventCrypto = nodeCryptoProvider,
): boolean {
  try {
    const sig = pdu.signatures[serverName]?.[keyId];
    if (typeof sig !== "string") return false;
    const key = typeof publicKey === "string" ? decodeBase64(publicKey) : publicKey;
    return crypto.ed25519VerifySync(key, eventSigningBytes(pdu, roomVersion), decodeBase64(sig));
  } catch {
    return false;
  }
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Unpadded standard base64 (the same as `encodeBase64`, with Node's native encoder). */
function b64(b: Uint8Array): string {
  const s = asBuffer(b).toString("base64");
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 61 /* = */) end--;
  return s.slice(0, end);
}

/**
 * Builds a complete PDU: content hash, signature by `key` over the redacted event, event ID
 * (reference hash). The result is what is stored and what the auth rules check.
 */
export function buildPdu(input: NewPduInput, key: ServerSigningKey, crypto: SyncEventCrypto = nodeCryptoProvider): { eventId: string; pdu: PDU } {
  if (!Number.isSafeInteger(input.depth) || input.depth < 0) throw new RangeError("depth must be a non-negative integer");
  if (!Number.isSafeInteger(input.originServerTs)) throw new RangeError("originServerTs must be an integer");
  let content = input.content;
  const base: Omit<PDU, "hashes" | "signatures"> = {
    room_id: input.roomId,
    sender: input.sender,
    type: input.type,
    content,
    origin_server_ts: input.originServerTs,
    depth: input.depth,
    prev_events: [...input.prevEvents],
    auth_events: [...input.authEvents],
  };
  if (input.stateKey !== undefined) base.state_key = input.stateKey;
  if (input.redacts !== undefined) {
    if (input.roomVersion === "10") base.redacts = input.redacts;
    else base.content = content = { ...content, redacts: input.redacts };
  }
  const hash = (b: Uint8Array): Uint8Array => crypto.sha256Sync(b);
  const hashed = { ...base, hashes: { sha256: b64(computeContentHashBytes(base, hash)) } };
  // The signature and the reference hash cover the same bytes (the redacted event without
  // `signatures`/`unsigned`), so one redaction and one canonical-JSON pass serve both.
  const bytes = eventSigningBytes(hashed, input.roomVersion);
  const sig = b64(crypto.ed25519SignSync(key.seed, bytes));
  const signed: PDU = { ...hashed, signatures: { [key.serverName]: { [key.keyId]: sig } } };
  if (input.unsigned !== undefined) signed.unsigned = input.unsigned;
  return { eventId: "$" + asBuffer(hash(bytes)).toString("base64url"), pdu: signed };
}

/** The event ID of a stored PDU (`node:crypto` SHA-256). */
export function pduEventId(pdu: PDU, roomVersion: RoomVersion, crypto: SyncEventCrypto = nodeCryptoProvider): string {
  return computeEventId(pdu, roomVersion, (b) => crypto.sha256Sync(b));
}

/**
 * The auth events for a new event, picked from the room's current state (keyed by
 * `stateKeyId(type, stateKey)`; values are whatever the caller stores — event IDs, or records).
 * Order: create, power levels, sender's member, target's member, join rules, the third-party
 * invite for `signed.token`, the authorising user's member; missing entries are skipped.
 *
 * @example
 * const authEvents = selectAuthEvents({ type, state_key, sender, content }, currentStateIds); // string[]
 */
export function selectAuthEvents<T>(event: Pick<PDU, "type" | "state_key" | "sender" | "content">, currentState: ReadonlyMap<string, T>): T[] {
  const out: T[] = [];
  for (const k of authEventKeys(event)) {
    const v = currentState.get(k);
    if (v !== undefined) out.push(v);
  }
  return out;
}
