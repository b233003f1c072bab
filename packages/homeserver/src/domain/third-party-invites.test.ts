import { test, describe, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTempDatabase, postgresSkipReason, tempDir } from "@beckon/test-support";
import type { DatabaseHandle } from "@beckon/server-kit";
import { fetchOutbound, rejectsMatrix, startFakeIdentityServer, type FakeIdentityServer } from "../identity/testing.js";
import { createThreepidApi } from "./third-party-invites.js";
import { FakeRooms, threepidTestDb, threepidTestDeps } from "./threepid-testing.js";
import type { ThreepidDatabase } from "./threepid-storage.js";

const ROOM = "!room:hs.test";
const ALICE = "@alice:hs.test";

describe("3PID invites (domain, fake room core, misbehaving identity server)", () => {
  let fake: FakeIdentityServer;
  let handle: DatabaseHandle<ThreepidDatabase>;
  let rooms: FakeRooms;
  let api: ReturnType<typeof createThreepidApi>;

  before(async () => {
    fake = await startFakeIdentityServer();
  });
  after(() => fake.close());
  beforeEach(async () => {
    await handle?.close();
    handle = await threepidTestDb();
    fake.handlers.clear();
    fake.requests.length = 0;
    fake.bindings.clear();
    fake.storeInviteCount = 0;
    rooms = new FakeRooms();
    rooms.createRoom(ROOM, ALICE);
    rooms.profiles.set(ALICE, { displayname: "Alice A." });
    rooms.users.add("@bob:hs.test");
    api = createThreepidApi(threepidTestDeps(handle, { outbound: fetchOutbound(), map: { [fake.name]: fake.baseUrl }, rooms }));
  });
  after(() => handle?.close());

  const req = (address = "carol@example.org") => ({ id_server: fake.name, id_access_token: "swordfish", medium: "email", address });

  test("a miss: store-invite with Synapse's details, then m.room.third_party_invite copied from the answer", async () => {
    await api.inviteByThreepid(ROOM, ALICE, req());
    const events = rooms.eventsOf(ROOM, "m.room.third_party_invite");
    assert.equal(events.length, 1);
    const ev = events[0]!;
    assert.match(ev.state_key!, /^tok\d+$/);
    assert.equal(ev.sender, ALICE);
    assert.deepEqual(ev.content, {
      display_name: "Bob",
      public_keys: [
        { public_key: fake.longTerm.publicKey, key_validity_url: `${fake.baseUrl}/_matrix/identity/v2/pubkey/isvalid` },
        { public_key: fake.ephemeral.publicKey, key_validity_url: `${fake.baseUrl}/_matrix/identity/v2/pubkey/ephemeral/isvalid` },
      ],
      public_key: fake.longTerm.publicKey,
      key_validity_url: `${fake.baseUrl}/_matrix/identity/v2/pubkey/isvalid`,
    });
    const store = fake.requests.find((r) => r.path.endsWith("/store-invite"))!;
    assert.deepEqual(store.body, {
      medium: "email",
      address: "carol@example.org",
      room_id: ROOM,
      sender: ALICE,
      room_alias: "#room:hs.test",
      room_avatar_url: "",
      room_join_rules: "invite",
      room_name: "The Room",
      sender_display_name: "Alice A.",
      sender_avatar_url: "",
    });
  });

  test("a hit is an ordinary invite; no store-invite", async () => {
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    await api.inviteByThreepid(ROOM, ALICE, req("bob@example.org"));
    assert.equal(await rooms.getMembership(ROOM, "@bob:hs.test"), "invite");
    assert.equal(fake.storeInviteCount, 0);
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 0);
    // Inviting again: already invited → no new event.
    const before = rooms.sent.length;
    await api.inviteByThreepid(ROOM, ALICE, req("bob@example.org"));
    assert.equal(rooms.sent.length, before);
  });

  test("a `null` lookup value (SyTest's mock) is a miss", async () => {
    fake.nullForUnknown = true;
    await api.inviteByThreepid(ROOM, ALICE, req());
    fake.nullForUnknown = false;
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("race: store-invite says M_THREEPID_IN_USE with mxid → ordinary invite", async () => {
    fake.handlers.set("/_matrix/identity/v2/lookup", (_r, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ mappings: {} }));
    });
    fake.bind("email", "bob@example.org", "@bob:hs.test");
    await api.inviteByThreepid(ROOM, ALICE, req("bob@example.org"));
    assert.equal(await rooms.getMembership(ROOM, "@bob:hs.test"), "invite");
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 0);
  });

  test("a lookup naming a user of another server → 403 (no federation)", async () => {
    fake.bind("email", "zed@example.org", "@zed:elsewhere.test");
    await rejectsMatrix(api.inviteByThreepid(ROOM, ALICE, req("zed@example.org")), "M_FORBIDDEN", 403);
  });

  test("exactly once: a repeat while pending (case-folded address) answers without anything", async () => {
    assert.equal(await api.isPendingRepeat(ROOM, ALICE, req("carol@example.org")), false);
    await api.inviteByThreepid(ROOM, ALICE, req("carol@example.org"));
    assert.equal(await api.isPendingRepeat(ROOM, ALICE, req("CAROL@example.org")), true);
    const n = fake.requests.length;
    await api.inviteByThreepid(ROOM, ALICE, req("Carol@EXAMPLE.org"));
    assert.equal(fake.requests.length, n, "no identity-server traffic at all");
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("ten parallel identical requests → one store-invite, one event", async () => {
    rooms.sendDelayMs = 20;
    await Promise.all(Array.from({ length: 10 }, () => api.inviteByThreepid(ROOM, ALICE, req())));
    assert.equal(fake.storeInviteCount, 1);
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("all or nothing: IS down / garbage / timeout → 502/504, no event, and the next try starts afresh", async () => {
    fake.handlers.set("/_matrix/identity/v2/store-invite", (_r, res) => {
      res.writeHead(500).end("boom");
    });
    await rejectsMatrix(api.inviteByThreepid(ROOM, ALICE, req()), "M_UNKNOWN", 502);
    fake.handlers.set("/_matrix/identity/v2/store-invite", (_r, res) => {
      res.writeHead(200, { "content-type": "text/html" }).end("<html/>");
    });
    await rejectsMatrix(api.inviteByThreepid(ROOM, ALICE, req()), "M_UNKNOWN", 502);
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 0);
    fake.handlers.delete("/_matrix/identity/v2/store-invite");
    await api.inviteByThreepid(ROOM, ALICE, req());
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("the room refusing the event releases the claim", async () => {
    rooms.failSends = 1;
    await assert.rejects(api.inviteByThreepid(ROOM, ALICE, req()));
    await api.inviteByThreepid(ROOM, ALICE, req());
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("checks come first: not allowed, missing token, untrusted server → no identity-server traffic", async () => {
    await rejectsMatrix(api.inviteByThreepid(ROOM, "@mallory:hs.test", req()), "M_FORBIDDEN", 403);
    await rejectsMatrix(api.inviteByThreepid("!nope:hs.test", ALICE, req()), "M_NOT_FOUND", 404);
    await rejectsMatrix(api.inviteByThreepid(ROOM, ALICE, { id_server: fake.name, medium: "email", address: "a@b.c" }), "M_MISSING_PARAM", 400);
    await rejectsMatrix(api.inviteByThreepid(ROOM, ALICE, { ...req(), id_server: "127.0.0.1:1" }), "M_SERVER_NOT_TRUSTED", 400);
    assert.equal(fake.requests.length, 0);
  });

  test("after a revocation, a new invite of the same address is made", async () => {
    await api.inviteByThreepid(ROOM, ALICE, req());
    const token = rooms.eventsOf(ROOM, "m.room.third_party_invite")[0]!.state_key!;
    await rooms.sendEvent({ roomId: ROOM, sender: ALICE, type: "m.room.third_party_invite", stateKey: token, content: {} });
    await api.inviteByThreepid(ROOM, ALICE, req());
    assert.equal(fake.storeInviteCount, 2);
    const events = rooms.eventsOf(ROOM, "m.room.third_party_invite");
    assert.equal(events.length, 3);
    assert.notEqual(events[2]!.state_key, token);
    assert.equal(events[2]!.content.display_name, "Bob");
  });

  test("the IS answering a repeat with the same token sends no second state event", async () => {
    fake.handlers.set("/_matrix/identity/v2/store-invite", async (_r, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ token: "same", display_name: "c...", public_keys: [{ public_key: fake.longTerm.publicKey, key_validity_url: `${fake.baseUrl}/v` }] }),
      );
    });
    const first = await api.prepareThreepidInvite(req(), { roomId: ROOM, sender: ALICE });
    assert.equal(first.kind, "third_party");
    if (first.kind !== "third_party") return;
    await rooms.sendEvent({ roomId: ROOM, sender: ALICE, type: "m.room.third_party_invite", stateKey: first.token, content: first.content });
    await api.inviteByThreepid(ROOM, ALICE, req());
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("a claim left by a dead process: taken over once stale; a fresh one is waited for, then 503", async () => {
    const db = handle.db;
    const key = { room_id: ROOM, sender: ALICE, medium: "email", address: "carol@example.org" };
    await db.insertInto("threepid_pending_invites").values({ ...key, token: null, created_ts: Date.now() - 3_600_000 }).execute();
    await api.inviteByThreepid(ROOM, ALICE, req());
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);

    const key2 = { ...key, address: "dora@example.org" };
    await db.insertInto("threepid_pending_invites").values({ ...key2, token: null, created_ts: Date.now() }).execute();
    const quick = createThreepidApi(threepidTestDeps(handle, { outbound: fetchOutbound(), map: { [fake.name]: fake.baseUrl }, rooms, timeoutMs: 100 }));
    const started = Date.now();
    await rejectsMatrix(quick.inviteByThreepid(ROOM, ALICE, req("dora@example.org")), "M_UNKNOWN", 503);
    assert.ok(Date.now() - started < 5_000);
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  });

  test("prepareThreepidInvite does not touch the room", async () => {
    const out = await api.prepareThreepidInvite(req(), { roomId: "!new:hs.test", sender: ALICE, room_name: "New" });
    assert.equal(out.kind, "third_party");
    assert.equal(rooms.sent.length, 0);
    const store = fake.requests.find((r) => r.path.endsWith("/store-invite"))!;
    assert.equal((store.body as { room_name: string }).room_name, "New");
    assert.equal((store.body as { room_alias: string }).room_alias, "");
  });
});

async function crossProcess(url: string): Promise<void> {
  const fake = await startFakeIdentityServer();
  const h1 = await threepidTestDb(url);
  const h2 = await threepidTestDb(url);
  try {
    const rooms = new FakeRooms();
    rooms.createRoom(ROOM, ALICE);
    rooms.sendDelayMs = 30;
    // Two "processes": separate services (no shared in-memory state), one database.
    const a = createThreepidApi(threepidTestDeps(h1, { outbound: fetchOutbound(), map: { [fake.name]: fake.baseUrl }, rooms }));
    const b = createThreepidApi(threepidTestDeps(h2, { outbound: fetchOutbound(), map: { [fake.name]: fake.baseUrl }, rooms }));
    const r = { id_server: fake.name, id_access_token: "swordfish", medium: "email", address: "carol@example.org" };
    await Promise.all(Array.from({ length: 10 }, (_x, i) => (i % 2 === 0 ? a : b).inviteByThreepid(ROOM, ALICE, r)));
    assert.equal(fake.storeInviteCount, 1);
    assert.equal(rooms.eventsOf(ROOM, "m.room.third_party_invite").length, 1);
  } finally {
    await h1.close();
    await h2.close();
    await fake.close();
  }
}

describe("exactly once across processes sharing a database", () => {
  test("SQLite file", async () => {
    const dir = tempDir();
    try {
      await crossProcess(`sqlite:${join(dir.path, "hs.db")}`);
    } finally {
      dir.cleanup();
    }
  });
  test("PostgreSQL", { skip: postgresSkipReason() }, async () => {
    const db = await createTempDatabase();
    try {
      await crossProcess(db.url);
    } finally {
      await db.drop();
    }
  });
});
