/**
 * Black-box 3PID flows through the real homeserver app (inject + a real listener for the key
 * fetch) against the hand-written identity server: SyTest 12thirdpartyinvite (non-federation
 * rows), 54identity, and the homeserver parts of issue 9.
 */
import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { IDENTITY_UNBIND_URI, decodeBase64, verifyJsonSignature, verifyXMatrixRequest } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { freePort } from "@beckon/test-support";
import { startFakeIdentityServer, type FakeIdentityServer } from "../identity/testing.js";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../testing.js";

const V3 = "/_matrix/client/v3";

describe("3PID flows through the homeserver", () => {
  let fake: FakeIdentityServer;
  let t: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let closedPort: number;
  let hsUrl: string;

  before(async () => {
    fake = await startFakeIdentityServer();
    closedPort = await freePort();
    t = await startTestHomeserver({
      overrides: {
        identity_servers: { map: { [fake.name]: fake.baseUrl, [`localhost:${closedPort}`]: `http://127.0.0.1:${closedPort}` } },
        outbound: { timeout: "2s" },
        rate_limits: { enabled: false },
      },
    });
    hsUrl = (await t.hs.start({ host: "127.0.0.1", port: 0 })).url;
    alice = await registerUser(t.hs, "alice");
    bob = await registerUser(t.hs, "bob");
  });
  after(async () => {
    await t?.close();
    await fake?.close();
  });
  beforeEach(() => {
    fake.handlers.clear();
    fake.requests.length = 0;
    fake.bindings.clear();
    fake.nullForUnknown = false;
    fake.validKeys.clear();
    fake.validKeys.add(fake.longTerm.publicKey);
    fake.validKeys.add(fake.ephemeral.publicKey);
  });

  const createRoom = async (body: Record<string, unknown> = {}) => {
    const r = await call(t.hs, "POST", `${V3}/createRoom`, { token: alice.token, body: { preset: "private_chat", ...body } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.room_id as string;
  };
  const invite3pid = (roomId: string, address: string, extra: Record<string, unknown> = {}, who = alice) =>
    call(t.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, {
      token: who.token,
      body: { id_server: fake.name, id_access_token: "swordfish", medium: "email", address, ...extra },
    });
  const member = (roomId: string, userId: string, who = alice) => call(t.hs, "GET", `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`, { token: who.token });
  const tpiEvents = async (roomId: string) => {
    const r = await call(t.hs, "GET", `${V3}/rooms/${enc(roomId)}/state`, { token: alice.token });
    assert.equal(r.status, 200);
    return (r.body as unknown as { type: string; state_key: string; content: Record<string, unknown>; sender: string }[]).filter((e) => e.type === "m.room.third_party_invite");
  };
  const onbind = async (roomId: string, token: string, o: { which?: "long" | "ephemeral"; method?: "POST" | "PUT"; mxid?: string } = {}) => {
    const mxid = o.mxid ?? bob.userId;
    const signed = await fake.sign({ mxid, token }, o.which ?? "long");
    const body = { medium: "email", address: "bob@example.org", mxid, invites: [{ medium: "email", address: "bob@example.org", mxid, room_id: roomId, sender: alice.userId, token, signed }] };
    return call(t.hs, o.method ?? "POST", "/_matrix/federation/v1/3pid/onbind", { body });
  };

  test("Can invite existing 3pid (lookup hit → ordinary invite)", async () => {
    const roomId = await createRoom();
    fake.bind("email", "bob@example.org", bob.userId);
    const r = await invite3pid(roomId, "bob@example.org");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const m = await member(roomId, bob.userId);
    assert.equal(m.body.membership, "invite");
    const lookup = fake.requests.find((x) => x.path.endsWith("/lookup"))!;
    assert.equal(lookup.headers.authorization, "Bearer swordfish");
  });

  test("Can invite existing 3pid in createRoom", async () => {
    fake.bind("email", "bob@example.org", bob.userId);
    const roomId = await createRoom({ invite_3pid: [{ id_server: fake.name, id_access_token: "swordfish", medium: "email", address: "bob@example.org" }] });
    assert.equal((await member(roomId, bob.userId)).body.membership, "invite");
  });

  test("Can invite unbound 3pid: third-party invite, onbind (POST), sync, join", async () => {
    const roomId = await createRoom();
    const r = await invite3pid(roomId, "bob@example.org");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [tpi] = await tpiEvents(roomId);
    assert.ok(tpi);
    assert.equal(tpi.sender, alice.userId);
    assert.equal(tpi.content.public_key, fake.longTerm.publicKey);
    assert.equal(tpi.content.key_validity_url, `${fake.baseUrl}/_matrix/identity/v2/pubkey/isvalid`);
    assert.equal((tpi.content.public_keys as unknown[]).length, 2);
    const ob = await onbind(roomId, tpi.state_key);
    assert.equal(ob.status, 200, JSON.stringify(ob.body));
    const m = await member(roomId, bob.userId);
    assert.equal(m.body.membership, "invite");
    assert.equal((m.body.third_party_invite as { display_name: string }).display_name, "Bob");
    const sync = await call(t.hs, "GET", `${V3}/sync`, { token: bob.token });
    const inv = (sync.body.rooms as { invite: Record<string, { invite_state: { events: { type: string; state_key: string }[] } }> }).invite[roomId];
    assert.ok(inv, "the invite shows in the invitee's sync");
    assert.ok(inv.invite_state.events.some((e) => e.type === "m.room.member" && e.state_key === alice.userId), "invite_state has the inviter's member event");
    const j = await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    assert.equal(j.status, 200, JSON.stringify(j.body));
    assert.equal((await member(roomId, bob.userId)).body.membership, "join");
    // A replayed onbind after the join never re-invites.
    const again = await onbind(roomId, tpi.state_key, { method: "PUT" });
    assert.equal(again.status, 200);
    assert.equal((await member(roomId, bob.userId)).body.membership, "join");
  });

  test("Can accept unbound 3pid invite after inviter leaves", async () => {
    const carol = await registerUser(t.hs, `carol${Date.now()}`);
    const roomId = await createRoom({ preset: "public_chat" });
    assert.equal((await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: carol.token, body: {} })).status, 200);
    assert.equal((await invite3pid(roomId, "bob@example.org")).status, 200);
    const [tpi] = await tpiEvents(roomId);
    assert.equal((await call(t.hs, "POST", `${V3}/rooms/${enc(roomId)}/leave`, { token: alice.token, body: {} })).status, 200);
    const ob = await onbind(roomId, tpi!.state_key);
    assert.equal(ob.status, 200);
    const m = await member(roomId, bob.userId, carol);
    assert.equal(m.body.membership, "invite");
    assert.equal((await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: {} })).status, 200);
    assert.equal((await member(roomId, bob.userId, carol)).body.membership, "join");
  });

  test("Can accept third party invite with /join (third_party_signed, ephemeral key)", async () => {
    const roomId = await createRoom();
    assert.equal((await invite3pid(roomId, "bob@example.org")).status, 200);
    const [tpi] = await tpiEvents(roomId);
    const signed = await fake.sign({ mxid: bob.userId, sender: alice.userId, token: tpi!.state_key }, "ephemeral");
    const j = await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: { third_party_signed: signed } });
    assert.equal(j.status, 200, JSON.stringify(j.body));
    assert.equal((await member(roomId, bob.userId)).body.membership, "join");
  });

  for (const [name, setup, expectOnbind] of [
    ["wrong but valid signature (keys rotated)", (f: FakeIdentityServer) => ({ ...f, rotated: true }), 200],
    ["valid signature but revoked keys (valid:false)", (f: FakeIdentityServer) => (f.validKeys.clear(), f), 200],
    ["valid signature but unreachable ID server", (f: FakeIdentityServer) => (f.handlers.set("/_matrix/identity/v2/pubkey/isvalid", () => new Promise<void>(() => {})), f), 502],
  ] as const) {
    test(`3pid invite join with ${name} is rejected`, async () => {
      const roomId = await createRoom();
      assert.equal((await invite3pid(roomId, "bob@example.org")).status, 200);
      const [tpi] = await tpiEvents(roomId);
      const marker = setup(fake) as FakeIdentityServer & { rotated?: boolean };
      let ob;
      if (marker.rotated) {
        const { signJson } = await import("@beckon/protocol");
        const signed = await signJson({ mxid: bob.userId, token: tpi!.state_key }, fake.name, "ed25519:0", new Uint8Array(32).fill(99), nodeCryptoProvider);
        ob = await call(t.hs, "POST", "/_matrix/federation/v1/3pid/onbind", {
          body: { medium: "email", address: "b@x", mxid: bob.userId, invites: [{ medium: "email", address: "b@x", mxid: bob.userId, room_id: roomId, sender: alice.userId, signed }] },
        });
      } else {
        ob = await onbind(roomId, tpi!.state_key);
      }
      assert.equal(ob.status, expectOnbind, JSON.stringify(ob.body));
      const j = await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: {} });
      assert.ok(j.status >= 400 && j.status < 500, `join must fail: ${j.status}`);
      const m = await member(roomId, bob.userId);
      assert.notEqual(m.status, 200);
    });
  }

  test("revoke, then onbind and third_party_signed join are refused", async () => {
    const roomId = await createRoom();
    assert.equal((await invite3pid(roomId, "bob@example.org")).status, 200);
    const [tpi] = await tpiEvents(roomId);
    const rv = await call(t.hs, "PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(tpi!.state_key)}`, { token: alice.token, body: {} });
    assert.equal(rv.status, 200, JSON.stringify(rv.body));
    assert.equal((await onbind(roomId, tpi!.state_key)).status, 200);
    assert.notEqual((await member(roomId, bob.userId)).status, 200);
    const signed = await fake.sign({ mxid: bob.userId, sender: alice.userId, token: tpi!.state_key }, "ephemeral");
    const j = await call(t.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: { third_party_signed: signed } });
    assert.equal(j.status, 403, JSON.stringify(j.body));
  });

  test("exactly once: ten parallel identical 3PID invites → one store-invite, one event", async () => {
    const roomId = await createRoom();
    const before = fake.storeInviteCount;
    const rs = await Promise.all(Array.from({ length: 10 }, () => invite3pid(roomId, "Dora@Example.org")));
    for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(fake.storeInviteCount - before, 1);
    assert.equal((await tpiEvents(roomId)).length, 1);
  });

  test("all or nothing: IS failures → 502/504, no event, no room", async () => {
    const roomId = await createRoom();
    fake.handlers.set("/_matrix/identity/v2/store-invite", (_r, res) => {
      res.writeHead(502).end("bad gateway");
    });
    const r = await invite3pid(roomId, "erin@example.org");
    assert.equal(r.status, 502);
    assert.equal(r.body.errcode, "M_UNKNOWN");
    assert.equal((await tpiEvents(roomId)).length, 0);
    const joinedBefore = (await call(t.hs, "GET", `${V3}/joined_rooms`, { token: alice.token })).body.joined_rooms as string[];
    const cr = await call(t.hs, "POST", `${V3}/createRoom`, {
      token: alice.token,
      body: { invite_3pid: [{ id_server: `localhost:${closedPort}`, id_access_token: "x", medium: "email", address: "erin@example.org" }] },
    });
    assert.equal(cr.status, 502, JSON.stringify(cr.body));
    const joinedAfter = (await call(t.hs, "GET", `${V3}/joined_rooms`, { token: alice.token })).body.joined_rooms as string[];
    assert.deepEqual(joinedAfter, joinedBefore);
  });

  test("client errors: missing id_access_token, untrusted id_server, IS terms not signed", async () => {
    const roomId = await createRoom();
    const missing = await call(t.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: { id_server: fake.name, medium: "email", address: "a@b.c" } });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.errcode, "M_MISSING_PARAM");
    const untrusted = await invite3pid(roomId, "a@b.c", { id_server: "127.0.0.1:1" });
    assert.equal(untrusted.status, 400);
    assert.equal(untrusted.body.errcode, "M_SERVER_NOT_TRUSTED");
    for (const path of ["/_matrix/identity/v2/hash_details", "/_matrix/identity/v2/lookup"]) {
      fake.handlers.set(path, (_r, res) => {
        res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_TERMS_NOT_SIGNED", error: "terms" }));
      });
    }
    const terms = await invite3pid(roomId, "a@b.c");
    assert.equal(terms.status, 403);
    assert.equal(terms.body.errcode, "M_TERMS_NOT_SIGNED");
  });

  test("onbind with one forged, one unknown room, one valid → 200, valid invited", async () => {
    const roomId = await createRoom();
    assert.equal((await invite3pid(roomId, "bob@example.org")).status, 200);
    const [tpi] = await tpiEvents(roomId);
    const { signJson } = await import("@beckon/protocol");
    const forged = await signJson({ mxid: bob.userId, token: tpi!.state_key }, fake.name, "ed25519:0", new Uint8Array(32).fill(98), nodeCryptoProvider);
    const good = await fake.sign({ mxid: bob.userId, token: tpi!.state_key });
    const base = { medium: "email", address: "bob@example.org", mxid: bob.userId, sender: alice.userId, token: tpi!.state_key };
    const r = await call(t.hs, "POST", "/_matrix/federation/v1/3pid/onbind", {
      body: {
        medium: "email",
        address: "bob@example.org",
        mxid: bob.userId,
        invites: [
          { ...base, room_id: roomId, signed: forged },
          { ...base, room_id: "!nowhere:elsewhere.test", signed: good },
          { ...base, room_id: roomId, signed: good },
        ],
      },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await member(roomId, bob.userId)).body.membership, "invite");
  });

  test("account 3PIDs: list, bind (unstable), unbind without id_server, delete with id_server out of band, deactivate", async () => {
    const list = await call(t.hs, "GET", `${V3}/account/3pid`, { token: bob.token });
    assert.deepEqual(list.body, { threepids: [] });

    // The IS checks the HS's X-Matrix signature (destination_is), fetching our key over HTTP.
    const verified: string[] = [];
    fake.handlers.set(IDENTITY_UNBIND_URI, async (r, res) => {
      const keys = (await (await fetch(`${hsUrl}/_matrix/key/v2/server/`)).json()) as { verify_keys: Record<string, { key: string }> };
      try {
        const auth = await verifyXMatrixRequest({
          method: "POST",
          uri: IDENTITY_UNBIND_URI,
          content: r.body,
          authorization: r.headers.authorization,
          ourNames: [fake.name],
          variant: "destination_is",
          getKey: async (_origin, keyId) => keys.verify_keys[keyId]?.key,
        });
        verified.push(`${auth.origin} ${JSON.stringify(r.body)}`);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch (e) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNAUTHORIZED", error: String(e) }));
      }
    });

    const dave = await registerUser(t.hs, `dave${Date.now()}`);
    const bind = await call(t.hs, "POST", "/_matrix/client/unstable/account/3pid/bind", {
      token: dave.token,
      body: { id_server: fake.name, id_access_token: "swordfish", sid: "sid1", client_secret: "12345678901234567890Az.=_-" },
    });
    assert.equal(bind.status, 200, JSON.stringify(bind.body));
    assert.deepEqual(fake.requests.find((x) => x.path.endsWith("/3pid/bind"))!.body, { sid: "sid1", client_secret: "12345678901234567890Az.=_-", mxid: dave.userId });

    const unbind = await call(t.hs, "POST", "/_matrix/client/unstable/account/3pid/unbind", { token: dave.token, body: { medium: "email", address: "bob@example.org" } });
    assert.deepEqual(unbind.body, { id_server_unbind_result: "success" });
    assert.equal(verified.length, 1);
    assert.ok(verified[0]!.startsWith(`${t.hs.serverName} `));

    const none = await call(t.hs, "POST", `${V3}/account/3pid/unbind`, { token: dave.token, body: { medium: "email", address: "bob@example.org" } });
    assert.deepEqual(none.body, { id_server_unbind_result: "no-support" });

    const del = await call(t.hs, "POST", `${V3}/account/3pid/delete`, { token: dave.token, body: { medium: "email", address: "oob@example.org", id_server: fake.name } });
    assert.deepEqual(del.body, { id_server_unbind_result: "success" });
    assert.equal(verified.length, 2);

    await call(t.hs, "POST", "/_matrix/client/unstable/account/3pid/bind", {
      token: dave.token,
      body: { id_server: fake.name, id_access_token: "swordfish", sid: "sid2", client_secret: "secret" },
    });
    const deact = await call(t.hs, "POST", `${V3}/account/deactivate`, {
      token: dave.token,
      body: { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: dave.userId }, password: "correct horse" } },
    });
    assert.equal(deact.status, 200, JSON.stringify(deact.body));
    assert.equal(deact.body.id_server_unbind_result, "success");
    assert.equal(verified.length, 3);
  });

  test("OpenID: request_token, userinfo, another user's token refused", async () => {
    const r = await call(t.hs, "POST", `${V3}/user/${enc(bob.userId)}/openid/request_token`, { token: bob.token, body: {} });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.token_type, "Bearer");
    assert.equal(r.body.matrix_server_name, t.hs.serverName);
    assert.equal(r.body.expires_in, 3600);
    const info = await call(t.hs, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(r.body.access_token as string)}`);
    assert.deepEqual(info, { status: 200, body: { sub: bob.userId } });
    const bad = await call(t.hs, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope");
    assert.equal(bad.status, 401);
    assert.equal(bad.body.errcode, "M_UNKNOWN_TOKEN");
    const missing = await call(t.hs, "GET", "/_matrix/federation/v1/openid/userinfo");
    assert.equal(missing.status, 401);
    const other = await call(t.hs, "POST", `${V3}/user/${enc(alice.userId)}/openid/request_token`, { token: bob.token, body: {} });
    assert.equal(other.status, 403);
    assert.equal(other.body.errcode, "M_FORBIDDEN");
  });

  test("server key with and without trailing slash, self-signed", async () => {
    for (const path of ["/_matrix/key/v2/server", "/_matrix/key/v2/server/"]) {
      const r = await call(t.hs, "GET", path);
      assert.equal(r.status, 200);
      assert.equal(r.body.server_name, t.hs.serverName);
      assert.ok((r.body.valid_until_ts as number) > Date.now());
      assert.deepEqual(r.body.old_verify_keys, {});
      const [[keyId, { key }]] = Object.entries(r.body.verify_keys as Record<string, { key: string }>) as [[string, { key: string }]];
      assert.equal(decodeBase64(key).length, 32);
      assert.ok(await verifyJsonSignature(r.body, t.hs.serverName, keyId, key, nodeCryptoProvider));
    }
  });
});
