/**
 * Issue 9, "Invites that behave", black-box against the real processes: `beckon homeserver` and
 * `beckon identity-server` on 127.0.0.1 (configs from `beckon up --configs-only`), mail to a real
 * SMTP receiver, SQLite and (with TEST_POSTGRES_URL) PostgreSQL. Fake identity servers on
 * 127.0.0.1 stand in where the test needs a peer that is down, hangs, answers 5xx or garbage,
 * races a bind, or signs with keys the test holds (for hand-built onbind batches).
 * One server pair per engine; the tests share it and use their own rooms and addresses.
 * This file runs SQLite; lifecycle-invites-postgres.test.ts runs the same tests on PostgreSQL.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { freePort, postgresSkipReason, waitFor, type ReceivedMail } from "@beckon/test-support";
import { MatrixCallError, inviteByEmail, inviteManyByEmail, type IdentityClient, type MatrixClient } from "@beckon/client";
import { identityFor, mailLinks, registerUser, validateByMail, type Stack } from "./harness.js";
import { IDENTITY_UNBIND_URI, signIdentityUnbindRequest, signXMatrixRequest } from "@beckon/protocol";
import { nodeCryptoProvider, signJsonSync } from "@beckon/protocol/node";
import { metric, newTestKey, signInvite, startFakeServer, startKeyedFakeIs, startLifeStack, urlSafePadded, type Engine, type FakeServer, type KeyedFakeIs, type LifeStack } from "./lifecycle-support.js";

interface Res {
  status: number;
  json: Record<string, unknown>;
}

async function http(method: string, url: string, opts: { token?: string; body?: unknown } = {}): Promise<Res> {
  const headers: Record<string, string> = {};
  if (opts.token) headers["authorization"] = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(url, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}), signal: AbortSignal.timeout(15_000) });
  const text = await r.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: r.status, json };
}

/** The harness's helpers take its Stack; they only read hsUrl, isUrl and smtp. */
function asHarness(s: LifeStack): Stack {
  return { hsUrl: s.hsUrl, isUrl: s.isUrl, hsName: s.hsName, smtp: s.smtp, logs: s.logs } as Partial<Stack> as Stack;
}

function tokenOf(c: MatrixClient): string {
  return (c as unknown as { accessToken: string }).accessToken;
}

async function tpis(c: MatrixClient, roomId: string): Promise<{ state_key: string; content: Record<string, unknown> }[]> {
  return (await c.getState(roomId)).filter((e) => e.type === "m.room.third_party_invite") as never;
}

async function memberEvent(c: MatrixClient, roomId: string, userId: string): Promise<{ event_id: string; membership: string; content: Record<string, unknown> } | undefined> {
  const e = (await c.getState(roomId)).find((x) => x.type === "m.room.member" && x.state_key === userId);
  return e ? { event_id: e.event_id, membership: String(e.content["membership"]), content: e.content } : undefined;
}

function mailsTo(stack: LifeStack, address: string): ReceivedMail[] {
  return stack.smtp.mails.filter((m) => m.to.some((t) => t.toLowerCase().includes(address.toLowerCase())));
}

function signUrlOf(stack: LifeStack, mail: ReceivedMail): URL {
  const link = mailLinks(mail).find((l) => l.startsWith(`${stack.isUrl}/_matrix/identity/v2/sign-ed25519?`));
  assert.ok(link, `a sign URL in the mail: ${mail.text}`);
  return new URL(link);
}

async function expectMatrixError(p: Promise<unknown>, status: number | number[], errcode?: string): Promise<MatrixCallError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof MatrixCallError, `a Matrix error, got ${caught === undefined ? "success" : String(caught)}`);
  const statuses = Array.isArray(status) ? status : [status];
  assert.ok(statuses.includes(caught.status!), `status ${caught.status} (${caught.errcode}) not in ${statuses.join("/")}`);
  if (errcode) assert.equal(caught.errcode, errcode);
  return caught;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One engine per process, so the two run side by side: this file runs SQLite, and
// lifecycle-invites-postgres.test.ts imports it with BECKON_LIFECYCLE_ENGINE=postgres.
const engines: Engine[] = process.env["BECKON_LIFECYCLE_ENGINE"] === "postgres" ? ["postgres"] : ["sqlite"];
for (const engine of engines) {
  const skip = engine === "postgres" ? postgresSkipReason() : undefined;
  describe(`invite lifecycle against the real processes (${engine})`, { skip, timeout: 180_000 }, () => {
    let stack: LifeStack;
    let hang: FakeServer;
    let fivexx: FakeServer;
    let garbage: FakeServer;
    let race: FakeServer;
    let slowFail: FakeServer;
    let fakeHs: FakeServer;
    const fakeHsKey = newTestKey();
    const zed = "@zed:fakehs.test";
    let keyed: KeyedFakeIs;
    let deadPort: number;
    let alice: MatrixClient;
    let aliceIdentity: IdentityClient;
    let bob: MatrixClient;
    const raceEmail = `race-${engine}@example.org`;

    before(async () => {
      hang = await startFakeServer(() => "hang");
      fivexx = await startFakeServer(() => ({ status: 500, json: { errcode: "M_UNKNOWN", error: "boom" } }));
      garbage = await startFakeServer(() => ({ status: 200, raw: "<html>not json{{" }));
      keyed = await startKeyedFakeIs();
      // A homeserver the identity server knows by its map: serves its key and OpenID userinfo.
      fakeHs = await startFakeServer(({ path }) => {
        if (/^\/_matrix\/key\/v2\/server\/?$/.test(path)) {
          const doc = { server_name: "fakehs.test", valid_until_ts: Date.now() + 3_600_000, verify_keys: { "ed25519:a": { key: fakeHsKey.std } }, old_verify_keys: {} };
          return { status: 200, json: signJsonSync(doc, "fakehs.test", "ed25519:a", fakeHsKey.seed, nodeCryptoProvider) };
        }
        if (path.endsWith("/openid/userinfo")) return { status: 200, json: { sub: zed } };
        return { status: 404, json: { errcode: "M_UNRECOGNIZED", error: "fake homeserver" } };
      });
      slowFail = await startFakeServer(async ({ path }) => {
        if (path.endsWith("/hash_details")) return { status: 200, json: { lookup_pepper: "pepper", algorithms: ["sha256"] } };
        if (path.endsWith("/lookup")) return { status: 200, json: { mappings: {} } };
        await pause(400);
        return { status: 500, json: { errcode: "M_UNKNOWN", error: "store-invite failed" } };
      });
      deadPort = await freePort();
      // The race proxy: lookups find nobody; store-invite goes to the real identity server
      // (where the address is bound by then) with the caller's token.
      race = await startFakeServer(async ({ method, path, headers, body }) => {
        if (path.endsWith("/hash_details")) return { status: 200, json: { lookup_pepper: "pepper", algorithms: ["sha256"] } };
        if (path.endsWith("/lookup")) return { status: 200, json: { mappings: {} } };
        if (method === "POST" && path.endsWith("/store-invite")) {
          const r = await fetch(`${stack.isUrl}/_matrix/identity/v2/store-invite`, { method: "POST", headers: { authorization: String(headers["authorization"]), "content-type": "application/json" }, body, signal: AbortSignal.timeout(10_000) });
          return { status: r.status, raw: await r.text() };
        }
        return { status: 404, json: { errcode: "M_UNRECOGNIZED", error: "race proxy" } };
      });
      stack = await startLifeStack({
        engine,
        identityServer: { homeservers: { "fakehs.test": fakeHs.url } },
        homeserver: {
          outbound: { timeout: "1500ms" },
          identity_servers: {
            map: {
              "down.test": `http://127.0.0.1:${deadPort}`,
              "hang.test": hang.url,
              "fivexx.test": fivexx.url,
              "garbage.test": garbage.url,
              "race.test": race.url,
              "keyed.test": keyed.server.url,
              "slowfail.test": slowFail.url,
            },
          },
        },
      });
      alice = await registerUser(asHarness(stack), "alice");
      aliceIdentity = await identityFor(asHarness(stack), alice);
      bob = await registerUser(asHarness(stack), "bob");
    });
    after(async () => {
      await stack?.close();
      await Promise.all([hang, fivexx, garbage, race, slowFail, fakeHs].map((f) => f?.close()));
      await keyed?.close();
    });

    const target = (address: string, idServer?: string) => ({ idServer: idServer ?? stack.isName, idAccessToken: aliceIdentity.accessToken!, medium: "email" as const, address });

    it("exactly once: ten identical 3PID invites in parallel → one m.room.third_party_invite, one store-invite, one mail; a later one while pending → 200 {} and nothing else", async () => {
      const roomId = (await alice.createRoom({ name: "Ten at once" })).room_id;
      const email = `dup-${engine}@example.org`;
      const stored0 = await metric(stack.isUrl, "invites_stored_total");
      const deduped0 = await metric(stack.isUrl, "invites_deduplicated_total");
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => alice.inviteBy3PID(roomId, target(email))));
      for (const r of results) {
        assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
        if (r.status === "fulfilled") assert.deepEqual(r.value, {});
      }
      assert.equal((await tpis(alice, roomId)).length, 1, "exactly one m.room.third_party_invite");
      assert.equal((await metric(stack.isUrl, "invites_stored_total")) - stored0, 1, "one invite stored at the identity server");
      assert.equal((await metric(stack.isUrl, "invites_deduplicated_total")) - deduped0, 0, "no second store-invite reached the identity server");
      await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) });
      // The same request again (and with another case) while the invite is pending.
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(email)), {});
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(email.toUpperCase())), {});
      await pause(1000);
      assert.equal((await tpis(alice, roomId)).length, 1, "still one m.room.third_party_invite");
      assert.equal((await metric(stack.isUrl, "invites_stored_total")) - stored0, 1);
      assert.equal((await metric(stack.isUrl, "invites_deduplicated_total")) - deduped0, 0, "no store-invite for the repeats");
      assert.equal(mailsTo(stack, email).length, 1, "exactly one mail");
    });

    it("exactly once with a slow identity server: ten parallel invites in mixed case → one store-invite request, one event; after a revocation the address can be invited again", async () => {
      const roomId = (await alice.createRoom({ name: "Slow IS" })).room_id;
      const email = `slow-${engine}@example.org`;
      const before = keyed.server.requests.filter((r) => r.path.endsWith("/store-invite")).length;
      keyed.storeDelayMs = 400;
      let results;
      try {
        results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => alice.inviteBy3PID(roomId, target(i % 2 ? email.toUpperCase() : email, "keyed.test"))));
      } finally {
        keyed.storeDelayMs = 0;
      }
      for (const r of results) assert.equal(r.status, "fulfilled", r.status === "rejected" ? String(r.reason) : "");
      assert.equal(keyed.server.requests.filter((r) => r.path.endsWith("/store-invite")).length - before, 1, "one store-invite");
      const events = await tpis(alice, roomId);
      assert.equal(events.length, 1, "one m.room.third_party_invite");
      await alice.revokeThirdPartyInvite(roomId, events[0]!.state_key);
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(email, "keyed.test")), {});
      const after = await tpis(alice, roomId);
      assert.equal(after.filter((e) => Object.keys(e.content).length > 0).length, 1, "a new pending invite after the revocation");
      assert.equal(keyed.server.requests.filter((r) => r.path.endsWith("/store-invite")).length - before, 2);
    });

    it("parallel identical invites while the first one's store-invite fails: every request gets the failure, none a false 200 {}", async () => {
      const roomId = (await alice.createRoom({ name: "Failing in parallel" })).room_id;
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => alice.inviteBy3PID(roomId, target(`failing-${engine}@example.org`, "slowfail.test"))));
      for (const r of results) {
        assert.equal(r.status, "rejected", "no 200 {} for an invite that was not made");
        if (r.status === "rejected") assert.equal((r.reason as MatrixCallError).status, 502);
      }
      assert.equal((await tpis(alice, roomId)).length, 0);
    });

    it("an identity-server 4xx is passed on as 400 with its errcode (never 401), and createRoom leaves no room", async () => {
      const roomsBefore: string[] = (await alice.joinedRooms()).joined_rooms;
      const err = await expectMatrixError(
        alice.createRoom({ name: "Bad token", invite_3pid: [{ id_server: stack.isName, id_access_token: "not-a-token", medium: "email", address: `badtoken-${engine}@example.org` }] }),
        400,
      );
      assert.equal(err.errcode, "M_UNAUTHORIZED");
      assert.deepEqual((await alice.joinedRooms()).joined_rooms.sort(), [...roomsBefore].sort());
    });

    it("identity server: store-invite again within the dedupe window → same token and keys, no second mail", async () => {
      const roomId = (await alice.createRoom({ name: "Window" })).room_id;
      const email = `window-${engine}@example.org`;
      const body = { medium: "email", address: email, room_id: roomId, sender: alice.userId, room_name: "Window", sender_display_name: "Alice" };
      const a = await http("POST", `${stack.isUrl}/_matrix/identity/v2/store-invite`, { token: aliceIdentity.accessToken!, body });
      assert.equal(a.status, 200, JSON.stringify(a.json));
      const b = await http("POST", `${stack.isUrl}/_matrix/identity/v2/store-invite`, { token: aliceIdentity.accessToken!, body: { ...body, address: email.toUpperCase() } });
      assert.equal(b.status, 200, JSON.stringify(b.json));
      assert.equal(b.json["token"], a.json["token"]);
      assert.deepEqual(b.json["public_keys"], a.json["public_keys"]);
      assert.equal(b.json["public_key"], a.json["public_key"]);
      await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) });
      await pause(800);
      assert.equal(mailsTo(stack, email).length, 1, "one mail");
    });

    it("race: the address is bound between lookup and store-invite → an ordinary invite of that mxid, 200 {}", async () => {
      const bobIdentity = await identityFor(asHarness(stack), bob);
      const session = await validateByMail(asHarness(stack), bobIdentity, raceEmail);
      await bobIdentity.bind({ sid: session.sid, clientSecret: session.clientSecret, mxid: bob.userId! });
      const roomId = (await alice.createRoom({ name: "Race" })).room_id;
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(raceEmail, "race.test")), {});
      assert.ok(race.requests.some((r) => r.path.endsWith("/store-invite")), "store-invite went through the proxy");
      const m = await memberEvent(alice, roomId, bob.userId!);
      assert.equal(m?.membership, "invite", "bob is invited by Matrix ID");
      assert.equal((await tpis(alice, roomId)).length, 0, "no third-party invite");
    });

    it("already there: invited again → 200 {} and no new event; joined → 403 M_FORBIDDEN; inviteManyByEmail reports already-member and carries on", async () => {
      const roomId = (await alice.createRoom({ name: "Already" })).room_id;
      const carol = await registerUser(asHarness(stack), "carol");
      await alice.invite(roomId, carol.userId!);
      const first = await memberEvent(alice, roomId, carol.userId!);
      assert.deepEqual(await alice.invite(roomId, carol.userId!), {});
      assert.equal((await memberEvent(alice, roomId, carol.userId!))?.event_id, first?.event_id, "no new member event");
      await alice.invite(roomId, bob.userId!);
      await bob.join(roomId);
      await expectMatrixError(alice.invite(roomId, bob.userId!), 403, "M_FORBIDDEN");
      const banned = await registerUser(asHarness(stack), "banned");
      await alice.ban(roomId, banned.userId!);
      await expectMatrixError(alice.invite(roomId, banned.userId!), 403, "M_FORBIDDEN");
      // bob is bound to raceEmail at the identity server (previous test).
      const fresh = `fresh-${engine}@example.org`;
      const results = await inviteManyByEmail(alice, roomId, [raceEmail, fresh], { identity: aliceIdentity });
      const byEmail = new Map(results.map((r) => [r.email, r.status]));
      assert.equal(byEmail.get(raceEmail), "already-member");
      assert.equal(byEmail.get(fresh), "invited-by-3pid");
      // inviteByEmail (single) says the same.
      assert.equal((await inviteByEmail(alice, roomId, raceEmail, { identity: aliceIdentity })).status, "already-member");
    });

    for (const [name, idServer, statuses] of [
      ["unreachable", "down.test", [502]],
      ["hanging past the timeout", "hang.test", [504]],
      ["answering 5xx", "fivexx.test", [502]],
      ["answering garbage", "garbage.test", [502]],
    ] as const) {
      it(`all or nothing, identity server ${name}: createRoom with invite_3pid → ${statuses.join("/")} and no room; rooms/{id}/invite → no event`, async () => {
        const roomsBefore: string[] = (await alice.joinedRooms()).joined_rooms;
        const sinceBefore = (await alice.syncOnce({ timeout: 0 })).next_batch;
        const err = await expectMatrixError(
          alice.createRoom({ name: `Doomed ${name}`, invite_3pid: [{ id_server: idServer, id_access_token: "whatever", medium: "email", address: `doomed-${engine}@example.org` }] }),
          [...statuses],
        );
        assert.equal(err.errcode, "M_UNKNOWN");
        assert.deepEqual((await alice.joinedRooms()).joined_rooms.sort(), [...roomsBefore].sort(), "no new room in joined_rooms");
        const sync = await alice.syncOnce({ timeout: 0, since: sinceBefore });
        const newRooms = Object.keys(sync.rooms?.join ?? {}).filter((r) => !roomsBefore.includes(r));
        assert.deepEqual(newRooms, [], "no new room in sync");

        const roomId = (await alice.createRoom({ name: `Existing ${name}` })).room_id;
        const stateBefore = (await alice.getState(roomId)).length;
        await expectMatrixError(alice.inviteBy3PID(roomId, target(`doomed-${engine}@example.org`, idServer)), [...statuses], "M_UNKNOWN");
        assert.equal((await alice.getState(roomId)).length, stateBefore, "no new state event");
        assert.equal((await tpis(alice, roomId)).length, 0);
      });
    }

    // Two createRoom defects found here and fixed: every lookup happens before any store-invite, and
    // the same invitee listed twice is one invite.
    it("createRoom with two invite_3pid entries whose second identity server is down → no room and no invite mail for the first", async () => {
      const first = `half-first-${engine}@example.org`;
      await expectMatrixError(
        alice.createRoom({
          name: "Half made",
          invite_3pid: [
            { id_server: stack.isName, id_access_token: aliceIdentity.accessToken!, medium: "email", address: first },
            { id_server: "down.test", id_access_token: "x", medium: "email", address: `half-second-${engine}@example.org` },
          ],
        }),
        502,
        "M_UNKNOWN",
      );
      await pause(1500);
      assert.equal(mailsTo(stack, first).length, 0, "no invite mail for a room that does not exist");
    });

    it("createRoom with the same address twice in invite_3pid (different case) → one m.room.third_party_invite event", async () => {
      const email = `twice-${engine}@example.org`;
      const entry = (address: string) => ({ id_server: stack.isName, id_access_token: aliceIdentity.accessToken!, medium: "email", address });
      const deduped0 = await metric(stack.isUrl, "invites_deduplicated_total");
      const { room_id } = await alice.createRoom({ name: "Twice", invite_3pid: [entry(email), entry(email.toUpperCase())] });
      const timeline = (await alice.messages(room_id, { dir: "b", limit: 100 })).chunk.filter((e) => e.type === "m.room.third_party_invite");
      assert.equal(timeline.length, 1, "one m.room.third_party_invite event");
      assert.equal((await metric(stack.isUrl, "invites_deduplicated_total")) - deduped0, 0, "one store-invite");
    });

    it("mail trouble never fails a request: SMTP refusing → the invite succeeds, the mail arrives once SMTP accepts again", async () => {
      const roomId = (await alice.createRoom({ name: "Refused mail" })).room_id;
      const email = `smtp-${engine}@example.org`;
      stack.smtp.setRefusing(true);
      try {
        assert.deepEqual(await alice.inviteBy3PID(roomId, target(email)), {});
        await pause(1500);
        assert.equal(mailsTo(stack, email).length, 0);
      } finally {
        stack.smtp.setRefusing(false);
      }
      assert.equal((await tpis(alice, roomId)).length, 1);
      await stack.smtp.waitForMails(1, { timeoutMs: 20_000, match: (m) => m.to.includes(email) });
    });

    it("onbind: a batch with a forged signature, an unknown room and a valid invite → 2xx, only the valid one invites; unreachable key_validity_url → 5xx; replays never duplicate or re-invite a joined user", async () => {
      const olivia = await registerUser(asHarness(stack), "olivia");
      const email = `olivia-${engine}@example.org`;
      const roomA = (await alice.createRoom({ name: "Valid" })).room_id;
      const roomB = (await alice.createRoom({ name: "Forged" })).room_id;
      const roomD = (await alice.createRoom({ name: "Validity down" })).room_id;
      for (const r of [roomA, roomB, roomD]) assert.deepEqual(await alice.inviteBy3PID(r, target(email, "keyed.test")), {});
      const tokenIn = (roomId: string) => [...keyed.invites.entries()].find(([, i]) => i.roomId === roomId)![0];
      const inv = (roomId: string, token: string, signed: Record<string, unknown>) => ({ address: email, medium: "email", mxid: olivia.userId, room_id: roomId, sender: alice.userId, token, signed });
      const signedFor = (token: string, key = keyed.invites.get(token)!.key) => signInvite({ mxid: olivia.userId!, token, sender: alice.userId! }, "keyed.test", key);
      const tA = tokenIn(roomA);
      const tB = tokenIn(roomB);
      const tD = tokenIn(roomD);
      const unknownRoom = `!nowhere:${stack.hsName}`;
      const batch = {
        address: email,
        medium: "email",
        mxid: olivia.userId,
        invites: [inv(roomB, tB, signedFor(tB, newTestKey())), inv(unknownRoom, "tokunknown", signedFor(tA)), inv(roomA, tA, signedFor(tA))],
      };
      const onbind = (body: unknown) => http("POST", `${stack.hsUrl}/_matrix/federation/v1/3pid/onbind`, { body });
      const r1 = await onbind(batch);
      assert.ok(r1.status >= 200 && r1.status < 300, `2xx, got ${r1.status} ${JSON.stringify(r1.json)}`);
      const a1 = await memberEvent(alice, roomA, olivia.userId!);
      assert.equal(a1?.membership, "invite", "the valid invite became an invite");
      assert.ok(a1?.content["third_party_invite"], "with third_party_invite");
      assert.equal(await memberEvent(alice, roomB, olivia.userId!), undefined, "the forged one did not");

      const r2 = await http("PUT", `${stack.hsUrl}/_matrix/federation/v1/3pid/onbind`, { body: batch });
      assert.ok(r2.status >= 200 && r2.status < 300, `replay with PUT: 2xx, got ${r2.status}`);
      assert.equal((await memberEvent(alice, roomA, olivia.userId!))?.event_id, a1?.event_id, "a replay adds no event");

      keyed.validity = "destroy";
      const single = { address: email, medium: "email", mxid: olivia.userId, invites: [inv(roomD, tD, signedFor(tD))] };
      const r3 = await onbind(single);
      assert.ok(r3.status >= 500, `key_validity_url unreachable → 5xx, got ${r3.status} ${JSON.stringify(r3.json)}`);
      assert.equal(await memberEvent(alice, roomD, olivia.userId!), undefined, "nothing while the key cannot be checked");
      keyed.validity = "ok";
      const r4 = await onbind(single);
      assert.ok(r4.status >= 200 && r4.status < 300, `the retry: 2xx, got ${r4.status} ${JSON.stringify(r4.json)}`);
      assert.equal((await memberEvent(alice, roomD, olivia.userId!))?.membership, "invite");

      // A revoked invite, validly signed: refused for good (2xx, so the identity server stops), no invite.
      const roomR = (await alice.createRoom({ name: "Revoked keyed" })).room_id;
      assert.deepEqual(await alice.inviteBy3PID(roomR, target(email, "keyed.test")), {});
      const tR = tokenIn(roomR);
      await alice.revokeThirdPartyInvite(roomR, tR);
      const rR = await onbind({ address: email, medium: "email", mxid: olivia.userId, invites: [inv(roomR, tR, signedFor(tR))] });
      assert.ok(rR.status >= 200 && rR.status < 300, `revoked: 2xx (permanently refused), got ${rR.status} ${JSON.stringify(rR.json)}`);
      assert.equal(await memberEvent(alice, roomR, olivia.userId!), undefined, "no invite for a revoked token");
      await expectMatrixError(olivia.join(roomR, { thirdPartySigned: signedFor(tR) as never }), 403);

      await olivia.join(roomA);
      const joined = await memberEvent(alice, roomA, olivia.userId!);
      const r5 = await onbind(batch);
      assert.ok(r5.status >= 200 && r5.status < 300, `replay after the join: 2xx, got ${r5.status}`);
      const after5 = await memberEvent(alice, roomA, olivia.userId!);
      assert.equal(after5?.membership, "join", "a replay never re-invites a joined user");
      assert.equal(after5?.event_id, joined?.event_id);
    });

    it("base64: the homeserver's onbind check accepts a URL-safe, padded public key and signature", async () => {
      const olivia = await registerUser(asHarness(stack), "oscar");
      const email = `oscar-${engine}@example.org`;
      const roomId = (await alice.createRoom({ name: "URL-safe" })).room_id;
      keyed.alphabet = "urlPadded";
      try {
        assert.deepEqual(await alice.inviteBy3PID(roomId, target(email, "keyed.test")), {});
      } finally {
        keyed.alphabet = "std";
      }
      const [tpi] = await tpis(alice, roomId);
      const token = tpi!.state_key;
      const key = keyed.invites.get(token)!.key;
      assert.equal(tpi!.content["public_key"], key.urlPadded, "the key is copied from store-invite as it came");
      const signed = signInvite({ mxid: olivia.userId!, token, sender: alice.userId! }, "keyed.test", key, "url");
      const r = await http("POST", `${stack.hsUrl}/_matrix/federation/v1/3pid/onbind`, {
        body: { address: email, medium: "email", mxid: olivia.userId, invites: [{ address: email, medium: "email", mxid: olivia.userId, room_id: roomId, sender: alice.userId, token, signed }] },
      });
      assert.ok(r.status >= 200 && r.status < 300, `2xx, got ${r.status} ${JSON.stringify(r.json)}`);
      assert.equal((await memberEvent(alice, roomId, olivia.userId!))?.membership, "invite");
    });

    it("revoke then bind: the listed invite is revoked; the bind invites nobody to that room, and a third_party_signed join for the token is refused", async () => {
      const email = `rita-${engine}@example.org`;
      const revoked = (await alice.createRoom({ name: "Revoked" })).room_id;
      const control = (await alice.createRoom({ name: "Control" })).room_id;
      assert.equal((await inviteByEmail(alice, revoked, email, { identity: aliceIdentity })).status, "invited-by-3pid");
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) && /Revoked/.test(m.subject + m.text) });
      const pending = await alice.listPendingThirdPartyInvites(revoked);
      assert.equal(pending.length, 1);
      assert.equal(pending[0]!.sender, alice.userId);
      assert.ok(pending[0]!.displayName.length > 0 && !pending[0]!.displayName.includes(email));
      assert.ok(pending[0]!.invitedAt > 0);
      const token = pending[0]!.token;
      await alice.revokeThirdPartyInvite(revoked, token);
      assert.deepEqual(await alice.listPendingThirdPartyInvites(revoked), []);
      assert.equal((await inviteByEmail(alice, control, email, { identity: aliceIdentity })).status, "invited-by-3pid");

      const rita = await registerUser(asHarness(stack), "rita");
      const ritaIdentity = await identityFor(asHarness(stack), rita);
      const session = await validateByMail(asHarness(stack), ritaIdentity, email);
      await rita.bindThreepid({ sid: session.sid, clientSecret: session.clientSecret, idServer: ritaIdentity.serverName, idAccessToken: ritaIdentity.accessToken! });
      await waitFor(async () => (await memberEvent(alice, control, rita.userId!))?.membership === "invite", { timeoutMs: 20_000, intervalMs: 200, what: "the control invite" });
      assert.equal(await memberEvent(alice, revoked, rita.userId!), undefined, "not invited to the room whose invite was revoked");

      const sign = signUrlOf(stack, mail!);
      assert.equal(sign.searchParams.get("token"), token);
      sign.searchParams.set("mxid", rita.userId!);
      const s = await http("POST", sign.toString());
      assert.equal(s.status, 200, `sign-ed25519: ${JSON.stringify(s.json)}`);
      const { mxid, sender, signatures } = s.json as { mxid: string; sender: string; signatures: Record<string, Record<string, string>> };
      await expectMatrixError(rita.join(revoked, { thirdPartySigned: { mxid, sender, token, signatures } as never }), 403);
      assert.equal(await memberEvent(alice, revoked, rita.userId!), undefined);
    });

    it("an inviter who may not invite → 403 M_FORBIDDEN before any identity-server traffic", async () => {
      const roomId = (await alice.createRoom({ name: "Not yours" })).room_id;
      const mallory = await registerUser(asHarness(stack), "mallory");
      const malloryIdentity = await identityFor(asHarness(stack), mallory);
      const before = keyed.server.requests.length;
      await expectMatrixError(
        mallory.inviteBy3PID(roomId, { idServer: "keyed.test", idAccessToken: malloryIdentity.accessToken!, medium: "email", address: `nope-${engine}@example.org` }),
        403,
        "M_FORBIDDEN",
      );
      assert.equal(keyed.server.requests.length, before, "no request reached the identity server");
      assert.equal((await tpis(alice, roomId)).length, 0);
    });

    it("skipping the bind: the mail's sign URL gives a signed blob, and a join with third_party_signed does the invite and the join", async () => {
      const email = `dave-${engine}@example.org`;
      const roomId = (await alice.createRoom({ name: "Sign URL room" })).room_id;
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(email)), {});
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) });
      const dave = await registerUser(asHarness(stack), "dave");
      const sign = signUrlOf(stack, mail!);
      sign.searchParams.set("mxid", dave.userId!);
      const s = await http("POST", sign.toString());
      assert.equal(s.status, 200, JSON.stringify(s.json));
      const { mxid, sender, token, signatures } = s.json as { mxid: string; sender: string; token: string; signatures: Record<string, Record<string, string>> };
      assert.equal(sender, alice.userId);
      await dave.join(roomId, { thirdPartySigned: { mxid, sender, token, signatures } as never });
      const m = await memberEvent(alice, roomId, dave.userId!);
      assert.equal(m?.membership, "join");
      assert.deepEqual(await alice.listPendingThirdPartyInvites(roomId), [], "the invite is used");
    });

    it("v1 routes answer with a key stored by an earlier invite; v1 lookup/bind/store-invite are 404 M_UNRECOGNIZED; new invites carry v2 validity URLs; both base64 alphabets", async () => {
      const email = `v1-${engine}@example.org`;
      const roomId = (await alice.createRoom({ name: "Old links" })).room_id;
      assert.deepEqual(await alice.inviteBy3PID(roomId, target(email)), {});
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) });
      const [tpi] = await tpis(alice, roomId);
      const content = tpi!.content as { public_key: string; key_validity_url: string; public_keys: { public_key: string; key_validity_url: string }[] };
      assert.match(content.key_validity_url, /\/_matrix\/identity\/v2\/pubkey\//);
      for (const k of content.public_keys) assert.match(k.key_validity_url, /\/_matrix\/identity\/v2\/pubkey\//, "v2 validity URLs");
      const v1 = `${stack.isUrl}/_matrix/identity/api/v1`;
      const v2 = `${stack.isUrl}/_matrix/identity/v2`;

      const status = await http("GET", v1);
      assert.equal(status.status, 200);
      assert.deepEqual(status.json, {});
      const longTerm = await http("GET", `${v1}/pubkey/ed25519:0`);
      assert.equal(longTerm.status, 200);
      assert.equal(longTerm.json["public_key"], (await http("GET", `${v2}/pubkey/ed25519:0`)).json["public_key"]);
      const lt = String(longTerm.json["public_key"]);
      const ephemeral = content.public_keys.map((k) => k.public_key).find((k) => k !== lt);
      assert.ok(ephemeral, "an ephemeral key in public_keys");
      for (const base of [v1, v2]) {
        for (const form of [lt, urlSafePadded(lt)]) {
          const r = await http("GET", `${base}/pubkey/isvalid?public_key=${encodeURIComponent(form)}`);
          assert.deepEqual(r.json, { valid: true }, `${base} isvalid ${form}`);
        }
        for (const form of [ephemeral, urlSafePadded(ephemeral)]) {
          const r = await http("GET", `${base}/pubkey/ephemeral/isvalid?public_key=${encodeURIComponent(form)}`);
          assert.deepEqual(r.json, { valid: true }, `${base} ephemeral/isvalid ${form}`);
        }
      }
      const sign = signUrlOf(stack, mail!);
      const v1sign = new URL(`${v1}/sign-ed25519`);
      v1sign.searchParams.set("token", sign.searchParams.get("token")!);
      v1sign.searchParams.set("private_key", sign.searchParams.get("private_key")!);
      v1sign.searchParams.set("mxid", bob.userId!);
      const signed = await http("POST", v1sign.toString());
      assert.equal(signed.status, 200, JSON.stringify(signed.json));
      assert.equal(signed.json["token"], tpi!.state_key);
      assert.equal(signed.json["mxid"], bob.userId);
      assert.ok(signed.json["signatures"]);
      const inBody = await http("POST", `${v1}/sign-ed25519`, { body: { token: sign.searchParams.get("token"), private_key: sign.searchParams.get("private_key"), mxid: bob.userId } });
      assert.equal(inBody.status, 200, `v1 sign-ed25519 with a JSON body: ${JSON.stringify(inBody.json)}`);
      assert.deepEqual(inBody.json["signatures"], signed.json["signatures"]);
      const submit = await http("GET", `${v1}/validate/email/submitToken?sid=1&client_secret=abc&token=123`);
      assert.notEqual(submit.json["errcode"], "M_UNRECOGNIZED", "v1 submitToken is served");
      assert.ok(submit.status < 500);
      for (const [method, path] of [
        ["GET", "/lookup?medium=email&address=a%40example.org"],
        ["POST", "/bulk_lookup"],
        ["POST", "/3pid/bind"],
        ["POST", "/store-invite"],
      ] as const) {
        const r = await http(method, `${v1}${path}`, method === "POST" ? { body: {} } : {});
        assert.equal(r.status, 404, `${method} v1${path}`);
        assert.equal(r.json["errcode"], "M_UNRECOGNIZED", `${method} v1${path}`);
      }
    });

    it("unbind: the homeserver signs 3pid/unbind with destination_is and the identity server accepts it → id_server_unbind_result success", async () => {
      const r = await http("POST", `${stack.hsUrl}/_matrix/client/v3/account/3pid/unbind`, { token: tokenOf(bob), body: { medium: "email", address: raceEmail, id_server: stack.isName } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json["id_server_unbind_result"], "success");
      const found = await aliceIdentity.lookupOne("email", raceEmail);
      assert.equal(found, undefined, "the address is no longer bound");
    });

    it("the identity server accepts an X-Matrix unbind signed with destination_is (either of its names) and refuses the federation form with destination", async () => {
      const email = `zed-${engine}@example.org`;
      const reg = await http("POST", `${stack.isUrl}/_matrix/identity/v2/account/register`, { body: { access_token: "openid-token", token_type: "Bearer", matrix_server_name: "fakehs.test", expires_in: 3600 } });
      assert.equal(reg.status, 200, JSON.stringify(reg.json));
      const token = String(reg.json["token"]);
      const clientSecret = `zedsecret${Date.now()}`;
      const req = await http("POST", `${stack.isUrl}/_matrix/identity/v2/validate/email/requestToken`, { token, body: { client_secret: clientSecret, email, send_attempt: 1 } });
      assert.equal(req.status, 200, JSON.stringify(req.json));
      const [mail] = await stack.smtp.waitForMails(1, { timeoutMs: 10_000, match: (m) => m.to.includes(email) });
      const link = mailLinks(mail!).find((l) => l.includes("submitToken"))!;
      assert.equal((await fetch(link, { signal: AbortSignal.timeout(10_000) })).status, 200);
      const bound = await http("POST", `${stack.isUrl}/_matrix/identity/v2/3pid/bind`, { token, body: { sid: req.json["sid"], client_secret: clientSecret, mxid: zed } });
      assert.equal(bound.status, 200, JSON.stringify(bound.json));
      assert.equal(await aliceIdentity.lookupOne("email", email), zed);

      const content = { mxid: zed, threepid: { medium: "email", address: email } };
      const unbind = (authorization: string) =>
        fetch(`${stack.isUrl}${IDENTITY_UNBIND_URI}`, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: JSON.stringify(content), signal: AbortSignal.timeout(10_000) });
      const federationForm = await signXMatrixRequest({ method: "POST", uri: IDENTITY_UNBIND_URI, origin: "fakehs.test", destination: stack.isName, content }, "ed25519:a", fakeHsKey.seed, nodeCryptoProvider);
      const refused = await unbind(federationForm);
      assert.ok(refused.status === 401 || refused.status === 403, `the destination form is refused, got ${refused.status} ${await refused.text()}`);
      assert.equal(await aliceIdentity.lookupOne("email", email), zed, "still bound");
      const otherName = stack.isUrl.replace("http://", "");
      const synapseForm = await signIdentityUnbindRequest({ origin: "fakehs.test", idServer: otherName, content }, "ed25519:a", fakeHsKey.seed, nodeCryptoProvider);
      const ok = await unbind(synapseForm);
      assert.equal(ok.status, 200, await ok.text());
      assert.equal(await aliceIdentity.lookupOne("email", email), undefined, "unbound");
    });

    it("the homeserver serves its key at /_matrix/key/v2/server with and without a trailing slash; neither server skips TLS checks by default", async () => {
      for (const path of ["/_matrix/key/v2/server", "/_matrix/key/v2/server/"]) {
        const r = await http("GET", `${stack.hsUrl}${path}`);
        assert.equal(r.status, 200, path);
        assert.equal(r.json["server_name"], stack.hsName);
      }
      assert.doesNotMatch(stack.logs(), /insecure_skip_tls_verify is ON|INSECURE/i, "TLS checks are on by default");
    });
  });
}
