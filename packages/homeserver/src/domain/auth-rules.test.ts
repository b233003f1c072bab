/**
 * The auth-rule table: allowed/denied cases derived from the text of the spec's authorisation
 * rules for room versions 10 and 11 (https://spec.matrix.org/v1.18/rooms/v10/#authorisation-rules,
 * https://spec.matrix.org/v1.18/rooms/v11/#authorisation-rules) and the power-level defaults of
 * https://spec.matrix.org/v1.18/client-server-api/#mroompower_levels. Each row cites the rule it
 * exercises ("4.4.1.6" = rule 4, membership invite, third-party branch, item 6). Rows run in both
 * room versions unless they name one. The expected outcome of each row comes from the spec text.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { computeEventId, decodeBase64, encodeBase64, encodeBase64Url, isMatrixError, signingBytes, stateKeyId, type PDU, type RoomVersion } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { assertEventAllowed, authEventKeys, checkAuthEventsList, checkEventAuth, type AuthOptions } from "./auth-rules.js";
import { verifyPduSignature } from "./pdu.js";
import chain from "./fixtures/v10-room-chain.json" with { type: "json" };

const ROOM = "!room:hs";
const C = "@creator:hs";
const M = "@mod:hs"; // PL 50
const M2 = "@mod2:hs"; // PL 50
const U = "@user:hs"; // PL 0 (users_default)
const U2 = "@user2:hs"; // PL 10
const I = "@invited:hs";
const B = "@banned:hs";
const L = "@left:hs";
const K = "@knocker:hs";
const O = "@outsider:hs"; // no membership at all
const X = "@remote:other"; // joined, from another server

// An identity server key pair (seed fixed for reproducibility) and an unrelated key.
const IS_SEED = new Uint8Array(32).map((_, i) => i + 1);
const IS_KEY = nodeCryptoProvider.ed25519PublicKeySync(IS_SEED);
const OTHER_SEED = new Uint8Array(32).fill(9);
const OTHER_KEY = nodeCryptoProvider.ed25519PublicKeySync(OTHER_SEED);
const verify = (k: Uint8Array, m: Uint8Array, s: Uint8Array): boolean => nodeCryptoProvider.ed25519VerifySync(k, m, s);

function sign(obj: Record<string, unknown>, seed: Uint8Array, server = "is.example", keyId = "ed25519:0"): Record<string, unknown> {
  const sig = encodeBase64(nodeCryptoProvider.ed25519SignSync(seed, signingBytes(obj)));
  const existing = (obj.signatures ?? {}) as Record<string, Record<string, string>>;
  return { ...obj, signatures: { ...existing, [server]: { ...(existing[server] ?? {}), [keyId]: sig } } };
}

function signedBlock(mxid: string, token = "tok", seed = IS_SEED, keyId = "ed25519:0"): Record<string, unknown> {
  return sign({ mxid, token }, seed, "is.example", keyId);
}

function ev(sender: string, type: string, content: Record<string, unknown>, stateKey?: string, extra: Partial<PDU> = {}): PDU {
  const e: PDU = {
    room_id: ROOM, sender, type, content, origin_server_ts: 1700000000000, depth: 10,
    prev_events: ["$prev"], auth_events: [], hashes: { sha256: "x" }, signatures: {}, ...extra,
  };
  if (stateKey !== undefined) e.state_key = stateKey;
  return e;
}
const member = (sender: string, target: string, membership: unknown, extra: Record<string, unknown> = {}, pdu: Partial<PDU> = {}): PDU =>
  ev(sender, "m.room.member", { membership, ...extra }, target, pdu);
const tpiMember = (sender: string, target: string, signed: unknown, extra: Record<string, unknown> = {}): PDU =>
  member(sender, target, "invite", { third_party_invite: { display_name: "b...@e...", signed }, ...extra });

function createEvent(rv: RoomVersion, content?: Record<string, unknown>, sender = C): PDU {
  return ev(sender, "m.room.create", content ?? (rv === "10" ? { creator: sender, room_version: rv } : { room_version: rv }), "", {
    prev_events: [], depth: 1,
  });
}

const BASE_PL = {
  users: { [C]: 100, [M]: 50, [M2]: 50, [U2]: 10 },
  users_default: 0, ban: 50, kick: 50, redact: 50, invite: 0, state_default: 50, events_default: 0,
  events: { "m.room.power_levels": 50 },
};
const pl = (over: Record<string, unknown> = {}, sender = C): PDU => ev(sender, "m.room.power_levels", { ...BASE_PL, ...over }, "");
const joinRules = (rule: unknown): PDU => ev(C, "m.room.join_rules", { join_rule: rule }, "");
const tpiEvent = (content: Record<string, unknown>, sender = C, token = "tok"): PDU => ev(sender, "m.room.third_party_invite", content, token);
const TPI_CONTENT = {
  display_name: "b...@e...",
  key_validity_url: "https://is.example/_matrix/identity/v2/pubkey/isvalid",
  public_key: encodeBase64(IS_KEY),
  public_keys: [{ public_key: encodeBase64(IS_KEY), key_validity_url: "https://is.example/_matrix/identity/v2/pubkey/isvalid" }],
};

function baseState(rv: RoomVersion): Map<string, PDU> {
  const events = [
    createEvent(rv),
    member(C, C, "join"), member(M, M, "join"), member(M2, M2, "join"), member(U, U, "join"), member(U2, U2, "join"), member(X, X, "join"),
    member(C, I, "invite"), member(C, B, "ban"), member(L, L, "leave"), member(K, K, "knock"),
    pl(), joinRules("invite"), tpiEvent(TPI_CONTENT),
  ];
  return new Map(events.map((e) => [stateKeyId(e.type, e.state_key!), e]));
}

interface Row {
  rule: string;
  name: string;
  allowed: boolean;
  only?: RoomVersion;
  /** State events replacing (by type/state_key) those of the base room. */
  state?: PDU[];
  /** State keys (`type|stateKey`) removed from the base room. */
  drop?: string[];
  /** Use only these state events (plus nothing else). */
  exactState?: PDU[];
  event: PDU;
  options?: AuthOptions;
  /** For denials: the rule the rejection must come from, when not the leading number of `rule`. */
  because?: string;
}

const signedByAll: AuthOptions = { isSignedBy: () => true };
const knocksPerSpec: AuthOptions = { rejectKnocks: false };

function rows(rv: RoomVersion): Row[] {
  const create = createEvent(rv);
  const createId = computeEventId(create, rv);
  const v10CreateByOther = createEvent(rv, rv === "10" ? { creator: O, room_version: rv } : { creator: O, room_version: rv });
  return [
    // ── Rule 1: m.room.create ──
    { rule: "1.5", name: "create: no prev_events, room and sender on one server", allowed: true, event: create },
    { rule: "1.1", name: "create with prev_events", allowed: false, event: { ...create, prev_events: ["$x"] } },
    { rule: "1.2", name: "create whose room_id domain differs from the sender's", allowed: false, event: { ...create, room_id: "!room:elsewhere" } },
    { rule: "1.3", name: "create with an unrecognised room_version", allowed: false, event: createEvent(rv, { creator: C, room_version: "999" }) },
    { rule: "1.3", name: "create without room_version (only a present value is checked)", allowed: true, event: createEvent(rv, { creator: C }) },
    { rule: "1.4", name: "v10 create without creator", allowed: false, only: "10", event: createEvent(rv, { room_version: rv }) },
    { rule: "1.4 (v11: removed)", name: "v11 create without creator", allowed: true, only: "11", event: createEvent(rv, { room_version: rv }) },
    { rule: "1.4 (v11: removed)", name: "v11 create that still has creator", allowed: true, only: "11", event: createEvent(rv, { creator: C, room_version: rv }) },

    // ── Rule 2: auth events (map form: the create must be there) ──
    { rule: "2.4", name: "no m.room.create in the auth state", allowed: false, drop: [stateKeyId("m.room.create", "")], event: ev(U, "m.room.message", { body: "x" }) },

    // ── Rule 3: m.federate ──
    { rule: "3", name: "m.federate false: sender on another server", allowed: false, state: [createEvent(rv, { ...create.content, "m.federate": false })], event: ev(X, "m.room.message", { body: "x" }) },
    { rule: "3", name: "m.federate false: sender on the create sender's server", allowed: true, state: [createEvent(rv, { ...create.content, "m.federate": false })], event: ev(U, "m.room.message", { body: "x" }) },
    { rule: "3", name: "m.federate true: remote member may send", allowed: true, state: [createEvent(rv, { ...create.content, "m.federate": true })], event: ev(X, "m.room.message", { body: "x" }) },
    { rule: "3", name: "m.federate false also applies to membership: remote join", allowed: false, state: [createEvent(rv, { ...create.content, "m.federate": false }), joinRules("public")], event: member("@new:other", "@new:other", "join") },

    // ── Rule 4.1 ──
    { rule: "4.1", name: "member event without state_key", allowed: false, event: ev(U, "m.room.member", { membership: "join" }) },
    { rule: "4.1", name: "member event without membership", allowed: false, event: ev(U, "m.room.member", { displayname: "x" }, U) },

    // ── Rule 4.2: join_authorised_via_users_server ──
    { rule: "4.2.1", name: "authorising user's server signature cannot be checked (no isSignedBy)", allowed: false, state: [joinRules("restricted")], event: member(O, O, "join", { join_authorised_via_users_server: M }) },
    { rule: "4.2.1", name: "event not signed by the authorising user's server", allowed: false, state: [joinRules("restricted")], event: member(O, O, "join", { join_authorised_via_users_server: X }), options: { isSignedBy: (_e, s) => s === "hs" } },
    { rule: "4.2.1", name: "join_authorised_via_users_server that is not a user ID", allowed: false, state: [joinRules("restricted")], event: member(O, O, "join", { join_authorised_via_users_server: "mod" }), options: signedByAll },

    // ── Rule 4.3: join ──
    { rule: "4.3.1", name: "creator joins right after the create event", allowed: true, exactState: [create], event: member(C, C, "join", {}, { prev_events: [createId] }) },
    {
      rule: "4.3.1", name: rv === "10" ? "v10: create sender is not content.creator, cannot use the creator join" : "v11: create sender is the creator (content.creator ignored)",
      allowed: rv === "11", exactState: [v10CreateByOther], event: member(C, C, "join", {}, { prev_events: [computeEventId(v10CreateByOther, rv)] }), because: "4.3.4",
    },
    { rule: "4.3.1", name: "creator join whose prev event is not the create event", allowed: false, exactState: [create], event: member(C, C, "join", {}, { prev_events: ["$other"] }), because: "4.3.4" },
    { rule: "4.3.1", name: "creator join with two prev events", allowed: false, exactState: [create], event: member(C, C, "join", {}, { prev_events: [createId, "$other"] }), because: "4.3.4" },
    { rule: "4.3.1", name: "someone else joining right after the create event", allowed: false, exactState: [create], event: member(U, U, "join", {}, { prev_events: [createId] }), because: "4.3.4" },
    { rule: "4.3.2", name: "join with sender ≠ state_key", allowed: false, state: [joinRules("public")], event: member(M, O, "join") },
    { rule: "4.3.3", name: "banned user joins a public room", allowed: false, state: [joinRules("public")], event: member(B, B, "join") },
    { rule: "4.3.4", name: "invited user joins an invite room", allowed: true, event: member(I, I, "join") },
    { rule: "4.3.4", name: "joined user re-joins (profile change) in an invite room", allowed: true, event: member(U, U, "join", { displayname: "New" }) },
    { rule: "4.3.4", name: "outsider joins an invite room", allowed: false, event: member(O, O, "join") },
    { rule: "4.3.4", name: "user who left joins an invite room", allowed: false, event: member(L, L, "join") },
    { rule: "4.3.4", name: "knocking user joins an invite room", allowed: false, event: member(K, K, "join") },
    { rule: "4.3.4", name: "invited user joins a knock room", allowed: true, state: [joinRules("knock")], event: member(I, I, "join") },
    { rule: "4.3.4", name: "outsider joins a knock room", allowed: false, state: [joinRules("knock")], event: member(O, O, "join") },
    { rule: "4.3.5.1", name: "restricted: invited user joins without an authoriser", allowed: true, state: [joinRules("restricted")], event: member(I, I, "join") },
    { rule: "4.3.5.1", name: "knock_restricted: joined user re-joins", allowed: true, state: [joinRules("knock_restricted")], event: member(U, U, "join") },
    { rule: "4.3.5.2", name: "restricted: outsider without join_authorised_via_users_server", allowed: false, state: [joinRules("restricted")], event: member(O, O, "join") },
    { rule: "4.3.5.2", name: "restricted: authoriser is only invited", allowed: false, state: [joinRules("restricted")], event: member(O, O, "join", { join_authorised_via_users_server: I }), options: signedByAll },
    { rule: "4.3.5.2", name: "restricted: authoriser is joined but below the invite level", allowed: false, state: [joinRules("restricted"), pl({ invite: 50 })], event: member(O, O, "join", { join_authorised_via_users_server: U }), options: signedByAll },
    { rule: "4.3.5.3", name: "restricted: joined authoriser at the invite level", allowed: true, state: [joinRules("restricted")], event: member(O, O, "join", { join_authorised_via_users_server: M }), options: signedByAll },
    { rule: "4.3.5.3", name: "knock_restricted: joined authoriser at the invite level", allowed: true, state: [joinRules("knock_restricted"), pl({ invite: 50 })], event: member(O, O, "join", { join_authorised_via_users_server: M }), options: signedByAll },
    { rule: "4.3.6", name: "outsider joins a public room", allowed: true, state: [joinRules("public")], event: member(O, O, "join") },
    { rule: "4.3.6", name: "user who left joins a public room", allowed: true, state: [joinRules("public")], event: member(L, L, "join") },
    { rule: "4.3.7", name: "join rule private (unimplemented) rejects", allowed: false, state: [joinRules("private")], event: member(I, I, "join") },
    { rule: "4.3.7", name: "unknown join rule rejects", allowed: false, state: [joinRules("sometimes")], event: member(O, O, "join") },

    // ── Rule 4.4: invite (ordinary) ──
    { rule: "4.4.4", name: "joined user at the default invite level (0) invites", allowed: true, event: member(U, O, "invite") },
    { rule: "4.4.5", name: "joined user below the invite level", allowed: false, state: [pl({ invite: 50 })], event: member(U, O, "invite") },
    { rule: "4.4.4", name: "moderator at the invite level 50", allowed: true, state: [pl({ invite: 50 })], event: member(M, O, "invite") },
    { rule: "4.4.2", name: "invited (not joined) sender", allowed: false, event: member(I, O, "invite") },
    { rule: "4.4.2", name: "sender who left", allowed: false, event: member(L, O, "invite") },
    { rule: "4.4.2", name: "outsider sender", allowed: false, event: member(O, "@new:hs", "invite") },
    { rule: "4.4.3", name: "target already joined", allowed: false, event: member(M, U, "invite") },
    { rule: "4.4.3", name: "target banned", allowed: false, event: member(C, B, "invite") },
    { rule: "4.4.4", name: "target already invited (re-invite)", allowed: true, event: member(M, I, "invite") },
    { rule: "4.4.4", name: "target who left", allowed: true, event: member(M, L, "invite") },
    { rule: "4.4.4", name: "target who is knocking", allowed: true, event: member(M, K, "invite") },
    { rule: "4.4.4 + defaults", name: "no power levels event: invite level defaults to 0", allowed: true, drop: [stateKeyId("m.room.power_levels", "")], event: member(U, O, "invite") },

    // ── Rule 4.4.1: the third-party-invite branch ──
    { rule: "4.4.1.7.1", name: "3PID: signature by the key in public_key", allowed: true, state: [tpiEvent({ ...TPI_CONTENT, public_keys: [] })], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1.7.2", name: "3PID: signature by a key listed only in public_keys", allowed: true, state: [tpiEvent({ ...TPI_CONTENT, public_key: encodeBase64(OTHER_KEY), public_keys: [{ public_key: encodeBase64(OTHER_KEY) }, { public_key: encodeBase64(IS_KEY) }] })], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1.7", name: "3PID: public key in URL-safe base64", allowed: true, state: [tpiEvent({ ...TPI_CONTENT, public_key: encodeBase64Url(IS_KEY), public_keys: [{ public_key: encodeBase64Url(IS_KEY) }] })], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1.7", name: "3PID: key id of the signature is ignored", allowed: true, event: tpiMember(C, O, signedBlock(O, "tok", IS_SEED, "ed25519:some_other_id")) },
    { rule: "4.4.1.7", name: "3PID: one of several signatures matches", allowed: true, event: tpiMember(C, O, sign(signedBlock(O, "tok", OTHER_SEED), IS_SEED, "is2.example", "ed25519:1")) },
    { rule: "4.4.1.7", name: "3PID: signed carries extra keys (covered by the signature)", allowed: true, event: tpiMember(C, O, sign({ mxid: O, token: "tok", sender: C }, IS_SEED)) },
    { rule: "4.4.1 (skips 4.4.2)", name: "3PID: inviter has since left the room", allowed: true, state: [member(C, C, "leave")], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1 (skips 4.4.4)", name: "3PID: inviter now below the invite level", allowed: true, state: [pl({ invite: 100, users: { [C]: 0 } })], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1 (skips 4.4.3)", name: "3PID: target already joined is not rejected by this branch", allowed: true, event: tpiMember(C, U, signedBlock(U)) },
    { rule: "4.4.1.1", name: "3PID: target banned", allowed: false, event: tpiMember(C, B, signedBlock(B)) },
    { rule: "4.4.1.2", name: "3PID: no signed", allowed: false, event: member(C, O, "invite", { third_party_invite: { display_name: "b...@e..." } }) },
    { rule: "4.4.1.2", name: "3PID: third_party_invite is not an object", allowed: false, event: member(C, O, "invite", { third_party_invite: "yes" }) },
    { rule: "4.4.1.3", name: "3PID: signed lacks token", allowed: false, event: tpiMember(C, O, sign({ mxid: O }, IS_SEED)) },
    { rule: "4.4.1.3", name: "3PID: signed lacks mxid", allowed: false, event: tpiMember(C, O, sign({ token: "tok" }, IS_SEED)) },
    { rule: "4.4.1.4", name: "3PID: mxid does not match state_key", allowed: false, event: tpiMember(C, O, signedBlock(U2)) },
    { rule: "4.4.1.5", name: "3PID: no m.room.third_party_invite with that token", allowed: false, event: tpiMember(C, O, signedBlock(O, "unknown-token")) },
    { rule: "4.4.1.6", name: "3PID: sender differs from the third-party invite's sender", allowed: false, event: tpiMember(M, O, signedBlock(O)) },
    { rule: "4.4.1.8", name: "3PID: signature by a key the invite does not list", allowed: false, event: tpiMember(C, O, signedBlock(O, "tok", OTHER_SEED)) },
    { rule: "4.4.1.8", name: "3PID: signed modified after signing", allowed: false, event: tpiMember(C, O, { ...signedBlock(O), extra: 1 }) },
    { rule: "4.4.1.8", name: "3PID: invite revoked (empty content)", allowed: false, state: [tpiEvent({})], event: tpiMember(C, O, signedBlock(O)) },
    { rule: "4.4.1.8", name: "3PID: no signatures at all", allowed: false, event: tpiMember(C, O, { mxid: O, token: "tok" }) },
    { rule: "4.4.1.8", name: "3PID: garbage signature and key strings", allowed: false, state: [tpiEvent({ ...TPI_CONTENT, public_key: "not base64!", public_keys: [{ public_key: "%%" }] })], event: tpiMember(C, O, { mxid: O, token: "tok", signatures: { "is.example": { "ed25519:0": "!!" } } }) },
    { rule: "4.4.1.6", name: "3PID: the invitee cannot self-invite (sender must be the inviter)", allowed: false, event: tpiMember(O, O, signedBlock(O)) },

    // ── Rule 4.5: leave ──
    { rule: "4.5.1", name: "joined user leaves", allowed: true, event: member(U, U, "leave") },
    { rule: "4.5.1", name: "invited user rejects the invite", allowed: true, event: member(I, I, "leave") },
    { rule: "4.5.1", name: "knocking user rescinds the knock", allowed: true, event: member(K, K, "leave") },
    { rule: "4.5.1", name: "outsider cannot leave", allowed: false, event: member(O, O, "leave") },
    { rule: "4.5.1", name: "banned user cannot leave (self-unban)", allowed: false, event: member(B, B, "leave") },
    { rule: "4.5.1", name: "user who left cannot leave again", allowed: false, event: member(L, L, "leave") },
    { rule: "4.5.2", name: "kick by a sender who is only invited", allowed: false, state: [pl({ users: { ...BASE_PL.users, [I]: 100 } })], event: member(I, U, "leave") },
    { rule: "4.5.4", name: "moderator kicks a user", allowed: true, event: member(M, U, "leave") },
    { rule: "4.5.4", name: "moderator revokes an invite", allowed: true, event: member(M, I, "leave") },
    { rule: "4.5.4", name: "moderator kicks someone who is not in the room", allowed: true, event: member(M, O, "leave") },
    { rule: "4.5.5", name: "user below the kick level kicks", allowed: false, event: member(U2, U, "leave") },
    { rule: "4.5.5", name: "moderator kicks the creator (higher level)", allowed: false, event: member(M, C, "leave") },
    { rule: "4.5.5", name: "moderator kicks an equal moderator", allowed: false, event: member(M, M2, "leave") },
    { rule: "4.5.4", name: "kick level 0: user kicks a user with a lower level", allowed: true, state: [pl({ kick: 0, users: { ...BASE_PL.users, [U]: -1 } })], event: member(U2, U, "leave") },
    { rule: "4.5.4", name: "moderator unbans (≥ ban and ≥ kick)", allowed: true, event: member(M, B, "leave") },
    { rule: "4.5.3", name: "unban by a sender at the kick level but below the ban level", allowed: false, state: [pl({ kick: 0, ban: 60 })], event: member(M, B, "leave") },
    { rule: "4.5.5", name: "unban by a sender at the ban level but below the kick level", allowed: false, state: [pl({ kick: 60, ban: 10 })], event: member(M, B, "leave") },

    // ── Rule 4.6: ban ──
    { rule: "4.6.2", name: "moderator bans a user", allowed: true, event: member(M, U, "ban") },
    { rule: "4.6.2", name: "moderator bans someone not in the room", allowed: true, event: member(M, O, "ban") },
    { rule: "4.6.2", name: "moderator re-bans a banned user", allowed: true, event: member(M, B, "ban") },
    { rule: "4.6.3", name: "user below the ban level", allowed: false, event: member(U2, U, "ban") },
    { rule: "4.6.3", name: "moderator bans the creator", allowed: false, event: member(M, C, "ban") },
    { rule: "4.6.3", name: "ban level 0, equal levels: target not below the sender", allowed: false, state: [pl({ ban: 0 })], event: member(U, "@user3:hs", "ban") },
    { rule: "4.6.1", name: "ban by a sender who is not joined", allowed: false, state: [pl({ users: { ...BASE_PL.users, [L]: 100 } })], event: member(L, U, "ban") },
    { rule: "4.6.3", name: "self-ban is not allowed (target level not below own)", allowed: false, event: member(M, M, "ban") },

    // ── Rule 4.7: knock ──
    { rule: "4.7 NOTSPEC", name: "knock refused while knocking is unsupported (default)", allowed: false, state: [joinRules("knock")], event: member(O, O, "knock"), because: "NOTSPEC" },
    { rule: "4.7.3", name: "[spec mode] outsider knocks on a knock room", allowed: true, state: [joinRules("knock")], event: member(O, O, "knock"), options: knocksPerSpec },
    { rule: "4.7.3", name: "[spec mode] user who left knocks on a knock_restricted room", allowed: true, state: [joinRules("knock_restricted")], event: member(L, L, "knock"), options: knocksPerSpec },
    { rule: "4.7.1", name: "[spec mode] knock on an invite room", allowed: false, event: member(O, O, "knock"), options: knocksPerSpec },
    { rule: "4.7.1", name: "[spec mode] knock on a public room", allowed: false, state: [joinRules("public")], event: member(O, O, "knock"), options: knocksPerSpec },
    { rule: "4.7.2", name: "[spec mode] knock with sender ≠ state_key", allowed: false, state: [joinRules("knock")], event: member(M, O, "knock"), options: knocksPerSpec },
    { rule: "4.7.4", name: "[spec mode] banned user knocks", allowed: false, state: [joinRules("knock")], event: member(B, B, "knock"), options: knocksPerSpec },
    { rule: "4.7.4", name: "[spec mode] joined user knocks", allowed: false, state: [joinRules("knock")], event: member(U, U, "knock"), options: knocksPerSpec },
    { rule: "4.7.4", name: "[spec mode] invited user knocks", allowed: false, state: [joinRules("knock")], event: member(I, I, "knock"), options: knocksPerSpec },

    // ── Rule 4.8 ──
    { rule: "4.8", name: "unknown membership value", allowed: false, event: member(U, U, "dance") },
    { rule: "4.8", name: "membership that is not a string", allowed: false, event: member(U, U, 5) },

    // ── Rule 5 ──
    { rule: "5", name: "message from an outsider", allowed: false, event: ev(O, "m.room.message", { body: "x" }) },
    { rule: "5", name: "message from an invited user", allowed: false, event: ev(I, "m.room.message", { body: "x" }) },
    { rule: "5", name: "state event from a user who left (even with power)", allowed: false, state: [pl({ users: { ...BASE_PL.users, [L]: 100 } })], event: ev(L, "m.room.name", { name: "x" }, "") },
    { rule: "5", name: "message from a banned user", allowed: false, event: ev(B, "m.room.message", { body: "x" }) },
    { rule: "10", name: "message from a joined user", allowed: true, event: ev(U, "m.room.message", { body: "x" }) },

    // ── Rule 6: m.room.third_party_invite ──
    { rule: "6.1", name: "third-party invite at the invite level", allowed: true, event: tpiEvent(TPI_CONTENT, U, "tok2") },
    { rule: "6.1", name: "third-party invite below the invite level", allowed: false, state: [pl({ invite: 50 })], event: tpiEvent(TPI_CONTENT, U, "tok2") },
    { rule: "6.1", name: "events[m.room.third_party_invite] is ignored (invite level decides)", allowed: true, state: [pl({ events: { "m.room.third_party_invite": 100 } })], event: tpiEvent(TPI_CONTENT, U, "tok2") },
    { rule: "6.1", name: "state_default is ignored for third-party invites", allowed: true, state: [pl({ state_default: 100 })], event: tpiEvent(TPI_CONTENT, U, "tok2") },
    { rule: "5", name: "third-party invite from an invited user", allowed: false, event: tpiEvent(TPI_CONTENT, I, "tok2") },
    { rule: "6.1", name: "revocation (empty content) at the invite level", allowed: true, event: tpiEvent({}, C) },

    // ── Rule 7: required power level ──
    { rule: "7", name: "user below state_default sends m.room.name", allowed: false, event: ev(U, "m.room.name", { name: "x" }, "") },
    { rule: "7", name: "moderator at state_default sends m.room.name", allowed: true, event: ev(M, "m.room.name", { name: "x" }, "") },
    { rule: "7", name: "events_default 10 blocks a level-0 message", allowed: false, state: [pl({ events_default: 10 })], event: ev(U, "m.room.message", { body: "x" }) },
    { rule: "7", name: "events[type] overrides events_default", allowed: true, state: [pl({ events_default: 10, events: { "m.room.message": 0 } })], event: ev(U, "m.room.message", { body: "x" }) },
    { rule: "7", name: "events[type] above the sender", allowed: false, state: [pl({ events: { "m.room.topic": 100 } })], event: ev(M, "m.room.topic", { topic: "x" }, "") },
    { rule: "7", name: "events[type] 0 overrides state_default", allowed: true, state: [pl({ events: { "m.room.name": 0 } })], event: ev(U, "m.room.name", { name: "x" }, "") },
    { rule: "7", name: "users_default 50 lets unlisted users send state", allowed: true, state: [pl({ users_default: 50 })], event: ev(U, "m.room.topic", { topic: "x" }, "") },
    { rule: "7 + defaults", name: "no PL event: non-creator sends state (state_default 50)", allowed: false, drop: [stateKeyId("m.room.power_levels", "")], event: ev(U, "m.room.topic", { topic: "x" }, "") },
    { rule: "7 + defaults", name: "no PL event: creator (100) sends state", allowed: true, drop: [stateKeyId("m.room.power_levels", "")], event: ev(C, "m.room.topic", { topic: "x" }, "") },
    { rule: "7 + defaults", name: "no PL event: non-creator sends a message (events_default 0)", allowed: true, drop: [stateKeyId("m.room.power_levels", "")], event: ev(U, "m.room.message", { body: "x" }) },
    {
      rule: "7 + defaults (v11 creator)", name: rv === "10" ? "no PL event, v10: the creator is content.creator, not the create sender" : "no PL event, v11: the creator is the create sender",
      allowed: rv === "11", drop: [stateKeyId("m.room.power_levels", "")], state: [createEvent(rv, { creator: U, room_version: rv })], event: ev(C, "m.room.topic", { topic: "x" }, ""),
    },
    { rule: "7 (redact level not used)", name: "m.room.redaction below the redact level is allowed by the auth rules", allowed: true, event: ev(U, "m.room.redaction", rv === "11" ? { redacts: "$x" } : {}, undefined, rv === "10" ? { redacts: "$x" } : {}) },
    { rule: "7", name: "m.room.redaction limited through events", allowed: false, state: [pl({ events: { "m.room.redaction": 50 } })], event: ev(U, "m.room.redaction", { redacts: "$x" }) },

    // ── Rule 8 ──
    { rule: "8", name: "state_key of another user", allowed: false, event: ev(M, "org.example.state", { a: 1 }, U) },
    { rule: "8", name: "state_key of the sender", allowed: true, state: [pl({ state_default: 0 })], event: ev(U, "org.example.state", { a: 1 }, U) },
    { rule: "8", name: "state_key not starting with @", allowed: true, event: ev(M, "org.example.state", { a: 1 }, "foo@bar") },

    // ── Rule 9: m.room.power_levels ──
    { rule: "9.1", name: "string level (v10 integers only)", allowed: false, event: pl({ ban: "50" }) },
    { rule: "9.1", name: "fractional level", allowed: false, event: pl({ users_default: 1.5 }) },
    { rule: "9.1", name: "null level", allowed: false, event: pl({ invite: null }) },
    { rule: "9.2", name: "events value that is a string", allowed: false, event: pl({ events: { "m.room.name": "50" } }) },
    { rule: "9.2", name: "events that is not an object", allowed: false, event: pl({ events: [50] }) },
    { rule: "9.2", name: "notifications value that is a string", allowed: false, event: pl({ notifications: { room: "20" } }) },
    { rule: "9.3", name: "users key that is not a user ID", allowed: false, event: pl({ users: { ...BASE_PL.users, notauser: 5 } }) },
    { rule: "9.3", name: "users value that is a string", allowed: false, event: pl({ users: { ...BASE_PL.users, [U]: "5" } }) },
    { rule: "9.3", name: "users that is not an object", allowed: false, event: pl({ users: [C] }) },
    { rule: "9.4", name: "first power levels event may set anything", allowed: true, drop: [stateKeyId("m.room.power_levels", "")], event: pl({ users: { [C]: 100, [U]: 1000 }, ban: 1000 }) },
    { rule: "9.5", name: "creator raises the kick level", allowed: true, event: pl({ kick: 75 }) },
    { rule: "9.5", name: "moderator lowers the kick level", allowed: true, event: pl({ kick: 10 }, M) },
    { rule: "9.5.2", name: "moderator raises the kick level above own", allowed: false, event: pl({ kick: 60 }, M) },
    { rule: "9.5.1", name: "moderator changes a level that is above own", allowed: false, state: [pl({ state_default: 75 })], event: pl({ state_default: 50 }, M) },
    { rule: "9.5.2", name: "moderator adds redact above own (absent before)", allowed: false, state: [pl({ redact: undefined })], event: pl({ redact: 60 }, M) },
    { rule: "9.5.1", name: "moderator removes ban that is above own", allowed: false, state: [pl({ ban: 60 })], event: pl({ ban: undefined }, M) },
    { rule: "9.5", name: "moderator removes kick equal to own", allowed: true, event: pl({ kick: undefined }, M) },
    { rule: "9.6.1", name: "moderator changes events[x] that is above own", allowed: false, state: [pl({ events: { ...BASE_PL.events, "m.room.name": 100 } })], event: pl({ events: { ...BASE_PL.events, "m.room.name": 50 } }, M) },
    { rule: "9.6.1", name: "moderator removes events[x] that is above own", allowed: false, state: [pl({ events: { ...BASE_PL.events, "m.room.name": 100 } })], event: pl({ events: { ...BASE_PL.events } }, M) },
    { rule: "9.7.1", name: "moderator adds events[x] above own", allowed: false, event: pl({ events: { ...BASE_PL.events, "m.room.tombstone": 100 } }, M) },
    { rule: "9.7", name: "moderator adds events[x] at own level", allowed: true, event: pl({ events: { ...BASE_PL.events, "org.example": 50 } }, M) },
    { rule: "9.6.1", name: "moderator changes notifications.room that is above own", allowed: false, state: [pl({ notifications: { room: 100 } })], event: pl({ notifications: { room: 0 } }, M) },
    { rule: "9.7.1", name: "moderator adds notifications.room above own", allowed: false, event: pl({ notifications: { room: 60 } }, M) },
    { rule: "9.9", name: "moderator promotes a user to own level", allowed: true, event: pl({ users: { ...BASE_PL.users, [U]: 50 } }, M) },
    { rule: "9.9.1", name: "moderator promotes a user above own level", allowed: false, event: pl({ users: { ...BASE_PL.users, [U]: 51 } }, M) },
    { rule: "9.8.1", name: "moderator demotes an equal moderator", allowed: false, event: pl({ users: { ...BASE_PL.users, [M2]: 0 } }, M) },
    { rule: "9.8.1", name: "moderator removes the creator's entry", allowed: false, event: pl({ users: { [M]: 50, [M2]: 50, [U2]: 10 } }, M) },
    { rule: "9.8 (own entry)", name: "moderator demotes self", allowed: true, event: pl({ users: { ...BASE_PL.users, [M]: 0 } }, M) },
    { rule: "9.9.1", name: "moderator raises self", allowed: false, event: pl({ users: { ...BASE_PL.users, [M]: 60 } }, M) },
    { rule: "9.8", name: "moderator demotes a lower user", allowed: true, event: pl({ users: { ...BASE_PL.users, [U2]: 0 } }, M) },
    { rule: "9.8", name: "moderator removes a lower user's entry", allowed: true, event: pl({ users: { [C]: 100, [M]: 50, [M2]: 50 } }, M) },
    { rule: "9.10", name: "moderator re-sends unchanged content (values above own untouched)", allowed: true, event: pl({}, M) },
    { rule: "7 (before 9)", name: "user below events[m.room.power_levels]", allowed: false, event: pl({ kick: 0 }, U2) },

    // ── Rule 10 and the signature requirement ──
    { rule: "10", name: "custom state event at state_default", allowed: true, event: ev(M, "org.example.state", { x: 1 }, "") },
    { rule: "signing", name: "event not signed by the sender's server (isSignedBy given)", allowed: false, event: ev(U, "m.room.message", { body: "x" }), options: { isSignedBy: () => false }, because: "the event is not signed" },
    { rule: "signing", name: "3PID invite need not be signed by the sender's server", allowed: true, event: tpiMember(C, O, signedBlock(O)), options: { isSignedBy: () => false } },
  ];
}

function stateFor(rv: RoomVersion, row: Row): Map<string, PDU> {
  if (row.exactState) return new Map(row.exactState.map((e) => [stateKeyId(e.type, e.state_key!), e]));
  const s = baseState(rv);
  for (const k of row.drop ?? []) s.delete(k);
  for (const e of row.state ?? []) {
    // `undefined` values in overrides mean "absent", as in JSON.
    const content = JSON.parse(JSON.stringify(e.content)) as Record<string, unknown>;
    s.set(stateKeyId(e.type, e.state_key!), { ...e, content });
  }
  return s;
}

let total = 0;
for (const rv of ["10", "11"] as const) {
  for (const row of rows(rv)) {
    if (row.only && row.only !== rv) continue;
    total++;
    test(`v${rv} [${row.rule}] ${row.name} → ${row.allowed ? "allow" : "deny"}`, () => {
      const event = { ...row.event, content: JSON.parse(JSON.stringify(row.event.content)) as Record<string, unknown> };
      const r = checkEventAuth(event, stateFor(rv, row), rv, verify, row.options ?? {});
      assert.equal(r.allowed, row.allowed, r.allowed ? "allowed" : `denied: ${r.reason}`);
      if (!r.allowed) {
        // The rejection must come from the rule the row cites.
        const expected = row.because ?? /^[\d.]+\d|^\d/.exec(row.rule)?.[0] ?? row.rule;
        assert.ok(r.reason.startsWith(`${expected}:`) || r.reason.startsWith(expected + " "), `expected rule ${expected}, got "${r.reason}"`);
      }
    });
  }
}

test("the table covers at least 80 cases per room version", () => {
  assert.ok(total >= 160, `only ${total} rows`);
});

// ── Rule 2 with the auth events as a list ──
test("rule 2: auth events given as a list", () => {
  for (const rv of ["10", "11"] as const) {
    const s = baseState(rv);
    const msg = ev(U, "m.room.message", { body: "x" });
    const pick = (...keys: string[]): PDU[] => keys.map((k) => s.get(k)!);
    const createK = stateKeyId("m.room.create", "");
    const plK = stateKeyId("m.room.power_levels", "");
    const uK = stateKeyId("m.room.member", U);
    assert.equal(checkEventAuth(msg, pick(createK, plK, uK), rv, verify).allowed, true, "exact selection");
    const dup = checkEventAuth(msg, [...pick(createK, plK, uK), pl({ kick: 1 })], rv, verify);
    assert.equal(dup.allowed, false);
    assert.match(dup.allowed ? "" : dup.reason, /^2\.1/);
    const extra = checkEventAuth(msg, [...pick(createK, plK, uK, stateKeyId("m.room.join_rules", ""))], rv, verify);
    assert.match(extra.allowed ? "" : extra.reason, /^2\.2/, "join rules are not selected for a message");
    const noCreate = checkEventAuth(msg, pick(plK, uK), rv, verify);
    assert.match(noCreate.allowed ? "" : noCreate.reason, /^2\.4/);
    const otherRoom = checkEventAuth(msg, [...pick(createK, plK), { ...s.get(uK)!, room_id: "!other:hs" }], rv, verify);
    assert.match(otherRoom.allowed ? "" : otherRoom.reason, /^2\.5/);
    const nonState = checkEventAuth(msg, [...pick(createK, plK, uK), ev(U, "m.room.message", {})], rv, verify);
    assert.equal(nonState.allowed, false);
    // An invite's selection includes the target's member event and join rules; a 3PID invite the token's invite.
    const inv = tpiMember(C, O, signedBlock(O));
    const list = pick(createK, plK, stateKeyId("m.room.member", C), stateKeyId("m.room.join_rules", ""), stateKeyId("m.room.third_party_invite", "tok"));
    assert.equal(checkEventAuth(inv, list, rv, verify).allowed, true);
    assert.equal(checkAuthEventsList(inv, list).allowed, true);
  }
});

test("authEventKeys never lists the same pair twice (self-targeted member event)", () => {
  const keys = authEventKeys(member(U, U, "join"));
  assert.equal(new Set(keys).size, keys.length);
  assert.deepEqual(keys, [stateKeyId("m.room.create", ""), stateKeyId("m.room.power_levels", ""), stateKeyId("m.room.member", U), stateKeyId("m.room.join_rules", "")]);
});

test("the checker is pure: inputs unchanged, and a throwing verifier is treated as a failed check", () => {
  const s = baseState("10");
  const before = JSON.stringify([...s.entries()]);
  const e = tpiMember(C, O, signedBlock(O));
  const eBefore = JSON.stringify(e);
  assert.equal(checkEventAuth(e, s, "10", verify).allowed, true);
  assert.equal(JSON.stringify([...s.entries()]), before);
  assert.equal(JSON.stringify(e), eBefore);
  const r = checkEventAuth(e, s, "10", () => {
    throw new Error("boom");
  });
  assert.equal(r.allowed, false);
  assert.ok(decodeBase64(encodeBase64(IS_KEY)).length === 32);
});

test("a real room-v10 event chain passes the auth rules with its own auth events, and selection agrees", () => {
  const publicKey = nodeCryptoProvider.ed25519PublicKeySync(decodeBase64(chain.seed));
  const byId = new Map<string, PDU>(chain.events.map((e) => [e.eventId, e.event as PDU]));
  const options: AuthOptions = {
    isSignedBy: (e, server) => server === chain.serverName && verifyPduSignature(e, "10", server, chain.keyId, publicKey),
  };
  const state = new Map<string, PDU>();
  for (const { event: raw } of chain.events) {
    const event = raw as PDU;
    const authEvents = event.auth_events.map((id) => byId.get(id)!);
    assert.equal(checkEventAuth(event, authEvents, "10", verify, options).allowed, true, `${event.type} with its auth events`);
    assert.equal(checkEventAuth(event, state, "10", verify, options).allowed, true, `${event.type} against the state before it`);
    // Our selection picks exactly the auth events the origin server chose.
    const selected = authEventKeys(event).filter((k) => state.has(k)).map((k) => state.get(k)!);
    assert.deepEqual(new Set(selected), new Set(authEvents), `${event.type} auth events`);
    state.set(stateKeyId(event.type, event.state_key!), event);
  }
  // A tampered copy fails the signature requirement.
  const last = chain.events.at(-1)!.event as PDU;
  const forged = { ...last, state_key: "@someone:else" };
  const r = checkEventAuth(forged, state, "10", verify, options);
  assert.equal(r.allowed, false);
  assert.match(r.allowed ? "" : r.reason, /not signed by the sender's server/);
});

test("malformed events are refused, and assertEventAllowed throws M_FORBIDDEN", () => {
  const s = baseState("10");
  const good = ev(U, "m.room.message", { body: "x" });
  assert.doesNotThrow(() => assertEventAllowed(good, s, "10", verify));
  for (const bad of [
    { ...good, content: "x" },
    { ...good, prev_events: undefined },
    { ...good, state_key: 5 },
    { ...good, sender: undefined },
    { ...good, room_id: null },
  ]) {
    const r = checkEventAuth(bad as unknown as PDU, s, "10", verify);
    assert.equal(r.allowed, false);
  }
  assert.throws(
    () => assertEventAllowed(ev(O, "m.room.message", { body: "x" }), s, "10", verify),
    (e: unknown) => isMatrixError(e) && e.errcode === "M_FORBIDDEN" && e.status === 403 && /5: the sender is not joined/.test(e.message),
  );
});
