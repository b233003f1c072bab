import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import hashing from "./fixtures/hashing-vectors.json" with { type: "json" };
import redactions from "./fixtures/redaction-vectors.json" with { type: "json" };
import chain from "./fixtures/v10-room-chain.json" with { type: "json" };
import { decodeBase64, encodeBase64, encodeCanonicalJson, signingBytes } from "../index.js";
import { nodeCryptoProvider } from "../node.js";
import {
  computeContentHash,
  computeEventId,
  computeReferenceHash,
  eventSigningBytes,
  eventSigningObject,
  isSupportedRoomVersion,
  redactEvent,
  stateKeyId,
  supportedRoomVersions,
  verifyContentHash,
  type RoomVersion,
} from "./index.js";

const nodeSha = (b: Uint8Array): Uint8Array => nodeCryptoProvider.sha256Sync(b);

test("supported room versions", () => {
  assert.deepEqual([...supportedRoomVersions], ["10", "11"]);
  assert.equal(isSupportedRoomVersion("10"), true);
  assert.equal(isSupportedRoomVersion("11"), true);
  assert.equal(isSupportedRoomVersion("12"), false);
  assert.equal(isSupportedRoomVersion(10), false);
  assert.equal(stateKeyId("m.room.member", "@a:b"), "m.room.member\u0000@a:b");
});

for (const c of redactions.cases) {
  test(`redaction vector (${c.source}): ${c.name}`, () => {
    const input = structuredClone(c.input) as Record<string, unknown>;
    const out = redactEvent(input, c.roomVersion as RoomVersion);
    assert.deepEqual(out, c.expected);
    assert.deepEqual(input, c.input, "input not modified");
    // Redaction is idempotent.
    assert.deepEqual(redactEvent(out, c.roomVersion as RoomVersion), c.expected);
  });
}

test("redaction shares no objects with its input", () => {
  const ev = { type: "m.room.power_levels", content: { users: { "@a:b": 100 } }, signatures: { x: { "ed25519:1": "s" } } };
  const out = redactEvent(ev, "10");
  (out.content as { users: Record<string, number> }).users["@a:b"] = 0;
  (out.signatures as Record<string, unknown>).y = {};
  assert.equal(ev.content.users["@a:b"], 100);
  assert.deepEqual(Object.keys(ev.signatures), ["x"]);
});

test("redaction of an event without object content gives content {}", () => {
  assert.deepEqual(redactEvent({ type: "m.room.member", content: "x" }, "11"), { type: "m.room.member", content: {} });
  assert.deepEqual(redactEvent({ type: "m.room.member" }, "10"), { type: "m.room.member", content: {} });
});

test("spec appendix event vectors: content hash and signature", () => {
  const seed = decodeBase64(hashing.seed);
  for (const v of hashing.signed) {
    const ev = structuredClone(v.event) as Record<string, unknown>;
    assert.equal(computeContentHash(ev), v.sha256);
    assert.equal(computeContentHash(ev, nodeSha), v.sha256);
    const hashed = { ...ev, hashes: { sha256: v.sha256 } };
    assert.equal(verifyContentHash(hashed), true);
    // The signature covers the redacted event without signatures/unsigned.
    const redacted = redactEvent(hashed, "10");
    const sig = encodeBase64(nodeCryptoProvider.ed25519SignSync(seed, signingBytes(redacted)));
    assert.equal(sig, v.signature);
    if (v.signatureRoomVersion === "10") {
      const sig2 = encodeBase64(nodeCryptoProvider.ed25519SignSync(seed, eventSigningBytes(hashed, "10")));
      assert.equal(sig2, v.signature);
    }
  }
});

test("content hash ignores unsigned, signatures and existing hashes", () => {
  const v = hashing.signed[0]!;
  const a = computeContentHash(v.event);
  assert.equal(computeContentHash({ ...v.event, unsigned: { other: 1 }, signatures: { a: {} }, hashes: { sha256: "x" } }), a);
  assert.notEqual(computeContentHash({ ...v.event, depth: 4 }), a);
});

test("verifyContentHash rejects tampering and malformed hashes, accepts URL-safe/padded encodings", () => {
  const ev = structuredClone(hashing.eventIds[0]!.event) as Record<string, unknown>;
  assert.equal(verifyContentHash(ev), true);
  assert.equal(verifyContentHash(ev, nodeSha), true);
  assert.equal(verifyContentHash({ ...ev, content: { ...(ev.content as object), extra: 1 } }), false);
  assert.equal(verifyContentHash({ ...ev, hashes: {} }), false);
  assert.equal(verifyContentHash({ ...ev, hashes: { sha256: "!!" } }), false);
  assert.equal(verifyContentHash({ ...ev, hashes: { sha256: "AAAA" } }), false);
  const std = (ev.hashes as { sha256: string }).sha256;
  const urlSafe = std.replace(/\+/g, "-").replace(/\//g, "_") + "=";
  assert.equal(verifyContentHash({ ...ev, hashes: { sha256: urlSafe } }), true);
  // A float anywhere makes the event unencodable: not a valid hash, no throw.
  assert.equal(verifyContentHash({ ...ev, depth: 1.5 }), false);
});

test("event ID of a real Synapse event (v10 rules)", () => {
  const f = hashing.eventIds[0]!;
  assert.equal(computeEventId(f.event, f.roomVersion as RoomVersion), f.eventId);
  assert.equal(computeEventId(f.event, f.roomVersion as RoomVersion, nodeSha), f.eventId);
  // Non-essential changes (unsigned, signatures, redacted content keys) keep the ID.
  const e2 = { ...f.event, unsigned: {}, signatures: {}, content: { ...f.event.content, room_version: "99" } };
  assert.equal(computeEventId(e2, "10"), f.eventId);
  // A client-format copy with event_id gives the same ID.
  assert.equal(computeEventId({ ...f.event, event_id: f.eventId }, "10"), f.eventId);
  // Under v11 rules the create keeps all content and loses origin/prev_state, so the ID differs.
  assert.notEqual(computeEventId(f.event, "11"), f.eventId);
});

test("v11 reference hash = SHA-256 of the canonical v11-redacted event (built by hand from the spec lists)", () => {
  const ev = {
    room_id: "!r:hs", sender: "@alice:hs", type: "m.room.member", state_key: "@bob:hs", depth: 5, origin: "hs",
    origin_server_ts: 1700000000000, prev_events: ["$p"], auth_events: ["$a", "$b"], hashes: { sha256: "h" },
    signatures: { hs: { "ed25519:a": "sig" } }, unsigned: { age: 1 },
    content: { membership: "invite", displayname: "Bob", third_party_invite: { display_name: "b...@e...", signed: { mxid: "@bob:hs", token: "t", signatures: { is: { "ed25519:0": "x" } } } } },
  };
  const manual = {
    auth_events: ["$a", "$b"], content: { membership: "invite", third_party_invite: { signed: { mxid: "@bob:hs", signatures: { is: { "ed25519:0": "x" } }, token: "t" } } },
    depth: 5, hashes: { sha256: "h" }, origin_server_ts: 1700000000000, prev_events: ["$p"], room_id: "!r:hs", sender: "@alice:hs",
    state_key: "@bob:hs", type: "m.room.member",
  };
  assert.deepEqual(eventSigningObject(ev, "11"), manual);
  const expected = createHash("sha256").update(encodeCanonicalJson(manual)).digest();
  assert.deepEqual(Buffer.from(computeReferenceHash(ev, "11")), expected);
  assert.equal(computeEventId(ev, "11"), "$" + expected.toString("base64url"));
  // v10 keeps origin and drops third_party_invite.
  const v10 = eventSigningObject(ev, "10");
  assert.equal(v10.origin, "hs");
  assert.deepEqual(v10.content, { membership: "invite" });
});

test("a real room-v10 event chain: content hashes, signatures over the redacted events, event IDs", () => {
  const seed = decodeBase64(chain.seed);
  const publicKey = nodeCryptoProvider.ed25519PublicKeySync(seed);
  for (const { eventId, event } of chain.events) {
    assert.equal(verifyContentHash(event), true, `${event.type} hash`);
    assert.equal(computeContentHash(event), event.hashes.sha256);
    assert.equal(computeEventId(event, "10"), eventId, `${event.type} id`);
    assert.equal(computeEventId(event, "10", nodeSha), eventId);
    const sig = (event.signatures as Record<string, Record<string, string>>)[chain.serverName]![chain.keyId]!;
    assert.equal(encodeBase64(nodeCryptoProvider.ed25519SignSync(seed, eventSigningBytes(event, "10"))), sig, `${event.type} signature`);
    assert.equal(nodeCryptoProvider.ed25519VerifySync(publicKey, eventSigningBytes(event, "10"), decodeBase64(sig)), true);
  }
  // The chain links by these IDs: each event's prev_events name the previous event.
  for (let i = 1; i < chain.events.length; i++) {
    assert.deepEqual(chain.events[i]!.event.prev_events, [chain.events[i - 1]!.eventId]);
  }
});
