/**
 * Integration tests: the SDK over real HTTP on 127.0.0.1 against the loopback test servers
 * (a spec-shaped homeserver and identity server with counters and fault injection).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { MatrixClient } from "../api/matrix-client.js";
import { IdentityClient, signWithUrl } from "../api/identity-client.js";
import { ConnectionError, MatrixCallError, errorKind } from "../http/errors.js";
import type { RequestEvent } from "../http/events.js";
import { startLoopbackServers, type LoopbackServers } from "../testing/loopback-servers.js";
import { inviteByEmail, inviteManyByEmail, NoIdentityServerError, TermsNotAcceptedError } from "./invite-by-email.js";
import { acceptThirdPartyInviteBySync, acceptThirdPartyInviteWithSignUrl } from "./accept-invite.js";
import { syncLoop } from "./sync.js";

const fast = { backoff: { initialMs: 1, maxMs: 5 }, timeoutMs: 5000 };

async function newUser(s: LoopbackServers, name: string): Promise<MatrixClient> {
  const c = new MatrixClient({ baseUrl: s.hsUrl, defaults: fast });
  await c.register({ username: name, password: "pw" });
  return c;
}

function identityFor(s: LoopbackServers, c: MatrixClient): IdentityClient {
  return new IdentityClient({ baseUrl: s.isUrl, transport: c.transport });
}

describe("flows against the loopback servers", () => {
  let s: LoopbackServers;
  let alice: MatrixClient;
  let identity: IdentityClient;
  let roomId: string;

  before(async () => {
    s = await startLoopbackServers();
    alice = await newUser(s, "alice");
    identity = identityFor(s, alice);
    roomId = (await alice.createRoom({ name: "Book club" })).room_id;
  });
  after(() => s.close());

  it("register completes m.login.dummy and keeps the session", async () => {
    assert.match(alice.userId ?? "", /^@alice:localhost:\d+$/);
    assert.equal((await alice.whoami()).user_id, alice.userId);
    assert.equal(s.counts.get("POST /_matrix/client/v3/register"), 2);
  });

  it("inviteByEmail: unknown address → 3PID invite, IS token via OpenID, pending invite listed", async () => {
    const out = await inviteByEmail(alice, roomId, "Dora@Example.org", { identity });
    assert.deepEqual(out, { email: "Dora@Example.org", status: "invited-by-3pid" });
    assert.equal(s.counts.get("POST /_matrix/identity/v2/account/register"), 1);
    assert.equal(s.mails.filter((m) => m.to === "dora@example.org").length, 1);
    const pending = await alice.listPendingThirdPartyInvites(roomId);
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.displayName, "dor...@exa...");
    assert.equal(pending[0]!.sender, alice.userId);
    assert.equal(pending[0]!.token, s.mails.at(-1)!.token);
  });

  it("inviteByEmail: bound address → invite by user ID; joined → already a member", async () => {
    const bob = await newUser(s, "bob");
    await s.bind("bob@example.org", bob.userId!);
    assert.deepEqual(await inviteByEmail(alice, roomId, "bob@example.org", { identity }), { email: "bob@example.org", status: "invited", userId: bob.userId });
    await bob.join(roomId);
    assert.deepEqual(await inviteByEmail(alice, roomId, "BOB@example.org", { identity }), { email: "BOB@example.org", status: "already-member", userId: bob.userId });
  });

  it("the invitee joins with third_party_signed from the mail's sign URL", async () => {
    const erin = await newUser(s, "erin");
    await inviteByEmail(alice, roomId, "erin@example.org", { identity });
    const mail = s.mails.find((m) => m.to === "erin@example.org")!;
    const r = await acceptThirdPartyInviteWithSignUrl(erin, roomId, mail.signUrl);
    assert.equal(r.roomId, roomId);
    assert.deepEqual((await erin.joinedRooms()).joined_rooms, [roomId]);
    assert.ok(!(await alice.listPendingThirdPartyInvites(roomId)).some((p) => p.token === mail.token));
  });

  it("the invitee binds the address, waits for the invite in /sync, joins", async () => {
    const carol = await newUser(s, "carol");
    await inviteByEmail(alice, roomId, "carol@example.org", { identity });
    const accepted = acceptThirdPartyInviteBySync(carol, roomId, { pollMs: 2000, timeoutMs: 10_000 });
    await s.bind("carol@example.org", carol.userId!);
    assert.equal((await accepted).roomId, roomId);
  });

  it("revokeThirdPartyInvite empties the state; the sign-URL join is then refused", async () => {
    const fay = await newUser(s, "fay");
    await inviteByEmail(alice, roomId, "fay@example.org", { identity });
    const mail = s.mails.find((m) => m.to === "fay@example.org")!;
    await alice.revokeThirdPartyInvite(roomId, mail.token);
    assert.ok(!(await alice.listPendingThirdPartyInvites(roomId)).some((p) => p.token === mail.token));
    await assert.rejects(acceptThirdPartyInviteWithSignUrl(fay, roomId, mail.signUrl), (e) => errorKind(e) === "content-access");
  });

  it("inviteManyByEmail reports per address and carries on", async () => {
    const gus = await newUser(s, "gus");
    await s.bind("gus@example.org", gus.userId!);
    const results = await inviteManyByEmail(alice, roomId, ["bob@example.org", "gus@example.org", "hal@example.org", "Hal@Example.org"], { identity });
    assert.deepEqual(
      results.map((r) => [r.email, r.status]),
      [
        ["bob@example.org", "already-member"],
        ["gus@example.org", "invited"],
        ["hal@example.org", "invited-by-3pid"],
        ["Hal@Example.org", "invited-by-3pid"],
      ],
    );
    assert.equal(s.mails.filter((m) => m.to === "hal@example.org").length, 1);
    s.faults.push({ method: "POST", pathEndsWith: "/invite", action: { status: 403, body: { errcode: "M_FORBIDDEN", error: "nope" } } });
    const failed = await inviteManyByEmail(alice, roomId, ["ivy@example.org", "jon@example.org"], { identity });
    assert.equal(failed[0]!.status, "failed");
    assert.equal(errorKind(failed[0]!.status === "failed" ? failed[0]!.error : undefined), "content-access");
    assert.equal(failed[1]!.status, "invited-by-3pid");
  });

  it("exactly once: a dropped connection after sending is not retried; a 429 is", async () => {
    const before = s.counts.get(`POST /_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`) ?? 0;
    const count = () => (s.counts.get(`POST /_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`) ?? 0) - before;
    s.faults.push({ method: "POST", pathEndsWith: "/invite", action: "destroy" });
    await assert.rejects(inviteByEmail(alice, roomId, "kim@example.org", { identity }), (e) => e instanceof ConnectionError && e.kind === "network" && e.maybeSent);
    assert.equal(count(), 1);
    s.faults.push({ method: "POST", pathEndsWith: "/invite", action: { status: 429, body: { errcode: "M_LIMIT_EXCEEDED", error: "slow", retry_after_ms: 5 } } });
    const events: RequestEvent[] = [];
    const off = alice.transport.events.on((e) => events.push(e));
    assert.equal((await inviteByEmail(alice, roomId, "lea@example.org", { identity })).status, "invited-by-3pid");
    off();
    assert.equal(count(), 3);
    assert.ok(events.some((e) => e.type === "rate-limited" && e.retryAfterMs === 5));
    // A 502 from a proxy is not retried either.
    s.faults.push({ method: "POST", pathEndsWith: "/invite", action: { status: 502, body: { errcode: "M_UNKNOWN", error: "bad gateway" } } });
    await assert.rejects(inviteByEmail(alice, roomId, "max@example.org", { identity }), (e) => errorKind(e) === "server-error");
    assert.equal(count(), 4);
  });

  it("a connection refused before sending is retried, even for the invite", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const closed = new MatrixClient({ baseUrl: `http://127.0.0.1:${port}`, accessToken: "tok_abcdef", defaults: { backoff: { initialMs: 1, maxMs: 2 }, maxAttempts: 3 } });
    const events: RequestEvent[] = [];
    closed.transport.events.on((e) => events.push(e));
    const r = await closed.inviteBy3PID(roomId, { idServer: s.isName, idAccessToken: "x", medium: "email", address: "a@b.c" }).catch((e: unknown) => e);
    assert.ok(r instanceof ConnectionError && r.kind === "network" && !r.maybeSent, String(r));
    assert.equal(events.filter((e) => e.type === "retry-scheduled").length, 2);
    assert.doesNotMatch(String(r), /tok_abcdef/);
  });

  it("a refused identity-server token is renewed once through OpenID", async () => {
    const regs = () => s.counts.get("POST /_matrix/identity/v2/account/register") ?? 0;
    const before = regs();
    const old = identity.accessToken!;
    await identity.logout();
    identity.accessToken = old; // a stale token the server no longer knows
    assert.equal((await inviteByEmail(alice, roomId, "ned@example.org", { identity })).status, "invited-by-3pid");
    assert.equal(regs(), before + 1);
    assert.notEqual(identity.accessToken, old);
  });

  it("lookup refreshes hash_details when the pepper changed", async () => {
    const hd = () => s.counts.get("GET /_matrix/identity/v2/hash_details") ?? 0;
    await identity.lookupOne("email", "x@example.org");
    const before = hd();
    s.pepper = "newpepper";
    assert.equal(await identity.lookupOne("email", "bob@example.org"), s.bindings.get("bob@example.org"));
    assert.equal(hd(), before + 1);
  });

  it("errors never show tokens or sign-URL secrets", async () => {
    const mail = s.mails[0]!;
    const bad = mail.signUrl.replace(/private_key=[^&]+/, "private_key=WRONGsecretKEY");
    const e = await signWithUrl(alice.transport, bad, alice.userId!).catch((x: unknown) => x);
    assert.ok(e instanceof MatrixCallError && e.errcode === "M_UNRECOGNIZED");
    assert.doesNotMatch(`${e.message} ${e.stack}`, /WRONGsecretKEY/);
    assert.match(e.message, /private_key=<redacted>/);
    const t = identity.accessToken!;
    s.faults.push({ method: "GET", pathEndsWith: "/hash_details", action: { status: 500, body: { errcode: "M_UNKNOWN", error: `token ${t} broke` } } });
    const e2 = await identity.hashDetails({ refresh: true, maxAttempts: 1 }).catch((x: unknown) => x);
    assert.ok(e2 instanceof MatrixCallError);
    assert.ok(!e2.message.includes(t) && !e2.error.includes(t));
  });

  it("the identity server may be named by URL, or come from m.identity_server account data", async () => {
    const olga = await newUser(s, "olga");
    const { room_id } = await olga.createRoom();
    const regs = () => s.counts.get("POST /_matrix/identity/v2/account/register") ?? 0;
    const before = regs();
    assert.equal((await inviteByEmail(olga, room_id, "p1@example.org", { identity: s.isUrl })).status, "invited-by-3pid");
    assert.equal((await inviteByEmail(olga, room_id, "p2@example.org", { identity: s.isUrl })).status, "invited-by-3pid");
    assert.equal(regs(), before + 1); // one client (and token) per MatrixClient and URL
    const pia = await newUser(s, "pia");
    const room2 = (await pia.createRoom()).room_id;
    await assert.rejects(inviteByEmail(pia, room2, "p3@example.org"), NoIdentityServerError);
    const failed = await inviteManyByEmail(pia, room2, ["p3@example.org"]);
    assert.ok(failed[0]!.status === "failed" && failed[0]!.error instanceof NoIdentityServerError);
    await pia.setAccountData("m.identity_server", { base_url: s.isUrl });
    assert.equal((await inviteByEmail(pia, room2, "p3@example.org")).status, "invited-by-3pid");
  });

  it("the sync loop yields batches and stops", async () => {
    const loop = syncLoop(alice, { timeoutMs: 50 });
    const first = await loop.next();
    assert.ok(!first.done && first.value.next_batch);
    const pending = loop.next();
    loop.stop();
    assert.equal((await pending).done, true);
  });
});

describe("terms of the identity server", () => {
  let s: LoopbackServers;
  before(async () => {
    s = await startLoopbackServers({ termsRequired: true });
  });
  after(() => s.close());

  it("are accepted only when the caller allows it", async () => {
    const alice = await newUser(s, "alice");
    const identity = identityFor(s, alice);
    const { room_id } = await alice.createRoom();
    const e = await inviteByEmail(alice, room_id, "zed@example.org", { identity }).catch((x: unknown) => x);
    assert.ok(e instanceof TermsNotAcceptedError);
    assert.deepEqual(e.urls, [`${s.isUrl}/terms/privacy-1.0.html`]);
    assert.equal(s.counts.get("POST /_matrix/identity/v2/terms"), undefined);
    const asked: string[][] = [];
    const out = await inviteByEmail(alice, room_id, "zed@example.org", { identity, acceptTerms: (urls) => (asked.push(urls), true) });
    assert.equal(out.status, "invited-by-3pid");
    assert.equal(asked.length, 1);
    assert.equal(s.counts.get("POST /_matrix/identity/v2/terms"), 1);
  });
});

describe("lookup algorithms", () => {
  it("falls back to none only when allowed", async () => {
    const s = await startLoopbackServers({ algorithms: ["none"] });
    try {
      const alice = await newUser(s, "alice");
      const identity = identityFor(s, alice);
      await identity.registerWithOpenId(await alice.requestOpenIdToken());
      await s.bind("p@example.org", alice.userId!);
      assert.deepEqual(await identity.lookup([{ medium: "email", address: "P@example.org" }, { medium: "email", address: "q@example.org" }]), [alice.userId, undefined]);
      await assert.rejects(identity.lookup([{ medium: "email", address: "p@example.org" }], { allowPlaintext: false }), /no usable lookup algorithm/);
    } finally {
      await s.close();
    }
  });
});
