/**
 * The 3PID flows between the real homeserver and our real identity server, both listening on
 * 127.0.0.1 as `beckon up` wires them (DECISIONS.md "beckon up on any ports"), with a real SMTP
 * receiver: invite by email, validate + bind through the homeserver, onbind delivered by the
 * identity server's outbox, join; and the email-link path (sign-ed25519 + third_party_signed).
 *
 * The identity server is loaded at run time (the servers never import each other; the package
 * may not be built yet), and the suite skips with the reason when it is not available.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort, startSmtpReceiver, tempDir, waitFor, type SmtpReceiver } from "@beckon/test-support";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../testing.js";

interface RealIdentityServer {
  start(listen?: { host?: string; port?: number }): Promise<{ url: string }>;
  stop(): Promise<void>;
}
interface IdentityServerModule {
  createIdentityServer(o: { config: unknown }): Promise<RealIdentityServer>;
  loadIdentityServerConfig(o: { env?: Record<string, string | undefined>; overrides?: object }): unknown;
}

const IS_PACKAGE = "@beckon/identity-server";
let isModule: IdentityServerModule | undefined;
let skipReason: string | false = false;
try {
  isModule = (await import(IS_PACKAGE)) as IdentityServerModule;
  if (typeof isModule.createIdentityServer !== "function") skipReason = `${IS_PACKAGE} does not export createIdentityServer`;
} catch (e) {
  skipReason = `${IS_PACKAGE} is not available (${e instanceof Error ? e.message : String(e)})`;
}

const V3 = "/_matrix/client/v3";
const IS2 = "/_matrix/identity/v2";

describe("3PID invites between the real homeserver and the real identity server", { skip: skipReason }, () => {
  let hs: TestHomeserver;
  let is: RealIdentityServer;
  let smtp: SmtpReceiver;
  let dir: { path: string; cleanup: () => void };
  let isUrl: string;
  let idServer: string;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    dir = tempDir("beckon-3pid-real-");
    smtp = await startSmtpReceiver();
    const q = await freePort();
    const p = await freePort();
    idServer = `localhost:${p}`;
    isUrl = `http://127.0.0.1:${p}`;
    hs = await startTestHomeserver({
      overrides: {
        server_name: `localhost:${q}`,
        identity_servers: { map: { [`localhost:${p}`]: isUrl, [`127.0.0.1:${p}`]: isUrl } },
        rate_limits: { enabled: false },
      },
    });
    await hs.hs.start({ host: "127.0.0.1", port: q });
    const config = isModule!.loadIdentityServerConfig({
      env: {},
      overrides: {
        server_name: `localhost:${p}`,
        other_names: [`127.0.0.1:${p}`],
        public_base_url: isUrl,
        database_url: `sqlite:${join(dir.path, "is.db")}`,
        homeservers: { [`localhost:${q}`]: `http://127.0.0.1:${q}` },
        smtp_url: smtp.url,
        email: { from: "Beckon Identity <noreply@example.org>" },
        rate_limits: { enabled: false },
        log_level: "silent",
        delivery: { base_backoff: "50ms", max_backoff: "1s" },
      },
    });
    is = await isModule!.createIdentityServer({ config });
    await is.start({ host: "127.0.0.1", port: p });
    alice = await registerUser(hs.hs, "alice");
    bob = await registerUser(hs.hs, "bob");
  });
  after(async () => {
    await is?.stop();
    await hs?.close();
    await smtp?.close();
    dir?.cleanup();
  });

  /** OpenID token from our HS → IS account token (the IS checks it with our userinfo). */
  async function isToken(user: TestUser): Promise<string> {
    const oid = await call(hs.hs, "POST", `${V3}/user/${enc(user.userId)}/openid/request_token`, { token: user.token, body: {} });
    assert.equal(oid.status, 200, JSON.stringify(oid.body));
    const res = await fetch(`${isUrl}${IS2}/account/register`, { method: "POST", body: JSON.stringify(oid.body), headers: { "content-type": "application/json" } });
    const body = (await res.json()) as { token?: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.token!;
  }

  async function isPost(path: string, token: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${isUrl}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  const createRoom = async () => {
    const r = await call(hs.hs, "POST", `${V3}/createRoom`, { token: alice.token, body: { preset: "private_chat", name: "Plans" } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.room_id as string;
  };
  const membership = async (roomId: string, userId: string) => {
    const r = await call(hs.hs, "GET", `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`, { token: alice.token });
    return r.status === 200 ? (r.body.membership as string) : undefined;
  };

  test("invite by email, validate and bind through the homeserver, onbind delivers, join", async () => {
    const aliceIs = await isToken(alice);
    const roomId = await createRoom();
    const address = "carol@example.org";
    const inv = await call(hs.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, {
      token: alice.token,
      body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address },
    });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const state = await call(hs.hs, "GET", `${V3}/rooms/${enc(roomId)}/state`, { token: alice.token });
    const tpi = (state.body as unknown as { type: string; content: Record<string, unknown> }[]).find((e) => e.type === "m.room.third_party_invite");
    assert.ok(tpi, "m.room.third_party_invite in the room");
    assert.ok(String(tpi.content.key_validity_url).startsWith(isUrl));
    assert.ok(!JSON.stringify(tpi.content).includes(address), "the room state never holds the address");
    await smtp.waitForMails(1, { match: (m) => m.to.includes(address), timeoutMs: 5000 });

    // A repeat of the same invite is answered from the pending one: no second mail.
    const again = await call(hs.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, {
      token: alice.token,
      body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address: "Carol@Example.org" },
    });
    assert.equal(again.status, 200);

    // Bob proves he owns the address and binds it through his homeserver.
    const bobIs = await isToken(bob);
    const clientSecret = "s3cr3t.=_-";
    const rt = await isPost(`${IS2}/validate/email/requestToken`, bobIs, { client_secret: clientSecret, email: address, send_attempt: 1 });
    assert.equal(rt.status, 200, JSON.stringify(rt.body));
    const sid = rt.body.sid as string;
    const [validation] = await smtp.waitForMails(1, { match: (m) => m.to.includes(address) && m.text.includes("submitToken"), timeoutMs: 5000 });
    const token = /submitToken\?[^\s"<>]*?token=([^&\s"<>]+)/.exec(validation!.text)?.[1];
    assert.ok(token, "the validation mail has the token");
    const st = await isPost(`${IS2}/validate/email/submitToken`, bobIs, { sid, client_secret: clientSecret, token: decodeURIComponent(token) });
    assert.equal(st.status, 200, JSON.stringify(st.body));
    const bind = await call(hs.hs, "POST", `${V3}/account/3pid/bind`, { token: bob.token, body: { id_server: idServer, id_access_token: bobIs, sid, client_secret: clientSecret } });
    assert.equal(bind.status, 200, JSON.stringify(bind.body));

    await waitFor(async () => (await membership(roomId, bob.userId)) === "invite", { timeoutMs: 10_000, what: "the onbind invite" });
    assert.equal(smtp.mails.filter((m) => m.to.includes(address) && !m.text.includes("submitToken")).length, 1, "exactly one invite mail");
    const join = await call(hs.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    assert.equal(join.status, 200, JSON.stringify(join.body));
    assert.equal(await membership(roomId, bob.userId), "join");

    // Now bound: a new invite of that address is an ordinary invite (lookup hit).
    const room2 = await createRoom();
    const hit = await call(hs.hs, "POST", `${V3}/rooms/${enc(room2)}/invite`, { token: alice.token, body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address } });
    assert.equal(hit.status, 200, JSON.stringify(hit.body));
    const m2 = await call(hs.hs, "GET", `${V3}/rooms/${enc(room2)}/state/m.room.member/${enc(bob.userId)}`, { token: alice.token });
    assert.equal(m2.body.membership, "invite");

    // Unbind through the homeserver (signed with destination_is; the IS fetches our key).
    const unbind = await call(hs.hs, "POST", `${V3}/account/3pid/unbind`, { token: bob.token, body: { medium: "email", address } });
    assert.deepEqual(unbind.body, { id_server_unbind_result: "success" });
  });

  test("accept from the email link: sign-ed25519, then join with third_party_signed", async () => {
    const aliceIs = await isToken(alice);
    const roomId = await createRoom();
    const address = "dave@example.org";
    const inv = await call(hs.hs, "POST", `${V3}/rooms/${enc(roomId)}/invite`, {
      token: alice.token,
      body: { id_server: idServer, id_access_token: aliceIs, medium: "email", address },
    });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const [mail] = await smtp.waitForMails(1, { match: (m) => m.to.includes(address), timeoutMs: 5000 });
    const signUrl = new RegExp(`${isUrl.replace(/[.]/g, "\\.")}/_matrix/identity/(?:v2|api/v1)/sign-ed25519\\?[^\\s"<>]+`).exec(mail!.text)?.[0];
    assert.ok(signUrl, "the invite mail has a sign URL");
    const signed = await fetch(`${signUrl.replace(/&amp;/g, "&")}&mxid=${enc(bob.userId)}`, { method: "POST" });
    const tps = (await signed.json()) as Record<string, unknown>;
    assert.equal(signed.status, 200, JSON.stringify(tps));
    const join = await call(hs.hs, "POST", `${V3}/join/${enc(roomId)}`, { token: bob.token, body: { third_party_signed: tps } });
    assert.equal(join.status, 200, JSON.stringify(join.body));
    assert.equal(await membership(roomId, bob.userId), "join");
  });
});
