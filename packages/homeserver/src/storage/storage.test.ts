/**
 * Storage contract: the same suite on SQLite (always) and PostgreSQL (when TEST_POSTGRES_URL is
 * set), plus persistence across close/reopen and projections rebuilt from the event log.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { sql } from "kysely";
import { stateKeyId, type PDU } from "@beckon/protocol";
import { createTempDatabase, postgresSkipReason, tempDir, type TempDatabase } from "@beckon/test-support";
import { openHomeserverStorage, type HomeserverStorage } from "./index.js";
import type { NewEventRecord } from "./rooms-store.js";

function pdu(roomId: string, type: string, sender: string, content: Record<string, unknown>, stateKey?: string, depth = 1): PDU {
  return {
    room_id: roomId,
    sender,
    type,
    content,
    ...(stateKey !== undefined ? { state_key: stateKey } : {}),
    origin_server_ts: 1000 + depth,
    depth,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: "x" },
    signatures: {},
  };
}

let seq = 0;
function ev(roomId: string, type: string, sender: string, content: Record<string, unknown>, stateKey?: string): NewEventRecord {
  seq++;
  return { eventId: `$e${seq}`, pdu: pdu(roomId, type, sender, content, stateKey, seq) };
}

function contract(name: string, open: () => Promise<{ storage: HomeserverStorage; reopen: () => Promise<HomeserverStorage>; cleanup: () => Promise<void> }>, skip?: string) {
  describe(`storage contract (${name})`, { skip }, () => {
    let s: HomeserverStorage;
    let reopen: () => Promise<HomeserverStorage>;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ storage: s, reopen, cleanup } = await open());
    });
    after(async () => {
      await s.close();
      await cleanup();
    });

    it("users, sessions and token lookup by hash", async () => {
      await s.accounts.createUser({ userId: "@a:hs", localpart: "a", passwordHash: null, displayname: "A", isAdmin: false, createdTs: 1 });
      await assert.rejects(s.accounts.createUser({ userId: "@a:hs", localpart: "a", passwordHash: null, displayname: null, isAdmin: false, createdTs: 2 }));
      await s.accounts.createSession({ userId: "@a:hs", deviceId: "D1", tokenHash: "h1", deviceDisplayName: null, now: 1 });
      await s.accounts.createSession({ userId: "@a:hs", deviceId: "D2", tokenHash: "h2", deviceDisplayName: "phone", now: 1 });
      assert.deepEqual(await s.accounts.getTokenOwner("h1"), { userId: "@a:hs", deviceId: "D1", deactivated: false });
      await s.accounts.deleteSession("h1");
      assert.equal(await s.accounts.getTokenOwner("h1"), undefined);
      assert.ok(await s.accounts.getTokenOwner("h2"));
      await s.accounts.setProfile("@a:hs", { displayname: "Alice", avatarUrl: "mxc://x/y" });
      const u = await s.accounts.getUser("@a:hs");
      assert.equal(u?.displayname, "Alice");
      assert.equal(u?.avatarUrl, "mxc://x/y");
      await s.accounts.deleteAllSessions("@a:hs");
      assert.equal(await s.accounts.getTokenOwner("h2"), undefined);
    });

    it("nonces are single-use and expire", async () => {
      await s.accounts.insertNonce("n1", 1000);
      assert.equal(await s.accounts.consumeNonce("n1", 500), true);
      assert.equal(await s.accounts.consumeNonce("n1", 500), false);
      await s.accounts.insertNonce("n2", 1000);
      assert.equal(await s.accounts.consumeNonce("n2", 2000), false);
    });

    it("settings and the signing key: first writer wins", async () => {
      assert.equal(await s.accounts.setSettingIfAbsent("server_name", "a:1"), "a:1");
      assert.equal(await s.accounts.setSettingIfAbsent("server_name", "b:2"), "a:1");
      const k1 = await s.accounts.ensureSigningKey({ keyId: "ed25519:a", seed: "AAAA", now: 1 });
      const k2 = await s.accounts.ensureSigningKey({ keyId: "ed25519:b", seed: "BBBB", now: 2 });
      assert.deepEqual(k2, k1);
      assert.deepEqual(await s.accounts.getSigningKey(), { keyId: "ed25519:a", seed: "AAAA" });
    });

    it("appends events in stream order and projects state and memberships", async () => {
      const room = "!r1:hs";
      const start = await s.rooms.currentStreamPos();
      const recs = await s.rooms.withRoomWrite(room, async (tx) => {
        assert.equal(tx.room, undefined);
        await tx.insertRoom({ roomId: room, roomVersion: "10", creator: "@a:hs", createdTs: 1 });
        return tx.append([
          ev(room, "m.room.create", "@a:hs", { creator: "@a:hs" }, ""),
          ev(room, "m.room.member", "@a:hs", { membership: "join" }, "@a:hs"),
          ev(room, "m.room.name", "@a:hs", { name: "one" }, ""),
          ev(room, "m.room.name", "@a:hs", { name: "two" }, ""),
          ev(room, "m.room.member", "@a:hs", { membership: "invite" }, "@b:hs"),
        ]);
      });
      assert.deepEqual(
        recs.map((r) => r.streamOrdering),
        [1, 2, 3, 4, 5].map((i) => start + i),
      );
      const r = await s.rooms.getRoom(room);
      assert.equal(r?.latestEventId, recs[4]!.eventId);
      assert.equal(r?.latestStream, start + 5);
      const name = await s.rooms.getStateEvents(room, [{ type: "m.room.name", stateKey: "" }]);
      assert.equal(name.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "two");
      assert.equal((await s.rooms.getCurrentState(room)).length, 4);
      assert.equal((await s.rooms.getMembership(room, "@b:hs"))?.membership, "invite");
      assert.deepEqual(
        (await s.rooms.getUserMemberships("@a:hs")).map((m) => m.membership),
        ["join"],
      );
      await s.rooms.withRoomWrite(room, (tx) => tx.append([{ ...ev(room, "m.room.message", "@a:hs", { body: "hi" }), txn: { userId: "@a:hs", deviceId: "D", txnId: "t1" } }]));
      assert.ok(await s.rooms.getTxn("@a:hs", "D", "t1"));
      const between = await s.rooms.getEventsBetween([room], start + 2, start + 6);
      assert.deepEqual(
        between.map((e) => e.type),
        ["m.room.name", "m.room.name", "m.room.member", "m.room.message"],
      );
      assert.deepEqual(
        (await s.rooms.getStreamRange(start + 4, start + 6)).map((e) => e.streamOrdering),
        [start + 5, start + 6],
      );
      assert.deepEqual((await s.rooms.getEvents([recs[0]!.eventId, "$missing", recs[2]!.eventId])).map((e) => e.eventId).sort(), [recs[0]!.eventId, recs[2]!.eventId].sort());
      const multi = await s.rooms.getStateOfRooms([room, "!other:hs"], ["m.room.name", "m.room.create"], [{ roomId: room, userId: "@a:hs" }]);
      assert.deepEqual(multi.map((e) => `${e.type}|${e.stateKey}`).sort(), ["m.room.create|", "m.room.member|@a:hs", "m.room.name|"]);
      const back = await s.rooms.getRoomEvents(room, { dir: "b", upTo: start + 6, limit: 2 });
      assert.deepEqual(
        back.map((e) => e.type),
        ["m.room.message", "m.room.member"],
      );
      const fwd = await s.rooms.getRoomEvents(room, { dir: "f", after: start, upTo: start + 6, limit: 2 });
      assert.deepEqual(
        fwd.map((e) => e.type),
        ["m.room.create", "m.room.member"],
      );
      assert.equal(await s.rooms.currentStreamPos(), start + 6);
    });

    it("a failed write transaction leaves nothing behind", async () => {
      const room = "!r2:hs";
      const pos = await s.rooms.currentStreamPos();
      await assert.rejects(
        s.rooms.withRoomWrite(room, async (tx) => {
          await tx.insertRoom({ roomId: room, roomVersion: "10", creator: "@a:hs", createdTs: 1 });
          await tx.append([ev(room, "m.room.create", "@a:hs", {}, "")]);
          throw new Error("boom");
        }),
      );
      assert.equal(await s.rooms.getRoom(room), undefined);
      assert.equal(await s.rooms.currentStreamPos(), pos);
    });

    it("aliases are unique", async () => {
      assert.equal(await s.rooms.insertAlias({ alias: "#x:hs", roomId: "!r1:hs", creator: "@a:hs", now: 1 }), true);
      assert.equal(await s.rooms.insertAlias({ alias: "#x:hs", roomId: "!r9:hs", creator: "@a:hs", now: 1 }), false);
      assert.deepEqual(await s.rooms.getAlias("#x:hs"), { roomId: "!r1:hs", creator: "@a:hs" });
      assert.deepEqual(await s.rooms.getRoomAliases("!r1:hs"), ["#x:hs"]);
      assert.equal(await s.rooms.deleteAlias("#x:hs"), true);
      assert.equal(await s.rooms.deleteAlias("#x:hs"), false);
    });

    it("forget hides a left room until the next invite or join", async () => {
      const room = "!r1:hs";
      await s.rooms.withRoomWrite(room, (tx) => tx.append([ev(room, "m.room.member", "@b:hs", { membership: "leave" }, "@b:hs")]));
      await s.rooms.setForgotten(room, "@b:hs");
      assert.equal((await s.rooms.getMembership(room, "@b:hs"))?.forgotten, true);
      await s.rooms.withRoomWrite(room, (tx) => tx.append([ev(room, "m.room.member", "@a:hs", { membership: "invite" }, "@b:hs")]));
      assert.equal((await s.rooms.getMembership(room, "@b:hs"))?.forgotten, false);
    });

    it("getStateEventsAt serves the state at the latest event it is given, from the cache, and never another room state", async () => {
      const room = "!r3:hs";
      const name = { type: "m.room.name", stateKey: "" };
      const avatar = { type: "m.room.avatar", stateKey: "" };
      await s.rooms.withRoomWrite(room, async (tx) => {
        await tx.insertRoom({ roomId: room, roomVersion: "10", creator: "@a:hs", createdTs: 1 });
        return tx.append([ev(room, "m.room.create", "@a:hs", {}, ""), ev(room, "m.room.member", "@a:hs", { membership: "join" }, "@a:hs"), ev(room, "m.room.name", "@a:hs", { name: "one" }, "")]);
      });
      const latest1 = (await s.rooms.getRoom(room))!.latestEventId;
      const first = await s.rooms.getStateEventsAt(room, latest1, [name, avatar, { type: "m.room.member", stateKey: "@a:hs" }]);
      assert.equal(first.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "one");
      assert.equal(first.has(stateKeyId("m.room.avatar", "")), false);
      assert.equal(first.get(stateKeyId("m.room.member", "@a:hs"))?.pdu.content.membership, "join");
      // The second read comes from the cache: a row changed behind the store's back is not read.
      const nameEvent = first.get(stateKeyId("m.room.name", ""))!;
      await sql`UPDATE hs_events SET json = ${JSON.stringify({ ...nameEvent.pdu, content: { name: "behind its back" } })} WHERE event_id = ${nameEvent.eventId}`.execute(s.handle.db);
      const cached = await s.rooms.getStateEventsAt(room, latest1, [name, avatar]);
      assert.equal(cached.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "one");
      assert.equal(cached.has(stateKeyId("m.room.avatar", "")), false);
      assert.equal((await s.rooms.getStateEvents(room, [name])).get(stateKeyId("m.room.name", ""))?.pdu.content.name, "behind its back");
      // Another process (a second handle) changes the room: at its new latest event the cache is not used.
      const other = await reopen();
      try {
        await other.rooms.withRoomWrite(room, (tx) => tx.append([ev(room, "m.room.name", "@a:hs", { name: "two" }, ""), ev(room, "m.room.avatar", "@a:hs", { url: "mxc://x/y" }, "")]));
      } finally {
        await other.close();
      }
      const latest2 = (await s.rooms.getRoom(room))!.latestEventId;
      assert.notEqual(latest2, latest1);
      const second = await s.rooms.getStateEventsAt(room, latest2, [name, avatar]);
      assert.equal(second.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "two");
      assert.equal(second.get(stateKeyId("m.room.avatar", ""))?.pdu.content.url, "mxc://x/y");
      // This store's own next write starts from the database's state, not its stale cache.
      await s.rooms.withRoomWrite(room, async (tx) => {
        const st = await tx.getState([name]);
        assert.equal(st.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "two");
        return tx.append([ev(room, "m.room.topic", "@a:hs", { topic: "t" }, "")]);
      });
      const latest3 = (await s.rooms.getRoom(room))!.latestEventId;
      const third = await s.rooms.getStateEventsAt(room, latest3, [name, avatar, { type: "m.room.topic", stateKey: "" }]);
      assert.equal(third.get(stateKeyId("m.room.name", ""))?.pdu.content.name, "two");
      assert.equal(third.get(stateKeyId("m.room.topic", ""))?.pdu.content.topic, "t");
      assert.equal((await s.rooms.getStateEventsAt("!nope:hs", "$none", [name])).size, 0);
    });

    it("everything survives close and reopen; rebuilt projections equal the stored ones", async () => {
      const room = "!r1:hs";
      const stateBefore = (await s.rooms.getCurrentState(room)).map((e) => e.eventId).sort();
      const membersBefore = await s.rooms.getRoomMemberships(room);
      const pos = await s.rooms.currentStreamPos();
      await s.close();
      s = await reopen();
      assert.equal(await s.rooms.currentStreamPos(), pos);
      assert.deepEqual((await s.rooms.getCurrentState(room)).map((e) => e.eventId).sort(), stateBefore);
      assert.ok(await s.accounts.getUser("@a:hs"));
      await s.rooms.rebuildRoomProjections(room);
      assert.deepEqual((await s.rooms.getCurrentState(room)).map((e) => e.eventId).sort(), stateBefore);
      assert.deepEqual(await s.rooms.getRoomMemberships(room), membersBefore);
    });
  });
}

contract("sqlite", async () => {
  const dir = tempDir("beckon-hs-store-");
  const url = `sqlite:${join(dir.path, "hs.db")}`;
  return {
    storage: await openHomeserverStorage({ url }),
    reopen: () => openHomeserverStorage({ url }),
    cleanup: async () => dir.cleanup(),
  };
});

let pgDb: TempDatabase | undefined;
contract(
  "postgres",
  async () => {
    pgDb = await createTempDatabase("beckon_hs");
    const url = pgDb.url;
    return {
      storage: await openHomeserverStorage({ url }),
      reopen: () => openHomeserverStorage({ url }),
      cleanup: async () => pgDb?.drop(),
    };
  },
  postgresSkipReason(),
);
