/**
 * matrix-bot-sdk 0.8.0's `IdentityClient` cannot load here (DECISIONS.md "Tooling facts": its
 * native crypto binary is downloaded from outside the registry), so its HTTP calls are
 * replayed with fetch exactly as conformance.md §5.2 records them: acquire, getAccount,
 * getTermsOfService, acceptAllTerms, lookup (sha256), makeEmailInvite (state GETs with the
 * trailing slash, profile, store-invite), every IS call with `Authorization: Bearer`.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startUp, type UpStack } from "./stack.js";

const TERMS_URL = "https://terms.example.org/bot-privacy-1.0.html";

async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe("matrix-bot-sdk IdentityClient calls (replayed) against beckon up", { timeout: 120_000 }, () => {
  let stack: UpStack;
  let userId: string;
  let hsToken: string;
  let isToken: string;
  let roomId: string;
  const IS2 = () => `${stack.isUrl}/_matrix/identity/v2`;
  const C = () => `${stack.hsUrl}/_matrix/client/v3`;

  before(async () => {
    stack = await startUp({ beckonYaml: { identity_server: { terms: { privacy_policy: { version: "1.0", en: { name: "Privacy", url: TERMS_URL } } } } } });
    const reg = await call("POST", `${C()}/register`, undefined, { username: `bot${Date.now().toString(36)}`, password: "correct horse battery", auth: { type: "m.login.dummy" } });
    assert.equal(reg.status, 200, JSON.stringify(reg.json));
    userId = String(reg.json.user_id);
    hsToken = String(reg.json.access_token);
    await call("PUT", `${C()}/profile/${encodeURIComponent(userId)}/displayname`, hsToken, { displayname: "Robot Alice" });
    const room = await call("POST", `${C()}/createRoom`, hsToken, { name: "Bot room" });
    roomId = String(room.json.room_id);
  });
  after(async () => {
    await stack?.close();
  });

  it("acquire: getOpenIDConnectToken, then account/register with the OpenID object", async () => {
    const openId = await call("POST", `${C()}/user/${encodeURIComponent(userId)}/openid/request_token`, hsToken, {});
    assert.equal(openId.status, 200);
    const reg = await call("POST", `${IS2()}/account/register`, undefined, openId.json);
    assert.equal(reg.status, 200);
    assert.equal(typeof reg.json.token, "string");
    isToken = String(reg.json.token);
    // Terms are outstanding: GET account may refuse (spec: every authenticated endpoint may answer M_TERMS_NOT_SIGNED).
    const account = await call("GET", `${IS2()}/account`, isToken);
    assert.ok(account.status === 200 || account.json.errcode === "M_TERMS_NOT_SIGNED", JSON.stringify(account.json));
  });

  it("getTermsOfService, then acceptAllTerms (the en entry of each policy; before that, lookups are refused); getAccount", async () => {
    const details = await call("GET", `${IS2()}/hash_details`, isToken);
    assert.equal(details.status, 403);
    assert.equal(details.json.errcode, "M_TERMS_NOT_SIGNED");
    const terms = await call("GET", `${IS2()}/terms`, isToken);
    assert.equal(terms.status, 200);
    const policies = terms.json.policies as Record<string, Record<string, unknown>>;
    const urls = Object.values(policies).map((p) => {
      const entry = (p.en ?? Object.entries(p).find(([k]) => k !== "version")?.[1]) as { url: string };
      return entry.url;
    });
    assert.deepEqual(urls, [TERMS_URL]);
    const accept = await call("POST", `${IS2()}/terms`, isToken, { user_accepts: urls });
    assert.equal(accept.status, 200);
    const account = await call("GET", `${IS2()}/account`, isToken);
    assert.equal(account.status, 200);
    assert.equal(account.json.user_id, userId);
  });

  it("lookup: hash_details has algorithms; sha256 over \"<address> email <pepper>\"; unknown addresses are absent", async () => {
    const details = await call("GET", `${IS2()}/hash_details`, isToken);
    assert.equal(details.status, 200);
    assert.ok(Array.isArray(details.json.algorithms) && (details.json.algorithms as string[]).includes("sha256"));
    const pepper = String(details.json.lookup_pepper);
    const hash = createHash("sha256").update(`nobody@example.org email ${pepper}`).digest("base64url");
    const r = await call("POST", `${IS2()}/lookup`, isToken, { algorithm: "sha256", pepper, addresses: [hash] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.mappings, {});
  });

  it("what real clients send that the spec leaves open: send_attempt as a string, the token in the query", async () => {
    const r = await call("POST", `${IS2()}/validate/email/requestToken?access_token=${encodeURIComponent(isToken)}`, undefined, {
      client_secret: `str${Date.now().toString(36)}`,
      email: "string-attempt@example.org",
      send_attempt: "1",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(typeof r.json.sid, "string");
  });

  it("makeEmailInvite: state GETs with a trailing slash (errors ignored), profile, store-invite; nothing posted to the room", async () => {
    const state: Record<string, Record<string, unknown>> = {};
    for (const type of ["m.room.canonical_alias", "m.room.name", "m.room.avatar", "m.room.join_rules"]) {
      const r = await call("GET", `${C()}/rooms/${encodeURIComponent(roomId)}/state/${type}/`, hsToken);
      assert.ok(r.status === 200 || r.status === 404, `${type}/ answered ${r.status} ${JSON.stringify(r.json)}`);
      if (r.status === 200) state[type] = r.json;
    }
    assert.equal(state["m.room.name"]?.name, "Bot room", "the trailing-slash state path works");
    const profile = await call("GET", `${C()}/profile/${encodeURIComponent(userId)}`, hsToken);
    assert.equal(profile.status, 200);
    const body: Record<string, unknown> = {
      address: "bot-invitee@example.org",
      medium: "email",
      room_id: roomId,
      sender: userId,
      room_name: state["m.room.name"]?.name,
      room_join_rules: state["m.room.join_rules"]?.join_rule,
      sender_display_name: profile.json.displayname,
    };
    for (const k of Object.keys(body)) if (body[k] === undefined || body[k] === "") delete body[k];
    const r = await call("POST", `${IS2()}/store-invite`, isToken, body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(typeof r.json.token, "string");
    assert.equal(typeof r.json.public_key, "string");
    assert.equal(typeof r.json.display_name, "string");
    assert.doesNotMatch(String(r.json.display_name), /bot-invitee@example\.org/);
    assert.ok(Array.isArray(r.json.public_keys) && r.json.public_keys.length >= 1);
    const roomState = await call("GET", `${C()}/rooms/${encodeURIComponent(roomId)}/state`, hsToken);
    assert.equal((roomState.json as unknown as { type: string }[]).filter((e) => e.type === "m.room.third_party_invite").length, 0);
    await stack.smtp!.waitForMails(1, { timeoutMs: 15_000, match: (m) => m.to.includes("bot-invitee@example.org") && /Bot room/.test(m.subject + m.text) });
  });
});
