import { test } from "node:test";
import assert from "node:assert/strict";
import {
  computeEventId,
  decodeBase64,
  encodeBase64,
  redactEvent,
  signJson,
  stateKeyId,
  verifyContentHash,
  verifyJsonSignature,
  type PDU,
} from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { buildPdu, nextDepth, pduEventId, selectAuthEvents, signPdu, verifyPduSignature, type ServerSigningKey } from "./pdu.js";

// The spec appendix key (https://spec.matrix.org/v1.18/appendices/#signing-details).
const SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const PUBLIC = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
const key: ServerSigningKey = { serverName: "domain", keyId: "ed25519:1", seed: decodeBase64(SEED) };

const base = {
  roomId: "!r:domain",
  sender: "@alice:domain",
  prevEvents: ["$prev"],
  authEvents: ["$create", "$pl", "$member"],
  depth: 7,
  originServerTs: 1700000000000,
};

test("spec appendix event vector 1: signPdu reproduces the published signature", () => {
  const ev = {
    room_id: "!x:domain", sender: "@a:domain", origin: "domain", origin_server_ts: 1000000, type: "X", content: {},
    prev_events: [], auth_events: [], depth: 3, unsigned: { age_ts: 1000000 },
    hashes: { sha256: "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos" },
  };
  const signed = signPdu(ev, "10", key);
  assert.deepEqual(signed.signatures, {
    domain: { "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg" },
  });
  assert.deepEqual(signed.unsigned, { age_ts: 1000000 }, "unsigned kept");
});

for (const roomVersion of ["10", "11"] as const) {
  test(`buildPdu (v${roomVersion}): hash, signature over the redacted event, reference-hash ID`, async () => {
    const { eventId, pdu } = buildPdu(
      { ...base, roomVersion, type: "m.room.message", content: { msgtype: "m.text", body: "hello" }, unsigned: { transaction_id: "t1" } },
      key,
    );
    assert.equal(pdu.state_key, undefined);
    assert.equal("state_key" in pdu, false);
    assert.equal(pdu.depth, 7);
    assert.deepEqual(pdu.prev_events, ["$prev"]);
    assert.equal(verifyContentHash(pdu), true);
    assert.equal(verifyPduSignature(pdu, roomVersion, "domain", "ed25519:1", PUBLIC), true);
    assert.equal(verifyPduSignature(pdu, roomVersion, "domain", "ed25519:2", PUBLIC), false);
    assert.match(eventId, /^\$[A-Za-z0-9_-]{43}$/);
    assert.equal(eventId, computeEventId(pdu, roomVersion), "node and pure SHA-256 agree");
    assert.equal(eventId, pduEventId(pdu, roomVersion));
    // Independent path: the async protocol signJson over the redacted event gives the same signature.
    const redacted = redactEvent(pdu, roomVersion);
    delete redacted.signatures;
    const viaSignJson = await signJson(redacted, "domain", "ed25519:1", SEED, nodeCryptoProvider);
    assert.deepEqual(pdu.signatures, viaSignJson.signatures);
    assert.equal(await verifyJsonSignature({ ...redacted, signatures: pdu.signatures }, "domain", "ed25519:1", PUBLIC, nodeCryptoProvider), true);
    // unsigned is covered by nothing; content is covered by the hash only.
    assert.equal(computeEventId({ ...pdu, unsigned: { other: 1 } }, roomVersion), eventId);
    const edited: PDU = { ...pdu, content: { body: "edited" } };
    assert.equal(verifyContentHash(edited), false);
    assert.equal(verifyPduSignature(edited, roomVersion, "domain", "ed25519:1", PUBLIC), true, "a redactable edit keeps the signature");
    assert.equal(computeEventId(edited, roomVersion), eventId);
  });
}

test("buildPdu state event with empty state key", () => {
  const { pdu } = buildPdu({ ...base, roomVersion: "10", type: "m.room.name", stateKey: "", content: { name: "Room" } }, key);
  assert.equal(pdu.state_key, "");
});

test("v11 signatures cover third_party_invite.signed; v10 signatures do not", () => {
  const content = {
    membership: "invite",
    third_party_invite: { display_name: "b...@e...", signed: { mxid: "@bob:domain", token: "tok", signatures: { is: { "ed25519:0": "AAAA" } } } },
  };
  const tamper = (p: PDU): PDU => ({
    ...p,
    content: { ...content, third_party_invite: { ...content.third_party_invite, signed: { ...content.third_party_invite.signed, token: "other" } } },
  });
  for (const [rv, covered] of [["10", false], ["11", true]] as const) {
    const { eventId, pdu } = buildPdu({ ...base, roomVersion: rv, type: "m.room.member", stateKey: "@bob:domain", content }, key);
    const t = tamper(pdu);
    assert.equal(verifyPduSignature(t, rv, "domain", "ed25519:1", PUBLIC), !covered, `v${rv}`);
    assert.equal(computeEventId(t, rv) !== eventId, covered, `v${rv} id`);
  }
});

test("redacts: top level in v10, in content in v11", () => {
  const v10 = buildPdu({ ...base, roomVersion: "10", type: "m.room.redaction", content: { reason: "spam" }, redacts: "$bad" }, key).pdu;
  assert.equal(v10.redacts, "$bad");
  assert.deepEqual(v10.content, { reason: "spam" });
  const v11 = buildPdu({ ...base, roomVersion: "11", type: "m.room.redaction", content: { reason: "spam" }, redacts: "$bad" }, key).pdu;
  assert.equal(v11.redacts, undefined);
  assert.deepEqual(v11.content, { reason: "spam", redacts: "$bad" });
  assert.deepEqual(redactEvent(v11, "11").content, { redacts: "$bad" });
});

test("buildPdu rejects impossible numbers", () => {
  assert.throws(() => buildPdu({ ...base, roomVersion: "10", type: "X", content: {}, depth: 1.5 }, key), RangeError);
  assert.throws(() => buildPdu({ ...base, roomVersion: "10", type: "X", content: {}, originServerTs: Number.NaN }, key), RangeError);
});

test("signPdu keeps other servers' signatures", () => {
  const { pdu } = buildPdu({ ...base, roomVersion: "10", type: "X", content: {} }, key);
  const other: ServerSigningKey = { serverName: "other", keyId: "ed25519:x", seed: new Uint8Array(32).fill(7) };
  const both = signPdu(pdu, "10", other);
  assert.deepEqual(Object.keys(both.signatures).sort(), ["domain", "other"]);
  const otherPublic = encodeBase64(nodeCryptoProvider.ed25519PublicKeySync(other.seed));
  assert.equal(verifyPduSignature(both, "10", "other", "ed25519:x", otherPublic), true);
  assert.equal(verifyPduSignature(both, "10", "domain", "ed25519:1", PUBLIC), true);
});

test("nextDepth", () => {
  assert.equal(nextDepth([]), 1);
  assert.equal(nextDepth([3, 9, 4]), 10);
  assert.equal(nextDepth([Number.MAX_SAFE_INTEGER]), Number.MAX_SAFE_INTEGER);
});

test("selectAuthEvents follows the spec's auth events selection", () => {
  const s = new Map<string, string>([
    [stateKeyId("m.room.create", ""), "$create"],
    [stateKeyId("m.room.power_levels", ""), "$pl"],
    [stateKeyId("m.room.join_rules", ""), "$jr"],
    [stateKeyId("m.room.member", "@alice:domain"), "$alice"],
    [stateKeyId("m.room.member", "@bob:domain"), "$bob"],
    [stateKeyId("m.room.member", "@carol:domain"), "$carol"],
    [stateKeyId("m.room.third_party_invite", "tok"), "$tpi"],
    [stateKeyId("m.room.name", ""), "$name"],
  ]);
  const sel = (type: string, sender: string, content: Record<string, unknown>, stateKey?: string): string[] =>
    selectAuthEvents(stateKey === undefined ? { type, sender, content } : { type, sender, content, state_key: stateKey }, s);
  assert.deepEqual(sel("m.room.create", "@alice:domain", {}, ""), []);
  assert.deepEqual(sel("m.room.message", "@alice:domain", { body: "x" }), ["$create", "$pl", "$alice"]);
  assert.deepEqual(sel("m.room.name", "@alice:domain", { name: "x" }, ""), ["$create", "$pl", "$alice"]);
  assert.deepEqual(sel("m.room.member", "@bob:domain", { membership: "join" }, "@bob:domain"), ["$create", "$pl", "$bob", "$jr"]);
  assert.deepEqual(sel("m.room.member", "@alice:domain", { membership: "invite" }, "@bob:domain"), ["$create", "$pl", "$alice", "$bob", "$jr"]);
  assert.deepEqual(sel("m.room.member", "@alice:domain", { membership: "ban" }, "@bob:domain"), ["$create", "$pl", "$alice", "$bob"]);
  assert.deepEqual(sel("m.room.member", "@alice:domain", { membership: "leave" }, "@bob:domain"), ["$create", "$pl", "$alice", "$bob"]);
  assert.deepEqual(sel("m.room.member", "@dave:domain", { membership: "knock" }, "@dave:domain"), ["$create", "$pl", "$jr"]);
  assert.deepEqual(
    sel("m.room.member", "@alice:domain", { membership: "invite", third_party_invite: { display_name: "d", signed: { mxid: "@dave:domain", token: "tok", signatures: {} } } }, "@dave:domain"),
    ["$create", "$pl", "$alice", "$jr", "$tpi"],
  );
  assert.deepEqual(
    sel("m.room.member", "@dave:domain", { membership: "join", join_authorised_via_users_server: "@carol:domain" }, "@dave:domain"),
    ["$create", "$pl", "$jr", "$carol"],
  );
  // No power levels yet (the creator's join): skipped, not an error.
  const early = new Map([[stateKeyId("m.room.create", ""), "$create"]]);
  assert.deepEqual(selectAuthEvents({ type: "m.room.member", sender: "@alice:domain", state_key: "@alice:domain", content: { membership: "join" } }, early), ["$create"]);
});
