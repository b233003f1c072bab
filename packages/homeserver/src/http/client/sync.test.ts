/**
 * `/sync`: initial and incremental (SyTest 31sync/07invited), timeline limits and `limited`,
 * `include_leave`, and long-polls that wake on new events (no database polling) or time out
 * (fake clock).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { FakeClock } from "@beckon/server-kit";
import { call, enc, registerUser, startTestHomeserver, type TestHomeserver, type TestUser } from "../../testing.js";

const C = "/_matrix/client/v3";

interface SyncBody {
  next_batch: string;
  rooms: {
    join: Record<string, { timeline: { events: { type: string; event_id: string; state_key?: string; content: Record<string, unknown>; sender: string }[]; limited: boolean; prev_batch: string }; state: { events: { type: string }[] } }>;
    invite: Record<string, { invite_state: { events: { type: string; state_key: string; sender: string; content: Record<string, unknown> }[] } }>;
    leave: Record<string, { timeline: { events: { type: string }[] } }>;
  };
}

describe("sync", () => {
  let t: TestHomeserver;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    t = await startTestHomeserver();
    alice = await registerUser(t.hs, "alice");
    bob = await registerUser(t.hs, "bob");
  });
  after(() => t.close());

  const sync = async (u: TestUser, q = "") => {
    const r = await call(t.hs, "GET", `${C}/sync${q}`, { token: u.token });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as unknown as SyncBody;
  };
  const create = async (u: TestUser, body: Record<string, unknown> = {}) => (await call(t.hs, "POST", `${C}/createRoom`, { token: u.token, body })).body.room_id as string;

  it("Rooms a user is invited to appear in an initial sync", async () => {
    const roomId = await create(alice, { preset: "private_chat" });
    await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: { user_id: bob.userId } });
    const s = await sync(bob);
    const inv = s.rooms.invite[roomId]!.invite_state.events.find((e) => e.type === "m.room.member" && e.state_key === bob.userId);
    assert.equal(inv?.sender, alice.userId);
    assert.equal(inv?.content.membership, "invite");
  });

  it("Rooms a user is invited to appear in an incremental sync; newly joined room is included after the invite", async () => {
    const s0 = await sync(bob);
    const roomId = await create(alice, { preset: "private_chat" });
    await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/invite`, { token: alice.token, body: { user_id: bob.userId } });
    const s1 = await sync(bob, `?since=${s0.next_batch}`);
    assert.ok(s1.rooms.invite[roomId]);
    assert.equal(s1.rooms.join[roomId], undefined);
    await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    const s2 = await sync(bob, `?since=${s1.next_batch}`);
    const j = s2.rooms.join[roomId]!;
    assert.ok(j, "joined room in incremental sync");
    assert.ok(Array.isArray(j.timeline.events));
    assert.equal(typeof j.timeline.limited, "boolean");
    assert.equal(typeof j.timeline.prev_batch, "string");
    assert.ok(j.timeline.events.some((e) => e.type === "m.room.member" && e.state_key === bob.userId && e.content.membership === "join"));
    const allTypes = [...j.timeline.events, ...j.state.events].map((e) => e.type);
    assert.ok(allTypes.includes("m.room.create"), "a new join brings the room's state");
    assert.equal(s2.rooms.invite[roomId], undefined);
    // Nothing new: an incremental sync without timeout is empty.
    const s3 = await sync(bob, `?since=${s2.next_batch}`);
    assert.deepEqual(s3.rooms.join, {});
    assert.equal(s3.next_batch, s2.next_batch);
    // A message shows as a timeline-only update.
    await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/t1`, { token: alice.token, body: { body: "hi" } });
    const s4 = await sync(bob, `?since=${s3.next_batch}`);
    assert.deepEqual(
      s4.rooms.join[roomId]!.timeline.events.map((e) => e.content.body),
      ["hi"],
    );
    assert.equal(s4.rooms.join[roomId]!.timeline.limited, false);
  });

  it("timeline limit: limited and a prev_batch that /messages continues from", async () => {
    const roomId = await create(alice);
    for (let i = 0; i < 6; i++) await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/l${i}`, { token: alice.token, body: { body: `l${i}` } });
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 3 } } }));
    const s = await sync(alice, `?filter=${filter}`);
    const j = s.rooms.join[roomId]!;
    assert.equal(j.timeline.limited, true);
    assert.deepEqual(
      j.timeline.events.map((e) => e.content.body),
      ["l3", "l4", "l5"],
    );
    assert.ok(j.state.events.some((e) => e.type === "m.room.create"));
    const more = await call(t.hs, "GET", `${C}/rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${j.timeline.prev_batch}`, { token: alice.token });
    assert.deepEqual(
      (more.body.chunk as { content: { body?: string } }[]).map((e) => e.content.body),
      ["l2"],
    );
    const inc = await sync(alice, `?since=${s.next_batch}`);
    for (let i = 6; i < 10; i++) await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/l${i}`, { token: alice.token, body: { body: `l${i}` } });
    const s2 = await sync(alice, `?since=${inc.next_batch}&filter=${filter}`);
    assert.equal(s2.rooms.join[roomId]!.timeline.limited, true);
    assert.equal(s2.rooms.join[roomId]!.timeline.events.length, 3);
  });

  it("left rooms: only with include_leave in an initial sync; always in the incremental sync that covers the leave", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await call(t.hs, "POST", `${C}/join/${enc(roomId)}`, { token: bob.token, body: {} });
    const s0 = await sync(bob);
    await call(t.hs, "POST", `${C}/rooms/${enc(roomId)}/leave`, { token: bob.token, body: {} });
    assert.equal((await sync(bob)).rooms.leave[roomId], undefined);
    const withLeave = await sync(bob, `?filter=${enc(JSON.stringify({ room: { include_leave: true } }))}`);
    assert.ok(withLeave.rooms.leave[roomId]);
    const inc = await sync(bob, `?since=${s0.next_batch}`);
    assert.ok(inc.rooms.leave[roomId]);
    assert.equal(inc.rooms.join[roomId], undefined);
  });

  it("a long-poll wakes up when an event arrives", async () => {
    const roomId = await create(alice);
    const s0 = await sync(alice);
    const started = Date.now();
    const pending = sync(alice, `?since=${s0.next_batch}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 50));
    await call(t.hs, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/wake`, { token: alice.token, body: { body: "wake" } });
    const s1 = await pending;
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(
      s1.rooms.join[roomId]!.timeline.events.map((e) => e.content.body),
      ["wake"],
    );
  });

  it("a long-poll also wakes for an invite to a new room", async () => {
    const s0 = await sync(bob);
    const pending = sync(bob, `?since=${s0.next_batch}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 50));
    const roomId = await create(alice, { invite: [bob.userId] });
    const s1 = await pending;
    assert.ok(s1.rooms.invite[roomId]);
  });

  it("stored filters (POST/GET user/{userId}/filter) apply to sync; push rules answer (matrix-js-sdk startClient)", async () => {
    const f = await call(t.hs, "POST", `${C}/user/${enc(alice.userId)}/filter`, { token: alice.token, body: { room: { timeline: { limit: 1 } } } });
    assert.equal(f.status, 200);
    const id = f.body.filter_id as string;
    const again = await call(t.hs, "POST", `${C}/user/${enc(alice.userId)}/filter`, { token: alice.token, body: { room: { timeline: { limit: 1 } } } });
    assert.equal(again.body.filter_id, id);
    assert.deepEqual((await call(t.hs, "GET", `${C}/user/${enc(alice.userId)}/filter/${id}`, { token: alice.token })).body, { room: { timeline: { limit: 1 } } });
    assert.equal((await call(t.hs, "GET", `${C}/user/${enc(alice.userId)}/filter/nope`, { token: alice.token })).status, 404);
    assert.equal((await call(t.hs, "POST", `${C}/user/${enc(bob.userId)}/filter`, { token: alice.token, body: {} })).status, 403);
    const s = await sync(alice, `?filter=${id}`);
    for (const r of Object.values(s.rooms.join)) assert.ok(r.timeline.events.length <= 1);
    for (const path of ["/pushrules/", "/pushrules"]) {
      const pr = await call(t.hs, "GET", `${C}${path}`, { token: alice.token });
      assert.equal(pr.status, 200);
      assert.ok((pr.body.global as Record<string, unknown>).override);
    }
  });

  it("invalid since token and filter are 400", async () => {
    assert.equal((await call(t.hs, "GET", `${C}/sync?since=zzz`, { token: alice.token })).status, 400);
    assert.equal((await call(t.hs, "GET", `${C}/sync?filter=${enc("{bad")}`, { token: alice.token })).status, 400);
  });
});

describe("sync long-poll timeout (fake clock)", () => {
  it("returns an empty response with the same next_batch when the timeout passes", async () => {
    const clock = new FakeClock(Date.now());
    const t = await startTestHomeserver({ clock });
    try {
      const a = await registerUser(t.hs, "a");
      await call(t.hs, "POST", `${C}/createRoom`, { token: a.token, body: {} });
      const s0 = (await call(t.hs, "GET", `${C}/sync`, { token: a.token })).body as unknown as SyncBody;
      let done = false;
      const pending = call(t.hs, "GET", `${C}/sync?since=${s0.next_batch}&timeout=30000`, { token: a.token }).then((r) => {
        done = true;
        return r;
      });
      for (let i = 0; i < 50 && !done; i++) await new Promise((r) => setImmediate(r));
      assert.equal(done, false, "still waiting");
      clock.advance(30_000);
      const r = await pending;
      assert.equal(r.status, 200);
      const body = r.body as unknown as SyncBody;
      assert.equal(body.next_batch, s0.next_batch);
      assert.deepEqual(body.rooms.join, {});
    } finally {
      await t.close();
    }
  });
});

describe("sync and shutdown", () => {
  it("stop() answers waiting long-polls at once instead of waiting for their timeouts", async () => {
    const t = await startTestHomeserver();
    try {
      const a = await registerUser(t.hs, "a");
      await call(t.hs, "POST", `${C}/createRoom`, { token: a.token, body: {} });
      const s0 = (await call(t.hs, "GET", `${C}/sync`, { token: a.token })).body as unknown as SyncBody;
      const { url } = await t.hs.start({ host: "127.0.0.1", port: 0 });
      const pending = fetch(`${url}${C}/sync?since=${s0.next_batch}&timeout=60000`, { headers: { authorization: `Bearer ${a.token}` } });
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      await t.hs.stop();
      const r = await pending;
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as SyncBody).next_batch, s0.next_batch);
      assert.ok(Date.now() - started < 5000, "stop did not wait for the long-poll's timeout");
    } finally {
      await t.close();
    }
  });
});
