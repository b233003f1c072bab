/** Every endpoint and every error of the identity server, through inject() (SQLite; core flow on PostgreSQL too). */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { decodeBase64, lookupHash, verifyJsonSignature } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import type { FakeClock } from "@beckon/server-kit";
import { startFakeHomeserver, type FakeHomeserver } from "../testing/fake-homeserver.js";
import { startTestServer, type TestServer } from "../testing/harness.js";
import { engines } from "../testing/databases.js";

const V2 = "/_matrix/identity/v2";
const V1 = "/_matrix/identity/api/v1";

interface Res {
  status: number;
  body: Record<string, unknown>;
  text: string;
  headers: Record<string, unknown>;
}

function client(t: TestServer) {
  return async (method: "GET" | "POST" | "OPTIONS", url: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Res> => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const r = await t.is.app.inject({ method, url, headers, ...(opts.body !== undefined ? { payload: JSON.stringify(opts.body) } : {}) });
    let body: Record<string, unknown> = {};
    try {
      body = r.json();
    } catch {
      /* html */
    }
    return { status: r.statusCode, body, text: r.body, headers: r.headers };
  };
}

async function validateEmail(call: ReturnType<typeof client>, t: TestServer, token: string, email: string, secret = "secret123") {
  const r = await call("POST", `${V2}/validate/email/requestToken`, { token, body: { client_secret: secret, email, send_attempt: 1 } });
  assert.equal(r.status, 200, r.text);
  const sid = r.body.sid as string;
  const mail = t.mail.mails.filter((m) => m.kind === "validation").at(-1);
  assert.ok(mail);
  const s = await call("POST", `${V2}/validate/email/submitToken`, { token, body: { sid, client_secret: secret, token: mail.vars.token } });
  assert.equal(s.status, 200, s.text);
  return sid;
}

describe("identity server endpoints (sqlite)", () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  let call: ReturnType<typeof client>;
  let alice: string;
  let bob: string;
  const aliceId = () => `@alice:${hs.serverName}`;
  const bobId = () => `@bob:${hs.serverName}`;

  before(async () => {
    hs = await startFakeHomeserver();
    t = await startTestServer({ hs });
    call = client(t);
    alice = await t.register(aliceId());
    bob = await t.register(bobId());
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("discovery: versions, v2 and v1 status, v1 lookup/bind/store-invite are not served", async () => {
    const v = await call("GET", "/_matrix/identity/versions");
    assert.ok((v.body.versions as string[]).includes("v1.1"));
    assert.deepEqual((await call("GET", V2)).body, {});
    assert.deepEqual((await call("GET", V1)).body, {});
    for (const p of ["lookup", "bulk_lookup", "3pid/bind", "store-invite"]) {
      const r = await call("POST", `${V1}/${p}`, { body: {} });
      assert.equal(r.status, 404, p);
      assert.equal(r.body.errcode, "M_UNRECOGNIZED");
    }
  });

  it("CORS preflight and headers", async () => {
    const r = await call("OPTIONS", `${V2}/lookup`, { headers: { origin: "https://app.example", "access-control-request-method": "POST" } });
    assert.equal(r.status, 204);
    assert.equal(r.headers["access-control-allow-origin"], "*");
  });

  it("account/register: both token fields; bad token, bad server name, foreign sub, unreachable HS", async () => {
    const ok = await call("POST", `${V2}/account/register`, { body: hs.issueOpenId(aliceId()) });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.token, ok.body.access_token);
    const bad = await call("POST", `${V2}/account/register`, { body: { access_token: "nope", token_type: "Bearer", matrix_server_name: hs.serverName, expires_in: 3600 } });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.errcode, "M_UNAUTHORIZED");
    const badName = await call("POST", `${V2}/account/register`, { body: { access_token: "x", token_type: "Bearer", matrix_server_name: "example.com#", expires_in: 1 } });
    assert.equal(badName.status, 400);
    assert.equal(badName.body.errcode, "M_INVALID_PARAM");
    const foreign = hs.issueOpenId("@mallory:elsewhere.example");
    const f = await call("POST", `${V2}/account/register`, { body: foreign });
    assert.equal(f.status, 401);
    // Not in the map: discovery would go to 127.0.0.1:1 over https, a loopback address → blocked, 502.
    const unreachable = await call("POST", `${V2}/account/register`, { body: { access_token: "x", token_type: "Bearer", matrix_server_name: "127.0.0.1:1", expires_in: 1 } });
    assert.equal(unreachable.status, 502);
    assert.match(String(unreachable.body.error), /contact/);
    const missing = await call("POST", `${V2}/account/register`, { body: { token_type: "Bearer" } });
    assert.equal(missing.status, 400);
  });

  it("auth: Bearer or ?access_token=, 401 M_UNAUTHORIZED otherwise, logout kills the token", async () => {
    assert.deepEqual((await call("GET", `${V2}/account`, { token: alice })).body, { user_id: aliceId() });
    assert.equal((await call("GET", `${V2}/account?access_token=${alice}`)).body.user_id, aliceId());
    const none = await call("GET", `${V2}/account`);
    assert.equal(none.status, 401);
    assert.equal(none.body.errcode, "M_UNAUTHORIZED");
    assert.equal((await call("GET", `${V2}/account`, { token: "bogus" })).status, 401);
    const extra = await t.register(aliceId());
    assert.equal((await call("POST", `${V2}/account/logout`, { token: extra })).status, 200);
    assert.equal((await call("GET", `${V2}/account`, { token: extra })).body.errcode, "M_UNAUTHORIZED");
    assert.equal((await call("GET", `${V2}/account`, { token: alice })).status, 200, "other tokens still work");
  });

  it("terms: none configured → empty policies, nothing blocks", async () => {
    assert.deepEqual((await call("GET", `${V2}/terms`)).body, { policies: {} });
  });

  it("hash_details and lookup: check value, wrong pepper, unknown algorithm, none, omissions", async () => {
    const hd = await call("GET", `${V2}/hash_details`, { token: alice });
    assert.deepEqual(hd.body, { lookup_pepper: "matrixrocks", algorithms: ["sha256", "none"] });
    const sid = await validateEmail(call, t, bob, "Carol@Example.org", "carolsecret");
    assert.equal((await call("POST", `${V2}/3pid/bind`, { token: bob, body: { sid, client_secret: "carolsecret", mxid: bobId() } })).status, 200);
    const check = "8tKbIM8ECZCrzWaEDwSJrS5_l9pNMEEMYFGYNe1qx5M";
    assert.equal(lookupHash("carol@example.org", "email", "matrixrocks"), check);
    const r = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "matrixrocks", addresses: [check, "unknownhash"] } });
    assert.deepEqual(r.body, { mappings: { [check]: bobId() } });
    const wrong = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "nope", addresses: [check] } });
    assert.equal(wrong.status, 400);
    assert.deepEqual(wrong.body, { errcode: "M_INVALID_PEPPER", error: wrong.body.error, algorithm: "sha256", lookup_pepper: "matrixrocks" });
    const algo = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "md5", pepper: "matrixrocks", addresses: [] } });
    assert.equal(algo.status, 400);
    assert.equal(algo.body.errcode, "M_INVALID_PARAM");
    const plain = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "none", pepper: "matrixrocks", addresses: ["CAROL@example.org email", "x@y.z email"] } });
    assert.deepEqual(plain.body, { mappings: { "CAROL@example.org email": bobId() } });
    const noAuth = await call("POST", `${V2}/lookup`, { body: { algorithm: "sha256", pepper: "matrixrocks", addresses: [] } });
    assert.equal(noAuth.status, 401);
  });

  it("lookup of 10 000 addresses in one request", async () => {
    const addresses = Array.from({ length: 10_000 }, (_, i) => lookupHash(`user${i}@bulk.example`, "email", "matrixrocks"));
    addresses[1234] = lookupHash("carol@example.org", "email", "matrixrocks");
    const r = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "matrixrocks", addresses } });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.values(r.body.mappings as object), [bobId()]);
    const tooMany = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "matrixrocks", addresses: [...addresses, "x"] } });
    assert.equal(tooMany.status, 400);
  });

  it("requestToken: grammar, string send_attempt, repeats send nothing, invalid email sends nothing", async () => {
    const before = t.mail.mails.length;
    const bad = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "abc", email: "not@an@email@address", send_attempt: 1 } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, "M_INVALID_EMAIL");
    const named = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "abc", email: "Naughty Nigel <perfectly.valid@mail.address>", send_attempt: 1 } });
    assert.equal(named.body.errcode, "M_INVALID_EMAIL");
    const secret = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "bad secret!", email: "a@b.example", send_attempt: 1 } });
    assert.equal(secret.status, 400);
    assert.equal(secret.body.errcode, "M_INVALID_PARAM");
    assert.equal(t.mail.mails.length, before);
    const first = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "abc", email: "dave@example.org", send_attempt: "1" } });
    assert.equal(first.status, 200);
    const again = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "abc", email: "dave@example.org", send_attempt: 1 } });
    assert.equal(again.body.sid, first.body.sid);
    assert.equal(t.mail.mails.length, before + 1);
    const next = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "abc", email: "dave@example.org", send_attempt: 2 } });
    assert.equal(next.body.sid, first.body.sid);
    assert.equal(t.mail.mails.length, before + 2);
    const m = t.mail.mails.at(-1)!;
    assert.equal(m.to, "dave@example.org");
    assert.equal(m.template, "validation");
    assert.match(String(m.vars.link), /^http:\/\/127\.0\.0\.1:8090\/_matrix\/identity\/v2\/validate\/email\/submitToken\?token=\w{32}&client_secret=abc&sid=/);
  });

  it("submitToken (POST and GET), getValidated3pid, errors and expiry", async () => {
    const rt = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "s1", email: "erin@example.org", send_attempt: 1 } });
    const sid = rt.body.sid as string;
    const token = t.mail.mails.at(-1)!.vars.token as string;
    const notYet = await call("GET", `${V2}/3pid/getValidated3pid?sid=${sid}&client_secret=s1`, { token: alice });
    assert.equal(notYet.status, 400);
    assert.equal(notYet.body.errcode, "M_SESSION_NOT_VALIDATED");
    const unknown = await call("GET", `${V2}/3pid/getValidated3pid?sid=nope&client_secret=s1`, { token: alice });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, "M_NO_VALID_SESSION");
    const wrongTok = await call("POST", `${V2}/validate/email/submitToken`, { token: alice, body: { sid, client_secret: "s1", token: "wrong" } });
    assert.equal(wrongTok.status, 400);
    assert.equal(wrongTok.body.errcode, "M_TOKEN_INCORRECT");
    const wrongSecret = await call("POST", `${V2}/validate/email/submitToken`, { token: alice, body: { sid, client_secret: "s2", token } });
    assert.equal(wrongSecret.body.errcode, "M_INVALID_PARAM");
    const noSession = await call("POST", `${V2}/validate/email/submitToken`, { token: alice, body: { sid: "nope", client_secret: "s1", token } });
    assert.equal(noSession.body.errcode, "M_INVALID_PARAM");
    const noAuth = await call("POST", `${V2}/validate/email/submitToken`, { body: { sid, client_secret: "s1", token } });
    assert.equal(noAuth.status, 401);
    // The mail link: GET without a token (NOTSPEC, DECISIONS), HTML page.
    const page = await call("GET", `${V1}/validate/email/submitToken?sid=${sid}&client_secret=s1&token=${token}`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /text\/html/);
    assert.match(page.text, /verified/);
    const bad = await call("GET", `${V2}/validate/email/submitToken?sid=${sid}&client_secret=s1&token=nope`);
    assert.equal(bad.status, 400);
    assert.match(bad.text, /incorrect/);
    const got = await call("GET", `${V2}/3pid/getValidated3pid?sid=${sid}&client_secret=s1`, { token: alice });
    assert.deepEqual(got.body, { medium: "email", address: "erin@example.org", validated_at: t.clock.now() });
    (t.clock as FakeClock).advance(25 * 3600_000);
    const expired = await call("GET", `${V2}/3pid/getValidated3pid?sid=${sid}&client_secret=s1`, { token: alice });
    assert.equal(expired.body.errcode, "M_SESSION_EXPIRED");
    const expiredSubmit = await call("POST", `${V2}/validate/email/submitToken`, { token: alice, body: { sid, client_secret: "s1", token } });
    assert.equal(expiredSubmit.body.errcode, "M_SESSION_EXPIRED");
  });

  it("GET submitToken redirects to a validated next_link (http/https only)", async () => {
    const rt = await call("POST", `${V2}/validate/email/requestToken`, {
      token: alice,
      body: { client_secret: "nl", email: "frank@example.org", send_attempt: 1, next_link: "https://app.example/done" },
    });
    const token = t.mail.mails.at(-1)!.vars.token as string;
    const r = await call("GET", `${V2}/validate/email/submitToken?sid=${rt.body.sid}&client_secret=nl&token=${token}`);
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, "https://app.example/done");
    const js = await call("POST", `${V2}/validate/email/requestToken`, {
      token: alice,
      body: { client_secret: "nl2", email: "frank@example.org", send_attempt: 1, next_link: "javascript:alert(1)" },
    });
    const tok2 = t.mail.mails.at(-1)!.vars.token as string;
    assert.equal((await call("GET", `${V2}/validate/email/submitToken?sid=${js.body.sid}&client_secret=nl2&token=${tok2}`)).status, 200);
  });

  it("msisdn: requestToken with a development SMS sender, submitToken", async () => {
    const bad = await call("POST", `${V2}/validate/msisdn/requestToken`, { token: alice, body: { client_secret: "m1", country: "GB", phone_number: "12", send_attempt: 1 } });
    assert.equal(bad.body.errcode, "M_INVALID_ADDRESS");
    const r = await call("POST", `${V2}/validate/msisdn/requestToken`, { token: alice, body: { client_secret: "m1", country: "GB", phone_number: "07700 900123", send_attempt: "1" } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.msisdn, "447700900123");
    const wrong = await call("POST", `${V2}/validate/msisdn/submitToken`, { token: alice, body: { sid: r.body.sid, client_secret: "m1", token: "000000x" } });
    assert.equal(wrong.body.errcode, "M_TOKEN_INCORRECT");
  });

  it("bind: only the account's own mxid; the association is signed with ed25519:0", async () => {
    const sid = await validateEmail(call, t, alice, "alice@example.org", "alicesecret");
    const other = await call("POST", `${V2}/3pid/bind`, { token: alice, body: { sid, client_secret: "alicesecret", mxid: bobId() } });
    assert.equal(other.status, 403);
    assert.equal(other.body.errcode, "M_UNAUTHORIZED");
    const r = await call("POST", `${V2}/3pid/bind`, { token: alice, body: { sid, client_secret: "alicesecret", mxid: aliceId() } });
    assert.equal(r.status, 200);
    assert.equal(r.body.address, "alice@example.org");
    assert.equal(r.body.medium, "email");
    assert.equal(r.body.mxid, aliceId());
    for (const k of ["not_before", "not_after", "ts"]) assert.equal(typeof r.body[k], "number");
    const pk = (await call("GET", `${V2}/pubkey/ed25519:0`)).body.public_key as string;
    assert.ok(await verifyJsonSignature(r.body, "is.test", "ed25519:0", pk, nodeCryptoProvider));
    const notValidated = await call("POST", `${V2}/validate/email/requestToken`, { token: alice, body: { client_secret: "nv", email: "nv@example.org", send_attempt: 1 } });
    const nv = await call("POST", `${V2}/3pid/bind`, { token: alice, body: { sid: notValidated.body.sid, client_secret: "nv", mxid: aliceId() } });
    assert.equal(nv.body.errcode, "M_SESSION_NOT_VALIDATED");
  });

  it("unbind with sid + client_secret; mismatched 3PID 403; no credentials 401", async () => {
    const sid = await validateEmail(call, t, alice, "gone@example.org", "gonesecret");
    await call("POST", `${V2}/3pid/bind`, { token: alice, body: { sid, client_secret: "gonesecret", mxid: aliceId() } });
    const h = lookupHash("gone@example.org", "email", "matrixrocks");
    const look = () => call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "matrixrocks", addresses: [h] } });
    assert.equal((await look()).body.mappings && Object.keys((await look()).body.mappings as object).length, 1);
    const mismatch = await call("POST", `${V2}/3pid/unbind`, { body: { mxid: aliceId(), threepid: { medium: "email", address: "other@example.org" }, sid, client_secret: "gonesecret" } });
    assert.equal(mismatch.status, 403);
    const none = await call("POST", `${V2}/3pid/unbind`, { body: { mxid: aliceId(), threepid: { medium: "email", address: "gone@example.org" } } });
    assert.equal(none.status, 401);
    const ok = await call("POST", `${V2}/3pid/unbind`, { body: { mxid: aliceId(), threepid: { medium: "email", address: "gone@example.org" }, sid, client_secret: "gonesecret" } });
    assert.equal(ok.status, 200);
    assert.deepEqual((await look()).body.mappings, {});
  });

  it("store-invite: sender check, address checks, M_THREEPID_IN_USE with mxid and no mail, response shape and mail", async () => {
    const body = {
      medium: "email",
      address: "Newbie@Example.org",
      room_id: "!room:hs.example",
      sender: aliceId(),
      room_alias: "#room:hs.example",
      room_avatar_url: "",
      room_join_rules: "invite",
      room_name: "The Room",
      sender_display_name: "Alice",
      sender_avatar_url: "",
    };
    const notSender = await call("POST", `${V2}/store-invite`, { token: bob, body });
    assert.equal(notSender.status, 403);
    assert.equal(notSender.body.errcode, "M_UNAUTHORIZED");
    for (const address of ["not@an@email@address", "Naughty Nigel <perfectly.valid@mail.address>"]) {
      const r = await call("POST", `${V2}/store-invite`, { token: alice, body: { ...body, address } });
      assert.equal(r.status, 400);
      assert.equal(r.body.errcode, "M_INVALID_EMAIL");
    }
    const msisdn = await call("POST", `${V2}/store-invite`, { token: alice, body: { ...body, medium: "msisdn", address: "447700900123" } });
    assert.equal(msisdn.body.errcode, "M_UNRECOGNIZED");
    const mailsBefore = t.mail.mails.length;
    const bound = await call("POST", `${V2}/store-invite`, { token: alice, body: { ...body, address: "ALICE@example.org" } });
    assert.equal(bound.status, 400);
    assert.equal(bound.body.errcode, "M_THREEPID_IN_USE");
    assert.equal(bound.body.mxid, aliceId());
    assert.equal(t.mail.mails.length, mailsBefore, "no mail for a bound address");
    const noAuth = await call("POST", `${V2}/store-invite`, { body });
    assert.equal(noAuth.status, 401);

    const r = await call("POST", `${V2}/store-invite`, { token: alice, body });
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.token as string, /^[A-Za-z]{128}$/);
    const keys = r.body.public_keys as { public_key: string; key_validity_url: string }[];
    const longTerm = (await call("GET", `${V2}/pubkey/ed25519:0`)).body.public_key;
    assert.equal(r.body.public_key, longTerm);
    assert.deepEqual(keys[0], { public_key: longTerm, key_validity_url: "http://127.0.0.1:8090/_matrix/identity/v2/pubkey/isvalid" });
    assert.equal(keys[1]?.key_validity_url, "http://127.0.0.1:8090/_matrix/identity/v2/pubkey/ephemeral/isvalid");
    assert.match(keys[1]!.public_key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(r.body.display_name, "New...@Exa...");
    const mail = t.mail.mails.at(-1)!;
    assert.equal(t.mail.mails.length, mailsBefore + 1);
    assert.equal(mail.to, "newbie@example.org");
    assert.equal(mail.template, "invite");
    assert.equal(mail.vars.room_name, "The Room");
    assert.equal(mail.vars.sender, aliceId());
    assert.equal(mail.vars.sender_display_name, "Alice");
    const pk = mail.vars.ephemeral_private_key as string;
    assert.equal(nodeCryptoProvider.ed25519PublicKeySync(decodeBase64(pk)).length, 32);
    assert.equal(mail.vars.sign_url, `http://127.0.0.1:8090/_matrix/identity/v2/sign-ed25519?token=${r.body.token}&private_key=${pk}`);
    assert.match(String(mail.vars.join_link), /^https:\/\/app\.element\.io\/#\/room\/%23room%3Ahs\.example\?email=newbie%40example\.org&signurl=http/);

    // Same room, sender, medium and address within the window: same token and keys, no mail.
    const dup = await call("POST", `${V2}/store-invite`, { token: alice, body });
    assert.deepEqual(dup.body, r.body);
    assert.equal(t.mail.mails.length, mailsBefore + 1);
    (t.clock as FakeClock).advance(11 * 60_000);
    const later = await call("POST", `${V2}/store-invite`, { token: alice, body });
    assert.notEqual(later.body.token, r.body.token);
    assert.equal(t.mail.mails.length, mailsBefore + 2);
  });

  it("sign-ed25519: query (v1, no auth) or body (v2); unknown token 404 M_UNRECOGNIZED", async () => {
    const inv = await call("POST", `${V2}/store-invite`, { token: alice, body: { medium: "email", address: "signer@example.org", room_id: "!r:hs.example", sender: aliceId() } });
    const mail = t.mail.mails.at(-1)!;
    const pk = mail.vars.ephemeral_private_key as string;
    const eph = (inv.body.public_keys as { public_key: string }[])[1]!.public_key;
    const q = await call("POST", `${V1}/sign-ed25519?token=${inv.body.token}&private_key=${pk}&mxid=${encodeURIComponent(bobId())}`);
    assert.equal(q.status, 200, q.text);
    assert.equal(q.body.mxid, bobId());
    assert.equal(q.body.sender, aliceId());
    assert.equal(q.body.token, inv.body.token);
    assert.ok(await verifyJsonSignature(q.body, "is.test", "ed25519:0", eph, nodeCryptoProvider), "verifies with the ephemeral key");
    const viaSignUrl = await call("POST", `${String(mail.vars.sign_url).replace("http://127.0.0.1:8090", "")}&mxid=${encodeURIComponent(bobId())}`);
    assert.equal(viaSignUrl.status, 200);
    const b = await call("POST", `${V2}/sign-ed25519`, { body: { token: inv.body.token, private_key: pk, mxid: bobId() } });
    assert.deepEqual(b.body, q.body);
    const unknown = await call("POST", `${V2}/sign-ed25519`, { body: { token: "nope", private_key: pk, mxid: bobId() } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, "M_UNRECOGNIZED");
    const missing = await call("POST", `${V2}/sign-ed25519`, { body: { token: inv.body.token } });
    assert.equal(missing.status, 400);
  });

  it("pubkeys: ed25519:0, unknown id 404 M_NOT_FOUND, isvalid in both alphabets, ephemeral isvalid, v1 paths", async () => {
    const pk = (await call("GET", `${V1}/pubkey/ed25519:0`)).body.public_key as string;
    assert.match(pk, /^[A-Za-z0-9+/]{43}$/);
    const nf = await call("GET", `${V2}/pubkey/ed25519:1`);
    assert.equal(nf.status, 404);
    assert.equal(nf.body.errcode, "M_NOT_FOUND");
    const urlSafe = pk.replace(/\+/g, "-").replace(/\//g, "_");
    for (const form of [pk, urlSafe, `${pk}=`]) {
      assert.deepEqual((await call("GET", `${V2}/pubkey/isvalid?public_key=${encodeURIComponent(form)}`)).body, { valid: true });
    }
    assert.deepEqual((await call("GET", `${V1}/pubkey/isvalid?public_key=AAAA`)).body, { valid: false });
    const inv = await call("POST", `${V2}/store-invite`, { token: alice, body: { medium: "email", address: "keys@example.org", room_id: "!k:hs.example", sender: aliceId() } });
    const eph = (inv.body.public_keys as { public_key: string }[])[1]!.public_key;
    const std = eph.replace(/-/g, "+").replace(/_/g, "/");
    for (const form of [eph, std]) {
      assert.deepEqual((await call("GET", `${V1}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(form)}`)).body, { valid: true });
    }
    assert.deepEqual((await call("GET", `${V2}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(pk)}`)).body, { valid: false });
  });

  it("request limits: body too large 413, bad JSON 400, metrics endpoint", async () => {
    const big = await t.is.app.inject({ method: "POST", url: `${V2}/lookup`, headers: { authorization: `Bearer ${alice}` }, payload: "x".repeat(2 * 1024 * 1024) });
    assert.equal(big.statusCode, 413);
    const bad = await t.is.app.inject({ method: "POST", url: `${V2}/lookup`, headers: { authorization: `Bearer ${alice}` }, payload: "{" });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().errcode, "M_NOT_JSON");
    const m = await t.is.app.inject({ method: "GET", url: "/metrics" });
    assert.equal(m.statusCode, 200);
    assert.match(m.body, /beckon_is_invites_stored_total/);
    assert.match(m.body, /beckon_is_lookup_addresses_total/);
  });
});

describe("identity server: terms gating", () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  before(async () => {
    hs = await startFakeHomeserver();
    t = await startTestServer({
      hs,
      overrides: {
        terms: {
          privacy: { version: "1.0", en: { name: "Privacy", url: "https://is.example/privacy-en" }, fr: { name: "Confidentialité", url: "https://is.example/privacy-fr" } },
          tos: { version: "2.0", en: { name: "Terms", url: "https://is.example/tos-en" } },
        },
      },
    });
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("403 M_TERMS_NOT_SIGNED until every policy is accepted in some language; acceptances accumulate", async () => {
    const call = client(t);
    const tok = await t.register(`@carl:${hs.serverName}`);
    const terms = await call("GET", `${V2}/terms`);
    assert.deepEqual(Object.keys(terms.body.policies as object).sort(), ["privacy", "tos"]);
    assert.equal(((terms.body.policies as Record<string, Record<string, unknown>>).privacy)?.version, "1.0");
    const blocked = await call("GET", `${V2}/account`, { token: tok });
    assert.equal(blocked.status, 403);
    assert.equal(blocked.body.errcode, "M_TERMS_NOT_SIGNED");
    assert.equal((await call("GET", `${V2}/hash_details`, { token: tok })).body.errcode, "M_TERMS_NOT_SIGNED");
    const unknownUrl = await call("POST", `${V2}/terms`, { token: tok, body: { user_accepts: ["https://evil.example"] } });
    assert.equal(unknownUrl.status, 400);
    assert.equal((await call("POST", `${V2}/terms`, { token: tok, body: { user_accepts: ["https://is.example/privacy-fr"] } })).status, 200);
    assert.equal((await call("GET", `${V2}/account`, { token: tok })).status, 403);
    assert.equal((await call("POST", `${V2}/terms`, { token: tok, body: { user_accepts: ["https://is.example/tos-en"] } })).status, 200);
    assert.equal((await call("GET", `${V2}/account`, { token: tok })).status, 200);
    // Logout is not blocked by terms.
    const other = await t.register(`@dora:${hs.serverName}`);
    assert.equal((await call("POST", `${V2}/account/logout`, { token: other })).status, 200);
  });
});

describe("identity server: rate limits", () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  before(async () => {
    hs = await startFakeHomeserver();
    t = await startTestServer({
      hs,
      overrides: { rate_limits: { enabled: true, request_token_address: { per_second: 0.001, burst: 2 }, store_invite_sender: { per_second: 0.001, burst: 2 } } },
    });
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("requestToken per email and store-invite per sender answer 429 M_LIMIT_EXCEEDED with retry_after_ms; repeats do not count", async () => {
    const call = client(t);
    const tok = await t.register(`@rl:${hs.serverName}`);
    for (let i = 1; i <= 2; i++) {
      assert.equal((await call("POST", `${V2}/validate/email/requestToken`, { token: tok, body: { client_secret: "c", email: "rl@example.org", send_attempt: i } })).status, 200);
    }
    const limited = await call("POST", `${V2}/validate/email/requestToken`, { token: tok, body: { client_secret: "c", email: "rl@example.org", send_attempt: 3 } });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.errcode, "M_LIMIT_EXCEEDED");
    assert.equal(typeof limited.body.retry_after_ms, "number");
    const inv = (n: number) => ({ medium: "email", address: `i${n}@example.org`, room_id: "!r:hs.example", sender: `@rl:${hs.serverName}` });
    assert.equal((await call("POST", `${V2}/store-invite`, { token: tok, body: inv(1) })).status, 200);
    assert.equal((await call("POST", `${V2}/store-invite`, { token: tok, body: inv(2) })).status, 200);
    assert.equal((await call("POST", `${V2}/store-invite`, { token: tok, body: inv(1) })).status, 200, "a duplicate is answered, not counted");
    assert.equal((await call("POST", `${V2}/store-invite`, { token: tok, body: inv(3) })).status, 429);
  });
});

for (const engine of engines()) {
  describe(`identity server core flow (${engine.name})`, { skip: engine.skip }, () => {
    it("register → store-invite → validate → bind → lookup → sign-ed25519", async () => {
      const hs = await startFakeHomeserver();
      const t = await startTestServer({ hs, engine: engine.name });
      try {
        const call = client(t);
        const alice = await t.register(`@alice:${hs.serverName}`);
        const bob = await t.register(`@bob:${hs.serverName}`);
        const inv = await call("POST", `${V2}/store-invite`, { token: alice, body: { medium: "email", address: "bob@example.org", room_id: "!r:hs.example", sender: `@alice:${hs.serverName}` } });
        assert.equal(inv.status, 200, inv.text);
        const sid = await validateEmail(call, t, bob, "bob@example.org", "bobsecret");
        const b = await call("POST", `${V2}/3pid/bind`, { token: bob, body: { sid, client_secret: "bobsecret", mxid: `@bob:${hs.serverName}` } });
        assert.equal(b.status, 200);
        const h = lookupHash("bob@example.org", "email", "matrixrocks");
        const l = await call("POST", `${V2}/lookup`, { token: alice, body: { algorithm: "sha256", pepper: "matrixrocks", addresses: [h] } });
        assert.deepEqual(l.body.mappings, { [h]: `@bob:${hs.serverName}` });
        const pk = t.mail.mails.find((m) => m.kind === "invite")!.vars.ephemeral_private_key as string;
        const s = await call("POST", `${V2}/sign-ed25519`, { body: { token: inv.body.token, private_key: pk, mxid: `@bob:${hs.serverName}` } });
        assert.equal(s.status, 200);
        const q = await t.is.ctx.stores.delivery.counts();
        assert.equal(q.pending, 1, "the pending invite was queued for onbind in the bind transaction");
      } finally {
        await t.close();
        await hs.close();
      }
    });
  });
}
