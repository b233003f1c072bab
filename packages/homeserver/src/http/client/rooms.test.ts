/** Black-box HTTP tests: createRoom, real PDUs, state, send, history, members, aliases, restart. */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { computeContentHash, decodeBase64, eventSigningBytes, stateKeyId, type PDU } from "@beckon/protocol";
import { nodeCryptoProvider } from "@beckon/protocol/node";
import { createTempDatabase, postgresSkipReason } from "@beckon/test-support";
import { sql } from "kysely";
import { checkEventAuth } from "../../domain/auth-rules.js";
import type { RoomWriteTx } from "../../storage/index.js";
import { pduEventId } from "../../domain/pdu.js";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../../testing.js";

const C = "/_matrix/client/v3";

async function createRoom(t: TestHomeserver, u: TestUser, body: Record<string, unknown> = {}): Promise<string> {
  const r = await call(t.hs, "POST", `${C}/createRoom`, { token: u.token, body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.room_id as string;
}

async function stateContent(t: TestHomeserver, u: TestUser, roomId: string, type: string, key = ""): Promise<Record<string, unknown>> {
  const r = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/${type}/${enc(key)}`, { token: u.token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

describe("homeserver HTTP: rooms", () => {
  let t: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    t = await startTestHomeserver();
    alice = await registerUser(t.hs, "alice");
    bob = await registerUser(t.hs, "bob");
  });
  after(() => t.close());

  it("createRoom sends the spec's events in order, as signed and hashed PDUs that pass the auth rules", async () => {
    const roomId = await createRoom(t, alice, { name: "N", topic: "T", preset: "private_chat", room_alias_name: "ordered", invite: [bob.userId] });
    assert.match(roomId, /^![A-Za-z]+:localhost:8008$/);
    const events = await t.hs.storage.rooms.getRoomEvents(roomId, { dir: "f", after: 0, upTo: Number.MAX_SAFE_INTEGER, limit: 100 });
    assert.deepEqual(
      events.map((e) => `${e.type}|${e.stateKey ?? ""}`),
      [
        "m.room.create|",
        `m.room.member|${alice.userId}`,
        "m.room.power_levels|",
        "m.room.canonical_alias|",
        "m.room.join_rules|",
        "m.room.history_visibility|",
        "m.room.guest_access|",
        "m.room.name|",
        "m.room.topic|",
        `m.room.member|${bob.userId}`,
      ],
    );
    const key = t.hs.signingKey;
    const pub = nodeCryptoProvider.ed25519PublicKeySync(key.seed);
    const state = new Map<string, PDU>();
    let prev: string | undefined;
    for (const e of events) {
      const p = e.pdu;
      assert.equal(p.hashes.sha256, computeContentHash(p, (b) => nodeCryptoProvider.sha256Sync(b)));
      assert.equal(pduEventId(p, "10"), e.eventId);
      const sig = p.signatures["localhost:8008"]?.[key.keyId];
      assert.ok(sig);
      assert.ok(nodeCryptoProvider.ed25519VerifySync(pub, eventSigningBytes(p, "10"), decodeBase64(sig)));
      assert.deepEqual(p.prev_events, prev ? [prev] : []);
      const authEvents = p.auth_events.map((id) => events.find((x) => x.eventId === id)!.pdu);
      assert.ok(checkEventAuth(p, authEvents, "10", (k, m, s) => nodeCryptoProvider.ed25519VerifySync(k, m, s)).allowed);
      assert.ok(checkEventAuth(p, state, "10", (k, m, s) => nodeCryptoProvider.ed25519VerifySync(k, m, s)).allowed);
      if (p.state_key !== undefined) state.set(stateKeyId(p.type, p.state_key), p);
      prev = e.eventId;
    }
    assert.deepEqual(await stateContent(t, alice, roomId, "m.room.create"), { creator: alice.userId, room_version: "10" });
    assert.deepEqual(await stateContent(t, alice, roomId, "m.room.join_rules"), { join_rule: "invite" });
    assert.equal((await stateContent(t, alice, roomId, "m.room.power_levels")).invite, 0);
    assert.deepEqual(await stateContent(t, alice, roomId, "m.room.canonical_alias"), { alias: "#ordered:localhost:8008" });
    assert.equal((await stateContent(t, alice, roomId, "m.room.member", bob.userId)).membership, "invite");
  });

  it("presets, room version 11, power_level_content_override, initial_state, trusted_private_chat, is_direct", async () => {
    const pub = await createRoom(t, alice, { preset: "public_chat" });
    assert.deepEqual(await stateContent(t, alice, pub, "m.room.join_rules"), { join_rule: "public" });
    assert.equal((await stateContent(t, alice, pub, "m.room.power_levels")).invite, 50);
    assert.deepEqual(await stateContent(t, alice, pub, "m.room.guest_access"), { guest_access: "forbidden" });
    const v11 = await createRoom(t, alice, { room_version: "11", visibility: "public" });
    assert.deepEqual(await stateContent(t, alice, v11, "m.room.create"), { room_version: "11" });
    assert.deepEqual(await stateContent(t, alice, v11, "m.room.join_rules"), { join_rule: "public" });
    const over = await createRoom(t, alice, {
      power_level_content_override: { invite: 75, users: { [alice.userId]: 100, [bob.userId]: 60 } },
      initial_state: [
        { type: "m.room.join_rules", content: { join_rule: "public" } },
        { type: "m.room.avatar", state_key: "", content: { url: "mxc://x/y" } },
        { type: "org.example.custom", state_key: "k", content: { a: 1 } },
      ],
    });
    const pl = await stateContent(t, alice, over, "m.room.power_levels");
    assert.equal(pl.invite, 75);
    assert.deepEqual(pl.users, { [alice.userId]: 100, [bob.userId]: 60 });
    assert.deepEqual(await stateContent(t, alice, over, "m.room.join_rules"), { join_rule: "public" });
    assert.deepEqual(await stateContent(t, alice, over, "org.example.custom", "k"), { a: 1 });
    const trusted = await createRoom(t, alice, { preset: "trusted_private_chat", invite: [bob.userId], is_direct: true });
    assert.equal(((await stateContent(t, alice, trusted, "m.room.power_levels")).users as Record<string, number>)[bob.userId], 100);
    assert.equal((await stateContent(t, alice, trusted, "m.room.member", bob.userId)).is_direct, true);
  });

  it("createRoom errors: unsupported version, alias taken, remote invitee, bad body", async () => {
    const v = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { room_version: "12" } });
    assert.equal(v.status, 400);
    assert.equal(v.body.errcode, "M_UNSUPPORTED_ROOM_VERSION");
    await createRoom(t, alice, { room_alias_name: "dup" });
    const dup = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { room_alias_name: "dup" } });
    assert.equal(dup.status, 400);
    assert.equal(dup.body.errcode, "M_ROOM_IN_USE");
    const remote = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { invite: ["@x:elsewhere.example"] } });
    assert.equal(remote.status, 403);
    const bad = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { invite: "nope" } });
    assert.equal(bad.status, 400);
    const before = (await call(t.hs, "GET", `${C}/joined_rooms`, { token: alice.token })).body.joined_rooms as string[];
    const badInitial = await call(t.hs, "POST", `${C}/createRoom`, { token: alice.token, body: { initial_state: [{ type: "m.room.power_levels", content: { ban: "50" } }] } });
    assert.equal(badInitial.status, 403, "room v10 power levels must be integers (auth rule 9.1)");
    const afterRooms = (await call(t.hs, "GET", `${C}/joined_rooms`, { token: alice.token })).body.joined_rooms as string[];
    assert.deepEqual(afterRooms.sort(), before.sort(), "a failed createRoom leaves no room");
  });

  it("state: GET all, GET one (empty key with and without trailing slash, format=event), PUT, 404, 403", async () => {
    const roomId = await createRoom(t, alice, { name: "S" });
    const all = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token });
    assert.equal(all.status, 200);
    assert.ok(Array.isArray(all.body));
    assert.ok((all.body as unknown as { type: string }[]).some((e) => e.type === "m.room.name"));
    for (const suffix of ["", "/"]) {
      const r = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.name${suffix}`, { token: alice.token });
      assert.deepEqual(r.body, { name: "S" });
    }
    const r0 = await call(t.hs, "GET", `/_matrix/client/r0/rooms/${enc(roomId)}/state/m.room.name/`, { token: alice.token });
    assert.deepEqual(r0.body, { name: "S" });
    const ev = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.name/?format=event`, { token: alice.token });
    assert.equal(ev.body.type, "m.room.name");
    assert.equal(ev.body.room_id, roomId);
    const put = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.topic`, { token: alice.token, body: { topic: "new" } });
    assert.equal(put.status, 200);
    assert.match(put.body.event_id as string, /^\$/);
    const same = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.topic/`, { token: alice.token, body: { topic: "new" } });
    assert.equal(same.body.event_id, put.body.event_id, "repeating the current state is a no-op");
    assert.deepEqual(await stateContent(t, alice, roomId, "m.room.topic"), { topic: "new" });
    const missing = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.avatar`, { token: alice.token });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.errcode, "M_NOT_FOUND");
    const stranger = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: bob.token });
    assert.equal(stranger.status, 403);
    const unknown = await call(t.hs, "GET", `${C}/rooms/${enc("!nope:localhost:8008")}/state`, { token: bob.token });
    assert.equal(unknown.status, 404);
    // bob joins a public room with default power 0: state_default 50 stops him.
    const pub = await createRoom(t, alice, { preset: "public_chat" });
    assert.equal((await call(t.hs, "POST", `${C}/join/${enc(pub)}`, { token: bob.token, body: {} })).status, 200);
    const low = await call(t.hs, "PUT", `${C}/rooms/${enc(pub)}/state/m.room.topic`, { token: bob.token, body: { topic: "x" } });
    assert.equal(low.status, 403);
    assert.equal(low.body.errcode, "M_FORBIDDEN");
  });

  it("send is idempotent per device and transaction id", async () => {
    const roomId = await createRoom(t, alice);
    const url = `${C}/rooms/${enc(roomId)}/send/m.room.message/txn1`;
    const a = await call(t.hs, "PUT", url, { token: alice.token, body: { msgtype: "m.text", body: "one" } });
    const b = await call(t.hs, "PUT", url, { token: alice.token, body: { msgtype: "m.text", body: "one" } });
    assert.equal(a.status, 200);
    assert.equal(a.body.event_id, b.body.event_id);
    const login = await call(t.hs, "POST", `${C}/login`, { body: { type: "m.login.password", user: "alice", password: "correct horse" } });
    const c = await call(t.hs, "PUT", url, { token: login.body.access_token as string, body: { msgtype: "m.text", body: "one" } });
    assert.notEqual(c.body.event_id, a.body.event_id);
    const parallel = await Promise.all(
      Array.from({ length: 5 }, () => call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/par`, { token: alice.token, body: { body: "p" } })),
    );
    assert.equal(new Set(parallel.map((r) => r.body.event_id)).size, 1);
    const msgs = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=10`, { token: alice.token });
    const chunk = msgs.body.chunk as { event_id: string; unsigned?: { transaction_id?: string } }[];
    assert.equal(chunk.filter((e) => e.event_id === a.body.event_id).length, 1);
    assert.equal(chunk.find((e) => e.event_id === a.body.event_id)?.unsigned?.transaction_id, "txn1");
    const notMember = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/x`, { token: bob.token, body: { body: "x" } });
    assert.equal(notMember.status, 403);
  });

  it("concurrent sends to one room are batched: a refused event fails alone, the chain stays linear", async () => {
    const roomId = await createRoom(t, alice, { preset: "public_chat" });
    const before = await t.hs.storage.rooms.currentStreamPos();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/b${i}`, { token: i % 2 === 0 ? alice.token : bob.token, body: { body: `b${i}` } }),
      ),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 200 : 403)),
    );
    const events = await t.hs.storage.rooms.getRoomEvents(roomId, { dir: "f", after: 0, upTo: Number.MAX_SAFE_INTEGER, limit: 100 });
    for (let i = 1; i < events.length; i++) {
      assert.deepEqual(events[i]!.pdu.prev_events, [events[i - 1]!.eventId]);
      assert.equal(events[i]!.pdu.depth, events[i - 1]!.pdu.depth + 1);
    }
    assert.equal(events.filter((e) => e.streamOrdering > before).length, 10);
  });

  it("inTransaction work commits with its event; when it fails, its event and its rows are rolled back alone", async () => {
    const roomId = await createRoom(t, alice, { preset: "public_chat" });
    const before = await t.hs.storage.rooms.currentStreamPos();
    const mark = (tx: RoomWriteTx, tag: string) =>
      sql`INSERT INTO threepid_pending_invites (room_id, sender, medium, address, token, created_ts) VALUES (${roomId}, ${alice.userId}, 'email', ${tag}, ${tag}, 0)`.execute(tx.db);
    const send = (i: number, fail: boolean) =>
      t.hs.rooms.deps.events.send(
        roomId,
        { type: "m.room.message", sender: alice.userId, content: { body: `tx${i}` } },
        {
          inTransaction: async (tx) => {
            await mark(tx, `tx${i}@example.org`);
            if (fail) throw new Error("refused by the caller");
          },
        },
      );
    // Concurrent: the three share one batch; the failing one must not take the others down.
    const results = await Promise.allSettled([send(0, false), send(1, true), send(2, false)]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    const rows = await sql<{ address: string }>`SELECT address FROM threepid_pending_invites WHERE room_id = ${roomId} ORDER BY address`.execute(t.hs.storage.handle.db);
    assert.deepEqual(rows.rows.map((r) => r.address), ["tx0@example.org", "tx2@example.org"]);
    const events = await t.hs.storage.rooms.getRoomEvents(roomId, { dir: "f", after: before, upTo: Number.MAX_SAFE_INTEGER, limit: 100 });
    assert.deepEqual(events.map((e) => e.pdu.content.body).sort(), ["tx0", "tx2"]);
  });

  it("events over 64 KiB are 413 M_TOO_LARGE; over-long types 400", async () => {
    const roomId = await createRoom(t, alice);
    const big = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/big`, { token: alice.token, body: { body: "x".repeat(70_000) } });
    assert.equal(big.status, 413);
    assert.equal(big.body.errcode, "M_TOO_LARGE");
    const longType = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/${"t".repeat(300)}/lt`, { token: alice.token, body: {} });
    assert.equal(longType.status, 400);
  });

  it("messages paginate backwards and forwards", async () => {
    const roomId = await createRoom(t, alice);
    for (let i = 0; i < 5; i++) await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/m${i}`, { token: alice.token, body: { body: `m${i}` } });
    const p1 = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=3`, { token: alice.token });
    const bodies1 = (p1.body.chunk as { content: { body?: string } }[]).map((e) => e.content.body);
    assert.deepEqual(bodies1, ["m4", "m3", "m2"]);
    const p2 = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${p1.body.end as string}`, { token: alice.token });
    assert.deepEqual(
      (p2.body.chunk as { content: { body?: string } }[]).map((e) => e.content.body),
      ["m1", "m0", undefined],
    );
    const f = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=f&limit=2&from=${p1.body.end as string}`, { token: alice.token });
    assert.deepEqual(
      (f.body.chunk as { content: { body?: string } }[]).map((e) => e.content.body),
      ["m2", "m3"],
    );
    const bad = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?from=garbage`, { token: alice.token });
    assert.equal(bad.status, 400);
  });

  it("members, joined_members, joined_rooms", async () => {
    const roomId = await createRoom(t, alice, { preset: "public_chat" });
    await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/join`, { token: bob.token, body: {} });
    const m = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/members`, { token: alice.token });
    assert.deepEqual((m.body.chunk as { state_key: string }[]).map((e) => e.state_key).sort(), [alice.userId, bob.userId].sort());
    const onlyJoin = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/members?not_membership=join`, { token: alice.token });
    assert.deepEqual(onlyJoin.body.chunk, []);
    const jm = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/joined_members`, { token: alice.token });
    assert.deepEqual(jm.body.joined, { [alice.userId]: { display_name: "alice", avatar_url: null }, [bob.userId]: { display_name: "bob", avatar_url: null } });
    const jr = await call(t.hs, "GET", `${C}/joined_rooms`, { token: bob.token });
    assert.ok((jr.body.joined_rooms as string[]).includes(roomId));
  });

  it("aliases: put, get, 409 when taken, delete (creator only), remote alias", async () => {
    const roomId = await createRoom(t, alice);
    const alias = "#alias1:localhost:8008";
    assert.equal((await call(t.hs, "PUT", `${C}/directory/room/${enc(alias)}`, { token: alice.token, body: { room_id: roomId } })).status, 200);
    assert.deepEqual((await call(t.hs, "GET", `${C}/directory/room/${enc(alias)}`)).body, { room_id: roomId, servers: ["localhost:8008"] });
    const taken = await call(t.hs, "PUT", `${C}/directory/room/${enc(alias)}`, { token: bob.token, body: { room_id: roomId } });
    assert.equal(taken.status, 409);
    const notYours = await call(t.hs, "DELETE", `${C}/directory/room/${enc(alias)}`, { token: bob.token });
    assert.equal(notYours.status, 403);
    assert.equal((await call(t.hs, "DELETE", `${C}/directory/room/${enc(alias)}`, { token: alice.token })).status, 200);
    assert.equal((await call(t.hs, "GET", `${C}/directory/room/${enc(alias)}`)).status, 404);
    const remote = await call(t.hs, "PUT", `${C}/directory/room/${enc("#a:other.example")}`, { token: alice.token, body: { room_id: roomId } });
    assert.equal(remote.status, 400);
  });
});

describe("homeserver HTTP: single events, room aliases, account data", () => {
  it("GET rooms/{id}/event/{eventId}, GET rooms/{id}/aliases, account data (global and per room) in sync", async () => {
    const t = await startTestHomeserver();
    try {
      const alice = await registerUser(t.hs, "alice");
      const bob = await registerUser(t.hs, "bob");
      const roomId = await createRoom(t, alice, { room_alias_name: "listed" });
      const sent = await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/e1`, { token: alice.token, body: { body: "x" } });
      const ev = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/event/${enc(sent.body.event_id as string)}`, { token: alice.token });
      assert.equal(ev.status, 200);
      assert.equal(ev.body.event_id, sent.body.event_id);
      assert.deepEqual(ev.body.content, { body: "x" });
      assert.equal((await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/event/${enc(sent.body.event_id as string)}`, { token: bob.token })).status, 403);
      assert.equal((await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/event/${enc("$nope")}`, { token: alice.token })).status, 404);
      assert.deepEqual((await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/aliases`, { token: alice.token })).body, { aliases: ["#listed:localhost:8008"] });

      const s0 = await call(t.hs, "GET", `${C}/sync`, { token: alice.token });
      const url = `${C}/user/${enc(alice.userId)}/account_data/m.identity_server`;
      assert.equal((await call(t.hs, "GET", url, { token: alice.token })).status, 404);
      assert.equal((await call(t.hs, "PUT", url, { token: alice.token, body: { base_url: "http://127.0.0.1:8090" } })).status, 200);
      assert.deepEqual((await call(t.hs, "GET", url, { token: alice.token })).body, { base_url: "http://127.0.0.1:8090" });
      assert.equal((await call(t.hs, "PUT", url, { token: bob.token, body: {} })).status, 403);
      const roomUrl = `${C}/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.tag`;
      assert.equal((await call(t.hs, "PUT", roomUrl, { token: alice.token, body: { a: 1 } })).status, 200);
      assert.deepEqual((await call(t.hs, "GET", roomUrl, { token: alice.token })).body, { a: 1 });
      const s1 = await call(t.hs, "GET", `${C}/sync?since=${s0.body.next_batch as string}`, { token: alice.token });
      assert.deepEqual((s1.body.account_data as { events: unknown[] }).events, [{ type: "m.identity_server", content: { base_url: "http://127.0.0.1:8090" } }]);
      const joined = (s1.body.rooms as { join: Record<string, { account_data: { events: unknown[] } }> }).join;
      assert.deepEqual(joined[roomId]?.account_data.events, [{ type: "org.example.tag", content: { a: 1 } }]);
      const initial = await call(t.hs, "GET", `${C}/sync`, { token: alice.token });
      assert.equal((initial.body.account_data as { events: unknown[] }).events.length, 1);
    } finally {
      await t.close();
    }
  });
});

describe("homeserver: restart persistence", () => {
  it("rooms, state, members and tokens survive a restart; state rebuilt from events matches", async () => {
    const t1 = await startTestHomeserver();
    const alice = await registerUser(t1.hs, "alice");
    const bob = await registerUser(t1.hs, "bob");
    const roomId = await createRoom(t1, alice, { name: "Persist", preset: "public_chat" });
    await call(t1.hs, "POST", `${C}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    await call(t1.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/p1`, { token: bob.token, body: { body: "hello" } });
    const noAge = (b: unknown) => (b as { unsigned?: { age?: number } }[]).map((e) => ({ ...e, unsigned: { ...e.unsigned, age: 0 } }));
    const stateBefore = noAge((await call(t1.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token })).body);
    const keyBefore = t1.hs.signingKey.keyId;
    await t1.hs.stop();
    const t2 = await startTestHomeserver({ dir: t1.dir });
    try {
      assert.equal(t2.hs.signingKey.keyId, keyBefore);
      assert.equal((await call(t2.hs, "GET", `${C}/account/whoami`, { token: bob.token })).body.user_id, bob.userId);
      assert.deepEqual(noAge((await call(t2.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token })).body), stateBefore);
      await t2.hs.rebuildProjections();
      assert.deepEqual(noAge((await call(t2.hs, "GET", `${C}/rooms/${enc(roomId)}/state`, { token: alice.token })).body), stateBefore);
      const jm = await call(t2.hs, "GET", `${C}/rooms/${enc(roomId)}/joined_members`, { token: alice.token });
      assert.deepEqual(Object.keys(jm.body.joined as object).sort(), [alice.userId, bob.userId].sort());
      const send = await call(t2.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/p1`, { token: bob.token, body: { body: "hello" } });
      assert.equal(send.status, 200, "the transaction id is remembered across restarts");
      const msgs = await call(t2.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=5`, { token: alice.token });
      assert.equal((msgs.body.chunk as { content: { body?: string } }[]).filter((e) => e.content.body === "hello").length, 1);
    } finally {
      await t2.close();
      await t1.close();
    }
  });
});

describe("homeserver on PostgreSQL", { skip: postgresSkipReason() }, () => {
  it("create, invite, join, send (idempotent), state, sync, restart", async () => {
    const db = await createTempDatabase("beckon_hs_http");
    const t1 = await startTestHomeserver({ dbUrl: db.url });
    let t2: TestHomeserver | undefined;
    try {
      const alice = await registerUser(t1.hs, "alice");
      const bob = await registerUser(t1.hs, "bob");
      const roomId = await createRoom(t1, alice, { name: "PG", preset: "private_chat", invite: [bob.userId] });
      const dup = await call(t1.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: { user_id: bob.userId } });
      assert.equal(dup.status, 200);
      assert.equal((await call(t1.hs, "POST", `${C}/join/${enc(roomId)}`, { token: bob.token, body: {} })).status, 200);
      const sends = await Promise.all(
        Array.from({ length: 4 }, (_, i) => call(t1.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/${i % 2}`, { token: bob.token, body: { body: "x" } })),
      );
      assert.equal(new Set(sends.map((s) => s.body.event_id)).size, 2);
      const s = await call(t1.hs, "GET", `${C}/sync`, { token: bob.token });
      assert.ok((s.body.rooms as { join: Record<string, unknown> }).join[roomId]);
      assert.deepEqual(await stateContent(t1, alice, roomId, "m.room.name"), { name: "PG" });
      await t1.hs.stop();
      t2 = await startTestHomeserver({ dbUrl: db.url });
      assert.equal((await call(t2.hs, "GET", `${C}/account/whoami`, { token: bob.token })).status, 200);
      assert.equal((await stateContent(t2, alice, roomId, "m.room.member", bob.userId)).membership, "join");
    } finally {
      await t2?.close();
      await t1.close();
      await db.drop();
    }
  });
});

describe("two homeserver processes on one PostgreSQL database", { skip: postgresSkipReason() }, () => {
  it("concurrent writes to one room through both stay one linear chain; caches never serve stale state", async () => {
    const db = await createTempDatabase("beckon_hs_multi");
    const a = await startTestHomeserver({ dbUrl: db.url });
    const b = await startTestHomeserver({ dbUrl: db.url });
    try {
      const alice = await registerUser(a.hs, "alice");
      const roomId = await createRoom(a, alice, { preset: "public_chat" });
      const users: TestUser[] = [];
      for (let i = 0; i < 6; i++) users.push(await registerUser(i % 2 ? a.hs : b.hs, `m${i}`));
      // Joins and messages through both servers at once.
      await Promise.all(users.map((u, i) => call((i % 2 ? b : a).hs, "POST", `${C}/join/${enc(roomId)}`, { token: u.token, body: {} })));
      const sends = await Promise.all(
        Array.from({ length: 30 }, (_, i) => call((i % 2 ? a : b).hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/x${i}`, { token: users[i % 6]!.token, body: { body: `${i}` } })),
      );
      assert.ok(sends.every((r) => r.status === 200));
      // A state change through one server is seen by the other's next write (its cache is checked).
      assert.equal((await call(a.hs, "POST", `${C}/rooms/${enc(roomId)}/ban`, { token: alice.token, body: { user_id: users[1]!.userId } })).status, 200);
      const after = await call(b.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/late`, { token: users[1]!.token, body: { body: "late" } });
      assert.equal(after.status, 403);
      const events = await a.hs.storage.rooms.getRoomEvents(roomId, { dir: "f", after: 0, upTo: Number.MAX_SAFE_INTEGER, limit: 1000 });
      assert.equal(events.length, 1 + 1 + 1 + 3 + 6 + 30 + 1);
      for (let i = 1; i < events.length; i++) assert.deepEqual(events[i]!.pdu.prev_events, [events[i - 1]!.eventId]);
      const joined = (await call(b.hs, "GET", `${C}/rooms/${enc(roomId)}/joined_members`, { token: alice.token })).body.joined as object;
      assert.equal(Object.keys(joined).length, 6);
    } finally {
      await b.close();
      await a.close();
      await db.drop();
    }
  });
});
