/**
 * Abuse without server internals (issue 7, "Abuse and security"), all in-process on loopback:
 * bounded floods from one client and from many hit 429 `M_LIMIT_EXCEEDED` with
 * `retry_after_ms` (and `Retry-After`), a refused request does nothing (no mail, no invite),
 * a legitimate user is unaffected; tokens and secrets never reach the logs, even at `trace`,
 * and are long enough to carry ≥ 128 bits.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { FastifyInstance } from "fastify";
import { startStack, IS_NAME, type Stack } from "./stack.js";
import { buildWorld, call, registerHsUser, registerIsAccount, secretsOf, type World } from "./targets.js";

const SLOW = { per_second: 0.001, burst: 3 };
/** Registration: the world setup registers four users from 127.0.0.1 first. */
const SLOW_REG = { per_second: 0.001, burst: 8 };
const settle = (ms = 200) => new Promise((r) => setTimeout(r, ms));

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | undefined;
}

async function post(app: FastifyInstance, url: string, body: unknown, opts: { token?: string; ip?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const r = await app.inject({ method: "POST", url, headers, payload: JSON.stringify(body), ...(opts.ip ? { remoteAddress: opts.ip } : {}) });
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    /* not JSON: the assertions below say so */
  }
  const ra = r.headers["retry-after"];
  return { status: r.statusCode, body: parsed, retryAfter: ra === undefined ? undefined : String(ra) };
}

/** Every answer is a success or a well-formed 429; returns the successes. */
function judgeFlood(answers: Answer[], what: string): number {
  let ok = 0;
  for (const a of answers) {
    if (a.status === 200) {
      ok++;
      continue;
    }
    assert.equal(a.status, 429, `${what}: ${a.status} ${JSON.stringify(a.body)}`);
    assert.equal(a.body.errcode, "M_LIMIT_EXCEEDED");
    assert.equal(typeof a.body.error, "string");
    assert.ok(typeof a.body.retry_after_ms === "number" && a.body.retry_after_ms > 0, "retry_after_ms");
    assert.ok(a.retryAfter !== undefined && Number(a.retryAfter) >= 1, "Retry-After header");
  }
  return ok;
}

describe("rate limits under bounded floods", () => {
  let stack: Stack;
  let w: World;
  before(async () => {
    stack = await startStack({
      logLevel: "error",
      rateLimits: true,
      isOverrides: { rate_limits: { enabled: true, request_token_ip: SLOW, request_token_address: SLOW, store_invite_sender: SLOW, register_ip: { per_second: 100, burst: 1000 } } },
      hsOverrides: { rate_limits: { enabled: true, registration: SLOW_REG, login: SLOW, third_party_invites: SLOW } },
    });
    w = await buildWorld(stack);
  });
  after(async () => {
    await stack.close();
  });

  test("IS requestToken: one client flooding (even with spoofed X-Forwarded-For) gets 429s and no extra mail; another client is unaffected", async () => {
    const mailsBefore = stack.mails.length;
    const answers: Answer[] = [];
    for (let i = 0; i < 40; i++) {
      answers.push(
        await post(stack.is.app, "/_matrix/identity/v2/validate/email/requestToken", { client_secret: `flood${i}`, email: `flood${i}@example.org`, send_attempt: 1 }, {
          token: w.aliceIsToken,
          ip: "10.1.0.1",
          headers: { "x-forwarded-for": `192.0.2.${i}` },
        }),
      );
    }
    const ok = judgeFlood(answers, "requestToken flood");
    assert.ok(ok <= SLOW.burst, `${ok} accepted`);
    assert.ok(answers.filter((a) => a.status === 429).length >= 40 - SLOW.burst);
    const legit = await post(stack.is.app, "/_matrix/identity/v2/validate/email/requestToken", { client_secret: "legitSecret", email: "legit@example.org", send_attempt: 1 }, { token: w.aliceIsToken, ip: "10.1.0.2" });
    assert.equal(legit.status, 200, JSON.stringify(legit.body));
    await settle();
    assert.equal(stack.mails.length - mailsBefore, ok + 1, "one mail per accepted request, none for a 429");
  });

  test("IS requestToken: many clients flooding one address are limited per address", async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 20; i++) {
      answers.push(
        await post(stack.is.app, "/_matrix/identity/v2/validate/email/requestToken", { client_secret: `many${i}`, email: "victim@example.org", send_attempt: 1 }, { token: w.aliceIsToken, ip: `10.2.0.${i + 1}` }),
      );
    }
    const ok = judgeFlood(answers, "per-address flood");
    assert.ok(ok >= 1 && ok <= SLOW.burst, `${ok} accepted`);
  });

  test("IS store-invite: one sender flooding gets 429s (no mail for them); another sender is unaffected", async () => {
    const mailsBefore = stack.mails.length;
    const answers: Answer[] = [];
    for (let i = 0; i < 30; i++) {
      answers.push(await post(stack.is.app, "/_matrix/identity/v2/store-invite", { medium: "email", address: `si${i}@example.org`, room_id: w.roomId, sender: w.alice.userId }, { token: w.aliceIsToken }));
    }
    const ok = judgeFlood(answers, "store-invite flood");
    assert.ok(ok <= SLOW.burst);
    const bobIs = await registerIsAccount(stack, w.bob);
    const legit = await post(stack.is.app, "/_matrix/identity/v2/store-invite", { medium: "email", address: "legit-si@example.org", room_id: w.roomId, sender: w.bob.userId }, { token: bobIs });
    assert.equal(legit.status, 200, JSON.stringify(legit.body));
    await settle();
    assert.equal(stack.mails.length - mailsBefore, ok + 1);
  });

  test("HS registration and login floods from one address get 429s; another address is unaffected", async () => {
    const regs: Answer[] = [];
    for (let i = 0; i < 25; i++) {
      regs.push(await post(stack.hs.app, "/_matrix/client/v3/register", { username: `flood${i}_${process.pid}`, password: "pw-flood", auth: { type: "m.login.dummy" } }, { ip: "10.3.0.1" }));
    }
    assert.ok(judgeFlood(regs, "registration flood") <= SLOW_REG.burst);
    assert.ok(regs.filter((a) => a.status === 429).length >= 25 - SLOW_REG.burst);
    const legitReg = await post(stack.hs.app, "/_matrix/client/v3/register", { username: `legit_${process.pid}`, password: "pw-legit", auth: { type: "m.login.dummy" } }, { ip: "10.3.0.2" });
    assert.equal(legitReg.status, 200, JSON.stringify(legitReg.body));

    const logins: Answer[] = [];
    for (let i = 0; i < 15; i++) {
      logins.push(await post(stack.hs.app, "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: w.alice.localpart }, password: "wrong" }, { ip: "10.3.0.3" }));
    }
    for (const a of logins) assert.ok(a.status === 403 || a.status === 429, `login flood: ${a.status}`);
    assert.ok(logins.filter((a) => a.status === 429).length >= 15 - SLOW.burst);
    const legitLogin = await post(stack.hs.app, "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: w.alice.localpart }, password: w.alice.password }, { ip: "10.3.0.4" });
    assert.equal(legitLogin.status, 200, JSON.stringify(legitLogin.body));
  });

  test("HS 3PID invites: a flooding user gets 429s and no extra invite or mail; another user is unaffected", async () => {
    const room = encodeURIComponent(w.roomId);
    const stateBefore = await call(stack.hs.app, "GET", `/_matrix/client/v3/rooms/${room}/state`, { token: w.alice.token });
    const tpiCount = (s: { text: string }) => (JSON.parse(s.text) as { type: string }[]).filter((e) => e.type === "m.room.third_party_invite").length;
    const mailsBefore = stack.mails.length;
    const answers: Answer[] = [];
    for (let i = 0; i < 15; i++) {
      answers.push(
        await post(stack.hs.app, `/_matrix/client/v3/rooms/${room}/invite`, { id_server: IS_NAME, id_access_token: w.aliceIsToken, medium: "email", address: `tp${i}@example.org` }, { token: w.alice.token }),
      );
    }
    const ok = judgeFlood(answers, "3PID invite flood");
    assert.ok(ok <= SLOW.burst);
    const bobIs = await registerIsAccount(stack, w.bob);
    const bobRoom = await post(stack.hs.app, "/_matrix/client/v3/createRoom", { preset: "private_chat" }, { token: w.bob.token });
    const legit = await post(stack.hs.app, `/_matrix/client/v3/rooms/${encodeURIComponent(String(bobRoom.body.room_id))}/invite`, { id_server: IS_NAME, id_access_token: bobIs, medium: "email", address: "legit-tp@example.org" }, { token: w.bob.token });
    // The IS limits store-invite per sender too; bob has not sent any yet.
    assert.equal(legit.status, 200, JSON.stringify(legit.body));
    await settle();
    const stateAfter = await call(stack.hs.app, "GET", `/_matrix/client/v3/rooms/${room}/state`, { token: w.alice.token });
    assert.equal(tpiCount(stateAfter) - tpiCount(stateBefore), ok, "one m.room.third_party_invite per accepted invite, none for a 429");
    assert.equal(stack.mails.length - mailsBefore, ok + 1, "one mail per accepted invite");
  });
});

describe("secrets", () => {
  let stack: Stack;
  let w: World;
  const extra: Record<string, string> = {};
  before(async () => {
    stack = await startStack({ logLevel: "trace" });
    w = await buildWorld(stack);
    // More flows, with secrets in query strings too (the sign URL, access_token=).
    const login = await post(stack.hs.app, "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: w.alice.localpart }, password: w.alice.password });
    extra["a fresh login token"] = String(login.body.access_token);
    await stack.hs.app.inject({ method: "GET", url: `/_matrix/client/v3/account/whoami?access_token=${encodeURIComponent(w.alice.token)}` });
    await stack.is.app.inject({ method: "GET", url: `/_matrix/identity/v2/account?access_token=${encodeURIComponent(w.aliceIsToken)}` });
    await stack.is.app.inject({
      method: "POST",
      url: `/_matrix/identity/v2/sign-ed25519?token=${encodeURIComponent(w.invite.token)}&private_key=${encodeURIComponent(w.invite.privateKey)}&mxid=${encodeURIComponent(w.bob.userId)}`,
    });
    await post(stack.hs.app, `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/invite`, { id_server: IS_NAME, id_access_token: w.aliceIsToken, medium: "email", address: "secrets@example.org" }, { token: w.alice.token });
    await post(stack.is.app, "/_matrix/identity/v2/3pid/bind", { sid: w.session.sid, client_secret: w.session.clientSecret, mxid: w.alice.userId }, { token: w.aliceIsToken });
    // Failing requests log too: wrong tokens and bodies with secrets.
    await post(stack.hs.app, "/_matrix/client/v3/account/deactivate", { auth: { type: "m.login.password", password: w.alice.password } }, { token: `${w.alice.token}x` });
    await post(stack.is.app, "/_matrix/identity/v2/validate/email/submitToken", { sid: w.session.sid, client_secret: w.session.clientSecret, token: w.session.token }, { token: `${w.aliceIsToken}x` });
    // Unhandled errors log the request URL: secrets in its query must be redacted (DEF-3 makes a 500 today).
    await stack.hs.app.inject({
      method: "PUT",
      url: `/_matrix/client/v3/rooms/${encodeURIComponent(w.roomId)}/send/constructor/t1?access_token=${encodeURIComponent(w.alice.token)}`,
      headers: { "content-type": "application/json" },
      payload: "{}",
    });
    const tmp = await registerHsUser(stack, "secretuser");
    extra["another user's token"] = tmp.token;
    await settle(300);
  });
  after(async () => {
    await stack.close();
  });

  test("no token, password, client secret, invite token or private key appears in the logs (trace level)", () => {
    const logs = `${stack.hsLogs.text()}\n${stack.isLogs.text()}`;
    // Request logging is off (server-kit); what is logged is start-up, warnings and errors.
    assert.ok(stack.hsLogs.lines.length + stack.isLogs.lines.length > 0, "the servers logged something");
    const secrets = { ...secretsOf(w), ...extra };
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(secret.length >= 8, `${what} is a real secret`);
      assert.ok(!logs.includes(secret), `${what} appears in the logs`);
    }
  });

  test("tokens and keys carry at least 128 bits by their format (length × log2(alphabet))", () => {
    const bits = (s: string) => {
      const alphabet = /^[0-9a-f]+$/.test(s) ? 16 : /^[A-Za-z]+$/.test(s) ? 52 : /^[A-Za-z0-9]+$/.test(s) ? 62 : 64;
      return s.length * Math.log2(alphabet);
    };
    const tokens: Record<string, string> = {
      "HS access token": w.alice.token,
      "IS token": w.aliceIsToken,
      "invite token": w.invite.token,
      "ephemeral private key": w.invite.privateKey,
      "client secret of the fuzz session (ours)": w.session.clientSecret,
    };
    for (const [what, t] of Object.entries(tokens)) {
      if (what.includes("(ours)")) continue;
      // A fixed prefix such as "bk_" carries no entropy: only the rest counts.
      const tail = t.replace(/^[a-z]{2,4}_/, "");
      assert.ok(bits(tail) >= 128, `${what}: ~${bits(tail).toFixed(0)} bits (${tail.length} chars)`);
    }
  });
});
