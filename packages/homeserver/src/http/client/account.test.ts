/** Black-box HTTP tests: discovery, error rendering, accounts, sessions, profiles. */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver } from "../../testing.js";

const C = "/_matrix/client/v3";

describe("homeserver HTTP: discovery and errors", () => {
  let t: TestHomeserver;
  before(async () => {
    t = await startTestHomeserver({ overrides: { identity_servers: { default: "http://127.0.0.1:8090" } } });
  });
  after(() => t.close());

  it("versions, well-known, capabilities", async () => {
    const v = await call(t.hs, "GET", "/_matrix/client/versions");
    assert.equal(v.status, 200);
    assert.ok((v.body.versions as string[]).includes("v1.1"));
    const wk = await call(t.hs, "GET", "/.well-known/matrix/client");
    assert.deepEqual(wk.body, { "m.homeserver": { base_url: "http://127.0.0.1:8008" }, "m.identity_server": { base_url: "http://127.0.0.1:8090" } });
    const a = await registerUser(t.hs, "cap");
    const cap = await call(t.hs, "GET", `${C}/capabilities`, { token: a.token });
    const rv = (cap.body.capabilities as Record<string, { default: string; available: Record<string, string> }>)["m.room_versions"];
    assert.equal(rv?.default, "10");
    assert.deepEqual(Object.keys(rv?.available ?? {}).sort(), ["10", "11"]);
  });

  it("404 and 405 are M_UNRECOGNIZED; bad JSON is M_NOT_JSON; missing/unknown token 401", async () => {
    const nf = await call(t.hs, "GET", `${C}/nope`);
    assert.equal(nf.status, 404);
    assert.equal(nf.body.errcode, "M_UNRECOGNIZED");
    const na = await call(t.hs, "GET", `${C}/createRoom`);
    assert.equal(na.status, 405);
    assert.equal(na.body.errcode, "M_UNRECOGNIZED");
    const bad = await t.hs.app.inject({ method: "POST", url: `${C}/login`, payload: "{nope", headers: { "content-type": "application/json" } });
    assert.equal(bad.statusCode, 400);
    assert.equal(JSON.parse(bad.body).errcode, "M_NOT_JSON");
    const missing = await call(t.hs, "GET", `${C}/account/whoami`);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.errcode, "M_MISSING_TOKEN");
    const unknown = await call(t.hs, "GET", `${C}/account/whoami`, { token: "nope" });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.errcode, "M_UNKNOWN_TOKEN");
    const schema = await call(t.hs, "POST", `${C}/login`, { body: { type: 5 } });
    assert.equal(schema.status, 400);
    assert.equal(schema.body.errcode, "M_INVALID_PARAM");
  });

  it("CORS preflight and headers; r0 aliases; /metrics", async () => {
    const pre = await t.hs.app.inject({ method: "OPTIONS", url: `${C}/createRoom`, headers: { origin: "http://x", "access-control-request-method": "POST" } });
    assert.equal(pre.statusCode, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "*");
    const r0 = await call(t.hs, "GET", "/_matrix/client/r0/login");
    assert.equal(r0.status, 200);
    const m = await t.hs.app.inject({ method: "GET", url: "/metrics" });
    assert.equal(m.statusCode, 200);
    assert.match(m.body, /beckon_hs_http_requests_total/);
  });

  it("access token in the query string is accepted", async () => {
    const a = await registerUser(t.hs, "querytok");
    const r = await call(t.hs, "GET", `${C}/account/whoami?access_token=${enc(a.token)}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.user_id, a.userId);
  });
});

describe("homeserver HTTP: accounts", () => {
  let t: TestHomeserver;
  before(async () => {
    t = await startTestHomeserver({ overrides: { registration: { shared_secret: "s3cret" } } });
  });
  after(() => t.close());

  it("register without auth answers the UIA 401 {flows, session, params}", async () => {
    const r = await call(t.hs, "POST", `${C}/register`, { body: { username: "uia", password: "pw" } });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body.flows, [{ stages: ["m.login.dummy"] }]);
    assert.equal(typeof r.body.session, "string");
    assert.deepEqual(r.body.params, {});
    assert.equal(r.body.errcode, undefined);
    const ok = await call(t.hs, "POST", `${C}/register`, { body: { username: "uia", password: "pw", auth: { type: "m.login.dummy", session: r.body.session } } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.user_id, "@uia:localhost:8008");
    assert.equal(ok.body.home_server, "localhost:8008");
    assert.match(ok.body.access_token as string, /^bk_[A-Za-z0-9_-]{43}$/);
  });

  it("register: taken name, bad name, guest, inhibit_login", async () => {
    await registerUser(t.hs, "taken");
    const taken = await call(t.hs, "POST", `${C}/register`, { body: { username: "taken", password: "x", auth: { type: "m.login.dummy" } } });
    assert.equal(taken.status, 400);
    assert.equal(taken.body.errcode, "M_USER_IN_USE");
    const bad = await call(t.hs, "POST", `${C}/register`, { body: { username: "no spaces", auth: { type: "m.login.dummy" } } });
    assert.equal(bad.body.errcode, "M_INVALID_USERNAME");
    const guest = await call(t.hs, "POST", `${C}/register?kind=guest`, { body: {} });
    assert.equal(guest.status, 403);
    const inh = await call(t.hs, "POST", `${C}/register`, { body: { username: "Inhibit", password: "x", inhibit_login: true, auth: { type: "m.login.dummy" } } });
    assert.equal(inh.status, 200);
    assert.equal(inh.body.user_id, "@inhibit:localhost:8008");
    assert.equal(inh.body.access_token, undefined);
  });

  it("registration can be closed", async () => {
    const closed = await startTestHomeserver({ overrides: { registration: { enabled: false } } });
    try {
      const r = await call(closed.hs, "POST", `${C}/register`, { body: { username: "x", auth: { type: "m.login.dummy" } } });
      assert.equal(r.status, 403);
      assert.equal(r.body.errcode, "M_FORBIDDEN");
    } finally {
      await closed.close();
    }
  });

  it("shared-secret admin registration (Synapse's HMAC form)", async () => {
    const n = await call(t.hs, "GET", "/_synapse/admin/v1/register");
    const nonce = n.body.nonce as string;
    const mac = createHmac("sha1", "s3cret").update(`${nonce}\0admin1\0pw\0admin`).digest("hex");
    const r = await call(t.hs, "POST", "/_synapse/admin/v1/register", { body: { nonce, username: "admin1", password: "pw", admin: true, mac } });
    assert.equal(r.status, 200);
    assert.equal(r.body.user_id, "@admin1:localhost:8008");
    const again = await call(t.hs, "POST", "/_synapse/admin/v1/register", { body: { nonce, username: "admin2", password: "pw", admin: true, mac } });
    assert.equal(again.status, 400);
    const n2 = (await call(t.hs, "GET", "/_synapse/admin/v1/register")).body.nonce as string;
    const wrong = await call(t.hs, "POST", "/_synapse/admin/v1/register", { body: { nonce: n2, username: "admin3", password: "pw", mac: "00" } });
    assert.equal(wrong.status, 403);
  });

  it("login with m.id.user and the legacy user field; wrong password 403; 3PID identifiers refused", async () => {
    const u = await registerUser(t.hs, "login1", "pw1");
    const ok = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", identifier: { type: "m.id.user", user: "login1" }, password: "pw1" } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.user_id, u.userId);
    const legacy = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", user: u.userId, password: "pw1" } });
    assert.equal(legacy.status, 200);
    const wrong = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", identifier: { type: "m.id.user", user: "login1" }, password: "no" } });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.errcode, "M_FORBIDDEN");
    const tp = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", identifier: { type: "m.id.thirdparty", medium: "email", address: "a@b.c" }, password: "pw1" } });
    assert.equal(tp.status, 403);
    const unknownType = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.sso" } });
    assert.equal(unknownType.status, 400);
    const flows = await call(t.hs, "GET", `${C}/login`);
    assert.deepEqual(flows.body.flows, [{ type: "m.login.password" }]);
  });

  it("whoami, logout, logout/all", async () => {
    const u = await registerUser(t.hs, "sess", "pw");
    const who = await call(t.hs, "GET", `${C}/account/whoami`, { token: u.token });
    assert.deepEqual(who.body, { user_id: u.userId, device_id: u.deviceId, is_guest: false });
    const second = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", user: "sess", password: "pw" } });
    const t2 = second.body.access_token as string;
    assert.equal((await call(t.hs, "POST", `${C}/logout`, { token: u.token, body: {} })).status, 200);
    assert.equal((await call(t.hs, "GET", `${C}/account/whoami`, { token: u.token })).status, 401);
    assert.equal((await call(t.hs, "GET", `${C}/account/whoami`, { token: t2 })).status, 200);
    const third = (await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", user: "sess", password: "pw" } })).body.access_token as string;
    assert.equal((await call(t.hs, "POST", `${C}/logout/all`, { token: t2 })).status, 200);
    assert.equal((await call(t.hs, "GET", `${C}/account/whoami`, { token: t2 })).status, 401);
    assert.equal((await call(t.hs, "GET", `${C}/account/whoami`, { token: third })).status, 401);
  });

  it("deactivate needs password UIA, then the account is gone and its rooms left", async () => {
    const u = await registerUser(t.hs, "deact", "pw");
    const room = (await call(t.hs, "POST", `${C}/createRoom`, { token: u.token, body: {} })).body.room_id as string;
    const challenge = await call(t.hs, "POST", `${C}/account/deactivate`, { token: u.token, body: {} });
    assert.equal(challenge.status, 401);
    assert.deepEqual(challenge.body.flows, [{ stages: ["m.login.password"] }]);
    const wrong = await call(t.hs, "POST", `${C}/account/deactivate`, {
      token: u.token,
      body: { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: "deact" }, password: "no", session: challenge.body.session } },
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.errcode, "M_FORBIDDEN");
    const ok = await call(t.hs, "POST", `${C}/account/deactivate`, {
      token: u.token,
      body: { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: "deact" }, password: "pw", session: challenge.body.session } },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.id_server_unbind_result, "success");
    assert.equal((await call(t.hs, "GET", `${C}/account/whoami`, { token: u.token })).status, 401);
    const login = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", user: "deact", password: "pw" } });
    assert.equal(login.status, 403);
    assert.equal((await t.hs.storage.rooms.getMembership(room, u.userId))?.membership, "leave");
    const reg = await call(t.hs, "POST", `${C}/register`, { body: { username: "deact", auth: { type: "m.login.dummy" } } });
    assert.equal(reg.body.errcode, "M_USER_IN_USE");
  });

  it("profiles: get, set own (propagates to joined rooms), not another's", async () => {
    const u = await registerUser(t.hs, "prof");
    const other = await registerUser(t.hs, "prof2");
    const room = (await call(t.hs, "POST", `${C}/createRoom`, { token: u.token, body: {} })).body.room_id as string;
    assert.deepEqual((await call(t.hs, "GET", `${C}/profile/${enc(u.userId)}`)).body, { displayname: "prof" });
    assert.equal((await call(t.hs, "PUT", `${C}/profile/${enc(u.userId)}/displayname`, { token: u.token, body: { displayname: "Prof X" } })).status, 200);
    assert.equal((await call(t.hs, "PUT", `${C}/profile/${enc(u.userId)}/avatar_url`, { token: u.token, body: { avatar_url: "mxc://a/b" } })).status, 200);
    assert.deepEqual((await call(t.hs, "GET", `${C}/profile/${enc(u.userId)}`)).body, { displayname: "Prof X", avatar_url: "mxc://a/b" });
    assert.deepEqual((await call(t.hs, "GET", `${C}/profile/${enc(u.userId)}/displayname`)).body, { displayname: "Prof X" });
    const member = await call(t.hs, "GET", `${C}/rooms/${enc(room)}/state/m.room.member/${enc(u.userId)}`, { token: u.token });
    assert.deepEqual(member.body, { membership: "join", displayname: "Prof X", avatar_url: "mxc://a/b" });
    const forbidden = await call(t.hs, "PUT", `${C}/profile/${enc(u.userId)}/displayname`, { token: other.token, body: { displayname: "hack" } });
    assert.equal(forbidden.status, 403);
    assert.equal((await call(t.hs, "GET", `${C}/profile/${enc("@nobody:localhost:8008")}`)).status, 404);
  });

  it("rate limits answer 429 with retry_after_ms and Retry-After", async () => {
    const limited = await startTestHomeserver({ overrides: { rate_limits: { login: { per_second: 0.001, burst: 1 } } } });
    try {
      const body = { type: "m.login.password", user: "x", password: "y" };
      assert.equal((await call(limited.hs, "POST", `${C}/login`, { body })).status, 403);
      const r = await limited.hs.app.inject({ method: "POST", url: `${C}/login`, payload: JSON.stringify(body) });
      assert.equal(r.statusCode, 429);
      const b = JSON.parse(r.body);
      assert.equal(b.errcode, "M_LIMIT_EXCEEDED");
      assert.ok(b.retry_after_ms > 0);
      assert.ok(Number(r.headers["retry-after"]) > 0);
    } finally {
      await limited.close();
    }
  });
});
