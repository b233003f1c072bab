/**
 * The call sequences of matrix-js-sdk 37 and matrix-bot-sdk 0.8 (conformance.md §5) replayed
 * with plain fetch against a listening identity server on 127.0.0.1, plus the invite
 * lifecycle pieces of issue 9 that clients see (v1 routes, expiry with a fake clock).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { verifyJsonSignature } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { FakeClock } from "@beckon/server-kit";
import { startFakeHomeserver, type FakeHomeserver } from "./testing/fake-homeserver.js";
import { startTestServer, type TestServer } from "./testing/harness.js";

const TERMS = {
  privacy_policy: { version: "1.2", en: { name: "Privacy Policy", url: "https://is.example/privacy-1.2-en.html" }, de: { name: "Datenschutz", url: "https://is.example/privacy-1.2-de.html" } },
};

function sha256Lookup(address: string, medium: string, pepper: string): string {
  return createHash("sha256").update(`${address} ${medium} ${pepper}`).digest("base64url");
}

describe("client call sequences over HTTP (conformance.md §5)", () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  let base: string;

  async function req(method: string, path: string, opts: { token?: string; body?: unknown } = {}) {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(base + path, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}), redirect: "manual" });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* html */
    }
    return { status: res.status, json, text, headers: res.headers };
  }

  before(async () => {
    hs = await startFakeHomeserver();
    t = await startTestServer({ hs, overrides: { terms: TERMS } });
    const { url } = await t.is.start({ host: "127.0.0.1", port: 0 });
    base = url;
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("matrix-js-sdk: discovery, register, terms, account, requestEmailToken, link, hashed lookup, sign URL join", async () => {
    const me = `@jsuser:${hs.serverName}`;
    assert.deepEqual((await req("GET", "/_matrix/identity/v2")).json, {});
    const reg = await req("POST", "/_matrix/identity/v2/account/register", { body: hs.issueOpenId(me) });
    const token = (reg.json.token ?? reg.json.access_token) as string;
    assert.ok(token);
    assert.equal((await req("GET", "/_matrix/identity/v2/account", { token })).json.errcode, "M_TERMS_NOT_SIGNED");
    const terms = await req("GET", "/_matrix/identity/v2/terms");
    const urls = Object.values(terms.json.policies as Record<string, Record<string, unknown>>).map((p) => (p.en as { url: string }).url);
    assert.equal((await req("POST", "/_matrix/identity/v2/terms", { token, body: { user_accepts: urls } })).status, 200);
    assert.equal((await req("GET", "/_matrix/identity/v2/account", { token })).json.user_id, me);

    const rt = await req("POST", "/_matrix/identity/v2/validate/email/requestToken", {
      token,
      body: { client_secret: "jsSecret123", email: "JsUser@Example.org", send_attempt: "1", next_link: "https://app.example/#/done" },
    });
    assert.equal(rt.status, 200);
    const mail = t.mail.mails.at(-1)!;
    const link = new URL(String(mail.vars.link));
    const click = await req("GET", link.pathname + link.search);
    assert.equal(click.status, 302);
    assert.equal(click.headers.get("location"), "https://app.example/#/done");

    // Bind (as the HS would on the user's behalf), then js-sdk's identityHashedLookup.
    const bound = await req("POST", "/_matrix/identity/v2/3pid/bind", { token, body: { sid: rt.json.sid, client_secret: "jsSecret123", mxid: me } });
    assert.equal(bound.status, 200);
    const hd = await req("GET", "/_matrix/identity/v2/hash_details", { token });
    const pepper = hd.json.lookup_pepper as string;
    assert.ok((hd.json.algorithms as string[]).includes("sha256"));
    const hash = sha256Lookup("jsuser@example.org", "email", pepper);
    const lk = await req("POST", "/_matrix/identity/v2/lookup", { token, body: { addresses: [hash], algorithm: "sha256", pepper } });
    assert.deepEqual(lk.json.mappings, { [hash]: me });

    // The invite mail's sign URL, POSTed with &mxid= and no body, no auth (joinRoom with inviteSignUrl).
    const inv = await req("POST", "/_matrix/identity/v2/store-invite", {
      token,
      body: { medium: "email", address: "guest@example.org", room_id: "!room:hs.example", sender: me, room_name: "R", sender_display_name: "JS" },
    });
    assert.equal(inv.status, 200);
    const signUrl = String(t.mail.mails.at(-1)!.vars.sign_url);
    const signUrlPath = new URL(signUrl);
    const signed = await req("POST", `${signUrlPath.pathname}${signUrlPath.search}&mxid=${encodeURIComponent("@guest:hs.example")}`);
    assert.equal(signed.status, 200);
    assert.deepEqual(Object.keys(signed.json).sort(), ["mxid", "sender", "signatures", "token"]);
    const eph = (inv.json.public_keys as { public_key: string }[])[1]!.public_key;
    assert.ok(await verifyJsonSignature(signed.json, "is.test", "ed25519:0", eph, nodeCryptoProvider));

    // msisdn pair.
    const ms = await req("POST", "/_matrix/identity/v2/validate/msisdn/requestToken", {
      token,
      body: { client_secret: "jsSecret123", country: "US", phone_number: "2015550123", send_attempt: "1" },
    });
    assert.equal(ms.status, 200);
    assert.equal(ms.json.msisdn, "12015550123");
  });

  it("matrix-bot-sdk IdentityClient: acquire, getAccount, acceptAllTerms, lookup, makeEmailInvite", async () => {
    const me = `@bot:${hs.serverName}`;
    const acquire = await req("POST", "/_matrix/identity/v2/account/register", { body: hs.issueOpenId(me) });
    const token = acquire.json.token as string;
    const tos = await req("GET", "/_matrix/identity/v2/terms", { token });
    const accept: string[] = [];
    for (const policy of Object.values(tos.json.policies as Record<string, Record<string, { url: string }>>)) {
      const entry = policy.en ?? Object.entries(policy).find(([k]) => k !== "version")?.[1];
      if (entry) accept.push(entry.url);
    }
    assert.equal((await req("POST", "/_matrix/identity/v2/terms", { token, body: { user_accepts: accept } })).status, 200);
    assert.equal((await req("GET", "/_matrix/identity/v2/account", { token })).json.user_id, me);
    const hd = await req("GET", "/_matrix/identity/v2/hash_details", { token });
    assert.ok(Array.isArray(hd.json.algorithms));
    const pepper = hd.json.lookup_pepper as string;
    const hashes = ["jsuser@example.org", "nobody@example.org"].map((a) => sha256Lookup(a, "email", pepper));
    const lk = await req("POST", "/_matrix/identity/v2/lookup", { token, body: { algorithm: "sha256", pepper, addresses: hashes } });
    assert.deepEqual(Object.keys(lk.json.mappings as object), [hashes[0]], "unknown addresses omitted");
    // makeEmailInvite drops empty values; room_name falls back to the alias; display name to the localpart.
    const inv = await req("POST", "/_matrix/identity/v2/store-invite", {
      token,
      body: { address: "botguest@example.org", medium: "email", room_id: "!botroom:hs.example", sender: me, room_alias: "#bots:hs.example", room_name: "#bots:hs.example", room_join_rules: "public", sender_display_name: "bot" },
    });
    assert.equal(inv.status, 200);
    assert.deepEqual(Object.keys(inv.json).sort(), ["display_name", "public_key", "public_keys", "token"]);
    assert.equal((inv.json.public_keys as unknown[]).length, 2);
    assert.equal(inv.json.display_name, "bot...@exa...");
  });
});

describe("invite lifecycle on the identity server (issue 9): v1 routes and expiry with a fake clock", () => {
  it("v1 key routes answer for a key stored by an earlier invite; after expiry: valid:false, sign 404, purged by the periodic job", async () => {
    const hs = await startFakeHomeserver();
    const clock = new FakeClock(1_700_000_000_000);
    const t = await startTestServer({ hs, clock, overrides: { invites: { lifetime: "30d", purge_interval: "1h" } } });
    try {
      const alice = await t.register(`@alice:${hs.serverName}`);
      const inv = await t.is.app.inject({
        method: "POST",
        url: "/_matrix/identity/v2/store-invite",
        headers: { authorization: `Bearer ${alice}` },
        payload: { medium: "email", address: "late@example.org", room_id: "!r:hs.example", sender: `@alice:${hs.serverName}` },
      });
      const body = inv.json() as { token: string; public_keys: { public_key: string }[] };
      const eph = body.public_keys[1]!.public_key;
      const pk = t.mail.mails.at(-1)!.vars.ephemeral_private_key as string;
      const v1 = "/_matrix/identity/api/v1";
      const isValid = async () => (await t.is.app.inject({ method: "GET", url: `${v1}/pubkey/ephemeral/isvalid?public_key=${eph}` })).json().valid;
      const sign = () => t.is.app.inject({ method: "POST", url: `${v1}/sign-ed25519?token=${body.token}&private_key=${pk}&mxid=%40x%3Ahs.example` });
      assert.equal(await isValid(), true);
      assert.equal((await sign()).statusCode, 200);
      assert.equal((await t.is.app.inject({ method: "GET", url: `${v1}/pubkey/ed25519:0` })).json().public_key, t.is.ctx.keys.publicKey);
      assert.equal((await t.is.app.inject({ method: "GET", url: `${v1}/pubkey/isvalid?public_key=${encodeURIComponent(t.is.ctx.keys.publicKey)}` })).json().valid, true);
      t.is.startWorkers();
      clock.advance(30 * 86_400_000 + 1);
      assert.equal(await isValid(), false);
      const s = await sign();
      assert.equal(s.statusCode, 404);
      assert.equal(s.json().errcode, "M_UNRECOGNIZED");
      // The periodic purge runs on the injected clock.
      clock.advance(3_600_000);
      for (let i = 0; i < 50 && (await t.is.ctx.stores.invites.get(body.token)); i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await t.is.ctx.stores.invites.get(body.token), undefined);
    } finally {
      await t.close();
      await hs.close();
    }
  });
});
