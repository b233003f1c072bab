import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupHash } from "@beckon/protocol";
import { MatrixClient, idServerHost } from "./matrix-client.js";
import { IdentityClient, identityBaseUrl, signWithUrl, termsUrls } from "./identity-client.js";
import { ConnectionError, HttpError } from "../http/errors.js";
import { FakeClock } from "../testing/fake-clock.js";
import { FakeFetch, hang, json, networkFailure } from "../testing/fake-fetch.js";

const HS = "http://127.0.0.1:8008";
const IS = "http://127.0.0.1:8090";
const EVENT_ID = "$" + "A".repeat(43);

function matrix(handlers: ConstructorParameters<typeof FakeFetch>[0]) {
  const ff = new FakeFetch(handlers);
  const clock = new FakeClock();
  const client = new MatrixClient({ baseUrl: HS + "/", accessToken: "syt_secret", userId: "@alice:hs", fetch: ff.fetch, clock, random: () => 0 });
  return { ff, clock, client };
}

describe("MatrixClient wire shapes", () => {
  it("encodes every path parameter", async () => {
    const { ff, client } = matrix(() => json(200, { event_id: EVENT_ID }));
    await client.setState("!room/x:hs", "m.room.third_party_invite", "tok/en?#", {});
    await client.sendEvent("!r:hs", "m.room.message", { body: "hi" }, { txnId: "t 1" });
    await client.getStateEvent("!r:hs", "m.room.name").catch(() => undefined);
    assert.deepEqual(
      ff.calls.map((c) => `${c.method} ${c.url.slice(HS.length)}`),
      [
        "PUT /_matrix/client/v3/rooms/!room%2Fx%3Ahs/state/m.room.third_party_invite/tok%2Fen%3F%23",
        "PUT /_matrix/client/v3/rooms/!r%3Ahs/send/m.room.message/t%201",
        "GET /_matrix/client/v3/rooms/!r%3Ahs/state/m.room.name/",
      ],
    );
  });

  it("inviteBy3PID sends the four fields, id_server without scheme", async () => {
    const { ff, client } = matrix([() => json(200, {})]);
    await client.inviteBy3PID("!r:hs", { idServer: "https://id.example.org/", idAccessToken: "ist_1", medium: "email", address: "bob@example.org" });
    assert.equal(ff.calls[0]!.url, `${HS}/_matrix/client/v3/rooms/!r%3Ahs/invite`);
    assert.deepEqual(JSON.parse(ff.calls[0]!.body!), { id_server: "id.example.org", id_access_token: "ist_1", medium: "email", address: "bob@example.org" });
    assert.equal(ff.calls[0]!.headers["authorization"], "Bearer syt_secret");
  });

  it("inviteBy3PID is never resent after a timeout, even when the caller asks for retries", async () => {
    const { ff, clock, client } = matrix(hang);
    const p = client
      .inviteBy3PID("!r:hs", { idServer: "is", idAccessToken: "t", medium: "email", address: "a@b.c" }, { timeoutMs: 100, maxAttempts: 5, idempotent: true, retryOn: () => true })
      .catch((e: unknown) => e);
    await clock.advance(10_000);
    const e = await p;
    assert.ok(e instanceof ConnectionError && e.kind === "timeout");
    assert.equal(ff.calls.length, 1);
  });

  it("inviteBy3PID is retried after a connection refused before sending", async () => {
    const { ff, clock, client } = matrix([
      () => {
        throw networkFailure("ECONNREFUSED");
      },
      () => json(200, {}),
    ]);
    const p = client.inviteBy3PID("!r:hs", { idServer: "is", idAccessToken: "t", medium: "email", address: "a@b.c" });
    await clock.advance(1000);
    assert.deepEqual(await p, {});
    assert.equal(ff.calls.length, 2);
  });

  it("sendEvent is retried with the same transaction ID", async () => {
    const { ff, clock, client } = matrix([() => new Response("", { status: 503 }), () => json(200, { event_id: EVENT_ID })]);
    const p = client.sendMessage("!r:hs", "hello");
    await clock.advance(1000);
    assert.equal((await p).event_id, EVENT_ID);
    assert.equal(ff.calls.length, 2);
    assert.equal(ff.calls[0]!.url, ff.calls[1]!.url);
  });

  it("join sends third_party_signed and via", async () => {
    const { ff, client } = matrix([() => json(200, { room_id: "!r:hs" })]);
    const signed = { sender: "@alice:hs", mxid: "@bob:hs", token: "tok", signatures: { "is:1": { "ed25519:0": "sig" } } };
    await client.join("#room:hs", { via: ["hs"], thirdPartySigned: signed as never });
    assert.equal(ff.calls[0]!.url, `${HS}/_matrix/client/v3/join/%23room%3Ahs?via=hs&server_name=hs`);
    assert.deepEqual(JSON.parse(ff.calls[0]!.body!), { third_party_signed: signed });
  });

  it("a response missing expected keys is an incorrect response", async () => {
    const { client } = matrix([() => json(200, { not_room_id: 1 })]);
    await assert.rejects(client.createRoom(), (e) => e instanceof HttpError && e.kind === "incorrect-response");
  });

  it("revokeThirdPartyInvite sends empty content under the token", async () => {
    const { ff, client } = matrix([() => json(200, { event_id: EVENT_ID })]);
    await client.revokeThirdPartyInvite("!r:hs", "abc");
    assert.equal(ff.calls[0]!.method, "PUT");
    assert.match(ff.calls[0]!.url, /\/state\/m\.room\.third_party_invite\/abc$/);
    assert.equal(ff.calls[0]!.body, "{}");
  });

  it("listPendingThirdPartyInvites finds consumed tokens in history", async () => {
    const state = [
      { type: "m.room.third_party_invite", state_key: "t1", content: { display_name: "a...@b..." }, sender: "@alice:hs", origin_server_ts: 5, event_id: "$1", room_id: "!r:hs" },
      { type: "m.room.third_party_invite", state_key: "t2", content: { display_name: "c...@d..." }, sender: "@alice:hs", origin_server_ts: 6, event_id: "$2", room_id: "!r:hs" },
      { type: "m.room.third_party_invite", state_key: "t3", content: {}, sender: "@alice:hs", origin_server_ts: 7, event_id: "$3", room_id: "!r:hs" },
      { type: "m.room.member", state_key: "@bob:hs", content: { membership: "leave" }, sender: "@bob:hs", origin_server_ts: 9, event_id: "$4", room_id: "!r:hs" },
    ];
    const history = { start: "s", chunk: [{ type: "m.room.member", state_key: "@bob:hs", content: { membership: "invite", third_party_invite: { signed: { token: "t1" } } } }] };
    const { ff, client } = matrix([() => json(200, state), () => json(200, history)]);
    const pending = await client.listPendingThirdPartyInvites("!r:hs");
    assert.deepEqual(pending, [{ token: "t2", displayName: "c...@d...", sender: "@alice:hs", invitedAt: 6, eventId: "$2" }]);
    assert.match(ff.calls[1]!.url, /messages\?dir=b&limit=100&filter=/);
  });

  it("register answers the user-interactive-auth challenge", async () => {
    const { ff, client } = matrix([
      () => json(401, { flows: [{ stages: ["m.login.dummy"] }], session: "S1" }),
      () => json(200, { user_id: "@new:hs", access_token: "syt_new", device_id: "D" }),
    ]);
    await client.register({ username: "new", password: "pw" });
    assert.deepEqual(JSON.parse(ff.calls[1]!.body!).auth, { type: "m.login.dummy", session: "S1" });
    assert.equal(client.accessToken, "syt_new");
    assert.equal(client.userId, "@new:hs");
  });
});

describe("IdentityClient", () => {
  function identity(handlers: ConstructorParameters<typeof FakeFetch>[0]) {
    const ff = new FakeFetch(handlers);
    return { ff, is: new IdentityClient({ baseUrl: IS, accessToken: "ist_secret", fetch: ff.fetch, clock: new FakeClock() }) };
  }

  it("normalises server names and picks terms URLs", () => {
    assert.equal(identityBaseUrl("id.example.org"), "https://id.example.org");
    assert.equal(identityBaseUrl("http://127.0.0.1:8090/"), "http://127.0.0.1:8090");
    assert.equal(idServerHost("http://127.0.0.1:8090"), "127.0.0.1:8090");
    assert.deepEqual(termsUrls({ policies: { a: { version: "1", fr: { url: "https://fr" }, en: { url: "https://en" } }, b: { version: "2", de: { url: "https://de" } } } }), ["https://en", "https://de"]);
  });

  it("hashes lookups with sha256, caches hash_details, returns input order", async () => {
    const pepper = "matrixrocks";
    const h = lookupHash("carol@example.org", "email", pepper);
    assert.equal(h, "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M");
    const { ff, is } = identity((call) =>
      call.url.endsWith("/hash_details") ? json(200, { lookup_pepper: pepper, algorithms: ["none", "sha256"] }) : json(200, { mappings: { [h]: "@carol:hs" } }),
    );
    assert.deepEqual(await is.lookup([{ medium: "email", address: "nobody@x.org" }, { medium: "email", address: " Carol@Example.ORG" }]), [undefined, "@carol:hs"]);
    await is.lookup([{ medium: "email", address: "carol@example.org" }]);
    assert.deepEqual(ff.calls.map((c) => c.url.slice(IS.length)), ["/_matrix/identity/v2/hash_details", "/_matrix/identity/v2/lookup", "/_matrix/identity/v2/lookup"]);
    assert.equal(JSON.parse(ff.calls[1]!.body!).algorithm, "sha256");
    assert.equal(ff.calls[1]!.headers["authorization"], "Bearer ist_secret");
  });

  it("registerWithOpenId posts the OpenID object and keeps the token", async () => {
    const { ff, is } = identity([() => json(200, { token: "ist_new" })]);
    const oid = { access_token: "oid", token_type: "Bearer", matrix_server_name: "hs", expires_in: 3600 };
    assert.equal(await is.registerWithOpenId(oid), "ist_new");
    assert.deepEqual(JSON.parse(ff.calls[0]!.body!), oid);
    assert.equal(ff.calls[0]!.headers["authorization"], undefined);
    assert.equal(is.accessToken, "ist_new");
  });

  it("signWithUrl posts to the mail's URL with mxid appended, unauthenticated", async () => {
    const ff = new FakeFetch([() => json(200, { mxid: "@bob:hs", sender: "@alice:hs", token: "tok", signatures: { is: { "ed25519:0": "s" } } })]);
    const { transport } = new MatrixClient({ baseUrl: HS, accessToken: "syt_x", fetch: ff.fetch });
    await signWithUrl(transport, `${IS}/_matrix/identity/v2/sign-ed25519?token=tok&private_key=pk`, "@bob:hs");
    assert.equal(ff.calls[0]!.url, `${IS}/_matrix/identity/v2/sign-ed25519?token=tok&private_key=pk&mxid=%40bob%3Ahs`);
    assert.equal(ff.calls[0]!.headers["authorization"], undefined);
  });

  it("email validation and pubkey checks use the spec's shapes", async () => {
    const { ff, is } = identity([() => json(200, { sid: "s1" }), () => json(200, { success: true }), () => json(200, { valid: true })]);
    await is.requestEmailToken({ email: "a@b.c", clientSecret: "cs", sendAttempt: 1 });
    await is.submitEmailToken({ sid: "s1", clientSecret: "cs", token: "123" });
    assert.equal(await is.isEphemeralPubkeyValid("k+/="), true);
    assert.deepEqual(JSON.parse(ff.calls[0]!.body!), { client_secret: "cs", email: "a@b.c", send_attempt: 1 });
    assert.deepEqual(JSON.parse(ff.calls[1]!.body!), { sid: "s1", client_secret: "cs", token: "123" });
    assert.equal(ff.calls[2]!.url, `${IS}/_matrix/identity/v2/pubkey/ephemeral/isvalid?public_key=k%2B%2F%3D`);
  });
});
