/**
 * Membership through HTTP: the SyTest scenarios of conformance.md §1.5 that need no federation,
 * Complement's `TestRoomsInvite` / `TestRoomMembers`, and the issue-9 rules for repeated invites.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../../testing.js";

const C = "/_matrix/client/v3";

describe("membership (SyTest 10apidoc/33room-members, 30rooms/06invite, 07ban, 15kick; Complement TestRoomsInvite)", () => {
  let t: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    t = await startTestHomeserver();
    alice = await registerUser(t.hs, "alice");
    bob = await registerUser(t.hs, "bob");
    carol = await registerUser(t.hs, "carol");
  });
  after(() => t.close());

  const create = async (u: TestUser, body: Record<string, unknown> = {}) => (await call(t.hs, "POST", `${C}/createRoom`, { token: u.token, body })).body.room_id as string;
  const member = async (u: TestUser, roomId: string, target: string) =>
    call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.member/${enc(target)}`, { token: u.token });
  const post = (u: TestUser, path: string, body: Record<string, unknown> = {}) => call(t.hs, "POST", `${C}${path}`, { token: u.token, body });
  const sync = async (u: TestUser, q = "") => (await call(t.hs, "GET", `${C}/sync${q}`, { token: u.token })).body as {
    next_batch: string;
    rooms: { join: Record<string, { timeline: { events: { type: string; state_key?: string; content: Record<string, unknown> }[]; limited: boolean; prev_batch: string } }>; invite: Record<string, { invite_state: { events: { type: string; state_key: string; sender: string; content: Record<string, unknown> }[] } }>; leave: Record<string, unknown> };
  };

  it("POST /rooms/:room_id/invite can send an invite", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId })).status, 200);
    assert.equal((await member(alice, roomId, bob.userId)).body.membership, "invite");
  });

  it("POST /rooms/:room_id/join, /join/:room_alias, /join/:room_id, with custom content", async () => {
    const roomId = await create(alice, { preset: "public_chat", room_alias_name: "joinme" });
    const r1 = await post(bob, `/rooms/${enc(roomId)}/join`, { foo: "bar" });
    assert.deepEqual(r1.body, { room_id: roomId });
    const m = await member(alice, roomId, bob.userId);
    assert.equal(m.body.membership, "join");
    assert.equal(m.body.foo, "bar");
    const r2 = await post(carol, `/join/${enc("#joinme:localhost:8008")}`);
    assert.deepEqual(r2.body, { room_id: roomId });
    const r3 = await post(carol, `/join/${enc(roomId)}`, { reason: "hi" });
    assert.deepEqual(r3.body, { room_id: roomId });
    assert.equal((await post(carol, `/join/${enc("#nope:localhost:8008")}`)).status, 404);
    assert.equal((await post(carol, `/join/${enc("#x:other.example")}`)).status, 403, "federation is not enabled");
    assert.equal((await post(carol, `/join/${enc("!x:other.example")}`)).status, 403, "federation is not enabled");
    assert.equal((await post(carol, `/join/${enc("!unknown:localhost:8008")}`)).status, 404);
  });

  it("POST /rooms/:room_id/leave and /ban with reason", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await post(bob, `/join/${enc(roomId)}`);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/leave`)).status, 200);
    assert.equal((await member(alice, roomId, bob.userId)).body.membership, "leave");
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/leave`)).status, 200, "leaving again is a no-op");
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/ban`, { user_id: bob.userId, reason: "spam" })).status, 200);
    assert.deepEqual((await member(alice, roomId, bob.userId)).body, { membership: "ban", reason: "spam" });
  });

  it("Can invite users to invite-only rooms; uninvited users cannot join", async () => {
    const roomId = await create(alice, { preset: "private_chat" });
    assert.equal((await post(carol, `/join/${enc(roomId)}`)).status, 403);
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const s = await sync(bob);
    assert.ok(s.rooms.invite[roomId]);
    assert.equal((await post(bob, `/join/${enc(roomId)}`)).status, 200);
    assert.equal((await member(bob, roomId, bob.userId)).body.membership, "join");
  });

  it("Invited user can reject invite (and the invite leaves their sync)", async () => {
    const roomId = await create(alice, { preset: "private_chat" });
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const s1 = await sync(bob);
    assert.ok(s1.rooms.invite[roomId]);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/leave`)).status, 200);
    assert.equal((await member(alice, roomId, bob.userId)).body.membership, "leave");
    const s2 = await sync(bob);
    assert.equal(s2.rooms.invite[roomId], undefined);
    const s3 = await sync(bob, `?since=${s1.next_batch}`);
    assert.equal(s3.rooms.invite[roomId], undefined);
    assert.ok(s3.rooms.leave[roomId], "the rejection shows in rooms.leave of an incremental sync");
  });

  it("Invited user can reject invite for empty room / after the originator leaves", async () => {
    const roomId = await create(alice, { preset: "private_chat" });
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/leave`)).status, 200);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/leave`)).status, 200);
    const s = await sync(bob);
    assert.equal(s.rooms.invite[roomId], undefined);
  });

  it("Invited user can see room metadata (invite_state has join rules, name, avatar, the inviter's and their own member events)", async () => {
    const roomId = await create(alice, { preset: "private_chat", name: "Invites room" });
    await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.avatar`, { token: alice.token, body: { url: "mxc://a/b" } });
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const events = (await sync(bob)).rooms.invite[roomId]!.invite_state.events;
    const find = (type: string, key = "") => events.find((e) => e.type === type && e.state_key === key);
    assert.deepEqual(find("m.room.join_rules")?.content, { join_rule: "invite" });
    assert.deepEqual(find("m.room.name")?.content, { name: "Invites room" });
    assert.deepEqual(find("m.room.avatar")?.content, { url: "mxc://a/b" });
    assert.ok(find("m.room.create"));
    assert.equal(find("m.room.member", alice.userId)?.content.membership, "join");
    const own = find("m.room.member", bob.userId);
    assert.equal(own?.content.membership, "invite");
    assert.equal(own?.sender, alice.userId);
  });

  it("Users cannot invite themselves, or a user that is already in the room; inviting an invited user is a no-op", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    const self = await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId });
    assert.equal(self.status, 403);
    assert.equal(self.body.errcode, "M_FORBIDDEN");
    await post(bob, `/join/${enc(roomId)}`);
    const joined = await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(joined.status, 403);
    assert.equal(joined.body.errcode, "M_FORBIDDEN");
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    const before = await t.hs.storage.rooms.currentStreamPos();
    const again = await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, {});
    assert.equal(await t.hs.storage.rooms.currentStreamPos(), before, "no new event");
    const parallel = await Promise.all(Array.from({ length: 10 }, () => post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: "@dave:localhost:8008" })));
    assert.ok(parallel.every((r) => r.status === 200));
    const daveInvites = (await t.hs.storage.rooms.getEventsBetween([roomId], before, Number.MAX_SAFE_INTEGER)).filter((e) => e.stateKey === "@dave:localhost:8008");
    assert.equal(daveInvites.length, 1, "ten identical invites in parallel make one event");
  });

  it("invites: not in the room, power too low, remote users, unknown rooms", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    const notIn = await post(carol, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(notIn.status, 403);
    await post(carol, `/join/${enc(roomId)}`);
    const low = await post(carol, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(low.status, 403, "public_chat needs power 50 to invite");
    const remote = await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: "@x:other.example" });
    assert.equal(remote.status, 403);
    const unknown = await post(alice, `/rooms/${enc("!nope:localhost:8008")}/invite`, { user_id: bob.userId });
    assert.equal(unknown.status, 404);
    const missing = await post(alice, `/rooms/${enc(roomId)}/invite`, {});
    assert.equal(missing.status, 400);
    assert.equal(missing.body.errcode, "M_MISSING_PARAM");
  });

  it("Test that we can be reinvited to a room we created", async () => {
    const roomId = await create(alice, { preset: "private_chat" });
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal((await post(bob, `/join/${enc(roomId)}`)).status, 200);
    const pl = (await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/state/m.room.power_levels`, { token: alice.token })).body;
    const users = { ...(pl.users as Record<string, number>), [bob.userId]: 100 };
    assert.equal((await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/state/m.room.power_levels`, { token: alice.token, body: { ...pl, users } })).status, 200);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/leave`)).status, 200);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId })).status, 200);
    assert.equal((await post(alice, `/join/${enc(roomId)}`)).status, 200);
  });

  it("Banned user is kicked and may not rejoin until unbanned", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await post(bob, `/join/${enc(roomId)}`);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/ban`, { user_id: bob.userId, reason: "x" })).status, 200);
    assert.equal((await post(bob, `/join/${enc(roomId)}`)).status, 403);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId })).status, 403);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId })).status, 403);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/unban`, { user_id: bob.userId })).status, 200);
    assert.equal((await member(alice, roomId, bob.userId)).body.membership, "leave");
    assert.equal((await post(bob, `/join/${enc(roomId)}`)).status, 200);
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/unban`, { user_id: carol.userId })).status, 403, "unbanning someone not banned");
  });

  it("kick: with reason; not from a room one is not in; not someone who already left; not without power", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await post(bob, `/join/${enc(roomId)}`);
    await post(carol, `/join/${enc(roomId)}`);
    assert.equal((await post(carol, `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId })).status, 403, "power 0 < kick 50");
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: "bye" })).status, 200);
    assert.deepEqual((await member(alice, roomId, bob.userId)).body, { membership: "leave", reason: "bye" });
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId })).status, 403, "already left");
    const other = await create(carol);
    assert.equal((await post(alice, `/rooms/${enc(other)}/kick`, { user_id: carol.userId })).status, 403, "kicker not in the room");
    // Rescinding an invite is a kick of an invited user.
    await post(alice, `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal((await post(alice, `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId })).status, 200);
    assert.equal((await member(alice, roomId, bob.userId)).body.membership, "leave");
  });

  it("forget: only after leaving; the room then leaves sync", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await post(bob, `/join/${enc(roomId)}`);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/forget`)).status, 400);
    await post(bob, `/rooms/${enc(roomId)}/leave`);
    assert.equal((await post(bob, `/rooms/${enc(roomId)}/forget`)).status, 200);
    const s = await sync(bob, `?filter=${enc(JSON.stringify({ room: { include_leave: true } }))}`);
    assert.equal(s.rooms.leave[roomId], undefined);
    assert.equal((await post(carol, `/rooms/${enc(roomId)}/forget`)).status, 404);
  });

  it("invite rate limits (rc_invites) answer 429 before any event", async () => {
    const limited = await startTestHomeserver({ overrides: { rate_limits: { invites_per_issuer: { per_second: 0.001, burst: 1 } } } });
    try {
      const a = await registerUser(limited.hs, "a");
      const roomId = (await call(limited.hs, "POST", `${C}/createRoom`, { token: a.token, body: {} })).body.room_id as string;
      assert.equal((await call(limited.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: a.token, body: { user_id: "@b:localhost:8008" } })).status, 200);
      const pos = await limited.hs.storage.rooms.currentStreamPos();
      const r = await call(limited.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: a.token, body: { user_id: "@c:localhost:8008" } });
      assert.equal(r.status, 429);
      assert.equal(r.body.errcode, "M_LIMIT_EXCEEDED");
      assert.equal(await limited.hs.storage.rooms.currentStreamPos(), pos);
    } finally {
      await limited.close();
    }
  });
});
