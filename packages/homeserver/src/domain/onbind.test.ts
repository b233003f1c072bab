import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { encodeBase64, encodeBase64Url, decodeBase64, signJson, type OnbindRequest } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { DatabaseHandle } from "@beckon/server-kit";
import { freePort } from "@beckon/test-support";
import { fetchOutbound, rejectsMatrix, startFakeIdentityServer, type FakeIdentityServer } from "../identity/testing.js";
import { createThreepidApi } from "./third-party-invites.js";
import { FakeRooms, threepidTestDb, threepidTestDeps } from "./threepid-testing.js";
import type { ThreepidDatabase } from "./threepid-storage.js";

const ROOM = "!room:hs.test";
const OTHER_ROOM = "!other:hs.test";
const ALICE = "@alice:hs.test";
const BOB = "@bob:hs.test";

describe("onbind and third_party_signed verification", () => {
  let fake: FakeIdentityServer;
  let handle: DatabaseHandle<ThreepidDatabase>;
  let rooms: FakeRooms;
  let api: ReturnType<typeof createThreepidApi>;
  let token: string;
  let closedPort: number;

  before(async () => {
    fake = await startFakeIdentityServer();
    closedPort = await freePort();
  });
  after(async () => {
    await fake.close();
    await handle?.close();
  });
  beforeEach(async () => {
    await handle?.close();
    handle = await threepidTestDb();
    fake.handlers.clear();
    fake.requests.length = 0;
    fake.bindings.clear();
    fake.validKeys.clear();
    fake.validKeys.add(fake.longTerm.publicKey);
    fake.validKeys.add(fake.ephemeral.publicKey);
    rooms = new FakeRooms();
    rooms.createRoom(ROOM, ALICE);
    rooms.createRoom(OTHER_ROOM, ALICE);
    rooms.users.add(BOB);
    api = createThreepidApi(
      threepidTestDeps(handle, {
        outbound: fetchOutbound(),
        map: { [fake.name]: fake.baseUrl, [`localhost:${closedPort}`]: `http://127.0.0.1:${closedPort}` },
        rooms,
        timeoutMs: 500,
      }),
    );
    await api.inviteByThreepid(ROOM, ALICE, { id_server: fake.name, id_access_token: "swordfish", medium: "email", address: "bob@example.org" });
    token = rooms.eventsOf(ROOM, "m.room.third_party_invite")[0]!.state_key!;
  });

  async function invite(o: { room?: string; mxid?: string; signedMxid?: string; tok?: string; which?: "long" | "ephemeral"; forge?: boolean } = {}) {
    const mxid = o.mxid ?? BOB;
    let signed = await fake.sign({ mxid: o.signedMxid ?? mxid, token: o.tok ?? token }, o.which ?? "long");
    if (o.forge) signed = await signJson({ mxid: o.signedMxid ?? mxid, token: o.tok ?? token }, fake.name, "ed25519:0", new Uint8Array(32).fill(42), nodeCryptoProvider);
    return { medium: "email", address: "bob@example.org", mxid, room_id: o.room ?? ROOM, sender: ALICE, token: o.tok ?? token, signed };
  }
  const body = (invites: unknown[]): OnbindRequest => ({ medium: "email", address: "bob@example.org", mxid: BOB, invites: invites as OnbindRequest["invites"] }) as OnbindRequest;

  const bobInvites = () => rooms.eventsOf(ROOM, "m.room.member").filter((e) => e.state_key === BOB && e.content.membership === "invite");

  test("a valid invite becomes m.room.member invite from the original inviter", async () => {
    const inv = await invite();
    assert.deepEqual(await api.onbind(body([inv])), {});
    const evs = bobInvites();
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.sender, ALICE);
    assert.deepEqual(evs[0]!.content, { membership: "invite", third_party_invite: { display_name: "Bob", signed: inv.signed } });
    // The long-term key verified, so its validity URL was asked, with the key as stored.
    const check = fake.requests.find((r) => r.path.endsWith("/pubkey/isvalid"))!;
    assert.equal(check.query.get("public_key"), fake.longTerm.publicKey);
  });

  test("ephemeral key signing under ed25519:0 (SyTest's mock, Sydent) is accepted", async () => {
    assert.deepEqual(await api.onbind(body([await invite({ which: "ephemeral" })])), {});
    assert.equal(bobInvites().length, 1);
    assert.ok(fake.requests.some((r) => r.path.endsWith("/pubkey/ephemeral/isvalid")));
  });

  test("keys in either base64 alphabet, padded or not", async () => {
    const std = encodeBase64(decodeBase64(fake.ephemeral.publicKey)) + "=";
    const url = encodeBase64Url(decodeBase64(fake.longTerm.publicKey));
    await rooms.sendEvent({
      roomId: ROOM,
      sender: ALICE,
      type: "m.room.third_party_invite",
      stateKey: "alpha",
      content: { display_name: "x", public_keys: [{ public_key: std }, { public_key: url }] },
    });
    assert.deepEqual(await api.onbind(body([await invite({ tok: "alpha", which: "ephemeral" })])), {});
    assert.equal(bobInvites().length, 1);
  });

  const refusedCases: [string, () => Promise<unknown>][] = [
    ["forged signature", () => invite({ forge: true })],
    ["right key, wrong token", () => invite({ tok: "nosuchtoken" })],
    ["token of another room", () => invite({ room: OTHER_ROOM })],
    ["signed.mxid ≠ the invite's mxid (state_key)", () => invite({ signedMxid: "@eve:hs.test" })],
    ["room not hosted here", () => invite({ room: "!far:elsewhere.test" })],
    ["mxid of another server", () => invite({ mxid: "@bob:elsewhere.test" })],
    ["no such local user", () => invite({ mxid: "@ghost:hs.test" })],
  ];
  for (const [name, make] of refusedCases) {
    test(`refused for good, reply 2xx: ${name}`, async () => {
      assert.deepEqual(await api.onbind(body([await make()])), {});
      assert.equal(rooms.sent.filter((e) => e.type === "m.room.member").length, 0);
    });
  }

  test("malformed invites are refused one by one", async () => {
    assert.deepEqual(await api.onbind(body([{}, { room_id: ROOM }, "x", await invite()])), {});
    assert.equal(bobInvites().length, 1);
  });

  test("revoked (empty content) → refused", async () => {
    await rooms.sendEvent({ roomId: ROOM, sender: ALICE, type: "m.room.third_party_invite", stateKey: token, content: {} });
    assert.deepEqual(await api.onbind(body([await invite()])), {});
    assert.equal(bobInvites().length, 0);
  });

  test("valid:false → refused for good", async () => {
    fake.validKeys.clear();
    assert.deepEqual(await api.onbind(body([await invite()])), {});
    assert.equal(bobInvites().length, 0);
  });

  test("validity URL unreachable → 5xx (retry), then a retry succeeds", async () => {
    fake.handlers.set("/_matrix/identity/v2/pubkey/isvalid", (_r, res) => {
      res.writeHead(503).end();
    });
    const inv = await invite();
    await rejectsMatrix(api.onbind(body([inv])), "M_UNKNOWN", 502);
    assert.equal(bobInvites().length, 0);
    fake.handlers.clear();
    assert.deepEqual(await api.onbind(body([inv])), {});
    assert.equal(bobInvites().length, 1);
  });

  test("validity URL on a closed port → 5xx", async () => {
    await rooms.sendEvent({
      roomId: ROOM,
      sender: ALICE,
      type: "m.room.third_party_invite",
      stateKey: "closed",
      content: { display_name: "x", public_key: fake.longTerm.publicKey, key_validity_url: `http://127.0.0.1:${closedPort}/_matrix/identity/v2/pubkey/isvalid` },
    });
    await rejectsMatrix(api.onbind(body([await invite({ tok: "closed" })])), "M_UNKNOWN", 502);
  });

  test("a validity URL neither mapped nor public https → refused for good", async () => {
    await rooms.sendEvent({
      roomId: ROOM,
      sender: ALICE,
      type: "m.room.third_party_invite",
      stateKey: "private",
      content: { display_name: "x", public_key: fake.longTerm.publicKey, key_validity_url: "http://10.0.0.1/_matrix/identity/v2/pubkey/isvalid" },
    });
    assert.deepEqual(await api.onbind(body([await invite({ tok: "private" })])), {});
    assert.equal(bobInvites().length, 0);
  });

  test("replay after join, and after leave: never re-invites", async () => {
    const inv = await invite();
    await api.onbind(body([inv]));
    await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "join" } });
    const n = rooms.sent.length;
    assert.deepEqual(await api.onbind(body([inv])), {});
    assert.equal(rooms.sent.length, n);
    await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "leave" } });
    assert.deepEqual(await api.onbind(body([inv])), {});
    assert.equal(bobInvites().length, 1);
  });

  test("concurrent identical onbinds → one invite", async () => {
    const inv = await invite();
    rooms.sendDelayMs = 20;
    // One request holds the claim and sends; the others answer "retry later" (502) rather than a
    // "done" they cannot vouch for, and the identity server's retry then finds it done.
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => api.onbind(body([inv]))));
    assert.ok(results.some((r) => r.status === "fulfilled"));
    for (const r of results) {
      if (r.status === "rejected") assert.equal((r.reason as { status?: number }).status, 502);
    }
    assert.equal(bobInvites().length, 1);
    assert.deepEqual(await api.onbind(body([inv])), {});
    assert.equal(bobInvites().length, 1);
  });

  test("mixed batch: forged + unknown room + valid → the valid one is invited, reply 2xx", async () => {
    assert.deepEqual(await api.onbind(body([await invite({ forge: true }), await invite({ room: "!far:elsewhere.test" }), await invite()])), {});
    assert.equal(bobInvites().length, 1);
  });

  test("mixed batch with one retryable: 5xx, the valid one is done, a replay does not duplicate it", async () => {
    await rooms.sendEvent({
      roomId: ROOM,
      sender: ALICE,
      type: "m.room.third_party_invite",
      stateKey: "closed",
      content: { display_name: "x", public_key: fake.longTerm.publicKey, key_validity_url: `http://127.0.0.1:${closedPort}/v` },
    });
    rooms.users.add("@carl:hs.test");
    const batch = body([await invite({ room: OTHER_ROOM }), await invite({ tok: "closed", mxid: "@carl:hs.test" }), await invite()]);
    await rejectsMatrix(api.onbind(batch), "M_UNKNOWN", 502);
    assert.equal(bobInvites().length, 1);
    await rejectsMatrix(api.onbind(batch), "M_UNKNOWN", 502);
    assert.equal(bobInvites().length, 1);
  });

  test("an onbind with no invites is fine", async () => {
    assert.deepEqual(await api.onbind({ medium: "email", address: "bob@example.org", mxid: BOB } as OnbindRequest), {});
  });

  test("a delivered invite no longer holds back a new 3PID invite of that address", async () => {
    await api.onbind(body([await invite()]));
    await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "join" } });
    const before = fake.storeInviteCount;
    await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "leave" } });
    await api.inviteByThreepid(ROOM, ALICE, { id_server: fake.name, id_access_token: "swordfish", medium: "email", address: "bob@example.org" });
    assert.equal(fake.storeInviteCount, before + 1);
  });

  describe("verifyThirdPartySigned (join with third_party_signed)", () => {
    const tps = async (o: { mxid?: string; sender?: string; tok?: string } = {}) =>
      fake.sign({ mxid: o.mxid ?? BOB, sender: o.sender ?? ALICE, token: o.tok ?? token }, "ephemeral");

    test("valid → the member invite to send (sender = inviter, signed verbatim)", async () => {
      const signed = await tps();
      const out = await api.verifyThirdPartySigned(ROOM, signed, BOB);
      assert.deepEqual(out, { sender: ALICE, stateKey: BOB, content: { membership: "invite", third_party_invite: { display_name: "Bob", signed } } });
    });
    test("a later onbind of the same token (address bound afterwards) does not invite again, even after leaving", async () => {
      const signed = await tps();
      const ex = await api.verifyThirdPartySigned(ROOM, signed, BOB);
      await rooms.sendEvent({ roomId: ROOM, sender: ex.sender, type: "m.room.member", stateKey: ex.stateKey, content: ex.content });
      await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "join" } });
      await rooms.sendEvent({ roomId: ROOM, sender: BOB, type: "m.room.member", stateKey: BOB, content: { membership: "leave" } });
      assert.deepEqual(await api.onbind(body([await invite()])), {});
      assert.equal(bobInvites().length, 1);
    });
    test("for another user → 403", async () => {
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, await tps(), "@eve:hs.test"), "M_FORBIDDEN", 403);
    });
    test("sender mismatch → 403", async () => {
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, await tps({ sender: "@eve:hs.test" }), BOB), "M_FORBIDDEN", 403);
    });
    test("revoked → 403", async () => {
      await rooms.sendEvent({ roomId: ROOM, sender: ALICE, type: "m.room.third_party_invite", stateKey: token, content: {} });
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, await tps(), BOB), "M_FORBIDDEN", 403);
    });
    test("valid:false → 403; unreachable → 502", async () => {
      fake.validKeys.clear();
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, await tps(), BOB), "M_FORBIDDEN", 403);
      fake.handlers.set("/_matrix/identity/v2/pubkey/ephemeral/isvalid", (_r, res) => {
        res.writeHead(500).end();
      });
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, await tps(), BOB), "M_UNKNOWN", 502);
    });
    test("unknown room → 403; malformed → 400", async () => {
      await rejectsMatrix(api.verifyThirdPartySigned("!far:elsewhere.test", await tps(), BOB), "M_FORBIDDEN", 403);
      await rejectsMatrix(api.verifyThirdPartySigned(ROOM, { mxid: BOB }, BOB), "M_BAD_JSON", 400);
    });
  });
});
