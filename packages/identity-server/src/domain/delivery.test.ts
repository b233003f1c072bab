/**
 * Durable onbind delivery against a fake homeserver on 127.0.0.1: down, then flaky, then up —
 * every invite arrives, none twice in the final state; signatures verified with @beckon/protocol.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { verifyJsonSignature } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { FakeClock, systemClock } from "@beckon/server-kit";
import { waitFor } from "@beckon/test-support";
import { startFakeHomeserver, type FakeHomeserver } from "../testing/fake-homeserver.js";
import { startTestServer, type TestServer } from "../testing/harness.js";
import { backoffMs } from "./delivery.js";
import { engines } from "../testing/databases.js";

const V2 = "/_matrix/identity/v2";

async function post(t: TestServer, url: string, token: string | undefined, body: unknown) {
  const r = await t.is.app.inject({ method: "POST", url, headers: token ? { authorization: `Bearer ${token}` } : {}, payload: JSON.stringify(body) });
  return { status: r.statusCode, body: r.json() as Record<string, unknown> };
}

async function storeInvites(t: TestServer, token: string, sender: string, address: string, rooms: string[]): Promise<string[]> {
  const tokens: string[] = [];
  for (const room of rooms) {
    const r = await post(t, `${V2}/store-invite`, token, { medium: "email", address, room_id: room, sender });
    assert.equal(r.status, 200);
    tokens.push(r.body.token as string);
  }
  return tokens;
}

async function validateAndBind(t: TestServer, token: string, mxid: string, address: string): Promise<void> {
  const secret = `s${Math.random().toString(36).slice(2)}`;
  const rt = await post(t, `${V2}/validate/email/requestToken`, token, { client_secret: secret, email: address, send_attempt: 1 });
  const code = t.mail.mails.filter((m) => m.kind === "validation").at(-1)!.vars.token;
  assert.equal((await post(t, `${V2}/validate/email/submitToken`, token, { sid: rt.body.sid, client_secret: secret, token: code })).status, 200);
  const b = await post(t, `${V2}/3pid/bind`, token, { sid: rt.body.sid, client_secret: secret, mxid });
  assert.equal(b.status, 200);
}

describe("backoffMs", () => {
  it("doubles, caps and jitters between half and all of the step", () => {
    assert.equal(backoffMs(1, 1000, 60_000, () => 1), 1000);
    assert.equal(backoffMs(1, 1000, 60_000, () => 0), 500);
    assert.equal(backoffMs(4, 1000, 60_000, () => 1), 8000);
    assert.equal(backoffMs(30, 1000, 60_000, () => 1), 60_000);
    assert.equal(backoffMs(30, 1000, 60_000, () => 0), 30_000);
  });
});

for (const engine of engines())
describe(`onbind delivery (fake clock, fake homeserver, ${engine.name})`, { skip: engine.skip }, () => {
  let hs: FakeHomeserver;
  let t: TestServer;
  let clock: FakeClock;
  let alice: string;
  let bob: string;
  let carol: string;
  const id = (n: string) => `@${n}:${hs.serverName}`;

  before(async () => {
    hs = await startFakeHomeserver();
    clock = new FakeClock(1_700_000_000_000);
    t = await startTestServer({ hs, clock, engine: engine.name, overrides: { delivery: { base_backoff: "1s", max_backoff: "8s", lease: "30s" } } });
    alice = await t.register(id("alice"));
    bob = await t.register(id("bob"));
    carol = await t.register(id("carol"));
  });
  after(async () => {
    await t.close();
    await hs.close();
  });

  it("down, then flaky, then up: every invite arrives, none twice; signed with ed25519:0", async () => {
    const bobTokens = await storeInvites(t, alice, id("alice"), "bob@example.org", ["!a:hs.example", "!b:hs.example", "!c:hs.example"]);
    const carolTokens = await storeInvites(t, alice, id("alice"), "carol@example.org", ["!a:hs.example", "!d:hs.example"]);
    hs.behaviour = "down";
    await validateAndBind(t, bob, id("bob"), "bob@example.org");
    await validateAndBind(t, carol, id("carol"), "carol@example.org");
    assert.equal(await t.is.delivery.runOnce(), 5);
    let q = await t.is.ctx.stores.delivery.list();
    assert.ok(q.every((r) => r.state === "pending" && r.attempts === 1 && /503/.test(r.lastError ?? "")));
    assert.equal(await t.is.delivery.runOnce(), 0, "nothing is due before the back-off");
    for (let i = 0; i < 3; i++) {
      clock.advance(8_000);
      await t.is.delivery.runOnce();
    }
    q = await t.is.ctx.stores.delivery.list();
    assert.ok(q.every((r) => r.state === "pending" && r.attempts === 4));
    assert.equal(hs.delivered.length, 0);

    hs.behaviour = "flaky";
    for (let i = 0; i < 10 && (await t.is.ctx.stores.delivery.counts()).pending > 0; i++) {
      clock.advance(8_000);
      await t.is.delivery.runOnce();
    }
    hs.behaviour = "up";
    for (let i = 0; i < 5 && (await t.is.ctx.stores.delivery.counts()).pending > 0; i++) {
      clock.advance(8_000);
      await t.is.delivery.runOnce();
    }
    assert.deepEqual(await t.is.ctx.stores.delivery.counts(), { pending: 0, delivered: 5, failed: 0 });
    assert.ok(hs.onbinds.some((o) => o.status === 500), "the flaky phase really failed some");

    const deliveredTokens = hs.delivered.flatMap((d) => (d.invites as { token: string }[]).map((i) => i.token));
    assert.deepEqual([...deliveredTokens].sort(), [...bobTokens, ...carolTokens].sort(), "each invite delivered exactly once");

    const longTerm = t.is.ctx.keys.publicKey;
    for (const body of hs.delivered) {
      assert.ok(await verifyJsonSignature(body, "is.test", "ed25519:0", longTerm, nodeCryptoProvider), "association signed");
      for (const inv of body.invites as Record<string, unknown>[]) {
        const signed = inv.signed as Record<string, unknown>;
        assert.equal(signed.mxid, body.mxid);
        assert.equal(signed.token, inv.token);
        assert.equal(signed.sender, id("alice"));
        assert.ok(await verifyJsonSignature(signed, "is.test", "ed25519:0", longTerm, nodeCryptoProvider), "invite signed with the long-term key");
        assert.equal(inv.room_id && typeof inv.room_id, "string");
        assert.equal(inv.medium, "email");
      }
    }
    assert.deepEqual(await t.is.ctx.stores.invites.pendingFor("email", "bob@example.org", clock.now()), []);
    // Delivered tokens stay usable for sign-ed25519 until they expire.
    assert.ok(await t.is.ctx.stores.invites.get(bobTokens[0]!));
  });

  it("a 4xx (not 429) is a permanent failure; 429 is retried", async () => {
    await storeInvites(t, alice, id("alice"), "dan@example.org", ["!x:hs.example"]);
    const dan = await t.register(id("dan"));
    hs.behaviour = "ratelimit";
    await validateAndBind(t, dan, id("dan"), "dan@example.org");
    await t.is.delivery.runOnce();
    const limited = (await t.is.ctx.stores.delivery.list()).find((r) => r.mxid === id("dan"));
    assert.equal(limited?.state, "pending");
    assert.match(limited?.lastError ?? "", /429/);
    hs.behaviour = "refuse";
    clock.advance(8_000);
    await t.is.delivery.runOnce();
    const row = (await t.is.ctx.stores.delivery.list()).find((r) => r.mxid === id("dan"));
    assert.equal(row?.state, "failed");
    assert.match(row?.lastError ?? "", /400/);
    const metrics = await t.is.metrics.registry.metrics();
    assert.match(metrics, /beckon_is_onbind_deliveries_total\{outcome="failed"\} 1/);
    hs.behaviour = "up";
  });

  it("expired invites are not delivered on bind; a queued invite that expires is dropped; purge removes them", async () => {
    const tokens = await storeInvites(t, alice, id("alice"), "eve@example.org", ["!old:hs.example"]);
    clock.advance(31 * 86_400_000);
    const fresh = await storeInvites(t, alice, id("alice"), "eve@example.org", ["!new:hs.example"]);
    const eve = await t.register(id("eve"));
    const before = hs.delivered.length;
    await validateAndBind(t, eve, id("eve"), "eve@example.org");
    await t.is.delivery.runOnce();
    const got = hs.delivered.slice(before).flatMap((d) => (d.invites as { token: string }[]).map((i) => i.token));
    assert.deepEqual(got, fresh);
    assert.ok(!got.includes(tokens[0]!));
    // Expiry: ephemeral key invalid, sign-ed25519 404, purge deletes.
    const pk = t.mail.mails.find((m) => m.vars.token === tokens[0])!.vars.ephemeral_private_key;
    const s = await post(t, `${V2}/sign-ed25519`, undefined, { token: tokens[0], private_key: pk, mxid: id("eve") });
    assert.equal(s.status, 404);
    assert.equal(s.body.errcode, "M_UNRECOGNIZED");
    await t.is.purge();
    assert.equal(await t.is.ctx.stores.invites.get(tokens[0]!), undefined);

    // Queued, then expired before delivery: dropped, not sent.
    const frank = await t.register(id("frank"));
    const late = await storeInvites(t, alice, id("alice"), "frank@example.org", ["!late:hs.example"]);
    hs.behaviour = "down";
    await validateAndBind(t, frank, id("frank"), "frank@example.org");
    await t.is.delivery.runOnce();
    clock.advance(31 * 86_400_000);
    hs.behaviour = "up";
    const n = hs.delivered.length;
    await t.is.delivery.runOnce();
    assert.equal(hs.delivered.length, n);
    const row = (await t.is.ctx.stores.delivery.list()).find((r) => r.token === late[0]);
    assert.equal(row?.state, "failed");
    assert.equal(row?.lastError, "invite expired");
  });
});

describe("onbind delivery worker (real clock): woken by bind, no polling wait", () => {
  it("shutdown aborts an onbind the homeserver never answers; the invite stays queued", async () => {
    const hs = await startFakeHomeserver();
    hs.behaviour = "hang";
    const t = await startTestServer({ hs, clock: systemClock });
    try {
      t.is.startWorkers();
      const alice = await t.register(`@alice:${hs.serverName}`);
      const bob = await t.register(`@bob:${hs.serverName}`);
      await storeInvites(t, alice, `@alice:${hs.serverName}`, "hang@example.org", ["!h:hs.example"]);
      await validateAndBind(t, bob, `@bob:${hs.serverName}`, "hang@example.org");
      await waitFor(() => hs.onbinds.length > 0, { timeoutMs: 5000, what: "onbind in flight" });
      const started = Date.now();
      await t.is.delivery.stop();
      assert.ok(Date.now() - started < 2000, "stop does not wait for the request timeout");
      const rows = await t.is.ctx.stores.delivery.list();
      assert.equal(rows[0]?.state, "pending");
      assert.equal(rows[0]?.attempts, 1);
    } finally {
      await t.close();
      await hs.close();
    }
  });

  it("delivers within a second of the bind", async () => {
    const hs = await startFakeHomeserver();
    const t = await startTestServer({ hs, clock: systemClock });
    try {
      t.is.startWorkers();
      const alice = await t.register(`@alice:${hs.serverName}`);
      const bob = await t.register(`@bob:${hs.serverName}`);
      const tokens = await storeInvites(t, alice, `@alice:${hs.serverName}`, "bob@example.org", ["!a:hs.example", "!b:hs.example"]);
      const started = Date.now();
      await validateAndBind(t, bob, `@bob:${hs.serverName}`, "bob@example.org");
      await waitFor(() => hs.delivered.length > 0, { timeoutMs: 5000, what: "onbind" });
      assert.ok(Date.now() - started < 1000);
      assert.deepEqual((hs.delivered[0]!.invites as { token: string }[]).map((i) => i.token).sort(), [...tokens].sort());
    } finally {
      await t.close();
      await hs.close();
    }
  });
});
