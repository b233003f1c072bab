/**
 * The test-only switches (issue 9, DECISIONS.md): with `outbound.allow_private` and
 * `outbound.insecure_skip_tls_verify` on, an unmapped `id_server` on 127.0.0.1 is reached over
 * https with a self-signed certificate (SyTest's mock); with them off (the default) it is
 * refused before any connection, and a bad certificate is never accepted.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { selfSignedCertificate, startFakeIdentityServer, type FakeIdentityServer } from "../identity/testing.js";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver } from "../testing.js";

const V3 = "/_matrix/client/v3";
const cert = selfSignedCertificate();

describe("identity server over https with a self-signed certificate", { skip: "skip" in cert ? cert.skip : false }, () => {
  let fake: FakeIdentityServer;
  const servers: TestHomeserver[] = [];

  before(async () => {
    if ("skip" in cert) return;
    fake = await startFakeIdentityServer({ tls: cert });
  });
  after(async () => {
    for (const s of servers) await s.close();
    await fake?.close();
  });

  async function inviteThrough(outbound: Record<string, unknown>) {
    const t = await startTestHomeserver({ overrides: { outbound: { ...outbound, timeout: "3s" }, rate_limits: { enabled: false } } });
    servers.push(t);
    const alice = await registerUser(t.hs, "alice");
    const bob = await registerUser(t.hs, "bob");
    const room = await call(t.hs, "POST", `${V3}/createRoom`, { token: alice.token, body: { preset: "private_chat" } });
    const roomId = room.body.room_id as string;
    const r = await call(t.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, {
      token: alice.token,
      body: { id_server: fake.name, id_access_token: "swordfish", medium: "email", address: "bob@example.org" },
    });
    return { t, r, roomId, alice, bob };
  }

  test("both switches on: reached as https://<id_server>, and onbind checks the key there too", async () => {
    const { t, r, roomId, alice, bob } = await inviteThrough({ allow_private: true, insecure_skip_tls_verify: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const state = await call(t.hs, "GET", `${V3}/rooms/${enc(roomId)}/state`, { token: alice.token });
    const tpi = (state.body as unknown as { type: string; state_key: string }[]).find((e) => e.type === "m.room.third_party_invite")!;
    const signed = await fake.sign({ mxid: bob.userId, token: tpi.state_key });
    const ob = await call(t.hs, "POST", "/_matrix/federation/v1/3pid/onbind", {
      body: { medium: "email", address: "bob@example.org", mxid: bob.userId, invites: [{ medium: "email", address: "bob@example.org", mxid: bob.userId, room_id: roomId, sender: alice.userId, signed }] },
    });
    assert.equal(ob.status, 200, JSON.stringify(ob.body));
    const m = await call(t.hs, "GET", `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`, { token: alice.token });
    assert.equal(m.body.membership, "invite");
    assert.ok(fake.requests.some((x) => x.path.endsWith("/pubkey/isvalid")));
  });

  test("loopback allowed but certificates checked: the self-signed one is refused → 502", async () => {
    const { r } = await inviteThrough({ allow_private: true, insecure_skip_tls_verify: false });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.errcode, "M_UNKNOWN");
  });

  test("defaults: an unmapped loopback identity server is not trusted, before any connection", async () => {
    const before = fake.requests.length;
    const { r } = await inviteThrough({});
    assert.equal(r.status, 400);
    assert.equal(r.body.errcode, "M_SERVER_NOT_TRUSTED");
    assert.equal(fake.requests.length, before);
  });
});
