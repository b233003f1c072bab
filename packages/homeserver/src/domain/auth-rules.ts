/**
 * The authorisation rules of room versions 10 and 11, as one pure function
 * (https://spec.matrix.org/v1.18/rooms/v10/#authorisation-rules,
 * https://spec.matrix.org/v1.18/rooms/v11/#authorisation-rules), plus the auth-events
 * selection algorithm (https://spec.matrix.org/v1.18/server-server-api/#auth-events-selection).
 *
 * Rule numbers in comments and in rejection reasons follow the spec text ("4.4.1.7" = rule 4,
 * membership invite, third-party branch, signature check). The function does no I/O: signature
 * checks go through the injected `verify` (and optional `isSignedBy`).
 *
 * @example
 * const r = checkEventAuth(event, authState, "10", nodeCryptoProvider.ed25519VerifySync.bind(nodeCryptoProvider));
 * if (!r.allowed) throw new MatrixError("M_FORBIDDEN", r.reason);
 */
import {
  MatrixError,
  computeEventId,
  decodeBase64,
  idServerName,
  isJsonObject,
  isSupportedRoomVersion,
  isValidUserId,
  signingBytes,
  stateKeyId,
  type HashFunction,
  type PDU,
  type RoomVersion,
  type UserId,
} from "@beckon/protocol";
import { isPowerLevelInteger, powerLevelsFromState, roomCreator, type PowerLevels } from "./power-levels.js";

/** State the rules read, keyed by `stateKeyId(type, stateKey)`. */
export type AuthState = ReadonlyMap<string, PDU>;

/** Raw ed25519 verification (`NodeCryptoProvider.ed25519VerifySync` fits). Must not throw. */
export type Ed25519Verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

export type AuthResult = { allowed: true } | { allowed: false; reason: string };

export interface AuthOptions {
  /**
   * Whether `event` carries a valid signature from `serverName`'s signing key. Used for
   * `join_authorised_via_users_server` (rule 4.2) and, when given, for the sender-server
   * signature requirement. Without it, rule 4.2 rejects (we cannot check the signature).
   */
  isSignedBy?: (event: PDU, serverName: string) => boolean;
  /**
   * NOTSPEC (issue 4: knocking is not supported yet): `membership: knock` events are rejected
   * (default true). Set false for the spec's rule 4.7.
   */
  rejectKnocks?: boolean;
  /** SHA-256 for the event ID of the create event (rule 4.3.1). Default: protocol's pure `sha256`. */
  hash?: HashFunction;
}

const ALLOW: AuthResult = Object.freeze({ allowed: true });
function deny(reason: string): AuthResult {
  return { allowed: false, reason };
}

const CREATE = "m.room.create";
const MEMBER = "m.room.member";
const POWER_LEVELS = "m.room.power_levels";
const JOIN_RULES = "m.room.join_rules";
const THIRD_PARTY_INVITE = "m.room.third_party_invite";

const PL_LEVEL_KEYS = ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"] as const;

/** The server name part of a user ID (or of any `sigil local:server` string); "" when it has no `:`. */
function domainOf(id: string): string {
  const i = id.indexOf(":");
  return i < 0 ? "" : id.slice(i + 1);
}

function membershipOf(state: AuthState, userId: string): string {
  const ev = state.get(stateKeyId(MEMBER, userId));
  const m = ev?.content.membership;
  // A user with no member event has membership `leave`.
  return typeof m === "string" ? m : "leave";
}

function joinRuleOf(state: AuthState): string {
  const ev = state.get(stateKeyId(JOIN_RULES, ""));
  // NOTSPEC (interpretation): the spec names no join rule for a room without m.room.join_rules
  // (its rules then end in "otherwise, reject"); Synapse treats it as `invite`, and so do we, so
  // that an invited user can join such a room as on Synapse.
  if (!ev) return "invite";
  const r = ev.content.join_rule;
  return typeof r === "string" ? r : "";
}

/**
 * The (type, state_key) pairs, as `stateKeyId`s, that the auth-events selection algorithm picks
 * for `event`, in a fixed order: create, power levels, sender's member, then for member events
 * the target's member, join rules (join/invite/knock), the third-party invite named by
 * `signed.token` (invite with `third_party_invite`), and the authorising user's member
 * (join with `join_authorised_via_users_server`). Empty for `m.room.create`. No duplicates.
 */
export function authEventKeys(event: Pick<PDU, "type" | "state_key" | "sender" | "content">): string[] {
  if (event.type === CREATE) return [];
  const keys = [stateKeyId(CREATE, ""), stateKeyId(POWER_LEVELS, ""), stateKeyId(MEMBER, event.sender)];
  if (event.type === MEMBER && typeof event.state_key === "string") {
    keys.push(stateKeyId(MEMBER, event.state_key));
    const membership = event.content.membership;
    if (membership === "join" || membership === "invite" || membership === "knock") keys.push(stateKeyId(JOIN_RULES, ""));
    const tpi = event.content.third_party_invite;
    if (membership === "invite" && isJsonObject(tpi) && isJsonObject(tpi.signed) && typeof tpi.signed.token === "string") {
      keys.push(stateKeyId(THIRD_PARTY_INVITE, tpi.signed.token));
    }
    const via = event.content.join_authorised_via_users_server;
    if (membership === "join" && typeof via === "string") keys.push(stateKeyId(MEMBER, via));
  }
  return [...new Set(keys)];
}

/**
 * Rule 2 (considering the event's `auth_events`) over the events themselves: no duplicate
 * (type, state_key), nothing the selection algorithm would not pick, a create event present,
 * every entry in the event's room. Rule 2.3 (entries that were themselves rejected) is the
 * caller's: pass only accepted events. On success returns the auth events as an {@link AuthState}.
 */
export function checkAuthEventsList(event: PDU, authEvents: readonly PDU[]): { allowed: true; state: AuthState } | { allowed: false; reason: string } {
  const allowedKeys = new Set(authEventKeys(event));
  const state = new Map<string, PDU>();
  for (const ae of authEvents) {
    if (typeof ae.state_key !== "string") return { allowed: false, reason: "2.2: an auth event is not a state event" };
    const key = stateKeyId(ae.type, ae.state_key);
    if (state.has(key)) return { allowed: false, reason: `2.1: duplicate auth event for (${ae.type}, ${ae.state_key})` };
    if (!allowedKeys.has(key)) return { allowed: false, reason: `2.2: auth event (${ae.type}, ${ae.state_key}) is not one the selection algorithm picks` };
    if (ae.room_id !== event.room_id) return { allowed: false, reason: "2.5: an auth event belongs to another room" };
    state.set(key, ae);
  }
  if (!state.has(stateKeyId(CREATE, ""))) return { allowed: false, reason: "2.4: no m.room.create among the auth events" };
  return { allowed: true, state };
}

/**
 * Decides whether `event` is allowed in a room of `roomVersion` given `authState`.
 *
 * `authEvents` is either the event's auth events as a list (then rule 2 is checked in full:
 * see {@link checkAuthEventsList}) or a state map keyed by `stateKeyId` — the auth events, the
 * state before the event, or the room's current state (the spec applies the same rules to
 * each). `verify` checks the identity server's signatures on third-party invites.
 */
export function checkEventAuth(
  event: PDU,
  authEvents: AuthState | readonly PDU[],
  roomVersion: RoomVersion,
  verify: Ed25519Verify,
  options: AuthOptions = {},
): AuthResult {
  if (
    typeof event.type !== "string" ||
    typeof event.sender !== "string" ||
    typeof event.room_id !== "string" ||
    !isJsonObject(event.content) ||
    !Array.isArray(event.prev_events) ||
    (event.state_key !== undefined && typeof event.state_key !== "string")
  ) {
    return deny("malformed event");
  }

  // Rule 1: m.room.create.
  if (event.type === CREATE) {
    if (event.prev_events.length > 0) return deny("1.1: m.room.create has prev_events");
    if (domainOf(event.room_id) === "" || domainOf(event.room_id) !== domainOf(event.sender)) {
      return deny("1.2: room_id domain does not match the sender's domain");
    }
    const rv = event.content.room_version;
    if (rv !== undefined && !isSupportedRoomVersion(rv)) return deny("1.3: content.room_version is not a recognised version");
    if (roomVersion === "10" && !Object.prototype.hasOwnProperty.call(event.content, "creator")) {
      return deny("1.4: content has no creator (room version 10)");
    }
    return signedBySender(event, options) ?? ALLOW;
  }

  // Rule 2: the auth events.
  let state: AuthState;
  if (Array.isArray(authEvents)) {
    const r = checkAuthEventsList(event, authEvents as readonly PDU[]);
    if (!r.allowed) return r;
    state = r.state;
  } else {
    state = authEvents as AuthState;
  }
  const create = state.get(stateKeyId(CREATE, ""));
  if (!create) return deny("2.4: no m.room.create event");

  const sigCheck = signedBySender(event, options);
  if (sigCheck) return sigCheck;

  // Rule 3: m.federate.
  if (create.content["m.federate"] === false && domainOf(event.sender) !== domainOf(create.sender)) {
    return deny("3: the room is not federated and the sender is on another server");
  }

  const pl = powerLevelsFromState(state, roomVersion);
  const senderLevel = pl.userLevel(event.sender);

  // Rule 4: m.room.member.
  if (event.type === MEMBER) return checkMember(event, state, create, pl, roomVersion, verify, options);

  // Rule 5.
  if (membershipOf(state, event.sender) !== "join") return deny("5: the sender is not joined to the room");

  // Rule 6: m.room.third_party_invite.
  if (event.type === THIRD_PARTY_INVITE) {
    return senderLevel >= pl.invite ? ALLOW : deny("6.1: the sender's power level is below the invite level");
  }

  // Rule 7.
  const isState = typeof event.state_key === "string";
  if (pl.eventLevel(event.type, isState) > senderLevel) return deny("7: the sender's power level is below the level required for this event type");

  // Rule 8.
  if (isState && event.state_key!.startsWith("@") && event.state_key !== event.sender) {
    return deny("8: state_key starts with @ and is not the sender");
  }

  // Rule 9: m.room.power_levels.
  if (event.type === POWER_LEVELS) return checkPowerLevels(event, state, pl, senderLevel);

  // Rule 10.
  return ALLOW;
}

/** The top-level requirement: events are signed by the sender's server (except 3PID invites). */
function signedBySender(event: PDU, options: AuthOptions): AuthResult | undefined {
  if (!options.isSignedBy) return undefined;
  const tpi = event.type === MEMBER && event.content.membership === "invite" && event.content.third_party_invite !== undefined;
  // A third-party invite may be sent (and signed) by a server other than the sender's
  // (https://spec.matrix.org/v1.18/server-server-api/#validating-hashes-and-signatures-on-received-events).
  if (tpi) return undefined;
  return options.isSignedBy(event, domainOf(event.sender)) ? undefined : deny("the event is not signed by the sender's server");
}

function checkMember(
  event: PDU,
  state: AuthState,
  create: PDU,
  pl: PowerLevels,
  roomVersion: RoomVersion,
  verify: Ed25519Verify,
  options: AuthOptions,
): AuthResult {
  const content = event.content;
  // 4.1
  if (typeof event.state_key !== "string") return deny("4.1: m.room.member has no state_key");
  if (!Object.prototype.hasOwnProperty.call(content, "membership")) return deny("4.1: content has no membership");
  const target = event.state_key;
  const membership = content.membership;
  const senderMembership = membershipOf(state, event.sender);
  const targetMembership = membershipOf(state, target);
  const senderLevel = pl.userLevel(event.sender);
  const targetLevel = pl.userLevel(target);

  // 4.2
  if (Object.prototype.hasOwnProperty.call(content, "join_authorised_via_users_server")) {
    const via = content.join_authorised_via_users_server;
    if (typeof via !== "string" || !isValidUserId(via)) return deny("4.2.1: join_authorised_via_users_server is not a user ID");
    if (!options.isSignedBy || !options.isSignedBy(event, idServerName(via as UserId))) {
      return deny("4.2.1: the event is not signed by the authorising user's server");
    }
  }

  switch (membership) {
    case "join": {
      // 4.3.1: the creator's own join right after the create event.
      if (event.prev_events.length === 1) {
        const creator = roomCreator(create, roomVersion);
        if (creator !== undefined && target === creator && event.prev_events[0] === computeEventId(create, roomVersion, options.hash)) {
          return ALLOW;
        }
      }
      if (event.sender !== target) return deny("4.3.2: sender does not match state_key");
      if (senderMembership === "ban") return deny("4.3.3: the sender is banned");
      const rule = joinRuleOf(state);
      if (rule === "invite" || rule === "knock") {
        return senderMembership === "invite" || senderMembership === "join" ? ALLOW : deny(`4.3.4: join rule is ${rule} and the user is not invited`);
      }
      if (rule === "restricted" || rule === "knock_restricted") {
        if (senderMembership === "join" || senderMembership === "invite") return ALLOW;
        const via = content.join_authorised_via_users_server;
        if (typeof via !== "string" || membershipOf(state, via) !== "join" || pl.userLevel(via) < pl.invite) {
          return deny("4.3.5.2: join_authorised_via_users_server is not a joined user who may invite");
        }
        return ALLOW;
      }
      if (rule === "public") return ALLOW;
      return deny(`4.3.7: join rule ${rule || "(invalid)"} does not allow joining`);
    }

    case "invite": {
      // 4.4.1: the third-party-invite branch decides on its own.
      if (Object.prototype.hasOwnProperty.call(content, "third_party_invite")) {
        return checkThirdPartyInvite(event, target, targetMembership, state, verify);
      }
      if (senderMembership !== "join") return deny("4.4.2: the sender is not joined");
      if (targetMembership === "join" || targetMembership === "ban") return deny(`4.4.3: the target is ${targetMembership === "join" ? "joined" : "banned"}`);
      return senderLevel >= pl.invite ? ALLOW : deny("4.4.5: the sender's power level is below the invite level");
    }

    case "leave": {
      if (event.sender === target) {
        return senderMembership === "invite" || senderMembership === "join" || senderMembership === "knock"
          ? ALLOW
          : deny("4.5.1: cannot leave a room one is not invited to, joined or knocking on");
      }
      if (senderMembership !== "join") return deny("4.5.2: the sender is not joined");
      if (targetMembership === "ban" && senderLevel < pl.ban) return deny("4.5.3: unbanning needs the ban level");
      if (senderLevel >= pl.kick && targetLevel < senderLevel) return ALLOW;
      return deny("4.5.5: the sender's power level is below the kick level or not above the target's");
    }

    case "ban": {
      if (senderMembership !== "join") return deny("4.6.1: the sender is not joined");
      if (senderLevel >= pl.ban && targetLevel < senderLevel) return ALLOW;
      return deny("4.6.3: the sender's power level is below the ban level or not above the target's");
    }

    case "knock": {
      // NOTSPEC (issue 4): knocking is not supported yet, so knocks are refused by default.
      if (options.rejectKnocks ?? true) return deny("NOTSPEC: knocking is not supported");
      const rule = joinRuleOf(state);
      if (rule !== "knock" && rule !== "knock_restricted") return deny("4.7.1: the join rule does not allow knocking");
      if (event.sender !== target) return deny("4.7.2: sender does not match state_key");
      if (senderMembership !== "ban" && senderMembership !== "invite" && senderMembership !== "join") return ALLOW;
      return deny("4.7.4: the sender is banned, invited or joined");
    }

    default:
      return deny("4.8: unknown membership");
  }
}

/** Rule 4.4.1: `m.room.member` invite with `content.third_party_invite`. */
function checkThirdPartyInvite(event: PDU, target: string, targetMembership: string, state: AuthState, verify: Ed25519Verify): AuthResult {
  if (targetMembership === "ban") return deny("4.4.1.1: the target is banned");
  const tpi = event.content.third_party_invite;
  if (!isJsonObject(tpi) || !Object.prototype.hasOwnProperty.call(tpi, "signed")) return deny("4.4.1.2: third_party_invite has no signed");
  const signed = tpi.signed;
  if (!isJsonObject(signed) || typeof signed.mxid !== "string" || typeof signed.token !== "string") {
    return deny("4.4.1.3: signed lacks mxid or token");
  }
  if (signed.mxid !== target) return deny("4.4.1.4: signed.mxid does not match state_key");
  const invite = state.get(stateKeyId(THIRD_PARTY_INVITE, signed.token));
  if (!invite) return deny("4.4.1.5: no m.room.third_party_invite with that token");
  if (invite.sender !== event.sender) return deny("4.4.1.6: sender does not match the third-party invite's sender");

  // 4.4.1.7: any signature in `signed` matching any public key of the invite (key ids ignored).
  const keys: string[] = [];
  if (typeof invite.content.public_key === "string") keys.push(invite.content.public_key);
  if (Array.isArray(invite.content.public_keys)) {
    for (const k of invite.content.public_keys) if (isJsonObject(k) && typeof k.public_key === "string") keys.push(k.public_key);
  }
  const signatures: Uint8Array[] = [];
  if (isJsonObject(signed.signatures)) {
    for (const byServer of Object.values(signed.signatures)) {
      if (!isJsonObject(byServer)) continue;
      for (const [keyId, sig] of Object.entries(byServer)) {
        if (!keyId.startsWith("ed25519:") || typeof sig !== "string") continue;
        const bytes = tryDecode(sig);
        if (bytes) signatures.push(bytes);
      }
    }
  }
  if (keys.length > 0 && signatures.length > 0) {
    let message: Uint8Array;
    try {
      message = signingBytes(signed);
    } catch {
      return deny("4.4.1.8: signed is not valid canonical JSON");
    }
    for (const key of keys) {
      const keyBytes = tryDecode(key);
      if (!keyBytes) continue;
      for (const sig of signatures) if (safeVerify(verify, keyBytes, message, sig)) return ALLOW;
    }
  }
  return deny("4.4.1.8: no signature in signed matches a public key of the third-party invite");
}

function tryDecode(b64: string): Uint8Array | undefined {
  try {
    return decodeBase64(b64);
  } catch {
    return undefined;
  }
}

function safeVerify(verify: Ed25519Verify, key: Uint8Array, message: Uint8Array, sig: Uint8Array): boolean {
  try {
    return verify(key, message, sig);
  } catch {
    return false;
  }
}

/** Rule 9: `m.room.power_levels`. */
function checkPowerLevels(event: PDU, state: AuthState, current: PowerLevels, senderLevel: number): AuthResult {
  const c = event.content;
  // 9.1
  for (const k of PL_LEVEL_KEYS) {
    if (Object.prototype.hasOwnProperty.call(c, k) && !isPowerLevelInteger(c[k])) return deny(`9.1: ${k} is not an integer`);
  }
  // 9.2
  for (const k of ["events", "notifications"] as const) {
    if (!Object.prototype.hasOwnProperty.call(c, k)) continue;
    const v = c[k];
    if (!isJsonObject(v) || !Object.values(v).every(isPowerLevelInteger)) return deny(`9.2: ${k} is not an object of integers`);
  }
  // 9.3. NOTSPEC (interpretation): an absent `users` is allowed, as Synapse and ruma read the rule.
  if (Object.prototype.hasOwnProperty.call(c, "users")) {
    const u = c.users;
    if (!isJsonObject(u)) return deny("9.3: users is not an object");
    for (const [userId, lvl] of Object.entries(u)) {
      if (!isValidUserId(userId)) return deny("9.3: users has a key that is not a user ID");
      if (!isPowerLevelInteger(lvl)) return deny("9.3: users has a value that is not an integer");
    }
  }
  // 9.4
  const previous = state.get(stateKeyId(POWER_LEVELS, ""));
  if (!previous) return ALLOW;
  const old = previous.content;

  // 9.5: the top-level levels. Only values actually present are compared (defaults are not).
  for (const k of PL_LEVEL_KEYS) {
    const before = old[k];
    const after = c[k];
    if (sameLevel(before, after)) continue;
    if (isPowerLevelInteger(before) && before > senderLevel) return deny(`9.5.1: the current ${k} is above the sender's level`);
    if (isPowerLevelInteger(after) && after > senderLevel) return deny(`9.5.2: the new ${k} is above the sender's level`);
  }
  // 9.6 / 9.7: events and notifications.
  for (const k of ["events", "notifications"] as const) {
    const before = isJsonObject(old[k]) ? (old[k] as Record<string, unknown>) : {};
    const after = isJsonObject(c[k]) ? (c[k] as Record<string, unknown>) : {};
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const b = has(before, key) ? before[key] : undefined;
      const a = has(after, key) ? after[key] : undefined;
      if (sameLevel(b, a)) continue;
      if (b !== undefined && isPowerLevelInteger(b) && b > senderLevel) return deny(`9.6.1: the current ${k}[${key}] is above the sender's level`);
      if (a !== undefined && isPowerLevelInteger(a) && a > senderLevel) return deny(`9.7.1: the new ${k}[${key}] is above the sender's level`);
    }
  }
  // 9.8 / 9.9: users.
  const before = isJsonObject(old.users) ? (old.users as Record<string, unknown>) : {};
  const after = isJsonObject(c.users) ? (c.users as Record<string, unknown>) : {};
  for (const userId of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = has(before, userId) ? before[userId] : undefined;
    const a = has(after, userId) ? after[userId] : undefined;
    if (sameLevel(b, a)) continue;
    if (userId !== event.sender && b !== undefined && isPowerLevelInteger(b) && b >= senderLevel) {
      return deny("9.8.1: cannot change or remove the level of a user at or above the sender's level");
    }
    if (a !== undefined && isPowerLevelInteger(a) && a > senderLevel) return deny("9.9.1: cannot give a user a level above the sender's");
  }
  return ALLOW;
}

function has(o: Record<string, unknown>, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function sameLevel(a: unknown, b: unknown): boolean {
  return a === b;
}

/**
 * {@link checkEventAuth}, throwing `MatrixError` 403 `M_FORBIDDEN` (with the rule that refused)
 * when the event is not allowed — what the client API answers for a refused event.
 */
export function assertEventAllowed(
  event: PDU,
  authEvents: AuthState | readonly PDU[],
  roomVersion: RoomVersion,
  verify: Ed25519Verify,
  options: AuthOptions = {},
): void {
  const r = checkEventAuth(event, authEvents, roomVersion, verify, options);
  if (!r.allowed) throw new MatrixError("M_FORBIDDEN", `event not allowed by the auth rules (${r.reason})`, 403);
}
